package cache

import (
	"context"
	"strings"
	"testing"

	"github.com/protoc-gen-micro/micro/runtime/registry/memory"
)

// A View builds once per snapshot, from the newest one the cache holds,
// with the value it built before.
func TestView(t *testing.T) {
	ctx := context.Background()
	mem := memory.NewRegistry(memory.WithServices(svc("v1", "a:1")))
	c := New(mem)
	defer c.Close()
	var v View[[]string]
	if _, ok := v.Last(); ok {
		t.Fatal("Last of a new View reports a value")
	}
	builds := 0
	build := func(snap *Snapshot, prev []string) []string {
		builds++
		out := append([]string(nil), prev...)
		for _, n := range snap.Nodes {
			out = append(out, n.Address)
		}
		return out
	}
	first, _ := c.Get(ctx, "greeter")
	if got := v.Get(c, first, build); len(got) != 1 || got[0] != "a:1" {
		t.Fatalf("first view %v", got)
	}
	v.Get(c, first, build)
	if builds != 1 {
		t.Fatalf("%d builds for one snapshot", builds)
	}
	mem.Register(ctx, svc("v1", "b:1"), 0)
	waitUntil(t, func() bool { return c.Current("greeter") != first })
	second := c.Current("greeter")
	mem.Register(ctx, svc("v1", "c:1"), 0)
	waitUntil(t, func() bool { return c.Current("greeter") != second })
	// Asked with a snapshot older than the newest, the view moves to the
	// newest.
	got := v.Get(c, second, build)
	if want := "a:1 a:1 b:1 c:1"; strings.Join(got, " ") != want || builds != 2 {
		t.Fatalf("view %v after %d builds; want %s from a second build", got, builds, want)
	}
	if last, ok := v.Last(); !ok || len(last) != 4 {
		t.Fatalf("Last = %v, %v", last, ok)
	}
	// The newest snapshot is the one the view was built from: no build.
	v.Get(c, c.Current("greeter"), build)
	if builds != 2 {
		t.Fatalf("%d builds; the newest snapshot was built already", builds)
	}
}
