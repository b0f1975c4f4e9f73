package greeterpb_test

import (
	"context"
	"fmt"
	"log"

	"github.com/protoc-gen-micro/micro/examples/greeter/greeterpb"
	"github.com/protoc-gen-micro/micro/runtime/client"
	"github.com/protoc-gen-micro/micro/runtime/status"
)

// helloOnly implements SayHello; the embedded UnimplementedGreeterHandler
// answers the other methods, and any method added to greeter.proto later.
type helloOnly struct {
	greeterpb.UnimplementedGreeterHandler
}

func (helloOnly) SayHello(_ context.Context, in *greeterpb.HelloRequest, out *greeterpb.HelloReply) error {
	out.Message = "Hello " + in.GetName()
	return nil
}

func ExampleUnimplementedGreeterHandler() {
	var h greeterpb.GreeterHandler = helloOnly{}

	out := new(greeterpb.HelloReply)
	err := h.SayHello(context.Background(), &greeterpb.HelloRequest{Name: "Ada"}, out)
	fmt.Println(out.GetMessage(), err)

	err = h.Chat(context.Background(), nil)
	fmt.Println(status.CodeOf(err), err)
	// Output:
	// Hello Ada <nil>
	// Unimplemented rpc error: code = Unimplemented desc = greeter.v1.Greeter.Chat is not implemented
}

// A raw call through client.Client takes the method's descriptor; the
// generated GreeterService does the same.
func ExampleGreeterSayHelloMethod() {
	c := client.NewClient()
	out := new(greeterpb.HelloReply)
	in := &greeterpb.HelloRequest{Name: "Ada"}
	if err := c.Call(context.Background(), "greeter", greeterpb.GreeterSayHelloMethod, in, out); err != nil {
		log.Fatal(err)
	}
	fmt.Println(out.GetMessage())
}
