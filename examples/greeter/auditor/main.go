// Command auditor is a subscriber of the example: it hears the
// "greeter.greeted" events the greeter server publishes. Several auditors
// form one queue group, so each event is handled by exactly one of them.
//
//	go run ./examples/greeter/auditor -instance auditor-1
package main

import (
	"context"
	"flag"
	"fmt"
	"log"

	"github.com/protoc-gen-micro/micro/examples/greeter/greeterpb"
	"github.com/protoc-gen-micro/micro/runtime/broker"
	"github.com/protoc-gen-micro/micro/runtime/service"
)

// Topic is where the greeter server publishes what it did.
const Topic = "greeter.greeted"

func main() {
	instance := flag.String("instance", "auditor", "name of this instance, printed with each event")
	flag.Parse()

	svc := service.NewService(service.WithName("greeter.auditor"), service.WithAddress("127.0.0.1:0"))
	_, err := broker.Subscribe(svc.Broker(), Topic, func(ctx context.Context, ev *greeterpb.HelloReply) error {
		m, _ := broker.MessageFromContext(ctx)
		id := ""
		if m != nil {
			id = m.ID
		}
		fmt.Printf("%s handled event %s: %q\n", *instance, id, ev.Message)
		return nil
	}, broker.WithQueue("auditors"))
	if err != nil {
		log.Fatal(err)
	}
	svc.Init(service.WithAfterStart(func() error {
		fmt.Printf("%s: subscribed to %s in queue group auditors\n", *instance, Topic)
		return nil
	}))
	if err := svc.Run(); err != nil {
		log.Fatal(err)
	}
}
