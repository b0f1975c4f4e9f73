package client_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/protoc-gen-micro/micro/examples/greeter/greeterpb"
	"github.com/protoc-gen-micro/micro/internal/leakcheck"
	"github.com/protoc-gen-micro/micro/internal/transport"
	"github.com/protoc-gen-micro/micro/runtime/client"
	"github.com/protoc-gen-micro/micro/runtime/server"
	"github.com/protoc-gen-micro/micro/runtime/status"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// codecEcho answers with the name of the codec the server decoded the
// request with.
func codecEcho() *funcGreeter {
	return &funcGreeter{
		hello: func(ctx context.Context, in *greeterpb.HelloRequest, out *greeterpb.HelloReply) error {
			st, ok := transport.ServerStreamFromContext(ctx)
			if !ok {
				return status.New(status.Internal, "no server stream in the handler's context")
			}
			out.Message = st.Codec().Name() + ":" + in.Name
			return nil
		},
		chat: func(ctx context.Context, s greeterpb.Greeter_ChatHandlerStream) error {
			st, _ := transport.ServerStreamFromContext(ctx)
			for {
				in, err := s.Recv()
				if err == io.EOF {
					return nil
				}
				if err != nil {
					return err
				}
				if err := s.Send(&greeterpb.HelloReply{Message: st.Codec().Name() + ":" + in.Name}); err != nil {
					return err
				}
			}
		},
	}
}

func TestJSONCodecEndToEnd(t *testing.T) {
	leakcheck.Check(t)
	srv := serveGreeter(t, codecEcho())
	ctx := context.Background()
	name := `ünïcode "quoted" \ 100%`

	jsonClient := greeterAt(newTestClient(t, client.WithContentType("json")), srv.Address())
	rsp, err := jsonClient.SayHello(ctx, &greeterpb.HelloRequest{Name: name})
	if err != nil || rsp.Message != "json:"+name {
		t.Fatalf("client.WithContentType(json): %v %v", rsp, err)
	}
	// A per-call proto overrides the client's json.
	rsp, err = jsonClient.SayHello(ctx, &greeterpb.HelloRequest{Name: "x"}, client.WithContentType("proto"))
	if err != nil || rsp.Message != "proto:x" {
		t.Fatalf("WithContentType(proto) on a json client: %v %v", rsp, err)
	}

	plain := greeterAt(newTestClient(t), srv.Address())
	rsp, err = plain.SayHello(ctx, &greeterpb.HelloRequest{Name: name}, client.WithContentType("json"))
	if err != nil || rsp.Message != "json:"+name {
		t.Fatalf("WithContentType(json): %v %v", rsp, err)
	}
	rsp, err = plain.SayHello(ctx, &greeterpb.HelloRequest{Name: "y"})
	if err != nil || rsp.Message != "proto:y" {
		t.Fatalf("default codec: %v %v", rsp, err)
	}

	// Streams use the codec too.
	bs, err := jsonClient.Chat(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"a", "b"} {
		if err := bs.Send(&greeterpb.HelloRequest{Name: n}); err != nil {
			t.Fatal(err)
		}
		m, err := bs.Recv()
		if err != nil || m.Message != "json:"+n {
			t.Fatalf("json stream: %v %v", m, err)
		}
	}
	bs.CloseSend()
	if _, err := bs.Recv(); err != io.EOF {
		t.Fatalf("json stream end: %v", err)
	}

	// An unknown codec fails locally with a clear error.
	_, err = plain.SayHello(ctx, &greeterpb.HelloRequest{Name: "z"}, client.WithContentType("xml"))
	if status.CodeOf(err) != status.Internal || !strings.Contains(err.Error(), "xml") {
		t.Fatalf("unknown codec: %v", err)
	}
	bad := greeterAt(newTestClient(t, client.WithContentType("xml")), srv.Address())
	if _, err := bad.SayHello(ctx, &greeterpb.HelloRequest{Name: "z"}); status.CodeOf(err) != status.Internal {
		t.Fatalf("client.WithContentType(xml): %v", err)
	}
}

func TestServerRecvLimit(t *testing.T) {
	leakcheck.Check(t)
	srv := serveGreeter(t, nil, server.WithMaxRecvMsgSize(1024))
	g := greeterAt(newTestClient(t), srv.Address())
	ctx := context.Background()

	for _, n := range []int{2000, 3 << 20} { // within one window, and beyond it
		_, err := g.SayHello(ctx, &greeterpb.HelloRequest{Name: strings.Repeat("x", n)})
		if status.CodeOf(err) != status.ResourceExhausted {
			t.Fatalf("%d-byte request over a 1 KiB limit: %v", n, err)
		}
	}
	// At the limit is fine, and the connection still works.
	if _, err := g.SayHello(ctx, &greeterpb.HelloRequest{Name: strings.Repeat("x", 1000)}); err != nil {
		t.Fatalf("request under the limit: %v", err)
	}

	// The limit applies to every message of a stream.
	bs, err := g.Chat(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := bs.Send(&greeterpb.HelloRequest{Name: "small"}); err != nil {
		t.Fatal(err)
	}
	if m, err := bs.Recv(); err != nil || m.Message != "Hello small" {
		t.Fatalf("small stream message: %v %v", m, err)
	}
	bs.Send(&greeterpb.HelloRequest{Name: strings.Repeat("y", 4096)})
	if _, err := bs.Recv(); status.CodeOf(err) != status.ResourceExhausted {
		t.Fatalf("large stream message: %v", err)
	}
}

func TestClientRecvLimit(t *testing.T) {
	leakcheck.Check(t)
	srv := serveGreeter(t, &funcGreeter{
		hello: func(ctx context.Context, in *greeterpb.HelloRequest, out *greeterpb.HelloReply) error {
			n := 10
			if in.Name == "big" {
				n = 4096
			}
			if in.Name == "huge" {
				n = 3 << 20
			}
			out.Message = strings.Repeat("r", n)
			return nil
		},
	})
	g := greeterAt(newTestClient(t, client.WithMaxRecvMsgSize(1024)), srv.Address())
	ctx := context.Background()
	for _, name := range []string{"big", "huge"} {
		_, err := g.SayHello(ctx, &greeterpb.HelloRequest{Name: name})
		if status.CodeOf(err) != status.ResourceExhausted {
			t.Fatalf("%s response over a 1 KiB client limit: %v", name, err)
		}
	}
	if rsp, err := g.SayHello(ctx, &greeterpb.HelloRequest{Name: "small"}); err != nil || len(rsp.Message) != 10 {
		t.Fatalf("small response after the limit was hit: %v %v", rsp, err)
	}
}

// TestLargeMessages sends messages many times the 1 MiB stream window and
// the 64 KiB default, so they only get through if flow control keeps
// granting window.
func TestLargeMessages(t *testing.T) {
	leakcheck.Check(t)
	const limit = 16 << 20
	srv := serveGreeter(t, &funcGreeter{
		hello: func(ctx context.Context, in *greeterpb.HelloRequest, out *greeterpb.HelloReply) error {
			out.Message = in.Name
			return nil
		},
		chat: func(ctx context.Context, s greeterpb.Greeter_ChatHandlerStream) error {
			for {
				in, err := s.Recv()
				if err == io.EOF {
					return nil
				}
				if err != nil {
					return err
				}
				if err := s.Send(&greeterpb.HelloReply{Message: in.Name}); err != nil {
					return err
				}
			}
		},
	}, server.WithMaxRecvMsgSize(limit))
	g := greeterAt(newTestClient(t, client.WithMaxRecvMsgSize(limit)), srv.Address())
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	payload := func(n int, seed byte) string {
		b := make([]byte, n)
		for i := range b {
			b[i] = 'a' + (seed+byte(i)+byte(i>>13))%26
		}
		return string(b)
	}
	for _, n := range []int{1 << 20, 8 << 20} {
		want := payload(n, byte(n>>20))
		rsp, err := g.SayHello(ctx, &greeterpb.HelloRequest{Name: want})
		if err != nil {
			t.Fatalf("%d-byte unary: %v", n, err)
		}
		if rsp.Message != want {
			t.Fatalf("%d-byte unary: response differs (len %d)", n, len(rsp.Message))
		}
	}

	// Several 3 MiB messages on one stream, in both directions at once.
	bs, err := g.Chat(ctx)
	if err != nil {
		t.Fatal(err)
	}
	const count = 4
	sendErr := make(chan error, 1)
	go func() {
		for i := 0; i < count; i++ {
			if err := bs.Send(&greeterpb.HelloRequest{Name: payload(3<<20, byte(i))}); err != nil {
				sendErr <- err
				return
			}
		}
		sendErr <- bs.CloseSend()
	}()
	for i := 0; i < count; i++ {
		m, err := bs.Recv()
		if err != nil {
			t.Fatalf("stream message %d: %v", i, err)
		}
		if !bytes.Equal([]byte(m.Message), []byte(payload(3<<20, byte(i)))) {
			t.Fatalf("stream message %d differs", i)
		}
	}
	if _, err := bs.Recv(); err != io.EOF {
		t.Fatalf("stream end: %v", err)
	}
	if err := <-sendErr; err != nil {
		t.Fatalf("send: %v", err)
	}
}

func TestStatusDetails(t *testing.T) {
	leakcheck.Check(t)
	const msg = "slow down: 100% of quota used ✋\n"
	srv := serveGreeter(t, &funcGreeter{
		hello: func(ctx context.Context, in *greeterpb.HelloRequest, out *greeterpb.HelloReply) error {
			if in.Name == "plain" {
				return status.New(status.NotFound, msg)
			}
			e, err := status.New(status.ResourceExhausted, msg).WithDetails(durationpb.New(3*time.Second), wrapperspb.String("quota"))
			if err != nil {
				return err
			}
			return e
		},
		chat: func(ctx context.Context, s greeterpb.Greeter_ChatHandlerStream) error {
			s.Recv()
			e, _ := status.New(status.Aborted, "stream detail").WithDetails(wrapperspb.Int64(42))
			return e
		},
	})
	g := greeterAt(newTestClient(t), srv.Address())

	_, err := g.SayHello(context.Background(), &greeterpb.HelloRequest{Name: "details"})
	var se *status.Error
	if !errors.As(err, &se) {
		t.Fatalf("not a *status.Error: %v", err)
	}
	if se.Code() != status.ResourceExhausted || se.Message() != msg {
		t.Fatalf("got code %v message %q", se.Code(), se.Message())
	}
	if len(se.Details()) != 2 {
		t.Fatalf("got %d details", len(se.Details()))
	}
	var d durationpb.Duration
	if err := se.Details()[0].UnmarshalTo(&d); err != nil || d.AsDuration() != 3*time.Second {
		t.Fatalf("duration detail: %v %v", d.AsDuration(), err)
	}
	var s wrapperspb.StringValue
	if err := se.Details()[1].UnmarshalTo(&s); err != nil || s.Value != "quota" {
		t.Fatalf("string detail: %q %v", s.Value, err)
	}

	// Without details the message still survives the percent-encoding.
	_, err = g.SayHello(context.Background(), &greeterpb.HelloRequest{Name: "plain"})
	if !errors.As(err, &se) || se.Code() != status.NotFound || se.Message() != msg || len(se.Details()) != 0 {
		t.Fatalf("plain: %v", err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	bs, err := g.Chat(ctx)
	if err != nil {
		t.Fatal(err)
	}
	bs.Send(&greeterpb.HelloRequest{Name: "go"})
	_, err = bs.Recv()
	if !errors.As(err, &se) || se.Code() != status.Aborted || len(se.Details()) != 1 {
		t.Fatalf("stream: %v", err)
	}
	var n wrapperspb.Int64Value
	if err := se.Details()[0].UnmarshalTo(&n); err != nil || n.Value != 42 {
		t.Fatalf("stream detail: %v %v", n.Value, err)
	}
}
