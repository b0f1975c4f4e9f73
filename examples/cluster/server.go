package main

import (
	"context"
	"flag"
	"fmt"

	"github.com/protoc-gen-micro/micro/examples/greeter/greeterpb"
	_ "github.com/protoc-gen-micro/micro/plugins/etcd" // MICRO_REGISTRY=etcd
	_ "github.com/protoc-gen-micro/micro/plugins/nats" // MICRO_BROKER=nats
	"github.com/protoc-gen-micro/micro/runtime/service"
	"github.com/protoc-gen-micro/micro/runtime/status"
)

// greeter answers SayHello, naming its instance; the other methods answer
// Unimplemented.
type greeter struct {
	greeterpb.UnimplementedGreeterHandler
	instance string
}

func (g greeter) SayHello(_ context.Context, in *greeterpb.HelloRequest, out *greeterpb.HelloReply) error {
	if in.Name == "" {
		return status.New(status.InvalidArgument, "name is required")
	}
	out.Message = "Hello " + in.Name + " from " + g.instance
	return nil
}

// server serves the Greeter as "greeter", registered in the registry the
// environment names (MICRO_REGISTRY=etcd in the demo), until SIGTERM.
func server(args []string) error {
	fs := flag.NewFlagSet("server", flag.ExitOnError)
	addr := fs.String("address", "127.0.0.1:0", "address to listen on")
	instance := fs.String("instance", "greeter", "name of this instance, added to replies")
	fs.Parse(args)

	svc := service.NewService(service.WithName("greeter"), service.WithAddress(*addr))
	if err := greeterpb.RegisterGreeterHandler(svc.Server(), greeter{instance: *instance}); err != nil {
		return err
	}
	svc.Init(service.WithAfterStart(func() error {
		fmt.Printf("%s: serving on %s, registered as greeter\n", *instance, svc.Server().Address())
		return nil
	}), service.WithAfterStop(func() error {
		fmt.Printf("%s: stopped gracefully\n", *instance)
		return nil
	}))
	return svc.Run()
}
