package mdns_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/protoc-gen-micro/micro/internal/leakcheck"
	"github.com/protoc-gen-micro/micro/runtime/registry"
	"github.com/protoc-gen-micro/micro/runtime/registry/mdns"
	"github.com/protoc-gen-micro/micro/runtime/registry/registrytest"
)

// newRegistry returns a registry closed when the test ends, announcing
// fast so that tests do not wait for repeats.
func newRegistry(t *testing.T, opts ...mdns.Option) registry.Registry {
	t.Helper()
	log := slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	r := mdns.NewRegistry(append([]mdns.Option{mdns.WithAnnounceInterval(50 * time.Millisecond), mdns.WithLogger(log)}, opts...)...)
	t.Cleanup(func() { r.Close() })
	return r
}

// testWriter sends a registry's log to the test's, shown when it fails.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(b []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(b)))
	return len(b), nil
}

func service(name, version string, nodes ...*registry.Node) *registry.Service {
	return &registry.Service{
		Name:      name,
		Version:   version,
		Metadata:  map[string]string{"team": "core"},
		Endpoints: []*registry.Endpoint{{Name: "/" + name + ".v1.Svc/Call", Metadata: map[string]string{"stream": "unary"}}},
		Nodes:     nodes,
	}
}

func node(id, addr string) *registry.Node {
	return &registry.Node{ID: id, Address: addr, Metadata: map[string]string{"protocol": "grpc"}}
}

// expect reads the next result and checks its action and node IDs.
func expect(t *testing.T, w registry.Watcher, a registry.Action, ids ...string) *registry.Result {
	t.Helper()
	res, err := w.Next()
	if err != nil {
		t.Fatalf("Next: %v; want %s %v", err, a, ids)
	}
	var got []string
	for _, n := range res.Service.Nodes {
		got = append(got, n.ID)
	}
	if res.Action != a || !reflect.DeepEqual(got, ids) {
		t.Fatalf("Next = %s %s %v; want %s %v", res.Action, res.Service.Name, got, a, ids)
	}
	return res
}

func TestRoundTripBetweenRegistries(t *testing.T) {
	leakcheck.Check(t)
	ctx := context.Background()
	a, b := newRegistry(t), newRegistry(t)
	in := service("roundtrip", "v1", node("roundtrip-1", ":8080"), node("roundtrip-2", "127.0.0.1:8081"))
	in.Nodes[0].Metadata["zone"] = "eu"
	if err := a.Register(ctx, in, 30*time.Second); err != nil {
		t.Fatal(err)
	}
	got, err := b.GetService(ctx, "roundtrip")
	if err != nil {
		t.Fatal(err)
	}
	want := in.Clone()
	want.Nodes[0].Address = "127.0.0.1:8080" // lo's address: the only interface here
	if !reflect.DeepEqual(got, []*registry.Service{want}) {
		t.Fatalf("GetService =\n%s\nwant\n%s", dump(got...), dump(want))
	}
	// The registering registry sees its own nodes as registered.
	if got, err := a.GetService(ctx, "roundtrip"); err != nil || !reflect.DeepEqual(got, []*registry.Service{in}) {
		t.Fatalf("local GetService = %s, %v", dump(got...), err)
	}
	list, err := b.ListServices(ctx)
	if err != nil || len(list) != 1 || list[0].Name != "roundtrip" {
		t.Fatalf("ListServices = %s, %v", dump(list...), err)
	}

	w := registrytest.Watch(t, b, "roundtrip")
	if err := a.Deregister(ctx, &registry.Service{Name: "roundtrip", Version: "v1", Nodes: []*registry.Node{{ID: "roundtrip-1"}}}); err != nil {
		t.Fatal(err)
	}
	expect(t, w, registry.Delete, "roundtrip-1")
	got, err = b.GetService(ctx, "roundtrip")
	if err != nil || len(got[0].Nodes) != 1 || got[0].Nodes[0].ID != "roundtrip-2" {
		t.Fatalf("after Deregister: %s, %v", dump(got...), err)
	}
}

func dump(ss ...*registry.Service) string {
	var b strings.Builder
	for _, s := range ss {
		fmt.Fprintf(&b, "  %s %s md=%v eps=%d\n", s.Name, s.Version, s.Metadata, len(s.Endpoints))
		for _, n := range s.Nodes {
			fmt.Fprintf(&b, "    %s %s %v\n", n.ID, n.Address, n.Metadata)
		}
	}
	return b.String()
}

// A cold lookup returns as soon as the answer is in (plus the settle
// time), not at the max wait: an hour, so a lookup that waited it out
// would fail lookupWithin.
func TestColdLookupReturnsEarly(t *testing.T) {
	leakcheck.Check(t)
	ctx := context.Background()
	a := newRegistry(t)
	if err := a.Register(ctx, service("cold", "v1", node("cold-1", ":1")), 0); err != nil {
		t.Fatal(err)
	}
	b := newRegistry(t, mdns.WithMaxWait(time.Hour))
	if _, err := lookupWithin(t, b, "cold"); err != nil {
		t.Fatal(err)
	}
}

// Once a service is known, a lookup answers from the cache without
// querying or settling: the settle time is an hour.
func TestWarmLookupIsImmediate(t *testing.T) {
	leakcheck.Check(t)
	ctx := context.Background()
	a := newRegistry(t)
	b := newRegistry(t, mdns.WithSettle(time.Hour), mdns.WithMaxWait(time.Hour))
	w := registrytest.Watch(t, b, "")
	if err := a.Register(ctx, service("warm", "v1", node("warm-1", ":1")), 0); err != nil {
		t.Fatal(err)
	}
	expect(t, w, registry.Create, "warm-1")
	if _, err := lookupWithin(t, b, "warm"); err != nil {
		t.Fatal(err)
	}
}

// lookupWithin returns r.GetService's result. Its watchdog only turns a
// lookup that waits out an hour's settle time or max wait into a failure;
// the registry's Close ends that lookup when the test does.
func lookupWithin(t *testing.T, r registry.Registry, name string) ([]*registry.Service, error) {
	t.Helper()
	type result struct {
		svcs []*registry.Service
		err  error
	}
	done := make(chan result, 1)
	go func() {
		svcs, err := r.GetService(context.Background(), name)
		done <- result{svcs, err}
	}()
	select {
	case res := <-done:
		return res.svcs, res.err
	case <-time.After(30 * time.Second):
		t.Fatalf("GetService(%q) still waiting after 30 s", name)
		return nil, nil
	}
}

func TestNotFound(t *testing.T) {
	leakcheck.Check(t)
	r := newRegistry(t, mdns.WithMaxWait(100*time.Millisecond))
	_, err := r.GetService(context.Background(), "missing")
	if !errors.Is(err, registry.ErrNotFound) {
		t.Fatalf("err = %v, want ErrNotFound", err)
	}
	for _, want := range []string{`service "missing" not found`, `querying lo \(IPv4.*\) for 1[0-9]{2}ms`, "multicast .* may be blocked"} {
		if !regexp.MustCompile(want).MatchString(err.Error()) {
			t.Errorf("error %q does not match %q", err, want)
		}
	}

	// A context ending first gives the same error, wrapping its cause too.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	r2 := newRegistry(t, mdns.WithMaxWait(time.Minute))
	_, err = r2.GetService(ctx, "missing")
	if !errors.Is(err, registry.ErrNotFound) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want ErrNotFound and DeadlineExceeded", err)
	}
}

func TestWatchCreateUpdateDelete(t *testing.T) {
	leakcheck.Check(t)
	ctx := context.Background()
	a, b := newRegistry(t), newRegistry(t)
	wa := registrytest.Watch(t, a, "watched")
	wb := registrytest.Watch(t, b, "watched")
	wAll := registrytest.Watch(t, b, "")

	s := service("watched", "v1", node("watched-1", ":9000"))
	if err := a.Register(ctx, s, 0); err != nil {
		t.Fatal(err)
	}
	for _, w := range []registry.Watcher{wa, wb, wAll} {
		res := expect(t, w, registry.Create, "watched-1")
		if res.Service.Metadata["team"] != "core" || len(res.Service.Endpoints) != 1 {
			t.Fatalf("Create carries %s", dump(res.Service))
		}
	}
	// Registering the same again is a refresh: no event anywhere.
	if err := a.Register(ctx, s, 0); err != nil {
		t.Fatal(err)
	}
	// Changed metadata is re-announced as an Update.
	s.Nodes[0].Metadata["weight"] = "5"
	if err := a.Register(ctx, s, 0); err != nil {
		t.Fatal(err)
	}
	for _, w := range []registry.Watcher{wa, wb, wAll} {
		res := expect(t, w, registry.Update, "watched-1")
		if res.Service.Nodes[0].Metadata["weight"] != "5" {
			t.Fatalf("Update carries %v", res.Service.Nodes[0].Metadata)
		}
	}
	// A second node of the same version is an Update too.
	if err := a.Register(ctx, service("watched", "v1", node("watched-2", ":9001")), 0); err != nil {
		t.Fatal(err)
	}
	for _, w := range []registry.Watcher{wa, wb, wAll} {
		expect(t, w, registry.Update, "watched-2")
	}
	if err := a.Deregister(ctx, s); err != nil {
		t.Fatal(err)
	}
	for _, w := range []registry.Watcher{wa, wb, wAll} {
		expect(t, w, registry.Delete, "watched-1")
	}
	// Close says goodbye for what is left.
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	for _, w := range []registry.Watcher{wb, wAll} {
		expect(t, w, registry.Delete, "watched-2")
	}
	if _, err := wa.Next(); !errors.Is(err, registry.ErrWatcherStopped) {
		t.Fatalf("a watcher of a closed registry: Next = %v", err)
	}
	if err := a.Register(ctx, s, 0); !errors.Is(err, registry.ErrClosed) {
		t.Fatalf("Register after Close = %v", err)
	}
}

// A watcher that reads slowly misses nothing, however many changes come
// at once, locally or over the network: both start reading only after the
// whole burst was registered.
func TestWatchBurstDropsNothing(t *testing.T) {
	leakcheck.Check(t)
	ctx := context.Background()
	a, b := newRegistry(t), newRegistry(t)
	wa, wb := registrytest.Watch(t, a, ""), registrytest.Watch(t, b, "")
	const n = 200
	for i := range n {
		s := service(fmt.Sprintf("burst-%03d", i), "v1", node(fmt.Sprintf("burst-%03d-node", i), fmt.Sprintf(":%d", 10000+i)))
		if err := a.Register(ctx, s, 0); err != nil {
			t.Fatal(err)
		}
	}
	for name, w := range map[string]registry.Watcher{"local": wa, "remote": wb} {
		seen := map[string]bool{}
		for len(seen) < n {
			res, err := w.Next()
			if err != nil {
				t.Fatalf("%s watcher: %v after %d creates", name, err, len(seen))
			}
			if res.Action != registry.Create || seen[res.Service.Name] {
				t.Fatalf("%s watcher: %s %s", name, res.Action, res.Service.Name)
			}
			seen[res.Service.Name] = true
		}
	}
	list, err := b.ListServices(ctx)
	if err != nil || len(list) != n {
		t.Fatalf("ListServices: %d services, %v", len(list), err)
	}
}

// A service with 200 endpoints registers, its node and the first
// endpoints reach the other registry, and the local registry keeps all.
func TestManyEndpoints(t *testing.T) {
	leakcheck.Check(t)
	ctx := context.Background()
	a, b := newRegistry(t), newRegistry(t)
	s := service("endpoints", "v1", node("endpoints-1", ":7000"))
	s.Endpoints = nil
	for i := range 200 {
		s.Endpoints = append(s.Endpoints, &registry.Endpoint{
			Name:     fmt.Sprintf("/endpoints.v1.Service/Method%03d", i),
			Metadata: map[string]string{"stream": "unary"},
		})
	}
	if err := a.Register(ctx, s, 0); err != nil {
		t.Fatal(err)
	}
	got, err := b.GetService(ctx, "endpoints")
	if err != nil {
		t.Fatal(err)
	}
	eps := got[0].Endpoints
	if len(eps) < 20 || !reflect.DeepEqual(eps, s.Endpoints[:len(eps)]) {
		t.Fatalf("%d endpoints arrived: %v", len(eps), eps)
	}
	t.Logf("%d of 200 endpoints travel over mDNS", len(eps))
	local, err := a.GetService(ctx, "endpoints")
	if err != nil || len(local[0].Endpoints) != 200 {
		t.Fatalf("local lookup: %v", err)
	}
}

func TestRegisterValidates(t *testing.T) {
	leakcheck.Check(t)
	ctx := context.Background()
	r := newRegistry(t)
	for _, tc := range []struct {
		s    *registry.Service
		want string
	}{
		{nil, "service has no name"},
		{&registry.Service{Nodes: []*registry.Node{node("x", ":1")}}, "service has no name"},
		{&registry.Service{Name: "v"}, "service has no nodes"},
		{&registry.Service{Name: "v", Nodes: []*registry.Node{{Address: ":1"}}}, "node has no ID"},
		{&registry.Service{Name: "v", Nodes: []*registry.Node{node("x", ":1"), node("x", ":2")}}, "appears twice"},
		{&registry.Service{Name: "v", Nodes: []*registry.Node{node("x", "")}}, "is not host:port"},
		{&registry.Service{Name: "v", Nodes: []*registry.Node{node("x", "h:0")}}, "no valid port"},
		{&registry.Service{Name: "v", Nodes: []*registry.Node{node("x", "bad host!:1")}}, "neither an IP address nor a host name"},
		{&registry.Service{Name: "v", Metadata: map[string]string{"k": strings.Repeat("v", 300)}, Nodes: []*registry.Node{node("x", ":1")}},
			`service metadata "k" is 304 bytes`},
	} {
		err := r.Register(ctx, tc.s, 0)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Register(%v) = %v, want an error with %q", tc.s, err, tc.want)
		}
	}
	if err := r.Register(ctx, service("one", "v1", node("shared", ":1")), 0); err != nil {
		t.Fatal(err)
	}
	if err := r.Register(ctx, service("two", "v1", node("shared", ":1")), 0); err == nil || !strings.Contains(err.Error(), "deregister it first") {
		t.Fatalf("a node ID under two services: %v", err)
	}
	if err := r.Deregister(ctx, &registry.Service{}); err == nil {
		t.Fatal("Deregister without a name succeeded")
	}
}

// Nodes registered with an IP or a host name are advertised with exactly
// that; other registries find them there.
func TestExplicitAddresses(t *testing.T) {
	leakcheck.Check(t)
	ctx := context.Background()
	a, b := newRegistry(t), newRegistry(t)
	in := service("explicit", "v1",
		node("explicit-4", "10.1.2.3:80"),
		node("explicit-6", "[fd00::7]:81"),
		node("explicit-name", "db.example.com:82"),
		node("explicit-any6", "[::]:83"),
	)
	if err := a.Register(ctx, in, 0); err != nil {
		t.Fatal(err)
	}
	w := registrytest.Watch(t, b, "explicit")
	got, err := b.GetService(ctx, "explicit")
	if err != nil {
		t.Fatal(err)
	}
	addrs := map[string]string{}
	for _, n := range got[0].Nodes {
		addrs[n.ID] = n.Address
	}
	// A lookup settles briefly; let the last node arrive if it has not.
	for len(addrs) < 4 {
		res, err := w.Next()
		if err != nil {
			t.Fatal(err)
		}
		for _, n := range res.Service.Nodes {
			addrs[n.ID] = n.Address
		}
	}
	want := map[string]string{
		"explicit-4":    "10.1.2.3:80",
		"explicit-6":    "[fd00::7]:81",
		"explicit-name": "db.example.com:82",
		"explicit-any6": "127.0.0.1:83",
	}
	if !maps.Equal(addrs, want) {
		t.Fatalf("addresses %v, want %v", addrs, want)
	}
}

func TestInterfaces(t *testing.T) {
	leakcheck.Check(t)
	ctx := context.Background()

	a := newRegistry(t, mdns.WithInterfaces("lo"))
	if err := a.Register(ctx, service("iface", "v1", node("iface-1", ":1")), 0); err != nil {
		t.Fatal(err)
	}
	if _, err := newRegistry(t, mdns.WithInterfaces("lo")).GetService(ctx, "iface"); err != nil {
		t.Fatalf("Interfaces(lo): %v", err)
	}

	// With no interface the lookup does not wait (here, an hour).
	_, err := lookupWithin(t, newRegistry(t, mdns.WithInterfaces("nosuch0"), mdns.WithMaxWait(time.Hour)), "iface")
	if !errors.Is(err, registry.ErrNotFound) || !strings.Contains(err.Error(), "no interface to query: none of [nosuch0]") {
		t.Fatalf("Interfaces(nosuch0): %v", err)
	}

	t.Setenv("MICRO_MDNS_INTERFACES", "nosuch0, nosuch1")
	_, err = newRegistry(t).GetService(ctx, "iface")
	if !strings.Contains(err.Error(), "none of [nosuch0 nosuch1]") {
		t.Fatalf("%s=nosuch0,nosuch1: %v", "MICRO_MDNS_INTERFACES", err)
	}
	t.Setenv("MICRO_MDNS_INTERFACES", "lo")
	if _, err := newRegistry(t).GetService(ctx, "iface"); err != nil {
		t.Fatalf("%s=lo: %v", "MICRO_MDNS_INTERFACES", err)
	}
	// The option wins over the environment.
	if _, err := newRegistry(t, mdns.WithInterfaces("nosuch0")).GetService(ctx, "iface"); err == nil {
		t.Fatal("Interfaces(nosuch0) with the environment naming lo found the service")
	}
}

func TestString(t *testing.T) {
	if s := mdns.NewRegistry().String(); s != "mdns" {
		t.Fatalf("String() = %q", s)
	}
}

// Importing the package makes registry.New("mdns", "") return this registry,
// which advertises each interface's own addresses.
func TestFactory(t *testing.T) {
	leakcheck.Check(t)
	r, err := registry.New("mdns", "")
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if ia, ok := r.(interface{ AdvertisesInterfaceAddresses() bool }); r.String() != "mdns" || !ok || !ia.AdvertisesInterfaceAddresses() {
		t.Fatalf(`New("mdns") = %T %s, want the mDNS registry`, r, r)
	}
}

// A registry that browses answers queries identical to its own: two cold
// browsers send byte-identical queries, and neither may mistake the
// other's for its own.
func TestAnswersQueriesLikeItsOwn(t *testing.T) {
	leakcheck.Check(t)
	packets, _, await := mdns.Sniff(t)
	ctx := context.Background()
	b := newRegistry(t)
	registrytest.Watch(t, b, "") // browses: sends the query every cold registry sends
	if err := b.Register(ctx, service("twin", "v1", node("twin-1", ":1")), 0); err != nil {
		t.Fatal(err)
	}
	before := await("three announcements", func(ps []mdns.Packet) bool {
		_, live, _ := tally(ps)
		return live >= 3
	})
	c := newRegistry(t, mdns.WithMaxWait(2*time.Second))
	if _, err := c.GetService(ctx, "twin"); err != nil {
		t.Fatal(err)
	}
	// Past the announcements, only an answer can have told c. It must
	// answer c's first query: no other query (c's retry, or b's next
	// browse query, which b may answer for itself) comes before it.
	queries := 0
	for _, p := range packets()[len(before):] {
		q, live, _ := classify(p)
		if live > 0 {
			break
		}
		queries += q
	}
	if queries != 1 {
		t.Fatalf("%d queries before the first answer, want 1: the first went unanswered", queries)
	}
}

// Two registries that list at the same moment both see the services: the
// responder answers each querier, and a lister re-queries within its
// wait. Each pair of registries is new, so each listing is cold.
func TestConcurrentListServices(t *testing.T) {
	leakcheck.Check(t)
	ctx := context.Background()
	a := newRegistry(t)
	for _, name := range []string{"list-a", "list-b"} {
		if err := a.Register(ctx, service(name, "v1", node(name+"-1", ":1")), 0); err != nil {
			t.Fatal(err)
		}
	}
	const tries = 30
	failed := 0
	for i := range tries {
		pair := []registry.Registry{mdns.NewRegistry(), mdns.NewRegistry()}
		start := make(chan struct{})
		got := make(chan string, len(pair))
		for _, r := range pair {
			go func() {
				<-start
				list, err := r.ListServices(ctx)
				var names []string
				for _, s := range list {
					names = append(names, s.Name)
				}
				got <- fmt.Sprint(names, err)
			}()
		}
		close(start)
		for range pair {
			if g := <-got; g != "[list-a list-b] <nil>" {
				failed++
				t.Logf("try %d: ListServices = %s", i, g)
			}
		}
		for _, r := range pair {
			r.Close()
		}
	}
	if failed > 0 {
		t.Fatalf("%d of %d listings missed services", failed, 2*tries)
	}
}
