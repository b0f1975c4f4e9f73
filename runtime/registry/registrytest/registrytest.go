// Package registrytest is the behaviour every registry.Registry must show,
// as a suite of tests that any implementation runs with Run.
//
// It checks what package registry documents: registering, looking up,
// listing and deregistering services of several nodes and versions;
// metadata and endpoints that come back as registered; re-registering a
// node to change it; watches that report creates, updates and deletes of
// the service they filter on, and stop with ErrWatcherStopped; contexts
// that end calls; invalid services refused; concurrent use; many services
// of several nodes; large metadata kept intact or refused whole; and Close,
// which ends every watch and makes every later call fail. What only
// some registries do (TTL expiry, refusing nodes without an address) is
// checked when Run is told so with an Option.
//
// A registry shared between processes (mDNS, etcd) runs the suite against
// one registry per test: every test uses service names and node IDs of its
// own, so nodes other registries announce do not disturb it.
//
// Watch is the one helper it shares with the tests of an implementation.
//
// registrytest is test support: it is imported only by tests.
package registrytest

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/protoc-gen-micro/micro/runtime/registry"
)

// NewRegistry returns a registry for one test. Run closes it when the test
// ends.
type NewRegistry func(t *testing.T) registry.Registry

// Option tells Run what the registry under test does beyond the contract
// every registry keeps.
type Option func(*options)

type options struct {
	ttl         time.Duration
	needAddress bool
}

// TTL says the registry honours the ttl given to Register: a node not
// refreshed within it disappears, and watchers see a Delete. d is the ttl
// the suite registers with, the shortest the registry keeps to (it waits
// for the expiry, so keep it short).
func TTL(d time.Duration) Option { return func(o *options) { o.ttl = d } }

// RequiresAddress says the registry refuses a node without a host:port
// address.
func RequiresAddress() Option { return func(o *options) { o.needAddress = true } }

// Run runs the suite against the registries newRegistry makes, one per
// test. The tests run one after the other.
func Run(t *testing.T, newRegistry NewRegistry, opts ...Option) {
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	tests := []struct {
		name string
		fn   func(t *testing.T, r registry.Registry, o options)
	}{
		{"RegisterGetService", testRegisterGetService},
		{"ReturnsCopies", testReturnsCopies},
		{"NotFound", testNotFound},
		{"Versions", testVersions},
		{"ReRegisterUpdatesNode", testReRegisterUpdatesNode},
		{"DeregisterOneNode", testDeregisterOneNode},
		{"Watch", testWatch},
		{"WatchCarriesDescription", testWatchCarriesDescription},
		{"WatchStop", testWatchStop},
		{"ContextCanceled", testContextCanceled},
		{"TTL", testTTL},
		{"Invalid", testInvalid},
		{"Concurrent", testConcurrent},
		{"ManyServices", testManyServices},
		{"LargeMetadata", testLargeMetadata},
		{"Close", testClose},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := newRegistry(t)
			t.Cleanup(func() { r.Close() })
			tc.fn(t, r, o)
		})
	}
}

var seq atomic.Int64

// prefix returns a prefix of service names and node IDs that no other test
// uses, in this process or another that runs the suite at the same time.
func prefix(t *testing.T) string {
	name := strings.NewReplacer("/", "-", "_", "-").Replace(strings.ToLower(t.Name()))
	return fmt.Sprintf("%s-%d-%d", name, time.Now().UnixNano()%1e6, seq.Add(1))
}

// service returns a service of name and version with metadata, an
// endpoint and the nodes.
func service(name, version string, nodes ...*registry.Node) *registry.Service {
	return &registry.Service{
		Name:      name,
		Version:   version,
		Metadata:  map[string]string{"team": "core"},
		Endpoints: []*registry.Endpoint{{Name: "/" + name + ".v1.Svc/Call", Metadata: map[string]string{"stream": "unary"}}},
		Nodes:     nodes,
	}
}

// node returns a node listening on 127.0.0.1:port.
func node(id string, port int) *registry.Node {
	return &registry.Node{ID: id, Address: fmt.Sprintf("127.0.0.1:%d", port), Metadata: map[string]string{"protocol": "grpc"}}
}

// ref names nodes to deregister by ID.
func ref(name, version string, ids ...string) *registry.Service {
	s := &registry.Service{Name: name, Version: version}
	for _, id := range ids {
		s.Nodes = append(s.Nodes, &registry.Node{ID: id})
	}
	return s
}

// register registers s with ttl 0: until deregistered.
func register(t *testing.T, r registry.Registry, s *registry.Service) {
	t.Helper()
	registerTTL(t, r, s, 0)
}

func registerTTL(t *testing.T, r registry.Registry, s *registry.Service, ttl time.Duration) {
	t.Helper()
	if err := r.Register(context.Background(), s, ttl); err != nil {
		t.Fatalf("Register %s %s: %v", s.Name, s.Version, err)
	}
}

func deregister(t *testing.T, r registry.Registry, s *registry.Service) {
	t.Helper()
	if err := r.Deregister(context.Background(), s); err != nil {
		t.Fatalf("Deregister %s %s: %v", s.Name, s.Version, err)
	}
}

func get(t *testing.T, r registry.Registry, name string) []*registry.Service {
	t.Helper()
	got, err := r.GetService(context.Background(), name)
	if err != nil {
		t.Fatalf("GetService(%q): %v", name, err)
	}
	return sorted(got)
}

// sorted orders services by version and their nodes by ID, in place: the
// contract does not fix an order.
func sorted(ss []*registry.Service) []*registry.Service {
	slices.SortFunc(ss, func(a, b *registry.Service) int {
		return cmp.Or(cmp.Compare(a.Name, b.Name), cmp.Compare(a.Version, b.Version))
	})
	for _, s := range ss {
		slices.SortFunc(s.Nodes, func(a, b *registry.Node) int { return cmp.Compare(a.ID, b.ID) })
	}
	return ss
}

// ours returns the services of ss whose name starts with p.
func ours(ss []*registry.Service, p string) []*registry.Service {
	var out []*registry.Service
	for _, s := range ss {
		if strings.HasPrefix(s.Name, p) {
			out = append(out, s)
		}
	}
	return sorted(out)
}

func ids(s *registry.Service) []string {
	out := []string{}
	for _, n := range s.Nodes {
		out = append(out, n.ID)
	}
	slices.Sort(out)
	return out
}

func dump(ss ...*registry.Service) string {
	var b strings.Builder
	for _, s := range ss {
		fmt.Fprintf(&b, "\n  %s %s md=%v eps=", s.Name, s.Version, s.Metadata)
		for _, e := range s.Endpoints {
			fmt.Fprintf(&b, "%s%v ", e.Name, e.Metadata)
		}
		for _, n := range s.Nodes {
			fmt.Fprintf(&b, "\n    %s %s %v", n.ID, n.Address, n.Metadata)
		}
	}
	return b.String()
}

// Watch starts a watch of the named service on r (of every service when
// service is "") that t stops when it ends, and that ends by itself after
// 20 seconds, so that a test waiting on Next for a result that never comes
// fails with ErrWatcherStopped instead of hanging.
func Watch(t testing.TB, r registry.Registry, service string) registry.Watcher {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	w, err := r.Watch(ctx, service)
	if err != nil {
		t.Fatalf("Watch: %v", err)
	}
	t.Cleanup(w.Stop)
	return w
}

// expect reads results from w, skipping those of services whose name does
// not start with p, and checks that the next one is action a of service
// name with exactly the nodes ids.
func expect(t *testing.T, w registry.Watcher, p string, a registry.Action, name string, ids ...string) *registry.Result {
	t.Helper()
	for {
		res, err := w.Next()
		if err != nil {
			t.Fatalf("Next: %v; want %s %s %v", err, a, name, ids)
		}
		if !strings.HasPrefix(res.Service.Name, p) {
			continue
		}
		var got []string
		for _, n := range res.Service.Nodes {
			got = append(got, n.ID)
		}
		slices.Sort(got)
		if res.Action != a || res.Service.Name != name || !slices.Equal(got, ids) {
			t.Fatalf("Next = %s %s %v; want %s %s %v", res.Action, res.Service.Name, got, a, name, ids)
		}
		return res
	}
}

func testRegisterGetService(t *testing.T, r registry.Registry, o options) {
	p := prefix(t)
	name := p + "-svc"
	in := service(name, "v1", node(p+"-a", 8001), node(p+"-b", 8002), node(p+"-c", 8003))
	in.Nodes[1].Metadata["zone"] = "eu"
	in.Endpoints = append(in.Endpoints, &registry.Endpoint{Name: "/" + name + ".v1.Svc/Stream", Metadata: map[string]string{"stream": "bidi"}})
	in.Metadata["owner"] = "payments"
	register(t, r, in)

	got := get(t, r, name)
	if want := sorted([]*registry.Service{in.Clone()}); !reflect.DeepEqual(got, want) {
		t.Fatalf("GetService = %s\nwant %s", dump(got...), dump(want...))
	}
	list, err := r.ListServices(context.Background())
	if err != nil {
		t.Fatalf("ListServices: %v", err)
	}
	if list = ours(list, p); len(list) != 1 || list[0].Name != name || list[0].Version != "v1" {
		t.Fatalf("ListServices = %s, want %s v1", dump(list...), name)
	}
}

func testReturnsCopies(t *testing.T, r registry.Registry, o options) {
	p := prefix(t)
	name := p + "-svc"
	in := service(name, "v1", node(p+"-a", 8001))
	register(t, r, in)
	want := in.Clone()
	// Neither the caller's value nor a returned one may reach the registry.
	in.Nodes[0].Address = "127.0.0.1:1"
	in.Nodes[0].Metadata["protocol"] = "changed"
	in.Metadata["team"] = "changed"
	in.Endpoints[0].Metadata["stream"] = "changed"
	got := get(t, r, name)
	if !reflect.DeepEqual(got, []*registry.Service{want}) {
		t.Fatalf("after changing the registered value, GetService = %s\nwant %s", dump(got...), dump(want))
	}
	got[0].Nodes[0].Address = "127.0.0.1:1"
	got[0].Nodes[0].Metadata["protocol"] = "changed"
	got[0].Metadata["team"] = "changed"
	got[0].Endpoints[0].Metadata["stream"] = "changed"
	if again := get(t, r, name); !reflect.DeepEqual(again, []*registry.Service{want}) {
		t.Fatalf("after changing a result, GetService = %s\nwant %s", dump(again...), dump(want))
	}
}

func testNotFound(t *testing.T, r registry.Registry, o options) {
	p := prefix(t)
	if got, err := r.GetService(context.Background(), p+"-missing"); !errors.Is(err, registry.ErrNotFound) {
		t.Fatalf("GetService of an unknown service = %s, %v; want ErrNotFound", dump(got...), err)
	}
	// Gone again once its last node is deregistered.
	name := p + "-svc"
	register(t, r, service(name, "v1", node(p+"-a", 8001)))
	get(t, r, name)
	deregister(t, r, ref(name, "v1", p+"-a"))
	if got, err := r.GetService(context.Background(), name); !errors.Is(err, registry.ErrNotFound) {
		t.Fatalf("GetService after the last node left = %s, %v; want ErrNotFound", dump(got...), err)
	}
	list, err := r.ListServices(context.Background())
	if err != nil {
		t.Fatalf("ListServices: %v", err)
	}
	if list = ours(list, p); len(list) != 0 {
		t.Fatalf("ListServices after the last node left = %s", dump(list...))
	}
}

func testVersions(t *testing.T, r registry.Registry, o options) {
	p := prefix(t)
	name := p + "-svc"
	v1 := service(name, "v1", node(p+"-a", 8001), node(p+"-b", 8002))
	v2 := service(name, "v2", node(p+"-c", 8003))
	v2.Metadata["team"] = "next"
	other := service(p+"-other", "v1", node(p+"-o", 8004))
	register(t, r, v1)
	register(t, r, v2)
	register(t, r, other)

	got := get(t, r, name)
	if want := sorted([]*registry.Service{v1.Clone(), v2.Clone()}); !reflect.DeepEqual(got, want) {
		t.Fatalf("GetService = %s\nwant %s", dump(got...), dump(want...))
	}
	list, err := r.ListServices(context.Background())
	if err != nil {
		t.Fatalf("ListServices: %v", err)
	}
	var names []string
	for _, s := range ours(list, p) {
		names = append(names, s.Name+"@"+s.Version)
	}
	if want := []string{p + "-other@v1", name + "@v1", name + "@v2"}; !slices.Equal(names, want) {
		t.Fatalf("ListServices = %v, want %v", names, want)
	}
	// Deregistering one version leaves the other.
	deregister(t, r, ref(name, "v1", p+"-a", p+"-b"))
	if got := get(t, r, name); len(got) != 1 || got[0].Version != "v2" {
		t.Fatalf("after deregistering v1, GetService = %s", dump(got...))
	}
}

func testReRegisterUpdatesNode(t *testing.T, r registry.Registry, o options) {
	p := prefix(t)
	name := p + "-svc"
	register(t, r, service(name, "v1", node(p+"-a", 8001), node(p+"-b", 8002)))
	changed := service(name, "v1", node(p+"-a", 9001))
	changed.Nodes[0].Metadata["weight"] = "5"
	changed.Metadata["team"] = "new"
	register(t, r, changed)

	got := get(t, r, name)
	if len(got) != 1 || !slices.Equal(ids(got[0]), []string{p + "-a", p + "-b"}) {
		t.Fatalf("GetService = %s, want nodes a and b once each", dump(got...))
	}
	if a := got[0].Nodes[0]; a.Address != "127.0.0.1:9001" || a.Metadata["weight"] != "5" {
		t.Fatalf("re-registered node = %+v, want the new address and metadata", a)
	}
	if b := got[0].Nodes[1]; b.Address != "127.0.0.1:8002" {
		t.Fatalf("the other node = %+v, want it unchanged", b)
	}
	if got[0].Metadata["team"] != "new" {
		t.Fatalf("service metadata = %v, want the re-registered one", got[0].Metadata)
	}
}

func testDeregisterOneNode(t *testing.T, r registry.Registry, o options) {
	p := prefix(t)
	name := p + "-svc"
	register(t, r, service(name, "v1", node(p+"-a", 8001), node(p+"-b", 8002), node(p+"-c", 8003)))
	register(t, r, service(p+"-other", "v1", node(p+"-o", 8004)))
	deregister(t, r, ref(name, "v1", p+"-b"))
	if got := get(t, r, name); len(got) != 1 || !slices.Equal(ids(got[0]), []string{p + "-a", p + "-c"}) {
		t.Fatalf("after deregistering b, GetService = %s", dump(got...))
	}
	// Unknown nodes, versions and services are not an error.
	deregister(t, r, ref(name, "v1", p+"-b"))
	deregister(t, r, ref(name, "v9", p+"-a"))
	deregister(t, r, ref(p+"-never", "v1", p+"-a"))
	if got := get(t, r, name); len(got) != 1 || !slices.Equal(ids(got[0]), []string{p + "-a", p + "-c"}) {
		t.Fatalf("after deregistering unknown nodes, GetService = %s", dump(got...))
	}
	if got := get(t, r, p+"-other"); len(got) != 1 || !slices.Equal(ids(got[0]), []string{p + "-o"}) {
		t.Fatalf("another service changed: %s", dump(got...))
	}
}

// testWatch checks the sequence of results: a refresh that changes
// nothing, and changes of another service, give none to a filtered
// watcher, so each expected result is the next one.
func testWatch(t *testing.T, r registry.Registry, o options) {
	p := prefix(t)
	name, other := p+"-svc", p+"-other"
	filtered := Watch(t, r, name)
	all := Watch(t, r, "")
	a := node(p+"-a", 8001)

	register(t, r, service(other, "v1", node(p+"-o", 8009)))
	register(t, r, service(name, "v1", a))
	register(t, r, service(name, "v1", a)) // a refresh: no result
	moved := node(p+"-a", 8101)
	register(t, r, service(name, "v1", moved))
	register(t, r, service(name, "v1", node(p+"-b", 8002)))
	deregister(t, r, ref(other, "v1", p+"-o"))
	deregister(t, r, ref(name, "v1", p+"-a"))
	deregister(t, r, ref(name, "v1", p+"-b"))

	expect(t, all, p, registry.Create, other, p+"-o")
	for _, w := range []registry.Watcher{filtered, all} {
		expect(t, w, p, registry.Create, name, p+"-a")
		res := expect(t, w, p, registry.Update, name, p+"-a")
		if addr := res.Service.Nodes[0].Address; addr != moved.Address {
			t.Errorf("Update carries address %s, want %s", addr, moved.Address)
		}
		expect(t, w, p, registry.Update, name, p+"-b")
		if w == all {
			expect(t, w, p, registry.Delete, other, p+"-o")
		}
		expect(t, w, p, registry.Delete, name, p+"-a")
		expect(t, w, p, registry.Delete, name, p+"-b")
	}
	// Nothing else is queued: the next change is the next result.
	register(t, r, service(name, "v2", node(p+"-c", 8003)))
	expect(t, filtered, p, registry.Create, name, p+"-c")
}

func testWatchCarriesDescription(t *testing.T, r registry.Registry, o options) {
	p := prefix(t)
	name := p + "-svc"
	w := Watch(t, r, name)
	in := service(name, "v3", node(p+"-a", 8001))
	in.Nodes[0].Metadata["zone"] = "eu"
	register(t, r, in)
	res := expect(t, w, p, registry.Create, name, p+"-a")
	if !reflect.DeepEqual(res.Service, in) {
		t.Fatalf("Create carries %s\nwant %s", dump(res.Service), dump(in))
	}
}

func testWatchStop(t *testing.T, r registry.Registry, o options) {
	p := prefix(t)
	byStop, err := r.Watch(context.Background(), "")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	byCtx, err := r.Watch(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	defer byCtx.Stop()

	// Next may be blocked or not yet called when the watch ends: either
	// way it returns ErrWatcherStopped, once any queued results are read.
	errs := make(chan error, 2)
	for _, w := range []registry.Watcher{byStop, byCtx} {
		go func() {
			for {
				if _, err := w.Next(); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	byStop.Stop()
	byStop.Stop() // idempotent
	cancel()
	timeout := time.After(10 * time.Second)
	for range 2 {
		select {
		case err := <-errs:
			if !errors.Is(err, registry.ErrWatcherStopped) {
				t.Fatalf("Next after the watch ended = %v, want ErrWatcherStopped", err)
			}
		case <-timeout:
			t.Fatal("Next did not return after the watch ended")
		}
	}
	// A stopped watcher stays stopped, whatever happens.
	register(t, r, service(p+"-svc", "v1", node(p+"-a", 8001)))
	for _, w := range []registry.Watcher{byStop, byCtx} {
		if res, err := w.Next(); !errors.Is(err, registry.ErrWatcherStopped) {
			t.Fatalf("Next after Stop = %+v, %v; want ErrWatcherStopped", res, err)
		}
	}
}

func testContextCanceled(t *testing.T, r registry.Registry, o options) {
	p := prefix(t)
	name := p + "-svc"
	register(t, r, service(name, "v1", node(p+"-a", 8001)))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := r.Register(ctx, service(name, "v1", node(p+"-b", 8002)), 0); !errors.Is(err, context.Canceled) {
		t.Errorf("Register with a canceled context: %v, want context.Canceled", err)
	}
	if err := r.Deregister(ctx, ref(name, "v1", p+"-a")); !errors.Is(err, context.Canceled) {
		t.Errorf("Deregister with a canceled context: %v, want context.Canceled", err)
	}
	if _, err := r.GetService(ctx, name); !errors.Is(err, context.Canceled) {
		t.Errorf("GetService with a canceled context: %v, want context.Canceled", err)
	}
	if _, err := r.ListServices(ctx); !errors.Is(err, context.Canceled) {
		t.Errorf("ListServices with a canceled context: %v, want context.Canceled", err)
	}
	if w, err := r.Watch(ctx, ""); !errors.Is(err, context.Canceled) {
		t.Errorf("Watch with a canceled context: %v, want context.Canceled", err)
		if w != nil {
			w.Stop()
		}
	}
	// Nothing a canceled call was asked to do happened.
	if got := get(t, r, name); len(got) != 1 || !slices.Equal(ids(got[0]), []string{p + "-a"}) {
		t.Fatalf("after canceled calls, GetService = %s, want node a only", dump(got...))
	}
}

func testTTL(t *testing.T, r registry.Registry, o options) {
	if o.ttl == 0 {
		t.Skip("the registry does not claim to honour Register's ttl (registrytest.TTL)")
	}
	p := prefix(t)
	name := p + "-svc"
	w := Watch(t, r, name)
	registerTTL(t, r, service(name, "v1", node(p+"-short", 8001), node(p+"-short2", 8002)), o.ttl)
	register(t, r, service(name, "v1", node(p+"-forever", 8003)))
	expect(t, w, p, registry.Create, name, p+"-short", p+"-short2")
	expect(t, w, p, registry.Update, name, p+"-forever")
	// The watch's own deadline bounds the wait.
	expect(t, w, p, registry.Delete, name, p+"-short", p+"-short2")
	if got := get(t, r, name); len(got) != 1 || !slices.Equal(ids(got[0]), []string{p + "-forever"}) {
		t.Fatalf("after expiry, GetService = %s, want the node without a TTL only", dump(got...))
	}
}

func testInvalid(t *testing.T, r registry.Registry, o options) {
	p := prefix(t)
	name := p + "-svc"
	ctx := context.Background()
	cases := map[string]*registry.Service{
		"nil service":     nil,
		"no name":         {Version: "v1", Nodes: []*registry.Node{node(p+"-a", 8001)}},
		"no nodes":        {Name: name, Version: "v1"},
		"nil node":        {Name: name, Version: "v1", Nodes: []*registry.Node{nil}},
		"node without ID": {Name: name, Version: "v1", Nodes: []*registry.Node{{Address: "127.0.0.1:8001"}}},
	}
	if o.needAddress {
		cases["node without address"] = &registry.Service{Name: name, Version: "v1", Nodes: []*registry.Node{{ID: p + "-a"}}}
		cases["address without port"] = &registry.Service{Name: name, Version: "v1", Nodes: []*registry.Node{{ID: p + "-a", Address: "127.0.0.1"}}}
	}
	for _, what := range slices.Sorted(maps.Keys(cases)) {
		if err := r.Register(ctx, cases[what], 0); err == nil {
			t.Errorf("Register of a service with %s succeeded, want an error", what)
		}
	}
	if got, err := r.GetService(ctx, name); !errors.Is(err, registry.ErrNotFound) {
		t.Errorf("after refused registrations, GetService = %s, %v; want ErrNotFound", dump(got...), err)
	}
	for what, s := range map[string]*registry.Service{"nil service": nil, "no name": {Nodes: []*registry.Node{{ID: p + "-a"}}}} {
		if err := r.Deregister(ctx, s); err == nil {
			t.Errorf("Deregister of a service with %s succeeded, want an error", what)
		}
	}
}

// testConcurrent registers and deregisters from many goroutines while
// others read and watch; run under -race it finds unguarded state. Each
// node's last result must be its Delete.
func testConcurrent(t *testing.T, r registry.Registry, o options) {
	p := prefix(t)
	const goroutines, perG, services = 8, 10, 3
	ctx := context.Background()
	w := Watch(t, r, "")

	// The watcher reads until every node has been deleted.
	last := map[string]registry.Action{}
	watched := make(chan error, 1)
	go func() {
		deleted := 0
		for deleted < goroutines*perG {
			res, err := w.Next()
			if err != nil {
				watched <- fmt.Errorf("Next after %d deletes: %w", deleted, err)
				return
			}
			if !strings.HasPrefix(res.Service.Name, p) {
				continue
			}
			for _, n := range res.Service.Nodes {
				if res.Action == registry.Delete && last[n.ID] != registry.Delete {
					deleted++
				}
				last[n.ID] = res.Action
			}
		}
		watched <- nil
	}()

	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			name := fmt.Sprintf("%s-svc%d", p, g%services)
			var mine []string
			for i := range perG {
				id := fmt.Sprintf("%s-n%d-%d", p, g, i)
				mine = append(mine, id)
				if err := r.Register(ctx, service(name, "v1", node(id, 8000+g*perG+i)), 0); err != nil {
					t.Error(err)
					return
				}
				if got, err := r.GetService(ctx, name); err != nil {
					t.Errorf("GetService(%q) with a node just registered: %v", name, err)
				} else {
					got[0].Nodes = nil // results are the caller's to change
				}
				if _, err := r.ListServices(ctx); err != nil {
					t.Error(err)
				}
			}
			if err := r.Deregister(ctx, ref(name, "v1", mine...)); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if err := <-watched; err != nil {
		t.Fatal(err)
	}
	if len(last) != goroutines*perG {
		t.Errorf("the watcher saw %d nodes, want %d", len(last), goroutines*perG)
	}
	list, err := r.ListServices(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if list = ours(list, p); len(list) != 0 {
		t.Fatalf("after every node was deregistered, ListServices = %s", dump(list...))
	}
}

// testManyServices registers many services of several nodes each: the
// listing has every one, each lookup returns all its nodes, and after they
// are deregistered nothing of them is left.
func testManyServices(t *testing.T, r registry.Registry, o options) {
	p := prefix(t)
	const services, nodes = 30, 4
	ctx := context.Background()
	want := map[string][]string{}
	for i := range services {
		name := fmt.Sprintf("%s-svc%d", p, i)
		var ns []*registry.Node
		for j := range nodes {
			id := fmt.Sprintf("%s-n%d-%d", p, i, j)
			ns = append(ns, node(id, 9000+i*nodes+j))
			want[name] = append(want[name], id)
		}
		register(t, r, service(name, "v1", ns...))
	}
	list, err := r.ListServices(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if list = ours(list, p); len(list) != services {
		t.Fatalf("ListServices has %d of the %d services registered", len(list), services)
	}
	for name, ids := range want {
		got := get(t, r, name)
		if len(got) != 1 || !slices.Equal(idsOf(got[0]), ids) {
			t.Fatalf("GetService(%q) = %s, want nodes %v", name, dump(got...), ids)
		}
	}
	for name, ids := range want {
		deregister(t, r, ref(name, "v1", ids...))
	}
	if list, err = r.ListServices(ctx); err != nil {
		t.Fatal(err)
	}
	if list = ours(list, p); len(list) != 0 {
		t.Fatalf("after every node was deregistered, ListServices = %s", dump(list...))
	}
}

// idsOf returns the node IDs of s, sorted.
func idsOf(s *registry.Service) []string {
	var out []string
	for _, n := range s.Nodes {
		out = append(out, n.ID)
	}
	slices.Sort(out)
	return out
}

// testLargeMetadata registers a node with about 4 KiB of metadata. A
// registry stores it intact, returned as registered by GetService and by
// a watch, or refuses the registration with an error and keeps nothing of
// it; it never keeps part of it.
func testLargeMetadata(t *testing.T, r registry.Registry, o options) {
	p := prefix(t)
	name := p + "-svc"
	ctx := context.Background()
	w := Watch(t, r, name)
	n := node(p+"-a", 8001)
	for i := range 32 {
		n.Metadata[fmt.Sprintf("key-%02d", i)] = strings.Repeat(string(rune('a'+i%26)), 120)
	}
	in := service(name, "v1", n)
	if err := r.Register(ctx, in, 0); err != nil {
		if got, gerr := r.GetService(ctx, name); !errors.Is(gerr, registry.ErrNotFound) {
			t.Fatalf("Register refused the metadata (%v) but GetService = %s, %v; want ErrNotFound", err, dump(got...), gerr)
		}
		t.Logf("refused, as a registry may: %v", err)
		return
	}
	got := get(t, r, name)
	if len(got) != 1 || len(got[0].Nodes) != 1 || !maps.Equal(got[0].Nodes[0].Metadata, n.Metadata) {
		t.Fatalf("GetService returned %s; want the node's %d metadata entries intact", dump(got...), len(n.Metadata))
	}
	res := expect(t, w, p, registry.Create, name, p+"-a")
	if !maps.Equal(res.Service.Nodes[0].Metadata, n.Metadata) {
		t.Fatalf("the watch's Create carries metadata %v; want it intact", res.Service.Nodes[0].Metadata)
	}
}

// testClose checks that Close ends the watches started before it, whether
// Next is blocked or called later, that every later call fails with
// registry.ErrClosed, and that a second Close returns nil.
func testClose(t *testing.T, r registry.Registry, o options) {
	p := prefix(t)
	name := p + "-svc"
	ctx := context.Background()
	register(t, r, service(name, "v1", node(p+"-a", 8001)))
	// Without a deadline of their own, only Close can end these watches.
	blocked, err := r.Watch(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	defer blocked.Stop()
	later, err := r.Watch(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	defer later.Stop()
	ended := make(chan error, 1)
	go func() {
		for {
			if _, err := blocked.Next(); err != nil {
				ended <- err
				return
			}
		}
	}()

	if err := r.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	select {
	case err := <-ended:
		if !errors.Is(err, registry.ErrWatcherStopped) {
			t.Fatalf("a blocked Next after Close = %v, want ErrWatcherStopped", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Close did not end a blocked Next")
	}
	if res, err := later.Next(); !errors.Is(err, registry.ErrWatcherStopped) {
		t.Fatalf("Next after Close = %+v, %v; want ErrWatcherStopped", res, err)
	}

	_, getErr := r.GetService(ctx, name)
	_, listErr := r.ListServices(ctx)
	w, watchErr := r.Watch(ctx, "")
	if w != nil {
		w.Stop()
	}
	for call, err := range map[string]error{
		"Register":     r.Register(ctx, service(name, "v1", node(p+"-b", 8002)), 0),
		"Deregister":   r.Deregister(ctx, ref(name, "v1", p+"-a")),
		"GetService":   getErr,
		"ListServices": listErr,
		"Watch":        watchErr,
	} {
		if !errors.Is(err, registry.ErrClosed) {
			t.Errorf("%s after Close = %v, want an error wrapping registry.ErrClosed", call, err)
		}
	}
	if err := r.Close(); err != nil {
		t.Errorf("a second Close = %v, want nil", err)
	}
}
