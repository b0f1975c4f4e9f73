package selector_test

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/protoc-gen-micro/micro/internal/leakcheck"
	"github.com/protoc-gen-micro/micro/runtime/registry"
	"github.com/protoc-gen-micro/micro/runtime/registry/memory"
	"github.com/protoc-gen-micro/micro/runtime/selector"
)

// waitFor yields until cond holds, as the watch goroutine catches up; the
// deadline only fails a watch that never does.
func waitFor(t testing.TB, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); runtime.Gosched() {
		if time.Now().After(deadline) {
			t.Fatal("condition never met")
		}
	}
}

// counting counts GetService calls and can hold them until released.
type counting struct {
	registry.Registry
	lookups atomic.Int32
	hold    chan struct{} // when set, GetService waits for it to close
}

func (c *counting) GetService(ctx context.Context, name string) ([]*registry.Service, error) {
	c.lookups.Add(1)
	if c.hold != nil {
		<-c.hold
	}
	return c.Registry.GetService(ctx, name)
}

// has reports whether Select can return addr (everything else excluded).
func has(s selector.Selector, name, addr string, others ...string) bool {
	n, err := s.Select(context.Background(), name, others)
	if err != nil {
		return false
	}
	s.Mark(name, n, nil)
	return n.Address == addr
}

// TestCacheFollowsRegistry: after one lookup, Select answers from the
// cache, which the watch keeps current through creates, updates and
// deletes, including of a service not found at first.
func TestCacheFollowsRegistry(t *testing.T) {
	leakcheck.Check(t)
	ctx := context.Background()
	reg := &counting{Registry: memory.NewRegistry(memory.WithServices(service("a:1", "b:1")))}
	s := selector.NewSelector(reg)
	defer s.Close()

	for range 1000 {
		pick(t, s, ctx)
	}
	if _, err := s.Select(ctx, "other", nil); !errors.Is(err, registry.ErrNotFound) {
		t.Fatalf("unknown service: %v", err)
	}
	for range 100 {
		s.Select(ctx, "other", nil)
	}
	if n := reg.lookups.Load(); n != 2 {
		t.Fatalf("%d registry lookups for 1100 Selects of two services, want 2", n)
	}

	// A new node, in a new version.
	if err := reg.Register(ctx, &registry.Service{Name: "svc", Version: "2", Nodes: nodes("c:1")}, 0); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { return has(s, "svc", "c:1", "a:1", "b:1") })
	// A node changes address.
	if err := reg.Register(ctx, &registry.Service{Name: "svc", Version: "1", Nodes: []*registry.Node{{ID: "id-a:1", Address: "a:2"}}}, 0); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { return has(s, "svc", "a:2", "b:1", "c:1") })
	if has(s, "svc", "a:1", "a:2", "b:1", "c:1") {
		t.Fatal("old address still selected")
	}
	// A node leaves.
	if err := reg.Deregister(ctx, &registry.Service{Name: "svc", Version: "1", Nodes: nodes("b:1")}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool {
		_, err := s.Select(ctx, "svc", []string{"a:2", "c:1"})
		return errors.Is(err, selector.ErrNoneAvailable)
	})
	// Every node leaves.
	reg.Deregister(ctx, &registry.Service{Name: "svc", Version: "1", Nodes: []*registry.Node{{ID: "id-a:1"}}})
	reg.Deregister(ctx, &registry.Service{Name: "svc", Version: "2", Nodes: nodes("c:1")})
	waitFor(t, func() bool {
		_, err := s.Select(ctx, "svc", nil)
		return errors.Is(err, selector.ErrNoneAvailable) && errors.Is(err, registry.ErrNotFound)
	})
	// The service not found at first appears.
	reg.Register(ctx, &registry.Service{Name: "other", Nodes: nodes("o:1")}, 0)
	waitFor(t, func() bool { return has(s, "other", "o:1") })
	if n := reg.lookups.Load(); n != 2 {
		t.Fatalf("%d registry lookups, want still 2", n)
	}
}

// TestDeleteLatency measures how long after a Deregister Select stops
// returning the node. It logs; it asserts only that it happens.
func TestDeleteLatency(t *testing.T) {
	leakcheck.Check(t)
	ctx := context.Background()
	reg := memory.NewRegistry(memory.WithServices(service("a:1", "b:1")))
	s := selector.NewSelector(reg)
	defer s.Close()
	var worst, total time.Duration
	const rounds = 100
	for i := range rounds {
		addr := fmt.Sprint("x:", i)
		reg.Register(ctx, service(addr), 0)
		waitFor(t, func() bool { return has(s, "svc", addr, "a:1", "b:1") })
		start := time.Now()
		reg.Deregister(ctx, service(addr))
		// Yield between Selects, as a client waiting on the network
		// would: a loop that never yields keeps the watch goroutine,
		// woken on this P, from running until the scheduler steps in.
		spins := 0
		for has(s, "svc", addr, "a:1", "b:1") {
			if spins++; spins > 1e7 {
				t.Fatal("deleted node still selected")
			}
			runtime.Gosched()
		}
		d := time.Since(start)
		total += d
		worst = max(worst, d)
	}
	t.Logf("Deregister to Select no longer returning the node: mean %v, worst %v over %d rounds", total/rounds, worst, rounds)
}

func TestCloseStopsWatch(t *testing.T) {
	leakcheck.Check(t)
	s := selector.NewSelector(memory.NewRegistry(memory.WithServices(service("a:1"))))
	pick(t, s, context.Background())
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, err := s.Select(context.Background(), "svc", nil); err == nil {
		t.Fatal("Select after Close succeeded")
	}
	// A selector never used holds nothing to close.
	selector.NewSelector(memory.NewRegistry()).Close()
}
