package memory_test

import (
	"context"
	"errors"
	"testing"

	"github.com/protoc-gen-micro/micro/runtime/registry"
	"github.com/protoc-gen-micro/micro/runtime/registry/memory"
)

// A lookup that finds nothing says the memory registry holds only this
// process's services, the usual reason when it is used across processes,
// and still wraps registry.ErrNotFound.
func TestNotFoundSaysPerProcess(t *testing.T) {
	r := memory.NewRegistry()
	_, err := r.GetService(context.Background(), "x")
	if !errors.Is(err, registry.ErrNotFound) {
		t.Fatalf("err = %v, want registry.ErrNotFound", err)
	}
	want := `registry: service "x" not found in the memory registry, which holds only this process's services; use mdns (the default) to find services in other processes`
	if err.Error() != want {
		t.Fatalf("err = %q\nwant  %q", err, want)
	}
}
