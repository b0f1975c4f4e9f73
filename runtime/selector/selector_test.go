package selector_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/protoc-gen-micro/micro/runtime/registry"
	"github.com/protoc-gen-micro/micro/runtime/registry/memory"
	"github.com/protoc-gen-micro/micro/runtime/selector"
)

func nodes(addrs ...string) []*registry.Node {
	out := make([]*registry.Node, len(addrs))
	for i, a := range addrs {
		out[i] = &registry.Node{ID: "id-" + a, Address: a}
	}
	return out
}

// greeter has three nodes spread over two versions.
func greeter() registry.Registry {
	n := nodes("a:1", "b:1", "c:1")
	return memory.NewRegistry(memory.WithServices(
		&registry.Service{Name: "greeter", Version: "v1", Nodes: n[:2]},
		&registry.Service{Name: "greeter", Version: "v2", Nodes: n[2:]},
	))
}

// chiSquare returns Pearson's statistic for counts against a uniform
// distribution over want keys.
func chiSquare(counts map[string]int, want []string, draws int) float64 {
	expected := float64(draws) / float64(len(want))
	var x2 float64
	for _, k := range want {
		d := float64(counts[k]) - expected
		x2 += d * d / expected
	}
	return x2
}

// With 2 degrees of freedom, P(χ² > 40) ≈ 2e-9: the bound fails for a
// biased picker, never by chance.
const chiSquareBound = 40

func TestSelectIsUniformOverVersions(t *testing.T) {
	s := selector.NewSelector(greeter())
	const draws = 30000
	counts := map[string]int{}
	for range draws {
		n, err := s.Select(context.Background(), "greeter", nil)
		if err != nil {
			t.Fatal(err)
		}
		counts[n.Address]++
	}
	if x2 := chiSquare(counts, []string{"a:1", "b:1", "c:1"}, draws); x2 > chiSquareBound {
		t.Fatalf("χ² = %.1f for counts %v", x2, counts)
	}
}

func TestSelectExclude(t *testing.T) {
	s := selector.NewSelector(greeter())
	for range 300 {
		n, err := s.Select(context.Background(), "greeter", []string{"a:1", "c:1"})
		if err != nil {
			t.Fatal(err)
		}
		if n.Address != "b:1" {
			t.Fatalf("Select = %s, want b:1", n.Address)
		}
	}
	_, err := s.Select(context.Background(), "greeter", []string{"a:1", "b:1", "c:1"})
	if !errors.Is(err, selector.ErrNoneAvailable) || !strings.Contains(err.Error(), `"greeter"`) {
		t.Fatalf("all excluded: err = %v, want ErrNoneAvailable naming the service", err)
	}
}

func TestSelectNotFound(t *testing.T) {
	s := selector.NewSelector(memory.NewRegistry())
	_, err := s.Select(context.Background(), "greeter", nil)
	if !errors.Is(err, selector.ErrNoneAvailable) || !errors.Is(err, registry.ErrNotFound) {
		t.Fatalf("err = %v, want both ErrNoneAvailable and registry.ErrNotFound", err)
	}
	if !strings.Contains(err.Error(), `service "greeter"`) {
		t.Fatalf("err = %q does not name the service", err)
	}
}

func TestSelectRegistryError(t *testing.T) {
	s := selector.NewSelector(greeter())
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := s.Select(ctx, "greeter", nil)
	if !errors.Is(err, context.Canceled) || errors.Is(err, selector.ErrNoneAvailable) {
		t.Fatalf("err = %v, want the registry's context.Canceled only", err)
	}
}

func TestNewSelectorWithoutRegistry(t *testing.T) {
	defer func() {
		if r := recover(); r == nil || !strings.Contains(fmt.Sprint(r), "nil registry") {
			t.Fatalf("NewSelector(nil) recovered %v, want a panic naming the nil registry", r)
		}
	}()
	selector.NewSelector(nil)
}

// TestSelectSkipsFailedNode: a node reported failed is ejected at once,
// for every strategy, and is still picked when nothing else is left. How
// long it stays out is checked with a fake clock in TestEjectionBackoff.
func TestSelectSkipsFailedNode(t *testing.T) {
	for _, st := range strategies {
		t.Run(st.String(), func(t *testing.T) {
			s := selector.NewSelector(greeter(), selector.WithStrategy(st))
			defer s.Close()
			ctx := selector.WithHashKey(context.Background(), "k")
			a, err := s.Select(ctx, "greeter", []string{"b:1", "c:1"})
			if err != nil || a.Address != "a:1" {
				t.Fatalf("Select = %v, %v", a, err)
			}
			s.Mark("greeter", a, errors.New("connection refused"))
			for range 300 {
				n, err := s.Select(ctx, "greeter", nil)
				if err != nil {
					t.Fatal(err)
				}
				if n.Address == "a:1" {
					t.Fatal("Select picked an ejected node while others were left")
				}
				s.Mark("greeter", n, nil)
			}
			// The ejected node is picked when nothing else is left.
			n, err := s.Select(ctx, "greeter", []string{"b:1", "c:1"})
			if err != nil || n.Address != "a:1" {
				t.Fatalf("Select = %v, %v; want a:1 as the last resort", n, err)
			}
			s.Mark("greeter", n, nil)
		})
	}
}

func TestString(t *testing.T) {
	if got := selector.NewSelector(memory.NewRegistry()).String(); got != "random" {
		t.Fatalf("String() = %q", got)
	}
	for st, want := range map[selector.Strategy]string{
		selector.Random:         "random",
		selector.RoundRobin:     "roundrobin",
		selector.ConsistentHash: "consistenthash",
		selector.LeastRequest:   "leastrequest",
	} {
		if got := selector.NewSelector(memory.NewRegistry(), selector.WithStrategy(st)).String(); got != want {
			t.Errorf("String() = %q, want %q", got, want)
		}
	}
}

func TestConcurrentSelectAndMark(t *testing.T) {
	reg := greeter()
	s := selector.NewSelector(reg)
	defer s.Close()
	ctx := context.Background()
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 500 {
				n, err := s.Select(ctx, "greeter", nil)
				if err != nil {
					if !errors.Is(err, selector.ErrNoneAvailable) {
						t.Error(err)
					}
					continue
				}
				var callErr error
				if (g+i)%4 == 0 {
					callErr = errors.New("unavailable")
				}
				s.Mark("greeter", n, callErr)
			}
		}()
	}
	wg.Add(1)
	go func() { // the registry changes under the selector
		defer wg.Done()
		d := &registry.Service{Name: "greeter", Version: "v3", Nodes: nodes("d:1")}
		for range 200 {
			if err := reg.Register(ctx, d, 0); err != nil {
				t.Error(err)
			}
			if err := reg.Deregister(ctx, d); err != nil {
				t.Error(err)
			}
		}
	}()
	wg.Wait()
}
