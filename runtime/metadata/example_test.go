package metadata_test

import (
	"context"
	"fmt"
	"log"

	"github.com/protoc-gen-micro/micro/examples/greeter/greeterpb"
	"github.com/protoc-gen-micro/micro/runtime/client"
	"github.com/protoc-gen-micro/micro/runtime/metadata"
	"github.com/protoc-gen-micro/micro/runtime/server"
)

// tenantGreeter greets in the name of the tenant the caller sent.
type tenantGreeter struct {
	greeterpb.UnimplementedGreeterHandler
}

func (tenantGreeter) SayHello(ctx context.Context, in *greeterpb.HelloRequest, out *greeterpb.HelloReply) error {
	md, _ := metadata.FromIncomingContext(ctx)
	out.Message = fmt.Sprintf("Hello %s from %s (request %s)", in.GetName(), md.Value("x-tenant"), md.Value("x-request-id"))
	return nil
}

// Metadata a client puts in the outgoing context of a call arrives in the
// incoming context of the handler.
func ExampleFromIncomingContext() {
	srv := server.NewServer(server.WithAddress("127.0.0.1:0"))
	if err := greeterpb.RegisterGreeterHandler(srv, tenantGreeter{}); err != nil {
		log.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		log.Fatal(err)
	}
	defer srv.Stop()
	c := client.NewClient()
	defer c.Close()

	ctx := metadata.NewOutgoingContext(context.Background(), metadata.Pairs("x-tenant", "acme"))
	ctx = metadata.AppendToOutgoingContext(ctx, "x-request-id", "r-1")
	rsp, err := greeterpb.NewGreeterService("greeter", c).SayHello(ctx,
		&greeterpb.HelloRequest{Name: "Ada"}, client.WithAddress(srv.Address()))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(rsp.GetMessage())
	// Output: Hello Ada from acme (request r-1)
}

// A handler can be tested without a server: give it an incoming context.
func ExampleNewIncomingContext() {
	ctx := metadata.NewIncomingContext(context.Background(),
		metadata.Pairs("x-tenant", "acme", "x-request-id", "test-1"))
	out := new(greeterpb.HelloReply)
	if err := (tenantGreeter{}).SayHello(ctx, &greeterpb.HelloRequest{Name: "Ada"}, out); err != nil {
		log.Fatal(err)
	}
	fmt.Println(out.GetMessage())
	// Output: Hello Ada from acme (request test-1)
}

// AppendToOutgoingContext adds to what the context already sends, where
// NewOutgoingContext replaces it.
func ExampleAppendToOutgoingContext() {
	ctx := metadata.AppendToOutgoingContext(context.Background(), "x-trace", "a")
	ctx = metadata.AppendToOutgoingContext(ctx, "x-trace", "b", "X-Tenant", "acme")

	md, _ := metadata.FromOutgoingContext(ctx)
	fmt.Println(md)
	// Output: map[x-tenant:[acme] x-trace:[a b]]
}

// Keys are lower-case: Pairs, Get, Set, Append and Delete fold them, so
// look-ups ignore case. A key may hold several values.
func ExamplePairs() {
	md := metadata.Pairs("Accept-Language", "en", "accept-language", "fr")
	fmt.Println(md.Get("ACCEPT-LANGUAGE"), md.Value("accept-language"), md.Len())
	// Output: [en fr] en 1
}

func ExampleMD() {
	md := metadata.New(map[string]string{"X-Tenant": "acme"})
	md.Append("x-tag", "blue", "green")
	md.Set("x-tenant", "globex") // replaces
	backup := md.Copy()
	md.Delete("x-tag")

	fmt.Println(md)
	fmt.Println(backup)
	fmt.Println(metadata.Join(md, metadata.Pairs("x-tenant", "initech")))
	// Output:
	// map[x-tenant:[globex]]
	// map[x-tag:[blue green] x-tenant:[globex]]
	// map[x-tenant:[globex initech]]
}
