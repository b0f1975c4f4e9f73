package memory_test

import (
	"testing"
	"time"

	"github.com/protoc-gen-micro/micro/internal/leakcheck"
	"github.com/protoc-gen-micro/micro/runtime/registry"
	"github.com/protoc-gen-micro/micro/runtime/registry/memory"
	"github.com/protoc-gen-micro/micro/runtime/registry/registrytest"
)

func TestRegistry(t *testing.T) {
	leakcheck.Check(t)
	registrytest.Run(t, func(t *testing.T) registry.Registry {
		return memory.NewRegistry()
	}, registrytest.TTL(50*time.Millisecond))
}
