package selector

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/protoc-gen-micro/micro/runtime/registry"
	"github.com/protoc-gen-micro/micro/runtime/registry/memory"
)

func TestBackoff(t *testing.T) {
	reg := memory.NewRegistry(memory.Services(&registry.Service{Name: "greeter", Nodes: []*registry.Node{
		{ID: "a", Address: "a:1"}, {ID: "b", Address: "b:1"},
	}}))
	s := NewSelector(Registry(reg)).(*selector)
	clock := time.Unix(1000, 0)
	s.now = func() time.Time { return clock }
	a := &registry.Node{ID: "a", Address: "a:1"}
	fail := errors.New("unavailable")

	// skipped reports whether a:1 is in backoff: Select never picks it
	// while b:1 is there.
	skipped := func() bool {
		for range 200 {
			n, err := s.Select(context.Background(), "greeter", nil)
			if err != nil {
				t.Fatal(err)
			}
			if n.Address == "a:1" {
				return false
			}
		}
		return true
	}
	// expectBackoff checks that a:1 is skipped for exactly d from now.
	expectBackoff := func(d time.Duration) {
		t.Helper()
		start := clock
		if !skipped() {
			t.Fatalf("a:1 picked right after failing")
		}
		clock = start.Add(d - time.Millisecond)
		if !skipped() {
			t.Fatalf("a:1 picked before its %v backoff ended", d)
		}
		clock = start.Add(d)
		if skipped() {
			t.Fatalf("a:1 still skipped after its %v backoff", d)
		}
	}

	s.Mark("greeter", a, fail)
	expectBackoff(minBackoff)

	// Each failure after a backoff ends doubles it...
	s.Mark("greeter", a, fail)
	expectBackoff(2 * minBackoff)

	// ...but failures reported during a backoff do not.
	s.Mark("greeter", a, fail)
	clock = clock.Add(time.Second)
	s.Mark("greeter", a, fail)
	clock = clock.Add(-time.Second)
	expectBackoff(4 * minBackoff)

	// The backoff is capped.
	for range 10 {
		s.Mark("greeter", a, fail)
		clock = clock.Add(maxBackoff)
	}
	s.Mark("greeter", a, fail)
	expectBackoff(maxBackoff)

	// A success resets it.
	s.Mark("greeter", a, nil)
	if s.nfailed.Load() != 0 {
		t.Fatalf("nfailed = %d after success", s.nfailed.Load())
	}
	s.Mark("greeter", a, fail)
	expectBackoff(minBackoff)

	// A node that stays away long after its backoff is forgotten.
	clock = clock.Add(time.Hour)
	s.Mark("greeter", &registry.Node{Address: "b:1"}, fail)
	if _, ok := s.failed["a:1"]; ok {
		t.Fatal("stale failure of a:1 kept")
	}
}
