package server_test

import (
	"context"
	"fmt"
	"log"
	"net"

	"github.com/protoc-gen-micro/micro/examples/greeter/greeterpb"
	"github.com/protoc-gen-micro/micro/runtime/client"
	"github.com/protoc-gen-micro/micro/runtime/metadata"
	"github.com/protoc-gen-micro/micro/runtime/server"
	"github.com/protoc-gen-micro/micro/runtime/status"
)

// helloGreeter implements SayHello. The embedded
// UnimplementedGreeterHandler answers the other methods with Unimplemented,
// and keeps helloGreeter compiling when greeter.proto gains a method.
type helloGreeter struct {
	greeterpb.UnimplementedGreeterHandler
}

func (helloGreeter) SayHello(_ context.Context, in *greeterpb.HelloRequest, out *greeterpb.HelloReply) error {
	out.Message = "Hello " + in.GetName()
	return nil
}

func ExampleNewServer() {
	srv := server.NewServer(server.WithAddress("127.0.0.1:0"))
	if err := greeterpb.RegisterGreeterHandler(srv, helloGreeter{}); err != nil {
		log.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		log.Fatal(err)
	}
	defer srv.Stop() // drains the calls in flight

	// srv.Address() is the address it listens on, with the port it was given.
	c := client.NewClient()
	defer c.Close()
	greeter := greeterpb.NewGreeterService("greeter", c)
	ctx := context.Background()

	rsp, err := greeter.SayHello(ctx, &greeterpb.HelloRequest{Name: "Ada"}, client.WithAddress(srv.Address()))
	fmt.Println(rsp.GetMessage(), err)

	chat, err := greeter.Chat(ctx, client.WithAddress(srv.Address()))
	if err != nil {
		log.Fatal(err)
	}
	defer chat.Close()
	_, err = chat.Recv()
	fmt.Println(status.CodeOf(err))
	// Output:
	// Hello Ada <nil>
	// Unimplemented
}

// serve starts a server of h on a free loopback port and makes one
// SayHello call to it with opts; it stops both before returning.
func serve(h greeterpb.GreeterHandler, opts ...client.CallOption) (*greeterpb.HelloReply, error) {
	srv := server.NewServer(server.WithAddress("127.0.0.1:0"))
	if err := greeterpb.RegisterGreeterHandler(srv, h); err != nil {
		return nil, err
	}
	if err := srv.Start(); err != nil {
		return nil, err
	}
	defer srv.Stop()
	c := client.NewClient()
	defer c.Close()
	opts = append(opts, client.WithAddress(srv.Address()))
	return greeterpb.NewGreeterService("greeter", c).SayHello(context.Background(), &greeterpb.HelloRequest{Name: "Ada"}, opts...)
}

// peerGreeter greets the caller by its address.
type peerGreeter struct {
	greeterpb.UnimplementedGreeterHandler
}

func (peerGreeter) SayHello(ctx context.Context, _ *greeterpb.HelloRequest, out *greeterpb.HelloReply) error {
	p, ok := server.PeerFromContext(ctx)
	if !ok {
		return status.New(status.Internal, "no peer")
	}
	host, _, _ := net.SplitHostPort(p.Addr.String())
	out.Message = fmt.Sprintf("Hello %s (TLS: %t)", host, p.TLS != nil)
	return nil
}

// A handler finds who calls it with PeerFromContext: the client's address
// and, on a TLS server, the connection's state, which holds the client's
// verified certificate under mutual TLS.
func ExamplePeerFromContext() {
	rsp, err := serve(peerGreeter{})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(rsp.GetMessage())
	// Output: Hello 127.0.0.1 (TLS: false)
}

// cachingGreeter says where its answer came from in a header, and what it
// cost in a trailer.
type cachingGreeter struct {
	greeterpb.UnimplementedGreeterHandler
}

func (cachingGreeter) SayHello(ctx context.Context, in *greeterpb.HelloRequest, out *greeterpb.HelloReply) error {
	if err := server.SetHeader(ctx, metadata.Pairs("x-cache", "hit")); err != nil {
		return err
	}
	out.Message = "Hello " + in.GetName()
	// Trailers go with the status, after the response.
	return server.SetTrailer(ctx, metadata.Pairs("x-cost-units", "3"))
}

// A unary handler sets response headers with SetHeader and trailers with
// SetTrailer; the client reads them with client.WithResponseHeader and
// client.WithResponseTrailer.
func ExampleSetHeader() {
	var header, trailer metadata.MD
	rsp, err := serve(cachingGreeter{}, client.WithResponseHeader(&header), client.WithResponseTrailer(&trailer))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(rsp.GetMessage())
	fmt.Println("x-cache:", header.Value("x-cache"))
	fmt.Println("x-cost-units:", trailer.Value("x-cost-units"))
	// Output:
	// Hello Ada
	// x-cache: hit
	// x-cost-units: 3
}
