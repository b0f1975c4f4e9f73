package client_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/protoc-gen-micro/micro/examples/greeter/greeterpb"
	"github.com/protoc-gen-micro/micro/internal/greetertest"
	"github.com/protoc-gen-micro/micro/internal/leakcheck"
	"github.com/protoc-gen-micro/micro/runtime/client"
	"github.com/protoc-gen-micro/micro/runtime/metadata"
	"github.com/protoc-gen-micro/micro/runtime/server"
	"github.com/protoc-gen-micro/micro/runtime/status"
)

type greeter struct{}

func (greeter) SayHello(ctx context.Context, in *greeterpb.HelloRequest, out *greeterpb.HelloReply) error {
	switch in.Name {
	case "":
		return status.New(status.InvalidArgument, "name is required")
	case "panic":
		panic("boom")
	case "sleep":
		<-ctx.Done()
		return ctx.Err()
	case "meta":
		md, _ := metadata.FromIncomingContext(ctx)
		server.SetHeader(ctx, metadata.Pairs("x-header", md.Value("x-in")))
		server.SetTrailer(ctx, metadata.Pairs("x-trailer-bin", "\x00\x01"))
	}
	out.Message = "Hello " + in.Name
	return nil
}

func (greeter) LotsOfReplies(ctx context.Context, in *greeterpb.HelloRequest, stream greeterpb.Greeter_LotsOfRepliesHandlerStream) error {
	for i := 0; i < 3; i++ {
		if err := stream.Send(&greeterpb.HelloReply{Message: fmt.Sprintf("Hello %s #%d", in.Name, i)}); err != nil {
			return err
		}
	}
	return nil
}

func (greeter) LotsOfGreetings(ctx context.Context, stream greeterpb.Greeter_LotsOfGreetingsHandlerStream) error {
	var names []string
	for {
		in, err := stream.Recv()
		if err == io.EOF {
			return stream.SendAndClose(&greeterpb.HelloReply{Message: "Hello " + strings.Join(names, ", ")})
		}
		if err != nil {
			return err
		}
		names = append(names, in.Name)
	}
}

func (greeter) Chat(ctx context.Context, stream greeterpb.Greeter_ChatHandlerStream) error {
	for {
		in, err := stream.Recv()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		if err := stream.Send(&greeterpb.HelloReply{Message: "Hello " + in.Name}); err != nil {
			return err
		}
	}
}

func startGreeter(t testing.TB, opts ...server.Option) (server.Server, greeterpb.GreeterService) {
	t.Helper()
	srv := server.NewServer(append([]server.Option{server.WithAddress("127.0.0.1:0")}, opts...)...)
	if err := greeterpb.RegisterGreeterHandler(srv, greeter{}); err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Stop() })
	c := client.NewClient()
	t.Cleanup(func() { c.(io.Closer).Close() })
	addr := srv.Address()
	return srv, greeterpb.NewGreeterService("greeter", withAddr{c, addr})
}

// withAddr sends every call to one address.
type withAddr struct {
	client.Client
	addr string
}

func (w withAddr) Call(ctx context.Context, service string, m *specMethod, req, rsp any, opts ...client.CallOption) error {
	return w.Client.Call(ctx, service, m, req, rsp, append(opts, client.WithAddress(w.addr))...)
}

func (w withAddr) Stream(ctx context.Context, service string, m *specMethod, opts ...client.CallOption) (client.Stream, error) {
	return w.Client.Stream(ctx, service, m, append(opts, client.WithAddress(w.addr))...)
}

func TestUnary(t *testing.T) {
	leakcheck.Check(t)
	_, g := startGreeter(t)
	rsp, err := g.SayHello(context.Background(), &greeterpb.HelloRequest{Name: "Ada"})
	if err != nil {
		t.Fatal(err)
	}
	if rsp.Message != "Hello Ada" {
		t.Fatalf("got %q", rsp.Message)
	}
}

func TestUnaryErrors(t *testing.T) {
	leakcheck.Check(t)
	_, g := startGreeter(t)
	_, err := g.SayHello(context.Background(), &greeterpb.HelloRequest{})
	var se *status.Error
	if !errors.As(err, &se) || se.Code() != status.InvalidArgument || se.Message() != "name is required" {
		t.Fatalf("got %v", err)
	}
	_, err = g.SayHello(context.Background(), &greeterpb.HelloRequest{Name: "panic"})
	if status.CodeOf(err) != status.Internal || !strings.Contains(err.Error(), "boom") {
		t.Fatalf("panic: got %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	_, err = g.SayHello(ctx, &greeterpb.HelloRequest{Name: "sleep"})
	if status.CodeOf(err) != status.DeadlineExceeded {
		t.Fatalf("deadline: got %v", err)
	}
	// The server survives all of this.
	if _, err := g.SayHello(context.Background(), &greeterpb.HelloRequest{Name: "again"}); err != nil {
		t.Fatal(err)
	}
}

func TestMetadata(t *testing.T) {
	leakcheck.Check(t)
	_, g := startGreeter(t)
	var hdr, trl metadata.MD
	ctx := metadata.AppendToOutgoingContext(context.Background(), "x-in", "v1")
	if _, err := g.SayHello(ctx, &greeterpb.HelloRequest{Name: "meta"}, client.WithResponseHeader(&hdr), client.WithResponseTrailer(&trl)); err != nil {
		t.Fatal(err)
	}
	if hdr.Value("x-header") != "v1" {
		t.Fatalf("header: %v", hdr)
	}
	if trl.Value("x-trailer-bin") != "\x00\x01" {
		t.Fatalf("trailer: %v", trl)
	}
}

func TestStreams(t *testing.T) {
	leakcheck.Check(t)
	_, g := startGreeter(t)
	greetertest.Exercise(t, g, true)
}

func benchGreeter(b *testing.B) greeterpb.GreeterService {
	_, g := startGreeter(b)
	return g
}
