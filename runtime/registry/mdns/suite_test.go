package mdns_test

import (
	"testing"
	"time"

	"github.com/protoc-gen-micro/micro/internal/leakcheck"
	"github.com/protoc-gen-micro/micro/runtime/registry"
	"github.com/protoc-gen-micro/micro/runtime/registry/mdns"
	"github.com/protoc-gen-micro/micro/runtime/registry/registrytest"
)

// TestRegistry runs the shared suite in this package's private network
// namespace (see TestMain). A lookup of a missing service waits only
// briefly.
func TestRegistry(t *testing.T) {
	leakcheck.Check(t)
	registrytest.Run(t, func(t *testing.T) registry.Registry {
		return newRegistry(t, mdns.WithMaxWait(200*time.Millisecond))
	}, registrytest.TTL(time.Second), registrytest.RequiresAddress())
}
