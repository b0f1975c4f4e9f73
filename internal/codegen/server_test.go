package codegen_test

import (
	"context"
	"errors"
	"io"
	"testing"
	"time"

	"github.com/protoc-gen-micro/micro/examples/greeter/greeterpb"
	"github.com/protoc-gen-micro/micro/internal/leakcheck"
	"github.com/protoc-gen-micro/micro/runtime/client"
	"github.com/protoc-gen-micro/micro/runtime/server"
	"github.com/protoc-gen-micro/micro/runtime/status"
)

// The generated greeter code over the runtime's server and client on
// loopback.

// sayHelloOnly implements only SayHello, as an implementation written
// before the streaming methods were added to greeter.proto would.
type sayHelloOnly struct {
	greeterpb.UnimplementedGreeterHandler
}

func (sayHelloOnly) SayHello(_ context.Context, in *greeterpb.HelloRequest, out *greeterpb.HelloReply) error {
	out.Message = "Hello " + in.GetName()
	return nil
}

// startServer serves h on loopback and returns a client and the server's
// address, which calls name with client.WithAddress.
func startServer(t *testing.T, h greeterpb.GreeterHandler) (client.Client, string) {
	t.Helper()
	leakcheck.Check(t)
	srv := server.NewServer(server.WithAddress("127.0.0.1:0"))
	if err := greeterpb.RegisterGreeterHandler(srv, h); err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Stop() })
	c := client.NewClient()
	t.Cleanup(func() { c.(io.Closer).Close() })
	return c, srv.Address()
}

// wantUnimplemented fails unless err is a status error with the code
// Unimplemented that names method.
func wantUnimplemented(t *testing.T, err error, method string) {
	t.Helper()
	if code := status.CodeOf(err); code != status.Unimplemented {
		t.Fatalf("got %v (code %v), want code Unimplemented", err, code)
	}
	var st *status.Error
	if !errors.As(err, &st) {
		t.Fatalf("%v is not a *status.Error", err)
	}
	if want := method + " is not implemented"; st.Message() != want {
		t.Errorf("message %q, want %q", st.Message(), want)
	}
}

func TestUnimplementedHandlerOverServer(t *testing.T) {
	c, addr := startServer(t, sayHelloOnly{})
	g := greeterpb.NewGreeterService("greeter", c)
	at := client.WithAddress(addr)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	t.Run("implemented unary", func(t *testing.T) {
		rsp, err := g.SayHello(ctx, &greeterpb.HelloRequest{Name: "Ada"}, at)
		if err != nil {
			t.Fatal(err)
		}
		if rsp.GetMessage() != "Hello Ada" {
			t.Errorf("got %q", rsp.GetMessage())
		}
	})

	t.Run("server stream", func(t *testing.T) {
		stream, err := g.LotsOfReplies(ctx, &greeterpb.HelloRequest{Name: "Bo"}, at)
		if err != nil {
			t.Fatal(err)
		}
		defer stream.Close()
		_, err = stream.Recv()
		wantUnimplemented(t, err, "greeter.v1.Greeter.LotsOfReplies")
	})

	t.Run("client stream", func(t *testing.T) {
		stream, err := g.LotsOfGreetings(ctx, at)
		if err != nil {
			t.Fatal(err)
		}
		defer stream.Close()
		_, err = stream.CloseAndRecv()
		wantUnimplemented(t, err, "greeter.v1.Greeter.LotsOfGreetings")
	})

	t.Run("bidi stream", func(t *testing.T) {
		stream, err := g.Chat(ctx, at)
		if err != nil {
			t.Fatal(err)
		}
		defer stream.Close()
		_, err = stream.Recv()
		wantUnimplemented(t, err, "greeter.v1.Greeter.Chat")
	})
}

// TestUnimplementedHandlerUnary checks the unary method of the embedded
// handler itself over the server: nothing implements SayHello.
func TestUnimplementedHandlerUnary(t *testing.T) {
	c, addr := startServer(t, greeterpb.UnimplementedGreeterHandler{})
	g := greeterpb.NewGreeterService("greeter", c)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := g.SayHello(ctx, &greeterpb.HelloRequest{Name: "Ada"}, client.WithAddress(addr))
	wantUnimplemented(t, err, "greeter.v1.Greeter.SayHello")
}

// TestRawCall calls SayHello through client.Client itself, with the
// exported method descriptor, as code without the generated client does.
func TestRawCall(t *testing.T) {
	c, addr := startServer(t, sayHelloOnly{})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	out := new(greeterpb.HelloReply)
	err := c.Call(ctx, "greeter", greeterpb.GreeterSayHelloMethod, &greeterpb.HelloRequest{Name: "Raw"}, out, client.WithAddress(addr))
	if err != nil {
		t.Fatal(err)
	}
	if out.GetMessage() != "Hello Raw" {
		t.Errorf("got %q", out.GetMessage())
	}

	stream, err := c.Stream(ctx, "greeter", greeterpb.GreeterChatMethod, client.WithAddress(addr))
	if err != nil {
		t.Fatal(err)
	}
	defer stream.Close()
	wantUnimplemented(t, stream.RecvMsg(new(greeterpb.HelloReply)), "greeter.v1.Greeter.Chat")
}
