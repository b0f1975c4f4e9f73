package selector_test

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"testing"

	"github.com/protoc-gen-micro/micro/runtime/registry"
	"github.com/protoc-gen-micro/micro/runtime/registry/memory"
	"github.com/protoc-gen-micro/micro/runtime/selector"
)

var strategies = []selector.Strategy{selector.Random, selector.RoundRobin, selector.ConsistentHash, selector.LeastRequest}

// service registers addrs as one version of "svc", one node each.
func service(addrs ...string) *registry.Service {
	return &registry.Service{Name: "svc", Version: "1", Nodes: nodes(addrs...)}
}

func addrs(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("10.0.%d.%d:8080", i/256, i%256)
	}
	return out
}

func newSelector(t testing.TB, reg registry.Registry, st selector.Strategy) selector.Selector {
	t.Helper()
	s := selector.NewSelector(reg, selector.WithStrategy(st))
	t.Cleanup(func() { s.Close() })
	return s
}

// pick selects and marks success at once.
func pick(t testing.TB, s selector.Selector, ctx context.Context, exclude ...string) string {
	t.Helper()
	n, err := s.Select(ctx, "svc", exclude)
	if err != nil {
		t.Fatal(err)
	}
	s.Mark("svc", n, nil)
	return n.Address
}

// pickErr is pick for goroutines other than the test's: it reports a
// failure with t.Error.
func pickErr(t testing.TB, s selector.Selector, ctx context.Context) string {
	n, err := s.Select(ctx, "svc", nil)
	if err != nil {
		t.Error(err)
		return ""
	}
	s.Mark("svc", n, nil)
	return n.Address
}

func TestExcludeEveryStrategy(t *testing.T) {
	for _, st := range strategies {
		t.Run(st.String(), func(t *testing.T) {
			s := newSelector(t, memory.NewRegistry(memory.WithServices(service("a:1", "b:1", "c:1", "d:1"))), st)
			for i := range 400 {
				ctx := selector.WithHashKey(context.Background(), fmt.Sprint("key", i))
				if got := pick(t, s, ctx, "a:1", "c:1", "d:1"); got != "b:1" {
					t.Fatalf("Select = %s, want b:1", got)
				}
				if got := pick(t, s, ctx, "b:1"); got == "b:1" {
					t.Fatalf("Select returned excluded b:1")
				}
			}
			_, err := s.Select(context.Background(), "svc", []string{"a:1", "b:1", "c:1", "d:1"})
			if !errors.Is(err, selector.ErrNoneAvailable) {
				t.Fatalf("all excluded: %v", err)
			}
		})
	}
}

// TestRoundRobinRotates: consecutive Selects take the nodes in turn, and
// concurrent Selects share the rotation exactly.
func TestRoundRobinRotates(t *testing.T) {
	s := newSelector(t, memory.NewRegistry(memory.WithServices(service("a:1", "b:1", "c:1"))), selector.RoundRobin)
	ctx := context.Background()
	first := []string{pick(t, s, ctx), pick(t, s, ctx), pick(t, s, ctx)}
	if sorted := slices.Sorted(slices.Values(first)); !slices.Equal(sorted, []string{"a:1", "b:1", "c:1"}) {
		t.Fatalf("three Selects gave %v, want each node once", first)
	}
	for i := range 30 {
		if got := pick(t, s, ctx); got != first[i%3] {
			t.Fatalf("Select %d = %s, want %s (rotation %v)", i, got, first[i%3], first)
		}
	}

	const workers, each = 8, 300
	var mu sync.Mutex
	counts := map[string]int{}
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			local := map[string]int{}
			for range each {
				local[pickErr(t, s, ctx)]++
			}
			mu.Lock()
			for k, v := range local {
				counts[k] += v
			}
			mu.Unlock()
		}()
	}
	wg.Wait()
	for _, a := range []string{"a:1", "b:1", "c:1"} {
		if counts[a] != workers*each/3 {
			t.Fatalf("concurrent round-robin counts %v, want %d each", counts, workers*each/3)
		}
	}
}

// TestRoundRobinSkipsEvenly: with a node excluded the others still
// alternate, rather than the next node taking the skipped node's turn.
func TestRoundRobinSkipsEvenly(t *testing.T) {
	s := newSelector(t, memory.NewRegistry(memory.WithServices(service("a:1", "b:1", "c:1"))), selector.RoundRobin)
	counts := map[string]int{}
	prev := ""
	for range 300 {
		got := pick(t, s, context.Background(), "a:1")
		if got == prev {
			t.Fatalf("%s picked twice in a row with a:1 excluded", got)
		}
		prev = got
		counts[got]++
	}
	if counts["b:1"] != 150 || counts["c:1"] != 150 {
		t.Fatalf("counts %v, want 150 each for b:1 and c:1", counts)
	}
}

func TestRandomIsUniform(t *testing.T) {
	s := newSelector(t, memory.NewRegistry(memory.WithServices(service("a:1", "b:1", "c:1"))), selector.Random)
	const draws = 30000
	counts := map[string]int{}
	excluded := map[string]int{}
	for range draws {
		counts[pick(t, s, context.Background())]++
		excluded[pick(t, s, context.Background(), "b:1")]++
	}
	if x2 := chiSquare(counts, []string{"a:1", "b:1", "c:1"}, draws); x2 > chiSquareBound {
		t.Fatalf("χ² = %.1f for counts %v", x2, counts)
	}
	// With 1 degree of freedom, P(χ² > 40) ≈ 3e-10.
	if x2 := chiSquare(excluded, []string{"a:1", "c:1"}, draws); x2 > chiSquareBound {
		t.Fatalf("with b:1 excluded, χ² = %.1f for counts %v", x2, excluded)
	}
}

// hashAll maps keys to the node ConsistentHash picks for each.
func hashAll(t *testing.T, s selector.Selector, keys int, exclude ...string) map[string]string {
	t.Helper()
	out := make(map[string]string, keys)
	for i := range keys {
		k := fmt.Sprint("user-", i)
		out[k] = pick(t, s, selector.WithHashKey(context.Background(), k), exclude...)
	}
	return out
}

func TestConsistentHash(t *testing.T) {
	all := addrs(5)
	reg := memory.NewRegistry(memory.WithServices(service(all...)))
	s := newSelector(t, reg, selector.ConsistentHash)
	const keys = 5000
	before := hashAll(t, s, keys)

	// Sticky: the same key goes to the same node, here and in another
	// selector (another client process).
	if again := hashAll(t, s, keys); !maps.Equal(again, before) {
		t.Fatal("keys moved while the nodes stayed the same")
	}
	other := newSelector(t, reg, selector.ConsistentHash)
	if theirs := hashAll(t, other, keys); !maps.Equal(theirs, before) {
		t.Fatal("two selectors map keys differently")
	}

	// Balanced: each node gets about a fifth of the keys (4 degrees of
	// freedom: P(χ² > 40) ≈ 4e-8).
	counts := map[string]int{}
	for _, n := range before {
		counts[n]++
	}
	if x2 := chiSquare(counts, all, keys); x2 > chiSquareBound {
		t.Fatalf("χ² = %.1f for counts %v", x2, counts)
	}

	// Minimal movement: when a node leaves, only its keys move, and they
	// spread over the others.
	gone := all[2]
	if err := reg.Deregister(context.Background(), &registry.Service{Name: "svc", Version: "1", Nodes: nodes(gone)}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { _, err := s.Select(context.Background(), "svc", without(all, gone)); return err != nil })
	after := hashAll(t, s, keys)
	moved := map[string]int{}
	for k, n := range before {
		switch {
		case n != gone && after[k] != n:
			t.Fatalf("key %s moved from %s to %s though %s stayed", k, n, after[k], n)
		case n == gone:
			moved[after[k]]++
		}
	}
	if len(moved) != len(all)-1 {
		t.Fatalf("the keys of the node that left went to %v, want all %d others", moved, len(all)-1)
	}

	// Excluding a node (a retry) sends its keys to the same runner-up the
	// node's leaving did.
	if excl := hashAll(t, other, keys, gone); !maps.Equal(excl, after) {
		t.Fatal("excluding a node moved keys differently from removing it")
	}

	// A node joining takes keys only for itself.
	if err := reg.Register(context.Background(), service(gone), 0); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { _, err := s.Select(context.Background(), "svc", without(all, gone)); return err == nil })
	if back := hashAll(t, s, keys); !maps.Equal(back, before) {
		t.Fatal("keys did not return when the node came back")
	}
}

// TestConsistentHashWithoutKey: calls without a key are spread at random.
func TestConsistentHashWithoutKey(t *testing.T) {
	s := newSelector(t, memory.NewRegistry(memory.WithServices(service("a:1", "b:1", "c:1"))), selector.ConsistentHash)
	const draws = 30000
	counts := map[string]int{}
	for range draws {
		counts[pick(t, s, context.Background())]++
	}
	if x2 := chiSquare(counts, []string{"a:1", "b:1", "c:1"}, draws); x2 > chiSquareBound {
		t.Fatalf("χ² = %.1f for counts %v", x2, counts)
	}
}

// TestLeastRequestPrefersLessLoaded: with calls in flight on one node,
// LeastRequest sends new calls elsewhere until they end.
func TestLeastRequestPrefersLessLoaded(t *testing.T) {
	s := newSelector(t, memory.NewRegistry(memory.WithServices(service("a:1", "b:1", "c:1"))), selector.LeastRequest)
	ctx := context.Background()
	var busy []*registry.Node
	for range 20 { // 20 calls in flight on a:1
		n, err := s.Select(ctx, "svc", []string{"b:1", "c:1"})
		if err != nil {
			t.Fatal(err)
		}
		busy = append(busy, n)
	}
	counts := map[string]int{}
	for range 3000 {
		counts[pick(t, s, ctx)]++
	}
	// Two different nodes are drawn each time, so one of them is idle.
	if counts["a:1"] != 0 {
		t.Fatalf("loaded a:1 picked %d times: %v", counts["a:1"], counts)
	}
	if counts["b:1"] < 1000 || counts["c:1"] < 1000 {
		t.Fatalf("idle nodes unevenly used: %v", counts)
	}

	// With b:1 loaded more, a:1 and c:1 share the calls: a:1 wins every
	// draw against b:1, c:1 every draw.
	var busier []*registry.Node
	for range 40 {
		n, err := s.Select(ctx, "svc", []string{"a:1", "c:1"})
		if err != nil {
			t.Fatal(err)
		}
		busier = append(busier, n)
	}
	clear(counts)
	for range 3000 {
		counts[pick(t, s, ctx)]++
	}
	// Of the draws {a,b}, {a,c}, {b,c}: a wins one, c two.
	if counts["b:1"] != 0 || counts["a:1"] < 700 || counts["c:1"] < 1700 {
		t.Fatalf("counts %v, want b:1 never, a:1 about 1/3, c:1 about 2/3", counts)
	}

	// Once the calls end, a:1 and b:1 are used again.
	for _, n := range append(busy, busier...) {
		s.Mark("svc", n, nil)
	}
	clear(counts)
	for range 3000 {
		counts[pick(t, s, ctx)]++
	}
	if x2 := chiSquare(counts, []string{"a:1", "b:1", "c:1"}, 3000); x2 > chiSquareBound {
		t.Fatalf("after the calls ended, χ² = %.1f for counts %v", x2, counts)
	}
}

// TestSelectDoesNotAllocate: a cached Select and its Mark allocate nothing,
// for every strategy, with and without an exclusion.
func TestSelectDoesNotAllocate(t *testing.T) {
	for _, st := range strategies {
		s := newSelector(t, memory.NewRegistry(memory.WithServices(service(addrs(10)...))), st)
		ctx := selector.WithHashKey(context.Background(), "user-1")
		exclude := []string{addrs(10)[3]}
		pick(t, s, ctx) // warm the cache
		if a := testing.AllocsPerRun(1000, func() { pick(t, s, ctx) }); a != 0 {
			t.Errorf("%v: %v allocations per Select and Mark", st, a)
		}
		if a := testing.AllocsPerRun(1000, func() { pick(t, s, ctx, exclude...) }); a != 0 {
			t.Errorf("%v: %v allocations per Select and Mark with an exclusion", st, a)
		}
	}
}

func without(list []string, s string) []string {
	return slices.DeleteFunc(slices.Clone(list), func(v string) bool { return v == s })
}
