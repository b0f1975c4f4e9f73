// Package registrytest has registry wrappers for tests.
package registrytest

import (
	"context"
	"sync/atomic"

	"github.com/protoc-gen-micro/micro/runtime/registry"
)

// WatchCounter is a registry that counts its watches.
type WatchCounter struct {
	registry.Registry
	watches atomic.Int32
}

// Watch counts the watch and starts it on the wrapped registry.
func (w *WatchCounter) Watch(ctx context.Context, service string) (registry.Watcher, error) {
	w.watches.Add(1)
	return w.Registry.Watch(ctx, service)
}

// Watches returns how many watches were asked for.
func (w *WatchCounter) Watches() int { return int(w.watches.Load()) }
