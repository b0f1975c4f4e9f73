package registry_test

import (
	"context"
	"strings"
	"testing"

	"github.com/protoc-gen-micro/micro/runtime/registry"
)

// An unknown name, such as a typo in MICRO_REGISTRY or a plug-in whose
// package is not imported, is explained by name with the known ones, and
// the registry New returns with the error fails every call with it
// instead of being nil.
func TestNewUnknownExplains(t *testing.T) {
	r, err := registry.New("etdc", "")
	want := `registry: "etdc" is not a known registry (known: mdns, memory); a plug-in registers itself when its package is imported`
	if err == nil || err.Error() != want {
		t.Fatalf("New() error = %v\nwant %s", err, want)
	}
	if r == nil {
		t.Fatal("New() returned a nil registry with its error")
	}
	ctx := context.Background()
	_, getErr := r.GetService(ctx, "greeter")
	_, listErr := r.ListServices(ctx)
	_, watchErr := r.Watch(ctx, "")
	for name, got := range map[string]error{
		"Register":     r.Register(ctx, &registry.Service{Name: "greeter"}, 0),
		"Deregister":   r.Deregister(ctx, &registry.Service{Name: "greeter"}),
		"GetService":   getErr,
		"ListServices": listErr,
		"Watch":        watchErr,
	} {
		if got != err {
			t.Errorf("%s = %v, want New's error", name, got)
		}
	}
	if s := r.String(); !strings.Contains(s, "etdc") {
		t.Errorf("String() = %q, want the name asked for", s)
	}
	if err := r.Close(); err != nil {
		t.Errorf("Close() = %v, want nil: there is nothing to release", err)
	}
}
