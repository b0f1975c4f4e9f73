package memory_test

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/protoc-gen-micro/micro/internal/leakcheck"
	"github.com/protoc-gen-micro/micro/runtime/registry"
	"github.com/protoc-gen-micro/micro/runtime/registry/memory"
)

var _ registry.Registry = (*memory.Registry)(nil)

func svc(name, version string, nodes ...*registry.Node) *registry.Service {
	return &registry.Service{
		Name:      name,
		Version:   version,
		Metadata:  map[string]string{"team": "core"},
		Endpoints: []*registry.Endpoint{{Name: "/" + name + "/Call", Metadata: map[string]string{"stream": "unary"}}},
		Nodes:     nodes,
	}
}

func nd(id, addr string) *registry.Node {
	return &registry.Node{ID: id, Address: addr, Metadata: map[string]string{"protocol": "grpc"}}
}

// watch starts a watch that ends by itself after a while, so that a test
// waiting on Next for an event that never comes fails instead of hanging.
func watch(t *testing.T, r registry.Registry, opts ...registry.WatchOption) registry.Watcher {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	t.Cleanup(cancel)
	w, err := r.Watch(ctx, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.Stop)
	return w
}

func next(t *testing.T, w registry.Watcher) *registry.Result {
	t.Helper()
	res, err := w.Next()
	if err != nil {
		t.Fatalf("Next: %v", err)
	}
	return res
}

func nodeIDs(s *registry.Service) []string {
	var ids []string
	for _, n := range s.Nodes {
		ids = append(ids, n.ID)
	}
	return ids
}

func TestRegisterGetServiceReturnsCopies(t *testing.T) {
	leakcheck.Check(t)
	ctx := context.Background()
	r := memory.NewRegistry()
	in := svc("greeter", "v1", nd("n1", "127.0.0.1:1"))
	if err := r.Register(ctx, in); err != nil {
		t.Fatal(err)
	}
	want := in.Clone()
	// Neither the caller's value nor a returned one may reach the registry.
	in.Nodes[0].Address = "changed"
	in.Metadata["team"] = "changed"

	got, err := r.GetService(ctx, "greeter")
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || !reflect.DeepEqual(got[0], want) {
		t.Fatalf("GetService = %+v, want %+v", got, want)
	}
	got[0].Nodes[0].Address = "changed"
	got[0].Nodes[0].Metadata["protocol"] = "changed"
	got[0].Endpoints[0].Metadata["stream"] = "changed"
	got[0].Metadata["team"] = "changed"

	again, err := r.GetService(ctx, "greeter")
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(again[0], want) {
		t.Fatalf("after mutating a result, GetService = %+v, want %+v", again[0], want)
	}
}

func TestGetServiceNotFound(t *testing.T) {
	_, err := memory.NewRegistry().GetService(context.Background(), "nope")
	if !errors.Is(err, registry.ErrNotFound) {
		t.Fatalf("err = %v, want ErrNotFound", err)
	}
}

func TestRegisterMergesNodesByID(t *testing.T) {
	ctx := context.Background()
	r := memory.NewRegistry()
	for _, s := range []*registry.Service{
		svc("greeter", "v2", nd("b", "127.0.0.1:2")),
		svc("greeter", "v2", nd("a", "127.0.0.1:1")),
		svc("greeter", "v2", nd("b", "127.0.0.1:22")), // replaces b
		svc("greeter", "v1", nd("c", "127.0.0.1:3")),
	} {
		if err := r.Register(ctx, s); err != nil {
			t.Fatal(err)
		}
	}
	got, err := r.GetService(ctx, "greeter")
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].Version != "v1" || got[1].Version != "v2" {
		t.Fatalf("versions = %+v, want v1 then v2", got)
	}
	if ids := nodeIDs(got[1]); !reflect.DeepEqual(ids, []string{"a", "b"}) {
		t.Fatalf("v2 nodes = %v, want [a b]", ids)
	}
	if addr := got[1].Nodes[1].Address; addr != "127.0.0.1:22" {
		t.Fatalf("b's address = %q, want the re-registered one", addr)
	}
}

func TestRegisterRejectsInvalid(t *testing.T) {
	r := memory.NewRegistry()
	for name, s := range map[string]*registry.Service{
		"nil":      nil,
		"no name":  svc("", "v1", nd("a", "x")),
		"no nodes": svc("greeter", "v1"),
		"no ID":    svc("greeter", "v1", nd("", "x")),
	} {
		if err := r.Register(context.Background(), s); err == nil {
			t.Errorf("%s: Register succeeded, want an error", name)
		}
	}
}

func TestDeregister(t *testing.T) {
	ctx := context.Background()
	r := memory.NewRegistry(memory.WithServices(
		svc("greeter", "v1", nd("a", "127.0.0.1:1"), nd("b", "127.0.0.1:2")),
		svc("other", "v1", nd("o", "127.0.0.1:3")),
	))
	if err := r.Deregister(ctx, svc("greeter", "v1", nd("a", ""))); err != nil {
		t.Fatal(err)
	}
	got, err := r.GetService(ctx, "greeter")
	if err != nil {
		t.Fatal(err)
	}
	if ids := nodeIDs(got[0]); !reflect.DeepEqual(ids, []string{"b"}) {
		t.Fatalf("nodes = %v, want [b]", ids)
	}
	if err := r.Deregister(ctx, svc("greeter", "v1", nd("b", ""))); err != nil {
		t.Fatal(err)
	}
	if _, err := r.GetService(ctx, "greeter"); !errors.Is(err, registry.ErrNotFound) {
		t.Fatalf("after removing the last node, err = %v, want ErrNotFound", err)
	}
	// Unknown services and nodes are not an error.
	if err := r.Deregister(ctx, svc("greeter", "v1", nd("b", ""))); err != nil {
		t.Fatal(err)
	}
	list, err := r.ListServices(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 1 || list[0].Name != "other" {
		t.Fatalf("ListServices = %+v, want only other", list)
	}
}

func TestListServicesSorted(t *testing.T) {
	r := memory.NewRegistry(memory.WithServices(
		svc("b", "v1", nd("1", "x")),
		svc("a", "v2", nd("2", "x")),
		svc("a", "v1", nd("3", "x")),
	))
	list, err := r.ListServices(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, s := range list {
		got = append(got, s.Name+"@"+s.Version)
	}
	if want := []string{"a@v1", "a@v2", "b@v1"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("ListServices = %v, want %v", got, want)
	}
}

func TestCanceledContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	r := memory.NewRegistry()
	if err := r.Register(ctx, svc("a", "v1", nd("1", "x"))); !errors.Is(err, context.Canceled) {
		t.Errorf("Register: %v", err)
	}
	if _, err := r.GetService(ctx, "a"); !errors.Is(err, context.Canceled) {
		t.Errorf("GetService: %v", err)
	}
	if _, err := r.Watch(ctx); !errors.Is(err, context.Canceled) {
		t.Errorf("Watch: %v", err)
	}
}

func TestWatchActionsInOrderAndFiltered(t *testing.T) {
	leakcheck.Check(t)
	ctx := context.Background()
	r := memory.NewRegistry()
	all := watch(t, r)
	onlyA := watch(t, r, registry.WithService("a"))

	steps := []struct {
		op   func() error
		want string // action and node IDs of the expected result
	}{
		{func() error { return r.Register(ctx, svc("a", "v1", nd("1", "x"))) }, "create a [1]"},
		{func() error { return r.Register(ctx, svc("b", "v1", nd("2", "x"))) }, "create b [2]"},
		{func() error { return r.Register(ctx, svc("a", "v1", nd("1", "x"))) }, ""}, // refresh: no event
		{func() error { return r.Register(ctx, svc("a", "v1", nd("3", "y"))) }, "update a [3]"},
		{func() error { return r.Register(ctx, svc("a", "v1", nd("1", "moved"))) }, "update a [1]"},
		{func() error {
			s := svc("a", "v1", nd("1", "moved"))
			s.Metadata = map[string]string{"team": "new"}
			return r.Register(ctx, s)
		}, "update a []"},
		{func() error { return r.Deregister(ctx, svc("a", "v1", nd("1", ""), nd("3", ""))) }, "delete a [1 3]"},
		{func() error { return r.Deregister(ctx, svc("b", "v1", nd("2", ""))) }, "delete b [2]"},
	}
	var wantAll, wantA []string
	for _, s := range steps {
		if err := s.op(); err != nil {
			t.Fatal(err)
		}
		if s.want == "" {
			continue
		}
		wantAll = append(wantAll, s.want)
		if serviceOf(s.want) == "a" {
			wantA = append(wantA, s.want)
		}
	}
	for _, c := range []struct {
		w    registry.Watcher
		want []string
	}{{all, wantAll}, {onlyA, wantA}} {
		for _, want := range c.want {
			res := next(t, c.w)
			if got := fmt.Sprintf("%s %s %v", res.Action, res.Service.Name, nodeIDs(res.Service)); got != want {
				t.Fatalf("result = %q, want %q", got, want)
			}
		}
	}
	// Nothing more is queued: a further change is the next result.
	if err := r.Register(ctx, svc("a", "v1", nd("9", "x"))); err != nil {
		t.Fatal(err)
	}
	if res := next(t, onlyA); res.Action != registry.Create || res.Service.Nodes[0].ID != "9" {
		t.Fatalf("result = %+v, want create of node 9", res)
	}
}

// serviceOf returns the service named in a "create a [1]" string.
func serviceOf(want string) string {
	var action, name string
	fmt.Sscan(want, &action, &name)
	return name
}

func TestWatchResultCarriesServiceDescription(t *testing.T) {
	r := memory.NewRegistry()
	w := watch(t, r)
	in := svc("a", "v1", nd("1", "x"))
	if err := r.Register(context.Background(), in); err != nil {
		t.Fatal(err)
	}
	res := next(t, w)
	if !reflect.DeepEqual(res.Service, in) {
		t.Fatalf("result service = %+v, want %+v", res.Service, in)
	}
}

func TestWatchResultsAreCopies(t *testing.T) {
	ctx := context.Background()
	r := memory.NewRegistry()
	w1, w2 := watch(t, r), watch(t, r)
	if err := r.Register(ctx, svc("a", "v1", nd("1", "x"))); err != nil {
		t.Fatal(err)
	}
	res1 := next(t, w1)
	res1.Service.Nodes[0].Address = "changed"
	res1.Service.Metadata["team"] = "changed"
	if res2 := next(t, w2); res2.Service.Nodes[0].Address != "x" || res2.Service.Metadata["team"] != "core" {
		t.Fatalf("one watcher's change reached another: %+v", res2.Service)
	}
	got, err := r.GetService(ctx, "a")
	if err != nil {
		t.Fatal(err)
	}
	if got[0].Nodes[0].Address != "x" {
		t.Fatal("a watcher's change reached the registry")
	}
}

func TestWatchNeverDrops(t *testing.T) {
	leakcheck.Check(t)
	ctx := context.Background()
	r := memory.NewRegistry()
	w := watch(t, r)
	const n = 10000
	for i := range n {
		if err := r.Register(ctx, svc("a", "v1", nd("1", fmt.Sprint(i)))); err != nil {
			t.Fatal(err)
		}
	}
	for i := range n {
		res := next(t, w)
		if got, want := res.Service.Nodes[0].Address, fmt.Sprint(i); got != want {
			t.Fatalf("result %d has address %s, want %s", i, got, want)
		}
	}
}

func TestWatcherStopUnblocksNext(t *testing.T) {
	leakcheck.Check(t)
	r := memory.NewRegistry()

	ctx, cancel := context.WithCancel(context.Background())
	byCtx, err := r.Watch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	byStop, err := r.Watch(context.Background())
	if err != nil {
		t.Fatal(err)
	}

	errs := make(chan error, 2)
	for _, w := range []registry.Watcher{byCtx, byStop} {
		go func() {
			_, err := w.Next()
			errs <- err
		}()
	}
	time.Sleep(10 * time.Millisecond) // let both block in Next
	cancel()
	byStop.Stop()
	byStop.Stop() // idempotent
	for range 2 {
		select {
		case err := <-errs:
			if !errors.Is(err, registry.ErrWatcherStopped) {
				t.Fatalf("Next = %v, want ErrWatcherStopped", err)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("Next did not return after the watch ended")
		}
	}
	// A stopped watcher keeps returning ErrWatcherStopped, even with
	// changes happening.
	if err := r.Register(context.Background(), svc("a", "v1", nd("1", "x"))); err != nil {
		t.Fatal(err)
	}
	if _, err := byStop.Next(); !errors.Is(err, registry.ErrWatcherStopped) {
		t.Fatalf("Next after Stop = %v", err)
	}
}

func TestTTLExpiry(t *testing.T) {
	leakcheck.Check(t)
	ctx := context.Background()
	r := memory.NewRegistry()
	w := watch(t, r, registry.WithService("a"))
	if err := r.Register(ctx, svc("a", "v1", nd("short", "x"), nd("short2", "y")), registry.WithTTL(50*time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	if err := r.Register(ctx, svc("a", "v1", nd("forever", "z"))); err != nil {
		t.Fatal(err)
	}
	if res := next(t, w); res.Action != registry.Create {
		t.Fatalf("first result = %s, want create", res.Action)
	}
	if res := next(t, w); res.Action != registry.Update {
		t.Fatalf("second result = %s, want update", res.Action)
	}
	start := time.Now()
	res := next(t, w)
	if res.Action != registry.Delete || !reflect.DeepEqual(nodeIDs(res.Service), []string{"short", "short2"}) {
		t.Fatalf("result = %s %v, want delete [short short2]", res.Action, nodeIDs(res.Service))
	}
	if waited := time.Since(start); waited > 2*time.Second {
		t.Fatalf("expiry took %v", waited)
	}
	got, err := r.GetService(ctx, "a")
	if err != nil {
		t.Fatal(err)
	}
	if ids := nodeIDs(got[0]); !reflect.DeepEqual(ids, []string{"forever"}) {
		t.Fatalf("nodes = %v, want [forever]", ids)
	}
}

func TestTTLRefreshKeepsNode(t *testing.T) {
	leakcheck.Check(t)
	ctx := context.Background()
	r := memory.NewRegistry()
	w := watch(t, r)
	s := svc("a", "v1", nd("1", "x"))
	ttl := registry.WithTTL(300 * time.Millisecond)
	for end := time.Now().Add(500 * time.Millisecond); time.Now().Before(end); time.Sleep(20 * time.Millisecond) {
		if err := r.Register(ctx, s, ttl); err != nil {
			t.Fatal(err)
		}
		if _, err := r.GetService(ctx, "a"); err != nil {
			t.Fatalf("refreshed node vanished: %v", err)
		}
	}
	// Refreshes produce no events: the next one is the expiry.
	if res := next(t, w); res.Action != registry.Create {
		t.Fatalf("result = %s, want create", res.Action)
	}
	if res := next(t, w); res.Action != registry.Delete {
		t.Fatalf("result = %s, want delete", res.Action)
	}
	if _, err := r.GetService(ctx, "a"); !errors.Is(err, registry.ErrNotFound) {
		t.Fatalf("after expiry err = %v, want ErrNotFound", err)
	}
}

func TestConcurrentUse(t *testing.T) {
	leakcheck.Check(t)
	ctx := context.Background()
	r := memory.NewRegistry()
	w := watch(t, r)
	var wg sync.WaitGroup
	var events sync.WaitGroup
	events.Add(1)
	go func() {
		defer events.Done()
		for {
			if _, err := w.Next(); err != nil {
				return
			}
		}
	}()
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 200 {
				s := svc(fmt.Sprint("svc", g%3), "v1", nd(fmt.Sprint(g, "-", i%5), "x"))
				var opts []registry.RegisterOption
				if i%2 == 0 {
					opts = append(opts, registry.WithTTL(time.Millisecond))
				}
				if err := r.Register(ctx, s, opts...); err != nil {
					t.Error(err)
					return
				}
				if got, err := r.GetService(ctx, s.Name); err == nil {
					got[0].Nodes = nil // copies are ours to change
				}
				if _, err := r.ListServices(ctx); err != nil {
					t.Error(err)
				}
				if i%3 == 0 {
					if err := r.Deregister(ctx, s); err != nil {
						t.Error(err)
					}
				}
			}
		}()
	}
	wg.Wait()
	w.Stop()
	events.Wait()
}
