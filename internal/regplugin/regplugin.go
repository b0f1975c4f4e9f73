// Package regplugin lets registries in this repository's plug-in modules
// (plugins/etcd) be made with the logger of the service that asks for
// them, so that their log lines name the service and node as the built-in
// registries' do. registry.RegisterFactory remains how a registry is
// chosen by name; this only adds the logger.
package regplugin

import (
	"log/slog"
	"sync"

	"github.com/protoc-gen-micro/micro/runtime/registry"
)

// Factory creates a registry that talks to the registry server at address
// (MICRO_REGISTRY_ADDRESS) and logs to log.
type Factory func(address string, log *slog.Logger) (registry.Registry, error)

var (
	mu        sync.RWMutex
	factories = map[string]Factory{}
)

// Register makes name's registry take a logger. Plug-ins call it from init,
// beside registry.RegisterFactory.
func Register(name string, f Factory) {
	mu.Lock()
	defer mu.Unlock()
	factories[name] = f
}

// Lookup returns name's factory, if its plug-in registered one.
func Lookup(name string) (Factory, bool) {
	mu.RLock()
	defer mu.RUnlock()
	f, ok := factories[name]
	return f, ok
}
