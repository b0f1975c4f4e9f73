package cache

import (
	"context"
	"errors"
	"testing"

	"github.com/protoc-gen-micro/micro/internal/leakcheck"
	"github.com/protoc-gen-micro/micro/runtime/registry"
	"github.com/protoc-gen-micro/micro/runtime/registry/memory"
)

// A cache made without a registry fails Get with an error, not a panic.
func TestNilRegistryFailsGet(t *testing.T) {
	c := New(nil)
	defer c.Close()
	if _, err := c.Get(context.Background(), "greeter"); err != errNoRegistry {
		t.Fatalf("Get = %v, want %v", err, errNoRegistry)
	}
}

// A Snapshot without nodes carries the registry's explanation of its
// lookup, until nodes appear; nodes that leave afterwards were not "not
// found", so the explanation does not come back with them.
func TestSnapshotKeepsNotFound(t *testing.T) {
	leakcheck.Check(t)
	reg := &stepping{Registry: memory.NewRegistry(), next: make(chan struct{}, 8)}
	c := New(reg)
	defer c.Close()
	ctx := context.Background()
	_, want := reg.GetService(ctx, "greeter")
	snap, err := c.Get(ctx, "greeter")
	if err != nil {
		t.Fatal(err)
	}
	if len(snap.Nodes) != 0 || snap.NotFound == nil || snap.NotFound.Error() != want.Error() || !errors.Is(snap.NotFound, registry.ErrNotFound) {
		t.Fatalf("snapshot of a missing service: nodes %v, NotFound %v; want none and %v", snap.Nodes, snap.NotFound, want)
	}
	<-reg.next // the cache is watching

	s := svc("1", "127.0.0.1:1")
	if err := reg.Register(ctx, s, 0); err != nil {
		t.Fatal(err)
	}
	<-reg.next // the cache has applied the change
	if snap := c.Current("greeter"); len(snap.Nodes) != 1 || snap.NotFound != nil {
		t.Fatalf("after Register: nodes %v, NotFound %v; want one node and no NotFound", snap.Nodes, snap.NotFound)
	}
	if err := reg.Deregister(ctx, s); err != nil {
		t.Fatal(err)
	}
	<-reg.next
	if snap := c.Current("greeter"); len(snap.Nodes) != 0 || snap.NotFound != nil {
		t.Fatalf("after Deregister: nodes %v, NotFound %v; want none and no NotFound", snap.Nodes, snap.NotFound)
	}
}

// stepping tells a test, on next, each time the cache asks its watch for
// the next change, by when the cache has applied the previous one.
type stepping struct {
	registry.Registry
	next chan struct{}
}

func (s *stepping) Watch(ctx context.Context, service string) (registry.Watcher, error) {
	w, err := s.Registry.Watch(ctx, service)
	if err != nil {
		return nil, err
	}
	return steppingWatcher{w, s.next}, nil
}

type steppingWatcher struct {
	registry.Watcher
	next chan struct{}
}

func (w steppingWatcher) Next() (*registry.Result, error) {
	select {
	case w.next <- struct{}{}:
	default: // the test is not waiting for this one
	}
	return w.Watcher.Next()
}
