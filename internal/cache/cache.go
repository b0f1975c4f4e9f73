// Package cache keeps the nodes of services in memory, kept current by one
// watch of a registry, so that finding a service's nodes costs no registry
// lookup.
//
// The default selector picks the node of every call from a Cache, and the
// built-in broker finds a topic's subscribers in one. Both take theirs from
// Shared, so one watch of a registry serves every user in the process.
//
// The first Get of a service looks it up in the registry; concurrent first
// Gets share that lookup, and a failed lookup is not cached. From then on
// the watch, started before the first lookup so that no change after one
// goes unseen, applies every change to the service. Should the watch fail,
// the cached services are looked up again and the watch retried, after
// 1 s, then twice as long each time up to 30 s.
package cache

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/protoc-gen-micro/micro/internal/cowmap"
	"github.com/protoc-gen-micro/micro/runtime/registry"
)

// While the registry's watch is down, the cache is refreshed from the
// registry and the watch retried, first after minRefresh, then after twice
// as long each time, up to maxRefresh. refreshTimeout bounds one lookup.
const (
	minRefresh     = time.Second
	maxRefresh     = 30 * time.Second
	refreshTimeout = 10 * time.Second
)

// ErrClosed is returned by Get once the cache is closed.
var ErrClosed = errors.New("registry cache: closed")

// errNoRegistry is returned by Get of a cache made without a registry.
var errNoRegistry = errors.New("registry cache: no registry to look services up in")

// Snapshot is what the cache holds of a service at one moment. It is never
// modified: a change to the service replaces it, so a caller may derive
// its own view from a Snapshot and rebuild that view only when Get returns
// a different one.
type Snapshot struct {
	// Service is the service's name.
	Service string
	// Nodes are the nodes of every version of the service that have an
	// address, sorted by address, then ID, then version. They are the
	// registry's own values: do not modify them.
	Nodes []*registry.Node
	// NotFound, when Nodes is empty, is the error of the registry's last
	// lookup of the service, which found none: it wraps
	// registry.ErrNotFound and carries the registry's explanation, such as
	// the interfaces the mDNS registry queried. It is nil when the service
	// has nodes, or lost them after the lookup.
	NotFound error
}

// Cache is a registry's services, kept current. Create it with New; it is
// safe for concurrent use.
type Cache struct {
	reg        registry.Registry
	minRefresh time.Duration // tests shorten these
	maxRefresh time.Duration

	services cowmap.Map[string, *entry] // Get finds a service without a lock
	closed   atomic.Bool

	mu       sync.Mutex // guards the fields below
	watching bool       // the watch goroutine has been started
	watcher  registry.Watcher
	ctx      context.Context // ends with Close
	cancel   context.CancelFunc
	wg       sync.WaitGroup // the watch goroutine

	shared bool // handed out by Shared; refs guarded by shared's lock
	refs   int
}

// entry is one service in the cache. Get reads snap without a lock;
// changes build a new one under mu.
type entry struct {
	name string
	snap atomic.Pointer[Snapshot]

	mu       sync.Mutex
	nodes    map[nodeKey]nodeOf // what the registry says
	notFound error              // the last lookup's, if it found nothing; for Snapshot.NotFound
	loading  chan struct{}      // closed when a lookup in flight ends
	pending  []*registry.Result // changes seen while loading
}

// nodeKey identifies a node within a service: by version and ID, or
// address when it has no ID.
type nodeKey struct{ version, id string }

type nodeOf struct {
	version string
	node    *registry.Node
}

// shared holds the caches Shared hands out, by registry.
var shared struct {
	sync.Mutex
	m map[registry.Registry]*Cache
}

// Shared returns the cache of r that every user of r in the process
// shares, creating it on first use. Each caller closes it once; the last
// Close closes it. A registry that cannot be a map key gets a cache of its
// own.
func Shared(r registry.Registry) *Cache {
	if t := reflect.TypeOf(r); t == nil || !t.Comparable() {
		return New(r)
	}
	shared.Lock()
	defer shared.Unlock()
	if c := shared.m[r]; c != nil {
		c.refs++
		return c
	}
	if shared.m == nil {
		shared.m = map[registry.Registry]*Cache{}
	}
	c := New(r)
	c.refs, c.shared = 1, true
	shared.m[r] = c
	return c
}

// release drops one reference to a shared cache and reports whether it was
// the last; always true for a cache of its own.
func (c *Cache) release() bool {
	if !c.shared {
		return true
	}
	shared.Lock()
	defer shared.Unlock()
	if c.refs == 0 {
		return true // already closed
	}
	c.refs--
	if c.refs > 0 {
		return false
	}
	delete(shared.m, c.reg)
	return true
}

// New returns a cache of r. It watches r from the first Get until Close.
// Get fails when r is nil.
func New(r registry.Registry) *Cache {
	ctx, cancel := context.WithCancel(context.Background())
	return &Cache{reg: r, minRefresh: minRefresh, maxRefresh: maxRefresh, ctx: ctx, cancel: cancel}
}

// Registry returns the registry the cache keeps.
func (c *Cache) Registry() registry.Registry { return c.reg }

// String names the cached registry.
func (c *Cache) String() string { return fmt.Sprintf("cache of %s", c.reg) }

// Get returns the service's nodes, looking the service up the first time.
// A service the registry does not know has a Snapshot without nodes, which
// the watch fills in when it appears.
func (c *Cache) Get(ctx context.Context, service string) (*Snapshot, error) {
	if e, ok := c.services.Load(service); ok {
		if snap := e.snap.Load(); snap != nil {
			return snap, nil
		}
	}
	if c.closed.Load() {
		return nil, ErrClosed
	}
	return c.load(ctx, service)
}

// Current returns the service's Snapshot if the cache holds one, without
// looking the service up; nil otherwise.
func (c *Cache) Current(service string) *Snapshot {
	if e, ok := c.services.Load(service); ok {
		return e.snap.Load()
	}
	return nil
}

// Close stops the watch and waits for its goroutine to end. Get fails
// afterwards. A shared cache closes when its last user closes it.
func (c *Cache) Close() error {
	if !c.release() {
		return nil
	}
	c.mu.Lock()
	if c.closed.Load() {
		c.mu.Unlock()
		return nil
	}
	c.closed.Store(true)
	w := c.watcher
	c.watcher = nil
	c.mu.Unlock()
	c.cancel()
	if w != nil {
		w.Stop()
	}
	c.wg.Wait()
	// Nothing is kept current any more: Get must not answer from here.
	c.services.Range(func(_ string, e *entry) bool {
		e.mu.Lock()
		e.snap.Store(nil)
		e.mu.Unlock()
		return true
	})
	return nil
}

// load looks a service up the first time. Concurrent first Gets share one
// lookup; a lookup that fails is not cached.
func (c *Cache) load(ctx context.Context, name string) (*Snapshot, error) {
	e, err := c.entry(name)
	if err != nil {
		return nil, err
	}
	for {
		if snap := e.snap.Load(); snap != nil {
			return snap, nil
		}
		e.mu.Lock()
		if e.snap.Load() != nil {
			e.mu.Unlock()
			continue
		}
		if ch := e.loading; ch != nil {
			e.mu.Unlock()
			select {
			case <-ch:
				continue // loaded, or failed: then try ourselves
			case <-ctx.Done():
				return nil, fmt.Errorf("looking up service %q: %w", name, ctx.Err())
			}
		}
		ch := make(chan struct{})
		e.loading = ch
		e.mu.Unlock()

		versions, err := c.reg.GetService(ctx, name)

		e.mu.Lock()
		e.loading = nil
		close(ch)
		pending := e.pending
		e.pending = nil
		if err != nil && !errors.Is(err, registry.ErrNotFound) {
			e.mu.Unlock()
			return nil, fmt.Errorf("looking up service %q in %s: %w", name, c.reg, err)
		}
		if c.closed.Load() {
			e.mu.Unlock()
			return nil, ErrClosed
		}
		e.resetLocked(versions, err)
		// Changes seen while the lookup ran may or may not be in its
		// answer; applied again in order, they leave the right state.
		for _, r := range pending {
			e.applyLocked(r)
		}
		snap := e.publishLocked()
		e.mu.Unlock()
		return snap, nil
	}
}

// entry returns the cache entry of the named service, adding an empty one
// if there is none. The first call starts the watch, before any service is
// looked up, so no change after a lookup goes unseen.
func (c *Cache) entry(name string) (*entry, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed.Load() {
		return nil, ErrClosed
	}
	if c.reg == nil {
		return nil, errNoRegistry
	}
	if !c.watching {
		c.watching = true
		w := c.watchLocked()
		c.wg.Add(1)
		go c.run(w)
	}
	return c.services.LoadOrAdd(name, func() *entry { return &entry{name: name} }), nil
}

func keyOf(version string, n *registry.Node) nodeKey {
	id := n.ID
	if id == "" {
		id = n.Address
	}
	return nodeKey{version, id}
}

// resetLocked replaces what the registry says with the answer of a
// lookup: versions, or notFound, an error wrapping registry.ErrNotFound.
func (e *entry) resetLocked(versions []*registry.Service, notFound error) {
	e.nodes = map[nodeKey]nodeOf{}
	e.notFound = notFound
	for _, v := range versions {
		if v == nil {
			continue
		}
		for _, n := range v.Nodes {
			if n != nil {
				e.nodes[keyOf(v.Version, n)] = nodeOf{v.Version, n}
			}
		}
	}
}

// applyLocked applies a watch result: Create and Update add or replace the
// nodes they carry, Delete removes them (all of the version's when it
// carries none). Applying a result twice, or one already reflected in a
// lookup, changes nothing.
func (e *entry) applyLocked(r *registry.Result) {
	v := r.Service
	switch r.Action {
	case registry.Create, registry.Update:
		for _, n := range v.Nodes {
			if n != nil {
				e.nodes[keyOf(v.Version, n)] = nodeOf{v.Version, n}
			}
		}
	case registry.Delete:
		if len(v.Nodes) == 0 {
			for k := range e.nodes {
				if k.version == v.Version {
					delete(e.nodes, k)
				}
			}
		}
		for _, n := range v.Nodes {
			if n != nil {
				delete(e.nodes, keyOf(v.Version, n))
			}
		}
	}
}

// publishLocked builds and publishes a snapshot of e.nodes.
func (e *entry) publishLocked() *Snapshot {
	list := make([]nodeOf, 0, len(e.nodes))
	for _, n := range e.nodes {
		if n.node.Address != "" {
			list = append(list, n)
		}
	}
	slices.SortFunc(list, func(a, b nodeOf) int {
		return cmp.Or(cmp.Compare(a.node.Address, b.node.Address), cmp.Compare(a.node.ID, b.node.ID), cmp.Compare(a.version, b.version))
	})
	snap := &Snapshot{Service: e.name, Nodes: make([]*registry.Node, len(list))}
	for i, n := range list {
		snap.Nodes[i] = n.node
	}
	if len(list) > 0 {
		// Nodes that leave later were not "not found" by a lookup.
		e.notFound = nil
	} else {
		snap.NotFound = e.notFound
	}
	e.snap.Store(snap)
	return snap
}

// watchLocked starts a watch of the whole registry and keeps it for Close,
// or returns nil if the registry refuses or the cache is closed; c.mu
// held. One watch serves every service: one goroutine and one registry
// subscription however many services are cached.
func (c *Cache) watchLocked() registry.Watcher {
	if c.closed.Load() {
		return nil
	}
	w, err := c.reg.Watch(c.ctx, "")
	if err != nil {
		return nil
	}
	c.watcher = w
	return w
}

// run applies the watch's changes to the cache. When the watch ends or
// cannot start, it refreshes the cache from the registry and retries the
// watch with a backoff, until Close.
func (c *Cache) run(w registry.Watcher) {
	defer c.wg.Done()
	fails := 0
	for {
		if w != nil {
			started := time.Now()
			c.follow(w)
			c.mu.Lock()
			mine := c.watcher == w // else Close has taken it to stop it
			if mine {
				c.watcher = nil
			}
			c.mu.Unlock()
			if mine {
				w.Stop()
			}
			if time.Since(started) > c.maxRefresh {
				fails = 0
			}
		}
		if c.ctx.Err() != nil {
			return
		}
		// Without a watch, changes go unseen: read them from the registry.
		c.refresh()
		wait := c.maxRefresh
		if fails < 16 {
			wait = min(c.minRefresh<<fails, c.maxRefresh)
			fails++
		}
		t := time.NewTimer(wait)
		select {
		case <-c.ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		c.mu.Lock()
		w = c.watchLocked()
		c.mu.Unlock()
		if w != nil {
			// Changes between the last refresh and the new watch.
			c.refresh()
		}
	}
}

// follow applies the watcher's results until it fails or stops.
func (c *Cache) follow(w registry.Watcher) {
	for {
		r, err := w.Next()
		if err != nil {
			return
		}
		if r == nil || r.Service == nil {
			continue
		}
		e, ok := c.services.Load(r.Service.Name)
		if !ok {
			continue // not cached: its first lookup will see the change
		}
		e.mu.Lock()
		switch {
		case e.loading != nil:
			e.pending = append(e.pending, r)
		case e.snap.Load() != nil:
			e.applyLocked(r)
			e.publishLocked()
		}
		// Neither: the last lookup failed; the next one starts afresh.
		e.mu.Unlock()
	}
}

// refresh looks every cached service up again. A lookup that fails keeps
// what the cache had.
func (c *Cache) refresh() {
	c.services.Range(func(_ string, e *entry) bool {
		if c.ctx.Err() != nil {
			return false
		}
		ctx, cancel := context.WithTimeout(c.ctx, refreshTimeout)
		versions, err := c.reg.GetService(ctx, e.name)
		cancel()
		if err != nil && !errors.Is(err, registry.ErrNotFound) {
			return true
		}
		e.mu.Lock()
		// A service being looked up by Get gets fresh nodes from that.
		if e.loading == nil && e.snap.Load() != nil {
			e.resetLocked(versions, err)
			e.publishLocked()
		}
		e.mu.Unlock()
		return true
	})
}
