package selector_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/protoc-gen-micro/micro/runtime/registry"
	"github.com/protoc-gen-micro/micro/runtime/registry/memory"
	"github.com/protoc-gen-micro/micro/runtime/selector"
)

// The "no node" error carries the registry's own explanation of why it
// found none, and is still both ErrNoneAvailable and registry.ErrNotFound.
func TestNoNodeKeepsRegistryExplanation(t *testing.T) {
	reg := memory.NewRegistry()
	_, why := reg.GetService(context.Background(), "greeter")
	s := selector.NewSelector(reg)
	defer s.Close()
	for i := range 2 { // the first Select looks the service up; the second reads the cache
		_, err := s.Select(context.Background(), "greeter", nil)
		if !errors.Is(err, selector.ErrNoneAvailable) || !errors.Is(err, registry.ErrNotFound) {
			t.Fatalf("Select %d = %v, want ErrNoneAvailable and registry.ErrNotFound", i, err)
		}
		if want := selector.ErrNoneAvailable.Error() + ": " + why.Error(); err.Error() != want {
			t.Fatalf("Select %d = %q\nwant %q", i, err, want)
		}
		if !strings.Contains(err.Error(), "holds only this process's services") {
			t.Fatalf("Select %d = %q: the memory registry's hint is lost", i, err)
		}
	}
}
