package selector

import (
	"context"
	"errors"
	"runtime"
	"testing"
	"time"

	"github.com/protoc-gen-micro/micro/runtime/registry"
	"github.com/protoc-gen-micro/micro/runtime/registry/memory"
)

func greeterNodes(addrs ...string) *registry.Service {
	s := &registry.Service{Name: "greeter", Version: "1"}
	for _, a := range addrs {
		s.Nodes = append(s.Nodes, &registry.Node{ID: a, Address: a})
	}
	return s
}

func TestEjectionBackoff(t *testing.T) {
	reg := memory.NewRegistry(memory.WithServices(greeterNodes("a:1", "b:1", "c:1")))
	s := NewSelector(reg, WithStrategy(RoundRobin)).(*selector)
	defer s.Close()
	clock := time.Unix(1000, 0)
	s.now = func() time.Time { return clock }
	ctx := context.Background()
	a := &registry.Node{ID: "a:1", Address: "a:1"}
	fail := errors.New("unavailable")

	// skipped reports whether a:1 is ejected: with the other nodes
	// excluded, round robin alternates a:1 and b:1 unless a:1 is out.
	skipped := func() bool {
		t.Helper()
		for range 2 {
			n, err := s.Select(ctx, "greeter", []string{"c:1", "d:1"})
			if err != nil {
				t.Fatal(err)
			}
			if n.Address == "a:1" {
				return false
			}
		}
		return true
	}
	// expectBackoff checks that a:1 is ejected for exactly d from now.
	expectBackoff := func(d time.Duration) {
		t.Helper()
		start := clock
		if !skipped() {
			t.Fatalf("a:1 picked right after failing")
		}
		clock = start.Add(d - time.Millisecond)
		if !skipped() {
			t.Fatalf("a:1 picked before its %v ejection ended", d)
		}
		clock = start.Add(d)
		if skipped() {
			t.Fatalf("a:1 still ejected after its %v ejection", d)
		}
	}
	svc := func() *service { v, _ := s.services.Load("greeter"); return v }
	// current returns the view Select uses now. Select derives it from
	// the cache's snapshot, so ask one (without Mark, which would report
	// a success).
	current := func() *view {
		if _, err := s.Select(ctx, "greeter", nil); err != nil {
			t.Fatal(err)
		}
		v, _ := svc().view.Last()
		return v
	}

	if skipped() {
		t.Fatal("a:1 skipped before any failure")
	}
	s.Mark("greeter", a, fail)
	expectBackoff(minBackoff)

	// Each failure after an ejection ends doubles it...
	s.Mark("greeter", a, fail)
	expectBackoff(2 * minBackoff)

	// ...but failures reported during an ejection do not.
	s.Mark("greeter", a, fail)
	clock = clock.Add(time.Second)
	s.Mark("greeter", a, fail)
	clock = clock.Add(-time.Second)
	expectBackoff(4 * minBackoff)

	// The ejection is capped.
	for range 10 {
		s.Mark("greeter", a, fail)
		clock = clock.Add(maxBackoff)
	}
	s.Mark("greeter", a, fail)
	expectBackoff(maxBackoff)

	// A success once the ejection has ended resets it.
	s.Mark("greeter", a, nil)
	if n := svc().ejected.Load(); n != 0 {
		t.Fatalf("ejected = %d after a success", n)
	}
	s.Mark("greeter", a, fail)
	expectBackoff(minBackoff)

	// A success during an ejection is from a call that started before it:
	// it changes nothing.
	s.Mark("greeter", a, fail)
	s.Mark("greeter", a, nil)
	if !skipped() {
		t.Fatal("a success reported during the ejection ended it")
	}

	// The ejection survives other nodes coming and going...
	reg.Register(ctx, greeterNodes("d:1"), 0)
	waitUntil(t, func() bool { return len(current().nodes) == 4 })
	if !skipped() {
		t.Fatal("a:1 back after another node joined")
	}
	// ...and ends when the node leaves.
	reg.Deregister(ctx, greeterNodes("a:1"))
	waitUntil(t, func() bool { return len(current().nodes) == 3 && svc().ejected.Load() == 0 })
	reg.Register(ctx, greeterNodes("a:1"), 0)
	waitUntil(t, func() bool { return len(current().nodes) == 4 })
	if skipped() {
		t.Fatal("a:1 still ejected after leaving and coming back")
	}

	// When every node left is ejected, one of them is picked anyway.
	s.Mark("greeter", a, fail)
	s.Mark("greeter", &registry.Node{Address: "b:1"}, fail)
	for range 10 {
		n, err := s.Select(ctx, "greeter", []string{"c:1", "d:1"})
		if err != nil {
			t.Fatalf("every node left ejected: %v", err)
		}
		if n.Address != "a:1" && n.Address != "b:1" {
			t.Fatalf("Select = %s", n.Address)
		}
	}
}

// waitUntil yields until cond holds, as the watch goroutine catches up;
// the deadline only fails a watch that never does.
func waitUntil(t *testing.T, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); runtime.Gosched() {
		if time.Now().After(deadline) {
			t.Fatal("condition never met")
		}
	}
}
