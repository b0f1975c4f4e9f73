package memory_test

import (
	"context"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/protoc-gen-micro/micro/internal/leakcheck"
	"github.com/protoc-gen-micro/micro/runtime/registry"
	"github.com/protoc-gen-micro/micro/runtime/registry/memory"
	"github.com/protoc-gen-micro/micro/runtime/registry/registrytest"
)

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

func TestRegisterMergesNodesByID(t *testing.T) {
	ctx := context.Background()
	r := memory.NewRegistry()
	for _, s := range []*registry.Service{
		svc("greeter", "v2", nd("b", "127.0.0.1:2")),
		svc("greeter", "v2", nd("a", "127.0.0.1:1")),
		svc("greeter", "v2", nd("b", "127.0.0.1:22")), // replaces b
		svc("greeter", "v1", nd("c", "127.0.0.1:3")),
	} {
		if err := r.Register(ctx, s, 0); err != nil {
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

func TestWatchResultsAreCopies(t *testing.T) {
	ctx := context.Background()
	r := memory.NewRegistry()
	w1, w2 := registrytest.Watch(t, r, ""), registrytest.Watch(t, r, "")
	if err := r.Register(ctx, svc("a", "v1", nd("1", "x")), 0); err != nil {
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
	w := registrytest.Watch(t, r, "")
	const n = 10000
	for i := range n {
		if err := r.Register(ctx, svc("a", "v1", nd("1", fmt.Sprint(i))), 0); err != nil {
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

// A change of the service's description alone is an Update without nodes,
// and one Deregister of several nodes is one Delete holding them all.
func TestWatchDescriptionUpdateAndBatchDelete(t *testing.T) {
	ctx := context.Background()
	r := memory.NewRegistry()
	w := registrytest.Watch(t, r, "a")
	s := svc("a", "v1", nd("1", "x"), nd("2", "y"))
	if err := r.Register(ctx, s, 0); err != nil {
		t.Fatal(err)
	}
	s.Metadata = map[string]string{"team": "new"}
	if err := r.Register(ctx, s, 0); err != nil {
		t.Fatal(err)
	}
	if err := r.Deregister(ctx, s); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"create [1 2] core", "update [] new", "delete [1 2] new"} {
		res := next(t, w)
		if got := fmt.Sprintf("%s %v %s", res.Action, nodeIDs(res.Service), res.Service.Metadata["team"]); got != want {
			t.Fatalf("result = %q, want %q", got, want)
		}
	}
}

// A refresh moves a node's expiry to the new TTL without an event. The
// order of the expiries shows it: the refreshed node would have expired
// before the later one had the refresh not counted.
func TestTTLRefreshKeepsNode(t *testing.T) {
	leakcheck.Check(t)
	ctx := context.Background()
	r := memory.NewRegistry()
	w := registrytest.Watch(t, r, "a")
	early := 200 * time.Millisecond
	if err := r.Register(ctx, svc("a", "v1", nd("refreshed", "x"), nd("early", "y")), early); err != nil {
		t.Fatal(err)
	}
	if err := r.Register(ctx, svc("a", "v1", nd("refreshed", "x")), time.Hour); err != nil {
		t.Fatal(err)
	}
	if err := r.Register(ctx, svc("a", "v1", nd("late", "z")), 400*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"create [early refreshed]", "update [late]", "delete [early]", "delete [late]"} {
		res := next(t, w)
		if got := fmt.Sprintf("%s %v", res.Action, nodeIDs(res.Service)); got != want {
			t.Fatalf("result = %q, want %q", got, want)
		}
	}
	got, err := r.GetService(ctx, "a")
	if err != nil || !reflect.DeepEqual(nodeIDs(got[0]), []string{"refreshed"}) {
		t.Fatalf("after the expiries GetService = %v, %v; want the refreshed node", got, err)
	}
}
