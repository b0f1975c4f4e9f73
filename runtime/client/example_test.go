package client_test

import (
	"context"
	"fmt"
	"log"
	"time"

	"github.com/protoc-gen-micro/micro/examples/greeter/greeterpb"
	"github.com/protoc-gen-micro/micro/runtime/client"
	"github.com/protoc-gen-micro/micro/runtime/server"
	"github.com/protoc-gen-micro/micro/runtime/status"
)

// helloGreeter answers SayHello; the embedded UnimplementedGreeterHandler
// answers the rest.
type helloGreeter struct {
	greeterpb.UnimplementedGreeterHandler
}

func (helloGreeter) SayHello(_ context.Context, in *greeterpb.HelloRequest, out *greeterpb.HelloReply) error {
	if in.GetName() == "" {
		return status.New(status.InvalidArgument, "name is required")
	}
	out.Message = "Hello " + in.GetName()
	return nil
}

// startHelloServer serves helloGreeter on a free loopback port.
func startHelloServer() server.Server {
	srv := server.NewServer(server.WithAddress("127.0.0.1:0"))
	if err := greeterpb.RegisterGreeterHandler(srv, helloGreeter{}); err != nil {
		log.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		log.Fatal(err)
	}
	return srv
}

// Without a registry, a call names the address it goes to. Options given
// to NewClient are the defaults of every call; a call can override the
// shared ones (WithRetries, WithRequestTimeout, ...) for itself.
func ExampleNewClient() {
	srv := startHelloServer()
	defer srv.Stop()

	c := client.NewClient(client.WithRequestTimeout(10 * time.Second))
	defer c.Close()
	greeter := greeterpb.NewGreeterService("greeter", c)

	rsp, err := greeter.SayHello(context.Background(), &greeterpb.HelloRequest{Name: "Ada"},
		client.WithAddress(srv.Address()), // this call goes there
		client.WithRetries(0),             // and is not retried
	)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(rsp.GetMessage())
	// Output: Hello Ada
}

// A failed call returns a *status.Error: the code and message the handler
// returned, or the ones the client gave the failure (Unavailable,
// DeadlineExceeded...).
func ExampleNewClient_status() {
	srv := startHelloServer()
	defer srv.Stop()
	c := client.NewClient()
	defer c.Close()

	greeter := greeterpb.NewGreeterService("greeter", c)
	_, err := greeter.SayHello(context.Background(), &greeterpb.HelloRequest{}, client.WithAddress(srv.Address()))
	if st, ok := status.FromError(err); ok {
		fmt.Println("code:", st.Code())
		fmt.Println("message:", st.Message())
	}
	// Output:
	// code: InvalidArgument
	// message: name is required
}

// Close releases the client's connections; the calls made after it fail.
func ExampleNewClient_close() {
	srv := startHelloServer()
	defer srv.Stop()
	c := client.NewClient()
	greeter := greeterpb.NewGreeterService("greeter", c)
	at := client.WithAddress(srv.Address())

	_, err := greeter.SayHello(context.Background(), &greeterpb.HelloRequest{Name: "Ada"}, at)
	fmt.Println("before Close:", err)

	if err := c.Close(); err != nil {
		log.Fatal(err)
	}
	_, err = greeter.SayHello(context.Background(), &greeterpb.HelloRequest{Name: "Ada"}, at)
	fmt.Println("after Close:", err)
	// Output:
	// before Close: <nil>
	// after Close: rpc error: code = Canceled desc = client: the client is closed
}
