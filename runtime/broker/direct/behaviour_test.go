package direct_test

import (
	"context"
	"errors"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/protoc-gen-micro/micro/internal/leakcheck"
	"github.com/protoc-gen-micro/micro/internal/registrytest"
	"github.com/protoc-gen-micro/micro/runtime/broker"
	"github.com/protoc-gen-micro/micro/runtime/broker/direct"
	"github.com/protoc-gen-micro/micro/runtime/registry"
	"github.com/protoc-gen-micro/micro/runtime/registry/memory"
	"github.com/protoc-gen-micro/micro/runtime/selector"
	"github.com/protoc-gen-micro/micro/runtime/server"
)

func newBroker(t *testing.T, reg registry.Registry, opts ...direct.Option) broker.Broker {
	t.Helper()
	return newBrokerTB(t, reg, opts...)
}

func newBrokerTB(t testing.TB, reg registry.Registry, opts ...direct.Option) broker.Broker {
	t.Helper()
	b := direct.NewBroker(append([]direct.Option{direct.WithRegistry(reg), direct.WithAddress("127.0.0.1:0")}, opts...)...)
	if err := b.Connect(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Disconnect() })
	return b
}

// deadAddress returns an address on which nothing listens.
func deadAddress(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// registerDead registers a subscription whose process has died without
// deregistering.
func registerDead(t *testing.T, reg registry.Registry, topic, id, queue string) string {
	t.Helper()
	addr := deadAddress(t)
	md := map[string]string{"topic": topic}
	if queue != "" {
		md["queue"] = queue
	}
	err := reg.Register(context.Background(), &registry.Service{
		Name: direct.ServiceName(topic), Version: "v1",
		Nodes: []*registry.Node{{ID: id, Address: addr, Metadata: md}},
	}, 0)
	if err != nil {
		t.Fatal(err)
	}
	return addr
}

// A queue group member that died without deregistering is passed over at
// once, costing neither an attempt nor a backoff; a group-less one is
// reported, with its address, after the attempts.
func TestDeadSubscriber(t *testing.T) {
	leakcheck.Check(t)
	reg := memory.NewRegistry()
	pub, sub := newBroker(t, reg), newBroker(t, reg)
	const topic = "orders.created"
	var got atomic.Int32
	if _, err := sub.Subscribe(topic, func(context.Context, *broker.Message) error { got.Add(1); return nil }, broker.WithQueue("billing")); err != nil {
		t.Fatal(err)
	}
	registerDead(t, reg, topic, "dead-member", "billing")
	// An hour's backoff is past any publication's deadline, so a backoff
	// taken would fail the publication at once: no clock is read.
	for range 20 {
		if err := pub.Publish(context.Background(), topic, &broker.Message{Body: []byte("x")}, broker.WithBackoff(time.Hour, time.Hour)); err != nil {
			t.Fatalf("Publish with a dead member: %v", err)
		}
	}
	if got.Load() != 20 {
		t.Errorf("the live member got %d of 20", got.Load())
	}
	if s := direct.StatsOf(pub); s.Redelivered != 0 || s.Undelivered != 0 {
		t.Errorf("stats %+v: a dead member should cost no redelivery", s)
	}

	const other = "orders.shipped"
	if _, err := sub.Subscribe(other, func(context.Context, *broker.Message) error { return nil }); err != nil {
		t.Fatal(err)
	}
	addr := registerDead(t, reg, other, "dead-listener", "")
	err := pub.Publish(context.Background(), other, &broker.Message{}, broker.WithAttempts(2), broker.WithBackoff(time.Millisecond, time.Millisecond))
	var pe *broker.PublishError
	if !errors.As(err, &pe) || len(pe.Failed) != 1 || !strings.Contains(err.Error(), "1 of 2 targets") {
		t.Fatalf("Publish with a dead group-less subscriber: %v, want it reported", err)
	}
	if !strings.Contains(err.Error(), `subscriber "dead-listener" at `+addr) {
		t.Errorf("error %q does not name the dead subscriber and its address", err)
	}
}

// A message larger than the subscriber's server accepts fails at once,
// without attempts that cannot succeed, and reaches no handler.
func TestTooLarge(t *testing.T) {
	leakcheck.Check(t)
	reg := memory.NewRegistry()
	pub, sub := newBroker(t, reg), newBroker(t, reg)
	var got atomic.Int32
	if _, err := sub.Subscribe("big", func(context.Context, *broker.Message) error { got.Add(1); return nil }); err != nil {
		t.Fatal(err)
	}
	err := pub.Publish(context.Background(), "big", &broker.Message{Body: make([]byte, 5<<20)})
	if err == nil || !strings.Contains(err.Error(), "ResourceExhausted") {
		t.Fatalf("Publish of 5 MiB: %v, want ResourceExhausted", err)
	}
	if s := direct.StatsOf(pub); s.Redelivered != 0 {
		t.Errorf("a message too large was sent %d more times", s.Redelivered)
	}
	if got.Load() != 0 {
		t.Error("the handler was called")
	}
}

// With the service's server, the broker connects once the server has
// started, serves deliveries on it and leaves it running.
func TestSharedServer(t *testing.T) {
	leakcheck.Check(t)
	reg := memory.NewRegistry()
	srv := server.NewServer(server.WithAddress("127.0.0.1:0"))
	b := direct.NewBroker(direct.WithRegistry(reg), direct.WithServer(srv))
	defer b.Disconnect()
	got := make(chan string, 1)
	if _, err := b.Subscribe("shared", func(_ context.Context, m *broker.Message) error { got <- string(m.Body); return nil }); err != nil {
		t.Fatal(err)
	}
	if err := b.Connect(); err == nil || !strings.Contains(err.Error(), "started") {
		t.Fatalf("Connect before the server started: %v, want an error", err)
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	defer srv.Stop()
	if err := b.Connect(); err != nil {
		t.Fatal(err)
	}
	if direct.AddressOf(b) != srv.Address() {
		t.Errorf("registered at %s, want the server's %s", direct.AddressOf(b), srv.Address())
	}
	pub := newBroker(t, reg)
	if err := pub.Publish(context.Background(), "shared", &broker.Message{Body: []byte("hi")}); err != nil {
		t.Fatal(err)
	}
	if s := <-got; s != "hi" {
		t.Errorf("got %q", s)
	}
	if err := b.Disconnect(); err != nil {
		t.Fatal(err)
	}
	c, err := net.Dial("tcp", srv.Address())
	if err != nil {
		t.Fatalf("the service's server stopped with the broker: %v", err)
	}
	c.Close()
}

// Subscriptions exist in the registry exactly while their broker is
// connected and they are subscribed.
func TestRegistration(t *testing.T) {
	leakcheck.Check(t)
	reg := memory.NewRegistry()
	b := direct.NewBroker(direct.WithRegistry(reg), direct.WithAddress("127.0.0.1:0"))
	defer b.Disconnect()
	s1, err := b.Subscribe("reg.a", func(context.Context, *broker.Message) error { return nil }, broker.WithQueue("q"), broker.WithMaxInFlight(7))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Subscribe("reg.b", func(context.Context, *broker.Message) error { return nil }); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := reg.GetService(ctx, direct.ServiceName("reg.a")); !errors.Is(err, registry.ErrNotFound) {
		t.Fatalf("registered before Connect: %v", err)
	}
	if err := b.Connect(); err != nil {
		t.Fatal(err)
	}
	svcs, err := reg.GetService(ctx, direct.ServiceName("reg.a"))
	if err != nil || len(svcs) != 1 || len(svcs[0].Nodes) != 1 {
		t.Fatalf("after Connect: %v %v", svcs, err)
	}
	n := svcs[0].Nodes[0]
	if n.Address != direct.AddressOf(b) || n.Metadata["queue"] != "q" || n.Metadata["topic"] != "reg.a" || n.Metadata["max-inflight"] != "7" {
		t.Errorf("node %+v", n)
	}
	if err := s1.Unsubscribe(); err != nil {
		t.Fatal(err)
	}
	if _, err := reg.GetService(ctx, direct.ServiceName("reg.a")); !errors.Is(err, registry.ErrNotFound) {
		t.Errorf("registered after Unsubscribe: %v", err)
	}
	if err := b.Disconnect(); err != nil {
		t.Fatal(err)
	}
	if _, err := reg.GetService(ctx, direct.ServiceName("reg.b")); !errors.Is(err, registry.ErrNotFound) {
		t.Errorf("registered after Disconnect: %v", err)
	}
	if err := b.Publish(ctx, "reg.b", &broker.Message{}); !errors.Is(err, broker.ErrDisconnected) {
		t.Errorf("Publish after Disconnect: %v", err)
	}
	if err := b.Connect(); !errors.Is(err, broker.ErrDisconnected) {
		t.Errorf("Connect after Disconnect: %v", err)
	}
}

// A broker and a selector of one registry share its cache: one watch
// serves both, and the cache stays open for the selector when the broker
// disconnects.
func TestSharedCache(t *testing.T) {
	leakcheck.Check(t)
	ctx := context.Background()
	reg := &registrytest.WatchCounter{Registry: memory.NewRegistry()}
	sel := selector.NewSelector(reg)
	defer sel.Close()
	b := direct.NewBroker(direct.WithRegistry(reg), direct.WithAddress("127.0.0.1:0"))
	got := make(chan string, 1)
	if _, err := b.Subscribe("shared.t", func(_ context.Context, m *broker.Message) error { got <- string(m.Body); return nil }); err != nil {
		t.Fatal(err)
	}
	if err := b.Connect(); err != nil {
		t.Fatal(err)
	}
	if err := b.Publish(ctx, "shared.t", &broker.Message{Body: []byte("hello")}); err != nil {
		t.Fatal(err)
	}
	if m := <-got; m != "hello" {
		t.Fatalf("delivered %q", m)
	}
	// The selector finds the subscription the broker registered.
	n, err := sel.Select(ctx, direct.ServiceName("shared.t"), nil)
	if err != nil || n.Address != direct.AddressOf(b) {
		t.Fatalf("Select of the subscription = %v, %v; want the broker's address %s", n, err, direct.AddressOf(b))
	}
	sel.Mark(direct.ServiceName("shared.t"), n, nil)
	if w := reg.Watches(); w != 1 {
		t.Errorf("%d registry watches for a selector and a broker of one registry, want 1", w)
	}
	if err := b.Disconnect(); err != nil {
		t.Fatal(err)
	}
	other := &registry.Service{Name: "other", Nodes: []*registry.Node{{ID: "o1", Address: "127.0.0.1:1"}}}
	if err := reg.Register(ctx, other, 0); err != nil {
		t.Fatal(err)
	}
	if n, err := sel.Select(ctx, "other", nil); err != nil || n.ID != "o1" {
		t.Fatalf("the shared cache after the broker disconnected: %v, %v", n, err)
	}
}
