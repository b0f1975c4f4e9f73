package cache

import (
	"sync"
	"sync/atomic"
)

// View keeps a value derived from one service's Snapshots, such as the
// selector's nodes with what calls taught it about them, and rebuilds it
// only when the snapshot changes. Its zero value is ready to use.
type View[T any] struct {
	cur atomic.Pointer[derived[T]]
	mu  sync.Mutex // serialises rebuilds
}

type derived[T any] struct {
	src *Snapshot
	v   T
}

// Get returns the value derived from snap, calling build to derive it
// when snap is not the snapshot the last value was built from. build gets
// the newest snapshot of the service c holds (snap, or a newer one, so
// that a view never moves back to an older snapshot) and the previous
// value (T's zero value the first time); calls to build are serialised.
func (v *View[T]) Get(c *Cache, snap *Snapshot, build func(snap *Snapshot, prev T) T) T {
	if d := v.cur.Load(); d != nil && d.src == snap {
		return d.v
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	if latest := c.Current(snap.Service); latest != nil {
		snap = latest
	}
	d := v.cur.Load()
	if d != nil && d.src == snap {
		return d.v
	}
	var prev T
	if d != nil {
		prev = d.v
	}
	next := build(snap, prev)
	v.cur.Store(&derived[T]{src: snap, v: next})
	return next
}

// Last returns the value built last, if any.
func (v *View[T]) Last() (T, bool) {
	if d := v.cur.Load(); d != nil {
		return d.v, true
	}
	var zero T
	return zero, false
}
