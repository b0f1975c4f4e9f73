package mdns

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/protoc-gen-micro/micro/runtime/registry"
)

// A test binary outside the namespace internal/netns provides sends
// nothing: the registry works within the process only.
func TestNoMulticastFromTestsOutsideANamespace(t *testing.T) {
	t.Setenv("MICROTEST_NETNS", "")
	if !multicastForbidden() {
		t.Fatal("multicast allowed")
	}
	ctx := context.Background()
	r := NewRegistry().(*mdnsRegistry)
	defer r.Close()
	s := &registry.Service{Name: "guarded", Nodes: []*registry.Node{{ID: "g-1", Address: ":1"}}}
	if err := r.Register(ctx, s, 0); err != nil {
		t.Fatal(err)
	}
	if got, err := r.GetService(ctx, "guarded"); err != nil || got[0].Nodes[0].ID != "g-1" {
		t.Fatalf("local lookup: %v", err)
	}
	_, err := r.GetService(ctx, "elsewhere")
	if !errors.Is(err, registry.ErrNotFound) || !strings.Contains(err.Error(), "sends no multicast outside a private network namespace") {
		t.Fatalf("lookup: %v", err)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.tr != nil {
		t.Fatal("sockets opened")
	}
}
