package service_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/protoc-gen-micro/micro/internal/leakcheck"
	"github.com/protoc-gen-micro/micro/runtime/broker"
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
