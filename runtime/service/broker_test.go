package service_test

import (
	"context"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/protoc-gen-micro/micro/internal/leakcheck"
	"github.com/protoc-gen-micro/micro/runtime/broker"
	brokermemory "github.com/protoc-gen-micro/micro/runtime/broker/memory"
	"github.com/protoc-gen-micro/micro/runtime/registry/memory"
	"github.com/protoc-gen-micro/micro/runtime/service"
)

// TestServiceBroker: a subscriber pool of two services in one queue group
// and a publishing service share a registry; every event is handled once,
// and the brokers are connected by Start and drained by Stop.
func TestServiceBroker(t *testing.T) {
	leakcheck.Check(t)
	reg := memory.NewRegistry()
	var handled atomic.Int32
	var workers []service.Service
	for range 2 {
		w := service.NewService(service.WithName("worker"), service.WithAddress("127.0.0.1:0"), service.WithRegistry(reg), service.WithSignal(false))
		_, err := broker.Subscribe(w.Broker(), "events.test", func(ctx context.Context, m *wrapperspb.StringValue) error {
			handled.Add(1)
			return nil
		}, broker.WithQueue("pool"))
		if err != nil {
			t.Fatal(err)
		}
		if err := w.Start(); err != nil {
			t.Fatal(err)
		}
		defer w.Stop()
		workers = append(workers, w)
	}
	pub := service.NewService(service.WithName("publisher"), service.WithAddress("127.0.0.1:0"), service.WithRegistry(reg), service.WithSignal(false))
	events := broker.NewPublisher[*wrapperspb.StringValue](pub.Broker(), "events.test", broker.WithRequireSubscribers())
	if err := pub.Start(); err != nil {
		t.Fatal(err)
	}
	defer pub.Stop()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for i := range 20 {
		if err := events.Publish(ctx, wrapperspb.String("event")); err != nil {
			t.Fatalf("publish %d: %v", i, err)
		}
	}
	if got := handled.Load(); got != 20 {
		t.Fatalf("handled %d events, want each of 20 exactly once", got)
	}
	for _, w := range workers {
		if err := w.Stop(); err != nil {
			t.Fatal(err)
		}
	}
	if err := events.Publish(ctx, wrapperspb.String("late")); err == nil {
		t.Fatal("publishing after every subscriber stopped succeeded despite RequireSubscribers")
	}
}

// recordingBroker is a broker wrapper that records what passes through it.
type recordingBroker struct {
	broker.Broker
	name string
	log  chan<- string
}

func (b recordingBroker) Connect() error {
	b.log <- b.name + " connect"
	return b.Broker.Connect()
}

func (b recordingBroker) Disconnect() error {
	b.log <- b.name + " disconnect"
	return b.Broker.Disconnect()
}

func (b recordingBroker) Publish(ctx context.Context, topic string, msg *broker.Message, opts ...broker.PublishOption) error {
	b.log <- b.name + " publish " + topic
	return b.Broker.Publish(ctx, topic, msg, opts...)
}

func (b recordingBroker) Subscribe(topic string, h broker.Handler, opts ...broker.SubscribeOption) (broker.Subscriber, error) {
	b.log <- b.name + " subscribe " + topic
	return b.Broker.Subscribe(topic, func(ctx context.Context, msg *broker.Message) error {
		b.log <- b.name + " deliver " + topic
		return h(ctx, msg)
	}, opts...)
}

// TestServiceBrokerWrapper: WithBrokerWrapper wraps the built-in broker and
// a given one, the first wrapper outermost; the typed helpers, Start and
// Stop all go through the wrappers.
func TestServiceBrokerWrapper(t *testing.T) {
	for _, given := range []bool{false, true} {
		name := "built-in"
		if given {
			name = "given"
		}
		t.Run(name, func(t *testing.T) {
			leakcheck.Check(t)
			log := make(chan string, 64)
			wrap := func(name string) service.Option {
				return service.WithBrokerWrapper(func(b broker.Broker) broker.Broker { return recordingBroker{b, name, log} })
			}
			opts := []service.Option{service.WithName("wrapped"), service.WithAddress("127.0.0.1:0"),
				service.WithRegistry(memory.NewRegistry()), service.WithSignal(false), wrap("outer"), wrap("inner")}
			if given {
				opts = append(opts, service.WithBroker(brokermemory.NewBroker()))
			}
			svc := service.NewService(opts...)
			if svc.Broker() != svc.Broker() {
				t.Fatal("Broker wrapped the broker again on a second call")
			}
			handled := make(chan string, 1)
			_, err := broker.Subscribe(svc.Broker(), "wrapped.test", func(ctx context.Context, m *wrapperspb.StringValue) error {
				handled <- m.Value
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			if err := svc.Start(); err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			pub := broker.NewPublisher[*wrapperspb.StringValue](svc.Broker(), "wrapped.test", broker.WithRequireSubscribers())
			if err := pub.Publish(ctx, wrapperspb.String("hi")); err != nil {
				t.Fatal(err)
			}
			if got := <-handled; got != "hi" {
				t.Fatalf("handled %q, want hi", got)
			}
			if err := svc.Stop(); err != nil {
				t.Fatal(err)
			}
			close(log)
			var got []string
			for l := range log {
				got = append(got, l)
			}
			want := []string{
				"outer subscribe wrapped.test", "inner subscribe wrapped.test",
				"outer connect", "inner connect",
				"outer publish wrapped.test", "inner publish wrapped.test",
				"inner deliver wrapped.test", "outer deliver wrapped.test",
				"outer disconnect", "inner disconnect",
			}
			if !slices.Equal(got, want) {
				t.Fatalf("through the wrappers:\n got %q\nwant %q", got, want)
			}
		})
	}
}
