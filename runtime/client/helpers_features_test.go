package client_test

import (
	"context"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/protoc-gen-micro/micro/examples/greeter/greeterpb"
	"github.com/protoc-gen-micro/micro/runtime/client"
	"github.com/protoc-gen-micro/micro/runtime/server"
	"github.com/protoc-gen-micro/micro/runtime/spec"
)

// funcGreeter is a greeter whose methods the test chooses; a nil func
// falls back to a plain echo.
type funcGreeter struct {
	hello   func(ctx context.Context, in *greeterpb.HelloRequest, out *greeterpb.HelloReply) error
	replies func(ctx context.Context, in *greeterpb.HelloRequest, s greeterpb.Greeter_LotsOfRepliesHandlerStream) error
	chat    func(ctx context.Context, s greeterpb.Greeter_ChatHandlerStream) error
}

func (g *funcGreeter) SayHello(ctx context.Context, in *greeterpb.HelloRequest, out *greeterpb.HelloReply) error {
	if g.hello != nil {
		return g.hello(ctx, in, out)
	}
	out.Message = "Hello " + in.Name
	return nil
}

func (g *funcGreeter) LotsOfReplies(ctx context.Context, in *greeterpb.HelloRequest, s greeterpb.Greeter_LotsOfRepliesHandlerStream) error {
	if g.replies != nil {
		return g.replies(ctx, in, s)
	}
	return s.Send(&greeterpb.HelloReply{Message: "Hello " + in.Name})
}

func (g *funcGreeter) LotsOfGreetings(ctx context.Context, s greeterpb.Greeter_LotsOfGreetingsHandlerStream) error {
	var names []string
	for {
		in, err := s.Recv()
		if err == io.EOF {
			return s.SendAndClose(&greeterpb.HelloReply{Message: "Hello " + strings.Join(names, ", ")})
		}
		if err != nil {
			return err
		}
		names = append(names, in.Name)
	}
}

func (g *funcGreeter) Chat(ctx context.Context, s greeterpb.Greeter_ChatHandlerStream) error {
	if g.chat != nil {
		return g.chat(ctx, s)
	}
	for {
		in, err := s.Recv()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		if err := s.Send(&greeterpb.HelloReply{Message: "Hello " + in.Name}); err != nil {
			return err
		}
	}
}

// serveGreeter starts a server on loopback with h and stops it when the
// test ends.
func serveGreeter(t *testing.T, h *funcGreeter, opts ...server.Option) server.Server {
	t.Helper()
	if h == nil {
		h = &funcGreeter{}
	}
	srv := server.NewServer(append([]server.Option{server.WithAddress("127.0.0.1:0")}, opts...)...)
	if err := greeterpb.RegisterGreeterHandler(srv, h); err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Stop() })
	return srv
}

// newTestClient returns a client closed when the test ends.
func newTestClient(t *testing.T, opts ...client.Option) client.Client {
	t.Helper()
	c := client.NewClient(opts...)
	t.Cleanup(func() { c.(io.Closer).Close() })
	return c
}

// pinned sends every call to one address.
type pinned struct {
	client.Client
	addr string
}

func (p pinned) Call(ctx context.Context, service string, m *spec.Method, req, rsp any, opts ...client.CallOption) error {
	return p.Client.Call(ctx, service, m, req, rsp, append(opts, client.WithAddress(p.addr))...)
}

func (p pinned) Stream(ctx context.Context, service string, m *spec.Method, opts ...client.CallOption) (client.Stream, error) {
	return p.Client.Stream(ctx, service, m, append(opts, client.WithAddress(p.addr))...)
}

// greeterAt returns a greeter client of c pinned to addr.
func greeterAt(c client.Client, addr string) greeterpb.GreeterService {
	return greeterpb.NewGreeterService("greeter", pinned{c, addr})
}

// waitClosed fails the test if ch is not closed within d.
func waitClosed(t *testing.T, ch <-chan struct{}, d time.Duration, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(d):
		t.Fatalf("timed out after %v waiting for %s", d, what)
	}
}
