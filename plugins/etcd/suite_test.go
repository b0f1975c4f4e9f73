package etcd_test

import (
	"testing"
	"time"

	"github.com/protoc-gen-micro/micro/internal/leakcheck"
	"github.com/protoc-gen-micro/micro/runtime/registry"
	"github.com/protoc-gen-micro/micro/runtime/registry/registrytest"
)

// TestRegistry runs the shared suite against the shared server. A TTL of
// one second is the shortest etcd leases have here (see server.start).
func TestRegistry(t *testing.T) {
	leakcheck.Check(t)
	registrytest.Run(t, func(t *testing.T) registry.Registry {
		return newRegistry(t, "")
	}, registrytest.TTL(time.Second))
}
