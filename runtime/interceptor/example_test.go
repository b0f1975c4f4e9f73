package interceptor_test

import (
	"context"
	"fmt"
	"log"

	"github.com/protoc-gen-micro/micro/examples/greeter/greeterpb"
	"github.com/protoc-gen-micro/micro/runtime/client"
	"github.com/protoc-gen-micro/micro/runtime/interceptor"
	"github.com/protoc-gen-micro/micro/runtime/metadata"
	"github.com/protoc-gen-micro/micro/runtime/server"
	"github.com/protoc-gen-micro/micro/runtime/spec"
	"github.com/protoc-gen-micro/micro/runtime/status"
)

// logger logs the outcome of every call on one side, unary and streaming.
type logger struct{ side string }

func (l logger) WrapUnary(m *spec.Method, next interceptor.UnaryFunc) interceptor.UnaryFunc {
	return func(ctx context.Context, req, rsp any) error {
		err := next(ctx, req, rsp)
		fmt.Println(l.side, m.Name, status.CodeOf(err))
		return err
	}
}

func (l logger) WrapStreamingClient(m *spec.Method, next interceptor.StreamingClientFunc) interceptor.StreamingClientFunc {
	return func(ctx context.Context) (interceptor.ClientStream, error) {
		fmt.Println(l.side, m.Name, "opened")
		return next(ctx)
	}
}

func (l logger) WrapStreamingHandler(m *spec.Method, next interceptor.StreamingHandlerFunc) interceptor.StreamingHandlerFunc {
	return func(ctx context.Context, stream interceptor.ServerStream) error {
		err := next(ctx, stream)
		fmt.Println(l.side, m.Name, status.CodeOf(err))
		return err
	}
}

// helloGreeter implements SayHello only.
type helloGreeter struct {
	greeterpb.UnimplementedGreeterHandler
}

func (helloGreeter) SayHello(_ context.Context, in *greeterpb.HelloRequest, out *greeterpb.HelloReply) error {
	out.Message = "Hello " + in.GetName()
	return nil
}

// start serves helloGreeter on a free loopback port with opts.
func start(opts ...server.Option) server.Server {
	srv := server.NewServer(append(opts, server.WithAddress("127.0.0.1:0"))...)
	if err := greeterpb.RegisterGreeterHandler(srv, helloGreeter{}); err != nil {
		log.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		log.Fatal(err)
	}
	return srv
}

// One Interceptor serves a client and a server: a client's wraps calls as
// they are made, a server's wraps handlers. The server's runs before the
// response is sent, so it logs first.
func Example() {
	srv := start(server.WithInterceptors(logger{"server:"}))
	defer srv.Stop()
	c := client.NewClient(client.WithInterceptors(logger{"client:"}))
	defer c.Close()
	greeter := greeterpb.NewGreeterService("greeter", c)
	ctx := context.Background()
	at := client.WithAddress(srv.Address())

	if _, err := greeter.SayHello(ctx, &greeterpb.HelloRequest{Name: "Ada"}, at); err != nil {
		log.Fatal(err)
	}
	chat, err := greeter.Chat(ctx, at)
	if err != nil {
		log.Fatal(err)
	}
	defer chat.Close()
	_, err = chat.Recv()
	fmt.Println("chat:", status.CodeOf(err))
	// Output:
	// server: SayHello OK
	// client: SayHello OK
	// client: Chat opened
	// server: Chat Unimplemented
	// chat: Unimplemented
}

// A UnaryInterceptorFunc wraps unary calls and lets streams through. Here
// the client's adds a token to every call and the server's refuses calls
// without it, before they reach a handler.
func ExampleUnaryInterceptorFunc() {
	requireToken := interceptor.UnaryInterceptorFunc(func(m *spec.Method, next interceptor.UnaryFunc) interceptor.UnaryFunc {
		return func(ctx context.Context, req, rsp any) error {
			md, _ := metadata.FromIncomingContext(ctx)
			if md.Value("authorization") != "Bearer s3cret" {
				return status.New(status.Unauthenticated, "missing token")
			}
			return next(ctx, req, rsp)
		}
	})
	sendToken := interceptor.UnaryInterceptorFunc(func(m *spec.Method, next interceptor.UnaryFunc) interceptor.UnaryFunc {
		return func(ctx context.Context, req, rsp any) error {
			ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer s3cret")
			return next(ctx, req, rsp)
		}
	})

	srv := start(server.WithInterceptors(requireToken))
	defer srv.Stop()
	at := client.WithAddress(srv.Address())
	for _, c := range []client.Client{
		client.NewClient(),
		client.NewClient(client.WithInterceptors(sendToken)),
	} {
		rsp, err := greeterpb.NewGreeterService("greeter", c).
			SayHello(context.Background(), &greeterpb.HelloRequest{Name: "Ada"}, at)
		c.Close()
		if err != nil {
			fmt.Println(err)
			continue
		}
		fmt.Println(rsp.GetMessage())
	}
	// Output:
	// rpc error: code = Unauthenticated desc = missing token
	// Hello Ada
}
