// Package brokerplugin lets broker implementations that live in this
// repository's plug-in modules (plugins/nats) be chosen by name, as
// MICRO_BROKER=nats, by importing their package. The broker contract's
// option structs are internal, so brokers are written here, not outside:
// this registry is internal too.
package brokerplugin

import (
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sync"

	"github.com/protoc-gen-micro/micro/runtime/broker"
)

// Factory creates a broker that talks to the broker server at address
// (MICRO_BROKER_ADDRESS), or to its default when address is "", and logs
// to log (the service's, naming it and its node).
type Factory func(address string, log *slog.Logger) (broker.Broker, error)

var (
	mu        sync.RWMutex
	factories = map[string]Factory{}
)

// Register makes a broker available under name. Plug-ins call it from
// init. It panics if name is empty, f is nil or name is taken (the
// built-in "direct" and "memory" are taken).
func Register(name string, f Factory) {
	if name == "" || f == nil {
		panic("brokerplugin: Register needs a name and a factory")
	}
	mu.Lock()
	defer mu.Unlock()
	if _, dup := factories[name]; dup || name == "direct" || name == "memory" {
		panic(fmt.Sprintf("brokerplugin: %q is registered already", name))
	}
	factories[name] = f
}

// Lookup returns the factory registered under name.
func Lookup(name string) (Factory, bool) {
	mu.RLock()
	defer mu.RUnlock()
	f, ok := factories[name]
	return f, ok
}

// Names returns the names of the registered plug-ins, sorted.
func Names() []string {
	mu.RLock()
	defer mu.RUnlock()
	return slices.Sorted(maps.Keys(factories))
}
