package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/protoc-gen-micro/micro/examples/greeter/greeterpb"
	"github.com/protoc-gen-micro/micro/plugins/nats"
	"github.com/protoc-gen-micro/micro/runtime/broker"
)

// natsBroker is the broker of the subscriber and the client: the NATS
// server MICRO_BROKER_ADDRESS names, with the topics under "events" kept
// in JetStream.
func natsBroker(name string) broker.Broker {
	return nats.NewBroker(nats.WithURL(os.Getenv("MICRO_BROKER_ADDRESS")), nats.WithName(name),
		nats.WithJetStream(jetStreamPrefix))
}

// subscriber handles the events of topic in the durable queue group
// "auditors", printing each, until SIGTERM. What is published while no
// member of the group is connected waits in JetStream for the next one.
func subscriber(args []string) error {
	fs := flag.NewFlagSet("subscriber", flag.ExitOnError)
	instance := fs.String("instance", "auditor", "name of this instance, printed with each event")
	fs.Parse(args)

	b := natsBroker(*instance)
	if err := b.Connect(); err != nil {
		return err
	}
	defer b.Disconnect()
	_, err := broker.Subscribe(b, topic, func(ctx context.Context, ev *greeterpb.HelloReply) error {
		id := ""
		if m, ok := broker.MessageFromContext(ctx); ok {
			id = m.ID
		}
		fmt.Printf("%s: handled event %s: %q\n", *instance, id, ev.Message)
		return nil
	}, broker.WithQueue(queue))
	if err != nil {
		return err
	}
	fmt.Printf("%s: subscribed to %s in durable queue group %s\n", *instance, topic, queue)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	<-ctx.Done()
	fmt.Printf("%s: stopping\n", *instance)
	return nil
}
