package etcd

import (
	"log/slog"

	"github.com/protoc-gen-micro/micro/internal/regplugin"
	"github.com/protoc-gen-micro/micro/runtime/registry"
)

// The registry made by registry.New("etcd", address) talks to the
// comma-separated endpoints in address (127.0.0.1:2379 when it is empty)
// with the default options; close it when done. A service that chooses it
// by MICRO_REGISTRY gives it the service's logger.
func init() {
	registry.RegisterFactory("etcd", func(address string) (registry.Registry, error) {
		return NewRegistry(WithEndpoints(splitEndpoints(address)...))
	})
	regplugin.Register("etcd", func(address string, log *slog.Logger) (registry.Registry, error) {
		return NewRegistry(WithEndpoints(splitEndpoints(address)...), WithLogger(log))
	})
}
