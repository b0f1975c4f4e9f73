// Package cowmap is a copy-on-write map for what is read on every call and
// added to rarely, such as the services a selector has been asked for: a
// read is an atomic load and a map lookup, without a lock; adding a key
// copies the map.
package cowmap

import (
	"sync"
	"sync/atomic"
)

// Map is a copy-on-write map. Its zero value is empty and ready to use; it
// must not be copied after first use.
type Map[K comparable, V any] struct {
	m  atomic.Pointer[map[K]V] // replaced whole on every addition
	mu sync.Mutex              // serialises additions
}

// Load returns the value of k, if any.
func (c *Map[K, V]) Load(k K) (v V, ok bool) {
	if m := c.m.Load(); m != nil {
		v, ok = (*m)[k]
	}
	return v, ok
}

// LoadOrAdd returns the value of k, adding the value make returns when
// there is none. make runs at most once per added key, with additions
// serialised.
func (c *Map[K, V]) LoadOrAdd(k K, make func() V) V {
	if v, ok := c.Load(k); ok {
		return v
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	var old map[K]V
	if m := c.m.Load(); m != nil {
		old = *m
	}
	if v, ok := old[k]; ok {
		return v
	}
	v := make()
	next := map[K]V{k: v}
	for key, val := range old {
		next[key] = val
	}
	c.m.Store(&next)
	return v
}

// Range calls f with every key and value of the map as it was when Range
// began, until f returns false.
func (c *Map[K, V]) Range(f func(K, V) bool) {
	m := c.m.Load()
	if m == nil {
		return
	}
	for k, v := range *m {
		if !f(k, v) {
			return
		}
	}
}
