package etcd

import (
	"log/slog"

	"github.com/protoc-gen-micro/micro/runtime/registry"
)

// LoggerOf returns where r logs.
func LoggerOf(r registry.Registry) *slog.Logger { return r.(*etcdRegistry).opts.logger }

// HoldWatch makes r's cache stop watching etcd, and returns once it has;
// resume makes it watch again from the revision after the last it applied.
func HoldWatch(r registry.Registry) (resume func()) {
	c := r.(*etcdRegistry).cache
	hold, held := make(chan struct{}), make(chan struct{})
	c.mu.Lock()
	c.hold, c.held = hold, held
	c.mu.Unlock()
	c.kick <- struct{}{}
	<-held
	return func() {
		c.mu.Lock()
		c.hold, c.held = nil, nil
		c.mu.Unlock()
		close(hold)
	}
}

// SetMaxNodes sets the cache's bound on nodes until the returned func
// restores it.
func SetMaxNodes(n int) (restore func()) {
	old := maxNodes
	maxNodes = n
	return func() { maxNodes = old }
}

const MaxValueSize = maxValueSize
const MaxBadKeys = maxBadKeys
