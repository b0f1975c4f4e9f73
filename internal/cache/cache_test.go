package cache

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/protoc-gen-micro/micro/internal/leakcheck"
	"github.com/protoc-gen-micro/micro/runtime/registry"
	"github.com/protoc-gen-micro/micro/runtime/registry/memory"
)

func svc(version string, addrs ...string) *registry.Service {
	s := &registry.Service{Name: "greeter", Version: version}
	for _, a := range addrs {
		s.Nodes = append(s.Nodes, &registry.Node{ID: "id-" + a, Address: a})
	}
	return s
}

// addrs returns the addresses of the service's nodes in the cache now.
func addrs(t *testing.T, c *Cache) string {
	t.Helper()
	snap, err := c.Get(context.Background(), "greeter")
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, n := range snap.Nodes {
		out = append(out, n.Address)
	}
	return strings.Join(out, " ")
}

// waitUntil yields until cond holds; the deadline only fails a cond that
// never does.
func waitUntil(t *testing.T, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); runtime.Gosched() {
		if time.Now().After(deadline) {
			t.Fatal("condition never met")
		}
	}
}

// inLoad counts the goroutines inside Cache.load: a Get's first lookup of
// a service, or waiting for another Get's.
func inLoad() int {
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	return strings.Count(string(buf), "/cache.(*Cache).load(")
}

// counting counts GetService calls, can hold them until released and can
// fail them.
type counting struct {
	registry.Registry
	lookups atomic.Int32
	hold    chan struct{}
	fail    atomic.Bool
}

func (c *counting) GetService(ctx context.Context, name string) ([]*registry.Service, error) {
	c.lookups.Add(1)
	if c.hold != nil {
		<-c.hold
	}
	if c.fail.Load() {
		return nil, errors.New("registry down")
	}
	return c.Registry.GetService(ctx, name)
}

// After one lookup, Get answers from memory; the watch applies creates,
// updates and deletes, of every version, to a service cached before it
// existed too. Snapshots are sorted, replaced whole on a change and never
// modified.
func TestGetFollowsRegistry(t *testing.T) {
	leakcheck.Check(t)
	ctx := context.Background()
	mem := memory.NewRegistry()
	reg := &counting{Registry: mem}
	c := New(reg)
	defer c.Close()

	empty, err := c.Get(ctx, "greeter")
	if err != nil || len(empty.Nodes) != 0 || empty.Service != "greeter" {
		t.Fatalf("Get of an unknown service = %+v, %v; want an empty snapshot", empty, err)
	}
	mem.Register(ctx, svc("v2", "c:1"), 0)
	mem.Register(ctx, svc("v1", "b:1", "a:1", ""), 0) // a node without an address is not callable
	waitUntil(t, func() bool { return addrs(t, c) == "a:1 b:1 c:1" })
	first, _ := c.Get(ctx, "greeter")
	again, _ := c.Get(ctx, "greeter")
	if first != again {
		t.Error("Get without a change returned a new snapshot")
	}
	mem.Register(ctx, &registry.Service{Name: "greeter", Version: "v1", Nodes: []*registry.Node{{ID: "id-a:1", Address: "a:2"}}}, 0)
	waitUntil(t, func() bool { return addrs(t, c) == "a:2 b:1 c:1" })
	if got := strings.Join([]string{first.Nodes[0].Address, first.Nodes[1].Address, first.Nodes[2].Address}, " "); got != "a:1 b:1 c:1" {
		t.Errorf("an earlier snapshot changed to %s", got)
	}
	mem.Deregister(ctx, svc("v2", "c:1"))
	waitUntil(t, func() bool { return addrs(t, c) == "a:2 b:1" })
	if n := reg.lookups.Load(); n != 1 {
		t.Errorf("%d registry lookups, want 1", n)
	}
	if c.Current("greeter") == nil || c.Current("other") != nil {
		t.Error("Current does not report what the cache holds")
	}
	if c.Current("other") != nil || reg.lookups.Load() != 1 {
		t.Error("Current looked a service up")
	}
}

// Concurrent first Gets share one lookup; a failed one is not cached.
func TestLookupSharedAndFailureNotCached(t *testing.T) {
	leakcheck.Check(t)
	ctx := context.Background()
	reg := &counting{Registry: memory.NewRegistry(memory.WithServices(svc("v1", "a:1"))), hold: make(chan struct{})}
	c := New(reg)
	defer c.Close()
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if snap, err := c.Get(ctx, "greeter"); err != nil || len(snap.Nodes) != 1 {
				t.Errorf("Get = %v, %v", snap, err)
			}
		}()
	}
	// Every Get is inside load while the first lookup is held: the other
	// seven wait for it (or, wrongly, look the service up themselves).
	waitUntil(t, func() bool { return reg.lookups.Load() > 1 || reg.lookups.Load() == 1 && inLoad() == 8 })
	close(reg.hold)
	wg.Wait()
	if n := reg.lookups.Load(); n != 1 {
		t.Fatalf("%d lookups for 8 concurrent first Gets", n)
	}

	reg.fail.Store(true)
	_, err := c.Get(ctx, "other")
	if err == nil || !strings.Contains(err.Error(), `service "other"`) || !strings.Contains(err.Error(), "registry down") {
		t.Fatalf("failed lookup: %v, want an error naming the service and the registry's error", err)
	}
	reg.fail.Store(false)
	if _, err := c.Get(ctx, "other"); err != nil {
		t.Fatalf("after a failed lookup: %v", err)
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := c.Get(cctx, "third"); !errors.Is(err, context.Canceled) {
		t.Fatalf("Get with a cancelled context: %v", err)
	}
}

// A node that leaves while the first lookup is held, after the registry
// answered, is not resurrected by the stale answer.
func TestChangeDuringLookup(t *testing.T) {
	leakcheck.Check(t)
	ctx := context.Background()
	mem := memory.NewRegistry(memory.WithServices(svc("v1", "a:1", "b:1")))
	reg := &stale{Registry: mem, answered: make(chan struct{}), release: make(chan struct{})}
	c := New(reg)
	defer c.Close()
	done := make(chan error, 1)
	go func() { _, err := c.Get(ctx, "greeter"); done <- err }()
	<-reg.answered
	mem.Deregister(ctx, svc("v1", "b:1"))
	// The watch sees the change while the lookup is held.
	e, _ := c.services.Load("greeter")
	waitUntil(t, func() bool {
		e.mu.Lock()
		defer e.mu.Unlock()
		return len(e.pending) > 0
	})
	close(reg.release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if got := addrs(t, c); got != "a:1" {
		t.Fatalf("nodes %q after b:1 left during the lookup", got)
	}
}

type stale struct {
	registry.Registry
	answered chan struct{}
	release  chan struct{}
	once     sync.Once
}

func (r *stale) GetService(ctx context.Context, name string) ([]*registry.Service, error) {
	out, err := r.Registry.GetService(ctx, name)
	r.once.Do(func() { close(r.answered); <-r.release })
	return out, err
}

func TestClose(t *testing.T) {
	leakcheck.Check(t)
	c := New(memory.NewRegistry(memory.WithServices(svc("v1", "a:1"))))
	if _, err := c.Get(context.Background(), "greeter"); err != nil {
		t.Fatal(err)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if err := c.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, err := c.Get(context.Background(), "greeter"); !errors.Is(err, ErrClosed) {
		t.Fatalf("Get after Close: %v, want ErrClosed", err)
	}
	if c.Current("greeter") != nil {
		t.Fatal("Current after Close returned a snapshot nothing keeps current")
	}
	New(memory.NewRegistry()).Close() // never used: nothing to stop
}

// Many services, one watch.
func TestOneWatch(t *testing.T) {
	leakcheck.Check(t)
	reg := &flaky{Registry: memory.NewRegistry()}
	c := New(reg)
	defer c.Close()
	for i := range 20 {
		if _, err := c.Get(context.Background(), fmt.Sprint("svc", i)); err != nil {
			t.Fatal(err)
		}
	}
	if n := reg.watches.Load(); n != 1 {
		t.Fatalf("%d watches for 20 services", n)
	}
}

// The snapshot's order is by address, then ID, then version, whatever
// order the registry keeps.
func TestSnapshotOrder(t *testing.T) {
	mem := memory.NewRegistry()
	ctx := context.Background()
	mem.Register(ctx, &registry.Service{Name: "greeter", Version: "v2", Nodes: []*registry.Node{{ID: "x", Address: "b:1"}, {ID: "a", Address: "b:1"}}}, 0)
	mem.Register(ctx, &registry.Service{Name: "greeter", Version: "v1", Nodes: []*registry.Node{{ID: "x", Address: "b:1"}, {ID: "z", Address: "a:1"}}}, 0)
	c := New(mem)
	defer c.Close()
	snap, err := c.Get(ctx, "greeter")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, n := range snap.Nodes {
		got = append(got, n.Address+"/"+n.ID)
	}
	if want := []string{"a:1/z", "b:1/a", "b:1/x", "b:1/x"}; !slices.Equal(got, want) {
		t.Fatalf("order %v, want %v", got, want)
	}
}

// flaky refuses the first refuse watches, and its watches break after
// delivering breakAfter results (never when 0).
type flaky struct {
	registry.Registry
	refuse     atomic.Int32
	breakAfter int
	watches    atomic.Int32
}

func (f *flaky) Watch(ctx context.Context, service string) (registry.Watcher, error) {
	f.watches.Add(1)
	if f.refuse.Add(-1) >= 0 {
		return nil, errors.New("watch refused")
	}
	w, err := f.Registry.Watch(ctx, service)
	if err != nil || f.breakAfter == 0 {
		return w, err
	}
	return &breaking{Watcher: w, left: f.breakAfter}, nil
}

type breaking struct {
	registry.Watcher
	left int
}

func (b *breaking) Next() (*registry.Result, error) {
	if b.left == 0 {
		return nil, errors.New("watch broken")
	}
	b.left--
	return b.Watcher.Next()
}

// TestWatchFailure: while the registry refuses to watch, or its watches
// break, the cache is refreshed from the registry and the watch retried.
func TestWatchFailure(t *testing.T) {
	for _, tc := range []struct {
		name       string
		refuse     int32
		breakAfter int
	}{
		{"refused", 1 << 30, 0},
		{"refused a while", 5, 0},
		{"broken", 0, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			leakcheck.Check(t)
			ctx := context.Background()
			mem := memory.NewRegistry(memory.WithServices(svc("1", "a:1")))
			reg := &flaky{Registry: mem, breakAfter: tc.breakAfter}
			reg.refuse.Store(tc.refuse)
			c := New(reg)
			defer c.Close()
			c.minRefresh, c.maxRefresh = 2*time.Millisecond, 10*time.Millisecond
			sees := func(addr string) func() bool {
				return func() bool { return addrs(t, c) == addr }
			}
			waitUntil(t, sees("a:1"))
			for _, addr := range []string{"b:1", "c:1", "d:1"} {
				mem.Register(ctx, svc("1", addr), 0)
				mem.Deregister(ctx, svc("1", "a:1"))
				waitUntil(t, sees(addr))
				mem.Deregister(ctx, svc("1", addr))
				mem.Register(ctx, svc("1", "a:1"), 0)
				waitUntil(t, sees("a:1"))
			}
			if n := reg.watches.Load(); n < 2 {
				t.Fatalf("%d watches: never retried", n)
			}
		})
	}
}

// TestShared: the users of one registry share one cache, which closes when
// the last of them closes it; another registry gets its own.
func TestShared(t *testing.T) {
	ctx := context.Background()
	reg, other := memory.NewRegistry(), memory.NewRegistry()
	a, b := Shared(reg), Shared(reg)
	if a != b {
		t.Fatal("two users of one registry got two caches")
	}
	c := Shared(other)
	defer c.Close()
	if c == a {
		t.Fatal("two registries share a cache")
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Get(ctx, "svc"); err != nil {
		t.Fatalf("the cache closed while a user still holds it: %v", err)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Get(ctx, "svc"); !errors.Is(err, ErrClosed) {
		t.Fatalf("Get after the last Close: %v, want ErrClosed", err)
	}
	d := Shared(reg)
	defer d.Close()
	if d == a {
		t.Fatal("a closed cache was handed out again")
	}
	if _, err := d.Get(ctx, "svc"); err != nil {
		t.Fatalf("a fresh shared cache: %v", err)
	}
}
