// Command gomicro-port is a typical go-micro service, ported by rewriting
// its imports; the one other line changed is marked below.
//
//	go run ./examples/gomicro-port --server_address 127.0.0.1:8080
//	go run ./examples/gomicro-port --call Alice
package main

import (
	"context"
	"flag"
	"fmt"

	"github.com/protoc-gen-micro/micro/examples/gomicro-port/handler"
	pb "github.com/protoc-gen-micro/micro/examples/greeter/greeterpb"
	micro "github.com/protoc-gen-micro/micro/gomicro"
	"github.com/protoc-gen-micro/micro/gomicro/client"
	"github.com/protoc-gen-micro/micro/gomicro/logger"
	"github.com/protoc-gen-micro/micro/gomicro/metadata"
)

var call = flag.String("call", "", "greet this name through a running greeter instead of serving")

func main() {
	service := micro.NewService(
		micro.Name("greeter"),
		micro.Version("1.0.0"),
		micro.WrapHandler(handler.LogWrapper),
		micro.WrapClient(handler.FromWrapper("greeter")),
	)
	service.Init()

	if *call != "" {
		// Ported: go-micro passes service.Client() itself.
		greeter := pb.NewGreeterService("greeter", client.Native(service.Client()))
		ctx := metadata.NewContext(context.Background(), metadata.Metadata{"X-From": "cli"})
		rsp, err := greeter.SayHello(ctx, &pb.HelloRequest{Name: *call})
		if err != nil {
			logger.Fatal(err)
		}
		fmt.Println(rsp.Message)
		return
	}

	if err := handler.Register(service, handler.New(service.Client())); err != nil {
		logger.Fatal(err)
	}
	if err := service.Run(); err != nil {
		logger.Fatal(err)
	}
}
