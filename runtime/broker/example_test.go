package broker_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"strings"

	"github.com/protoc-gen-micro/micro/runtime/broker"
	"github.com/protoc-gen-micro/micro/runtime/broker/memory"
	"github.com/protoc-gen-micro/micro/runtime/metadata"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// A typed publisher and two kinds of subscribers: every group-less
// subscription hears each message; a queue group shares them out, one
// member per message. Publish returns once all have acknowledged.
func Example() {
	b := memory.NewBroker()
	if err := b.Connect(); err != nil {
		log.Fatal(err)
	}
	defer b.Disconnect()

	broker.Subscribe(b, "orders.created", func(ctx context.Context, m *wrapperspb.StringValue) error {
		fmt.Println("audit saw", m.GetValue())
		return nil
	})
	for range 2 { // two workers of one pool
		broker.Subscribe(b, "orders.created", func(ctx context.Context, m *wrapperspb.StringValue) error {
			fmt.Println("one billing worker bills", m.GetValue())
			return nil
		}, broker.WithQueue("billing"))
	}

	pub := broker.NewPublisher[*wrapperspb.StringValue](b, "orders.created")
	if err := pub.Publish(context.Background(), wrapperspb.String("order 42")); err != nil {
		log.Fatal(err)
	}
	// Unordered output:
	// audit saw order 42
	// one billing worker bills order 42
}

// A handler error means "not processed": the message comes again, and
// what is never acknowledged is reported to the publisher.
func Example_redelivery() {
	b := memory.NewBroker()
	b.Connect()
	defer b.Disconnect()

	broker.Subscribe(b, "invoices", func(ctx context.Context, m *wrapperspb.StringValue) error {
		msg, _ := broker.MessageFromContext(ctx)
		fmt.Println("attempt", msg.Attempt)
		return errors.New("database down")
	})
	err := broker.NewPublisher[*wrapperspb.StringValue](b, "invoices").
		Publish(context.Background(), wrapperspb.String("invoice 7"), broker.WithAttempts(2), broker.WithBackoff(0, 0))
	var pe *broker.PublishError
	if errors.As(err, &pe) {
		for target, err := range pe.Failed {
			fmt.Println(strings.Fields(target)[0], "did not acknowledge:", err)
		}
	}
	// Output:
	// attempt 1
	// attempt 2
	// subscriber did not acknowledge: handler: database down
}

// A handler reads the message's ID, headers and attempt with MessageFromContext,
// and the publisher's outgoing metadata as incoming metadata, as in an RPC.
// Unsubscribe returns once the subscription's handler calls have ended.
func ExampleSubscribe() {
	b := memory.NewBroker()
	b.Connect()
	defer b.Disconnect()

	sub, err := broker.Subscribe(b, "signups", func(ctx context.Context, m *wrapperspb.StringValue) error {
		msg, _ := broker.MessageFromContext(ctx)
		fmt.Println(m.GetValue(), "attempt", msg.Attempt, "in", metadata.ValueFromIncomingContext(ctx, "x-tenant"))
		return nil
	})
	if err != nil {
		log.Fatal(err)
	}
	defer sub.Unsubscribe()

	ctx := metadata.AppendToOutgoingContext(context.Background(), "x-tenant", "acme")
	pub := broker.NewPublisher[*wrapperspb.StringValue](b, "signups")
	if err := pub.Publish(ctx, wrapperspb.String("ada@example.com")); err != nil {
		log.Fatal(err)
	}
	// Output: ada@example.com attempt 1 in [acme]
}

// With ManualAck, the handler may hand a message over and return; the
// message counts as processed once someone calls Ack (or is redelivered
// after Nack), and Publish waits until then.
func ExampleWithManualAck() {
	b := memory.NewBroker()
	b.Connect()
	defer b.Disconnect()

	type job struct {
		msg  *broker.Message
		file string
	}
	jobs := make(chan job, 1)
	broker.Subscribe(b, "uploads", func(ctx context.Context, m *wrapperspb.StringValue) error {
		msg, _ := broker.MessageFromContext(ctx)
		jobs <- job{msg, m.GetValue()}
		return nil // not acknowledged yet
	}, broker.WithManualAck())

	done := make(chan struct{})
	go func() { // a worker, outside the handler
		defer close(done)
		j := <-jobs
		fmt.Println("resized", j.file)
		j.msg.Ack()
	}()

	err := broker.NewPublisher[*wrapperspb.StringValue](b, "uploads").
		Publish(context.Background(), wrapperspb.String("cat.png"))
	fmt.Println("published:", err)
	<-done
	// Output:
	// resized cat.png
	// published: <nil>
}
