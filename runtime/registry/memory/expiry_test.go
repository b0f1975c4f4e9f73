package memory

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/protoc-gen-micro/micro/runtime/registry"
)

// Reads must not return expired nodes even when the sweep timer is late,
// and a read that notices expiry tells watchers.
func TestReadSkipsExpiredWithoutTimer(t *testing.T) {
	ctx := context.Background()
	r := NewRegistry().(*memRegistry)
	w, err := r.Watch(ctx, "a")
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	s := &registry.Service{Name: "a", Nodes: []*registry.Node{{ID: "1", Address: "x"}}}
	if err := r.Register(ctx, s, time.Hour); err != nil {
		t.Fatal(err)
	}
	// Simulate a late timer: the node's expiry has passed, the timer has
	// not fired.
	r.mu.Lock()
	r.timer.Stop()
	past := time.Now().Add(-time.Second)
	r.services["a"][""].nodes["1"].expires = past
	r.next = past
	r.mu.Unlock()

	if list, err := r.ListServices(ctx); err != nil || len(list) != 0 {
		t.Fatalf("ListServices = %v, %v; want nothing", list, err)
	}
	if _, err := r.GetService(ctx, "a"); !errors.Is(err, registry.ErrNotFound) {
		t.Fatalf("GetService err = %v, want ErrNotFound", err)
	}
	for _, want := range []registry.Action{registry.Create, registry.Delete} {
		res, err := w.Next()
		if err != nil || res.Action != want {
			t.Fatalf("Next = %v, %v; want %s", res, err, want)
		}
	}
	r.mu.RLock()
	defer r.mu.RUnlock()
	if !r.next.IsZero() || len(r.services) != 0 {
		t.Fatalf("after the sweep: next = %v, services = %v", r.next, r.services)
	}
}
