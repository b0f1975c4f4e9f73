// Command server serves the example Greeter service.
//
//	go run ./examples/greeter/server -address 127.0.0.1:8080
//
// It stops gracefully on SIGINT or SIGTERM, letting calls in flight finish.
package main

import (
	"flag"
	"fmt"
	"log"
	"os"

	"github.com/protoc-gen-micro/micro/examples/greeter/greeterpb"
	"github.com/protoc-gen-micro/micro/examples/greeter/handler"
	"github.com/protoc-gen-micro/micro/runtime/broker"
	"github.com/protoc-gen-micro/micro/runtime/service"
)

func main() {
	addr := flag.String("address", "127.0.0.1:0", "address to listen on")
	addrFile := flag.String("address-file", "", "write the address the server listens on to this file once it serves")
	instance := flag.String("instance", "", "name of this instance, added to replies")
	events := flag.Bool("events", false, "publish a \"greeter.greeted\" event for each group LotsOfGreetings greets")
	flag.Parse()

	svc := service.NewService(service.WithName("greeter"), service.WithAddress(*addr))
	g := handler.Greeter{Instance: *instance}
	if *events {
		g.Events = broker.NewPublisher[*greeterpb.HelloReply](svc.Broker(), "greeter.greeted", broker.WithRequireSubscribers())
	}
	if err := greeterpb.RegisterGreeterHandler(svc.Server(), g); err != nil {
		log.Fatal(err)
	}
	svc.Init(service.WithAfterStart(func() error {
		fmt.Printf("greeter: serving on %s\n", svc.Server().Address())
		if *addrFile == "" {
			return nil
		}
		return os.WriteFile(*addrFile, []byte(svc.Server().Address()), 0o644)
	}), service.WithAfterStop(func() error {
		fmt.Println("greeter: stopped gracefully")
		return nil
	}))
	if err := svc.Run(); err != nil {
		log.Fatal(err)
	}
}
