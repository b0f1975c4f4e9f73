// Package memory is a registry.Registry held in the memory of one process.
//
// It is for tests and for services and clients that live in the same
// process (the default registry, mdns, finds those of other processes). It
// is not a discovery mechanism: nothing registered here is visible to another
// process, and nothing survives a restart.
//
// Registrations honour the TTL given to Register: a node that is not
// refreshed in time disappears and watchers see a Delete. Expiry costs nothing while no
// node has a TTL; otherwise a single timer (not a goroutine) fires at the
// earliest expiry, and reads skip expired nodes even if the timer runs late.
package memory

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/protoc-gen-micro/micro/internal/regvalid"
	"github.com/protoc-gen-micro/micro/internal/watchq"
	"github.com/protoc-gen-micro/micro/runtime/registry"
)

// memRegistry is the in-memory registry; it is safe for concurrent use.
type memRegistry struct {
	mu       sync.RWMutex
	services map[string]map[string]*entry // name → version → entry
	watchers map[*watchq.Watcher]struct{}
	closed   bool

	// next is a lower bound of the earliest node expiry; zero when no node
	// has a TTL. Refreshes only move expiries later, so the bound stays
	// valid without a rescan; a sweep recomputes it exactly.
	next time.Time
	// timer sweeps at next. It is created on first use and left stopped
	// when no node has a TTL, so an idle registry holds no goroutine and no
	// armed timer.
	timer *time.Timer
}

// entry is one name+version.
type entry struct {
	metadata  map[string]string
	endpoints []*registry.Endpoint
	nodes     map[string]*node // by ID
}

type node struct {
	*registry.Node           // owned copy
	expires        time.Time // zero: never
}

// errClosed is returned by the registry's methods after Close.
var errClosed = fmt.Errorf("registry/memory: %w", registry.ErrClosed)

func (n *node) expired(now time.Time) bool {
	return !n.expires.IsZero() && !now.Before(n.expires)
}

// Option configures NewRegistry.
type Option func(*options)

type options struct {
	services []*registry.Service
}

// WithServices registers the services, without a TTL, when the registry is
// created. It is meant for tests and fixed topologies.
func WithServices(s ...*registry.Service) Option {
	return func(o *options) { o.services = append(o.services, s...) }
}

// NewRegistry returns an empty in-memory registry, or one holding the
// services given with WithServices. It panics if one of those is invalid, as
// Register would have refused it.
func NewRegistry(opts ...Option) registry.Registry {
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	r := &memRegistry{
		services: map[string]map[string]*entry{},
		watchers: map[*watchq.Watcher]struct{}{},
	}
	for _, s := range o.services {
		if err := r.Register(context.Background(), s, 0); err != nil {
			panic(err)
		}
	}
	return r
}

// String returns "memory".
func (r *memRegistry) String() string { return "memory" }

// Register adds the service's nodes to the service of the same name and
// version, replacing nodes with the same ID and refreshing their TTL.
// Watchers see a Create for a new name+version, an Update when nodes were
// added or changed or the service's metadata or endpoints changed, and
// nothing for a refresh that changes nothing. The service must have a name
// and at least one node, and every node an ID. A node not refreshed within
// ttl expires; ttl 0 keeps it until deregistered.
func (r *memRegistry) Register(ctx context.Context, s *registry.Service, ttl time.Duration) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := validate(s); err != nil {
		return err
	}
	// The registry keeps its own copy: later changes to s do not reach it.
	s = s.Clone()
	now := time.Now()
	var expires time.Time
	if ttl > 0 {
		expires = now.Add(ttl)
	}

	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return errClosed
	}
	// Sweep first so that re-registering an expired node reads as a Delete
	// followed by a Create or Update, in that order.
	r.expireLocked(now)

	versions := r.services[s.Name]
	if versions == nil {
		versions = map[string]*entry{}
		r.services[s.Name] = versions
	}
	e := versions[s.Version]
	if e == nil {
		e = &entry{
			metadata:  s.Metadata,
			endpoints: s.Endpoints,
			nodes:     make(map[string]*node, len(s.Nodes)),
		}
		for _, n := range s.Nodes {
			e.nodes[n.ID] = &node{Node: n, expires: expires}
		}
		versions[s.Version] = e
		r.notifyLocked(registry.Create, s.Name, s.Version, e, sortedNodes(e.nodes, now))
	} else {
		var changed []*registry.Node
		for _, n := range s.Nodes {
			if old := e.nodes[n.ID]; old != nil && sameNode(old.Node, n) {
				old.expires = expires
				continue
			}
			e.nodes[n.ID] = &node{Node: n, expires: expires}
			changed = append(changed, n)
		}
		described := maps.Equal(e.metadata, s.Metadata) && slices.EqualFunc(e.endpoints, s.Endpoints, sameEndpoint)
		if !described {
			e.metadata, e.endpoints = s.Metadata, s.Endpoints
		}
		if len(changed) > 0 || !described {
			r.notifyLocked(registry.Update, s.Name, s.Version, e, changed)
		}
	}
	if !expires.IsZero() && (r.next.IsZero() || expires.Before(r.next)) {
		r.next = expires
		r.armLocked(now)
	}
	return nil
}

// Deregister removes the service's nodes, matched by ID, from the service
// of the same name and version; the service disappears with its last node.
// Watchers see a Delete holding the removed nodes. Deregistering unknown
// nodes is not an error.
func (r *memRegistry) Deregister(ctx context.Context, s *registry.Service) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if s == nil || s.Name == "" {
		return errors.New("registry/memory: deregister: service has no name")
	}
	now := time.Now()
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return errClosed
	}
	r.expireLocked(now)

	e := r.services[s.Name][s.Version]
	if e == nil {
		return nil
	}
	var removed []*registry.Node
	for _, n := range s.Nodes {
		if old := e.nodes[n.ID]; old != nil {
			delete(e.nodes, n.ID)
			removed = append(removed, old.Node)
		}
	}
	if len(removed) == 0 {
		return nil
	}
	r.removeIfEmptyLocked(s.Name, s.Version, e)
	r.notifyLocked(registry.Delete, s.Name, s.Version, e, removed)
	return nil
}

// GetService returns a deep copy of every version of the named service that
// has a live node, versions in ascending order and nodes by ID, or an error
// wrapping registry.ErrNotFound that says the registry holds only this
// process's services.
func (r *memRegistry) GetService(ctx context.Context, name string) ([]*registry.Service, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	now := time.Now()
	r.mu.RLock()
	if r.closed {
		r.mu.RUnlock()
		return nil, errClosed
	}
	versions := r.services[name]
	out := make([]*registry.Service, 0, len(versions))
	for version, e := range versions {
		if s := snapshot(name, version, e, now); s != nil {
			out = append(out, s)
		}
	}
	due := r.dueLocked(now)
	r.mu.RUnlock()
	if due {
		r.expire(now)
	}
	if len(out) == 0 {
		return nil, notFoundError(name)
	}
	slices.SortFunc(out, func(a, b *registry.Service) int { return cmp.Compare(a.Version, b.Version) })
	return out, nil
}

// ListServices returns a deep copy of every service with a live node, one
// entry per name and version, sorted by name then version.
func (r *memRegistry) ListServices(ctx context.Context) ([]*registry.Service, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	now := time.Now()
	r.mu.RLock()
	if r.closed {
		r.mu.RUnlock()
		return nil, errClosed
	}
	var out []*registry.Service
	for name, versions := range r.services {
		for version, e := range versions {
			if s := snapshot(name, version, e, now); s != nil {
				out = append(out, s)
			}
		}
	}
	due := r.dueLocked(now)
	r.mu.RUnlock()
	if due {
		r.expire(now)
	}
	slices.SortFunc(out, func(a, b *registry.Service) int {
		return cmp.Or(cmp.Compare(a.Name, b.Name), cmp.Compare(a.Version, b.Version))
	})
	return out, nil
}

// Watch reports every change from now on, in order, to the named service,
// or to every service when service is "". It does not replay the current
// state: to miss nothing, start watching before reading it. Events queue
// without bound until Next takes them, so a slow watcher costs memory, never
// a lost event. The watch ends when Stop is called or ctx ends.
func (r *memRegistry) Watch(ctx context.Context, service string) (registry.Watcher, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	w := watchq.New(service, r.forget)
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil, errClosed
	}
	r.watchers[w] = struct{}{}
	r.mu.Unlock()
	w.StopOnDone(ctx)
	return w, nil
}

// Close drops every service, ends every watch and stops the expiry timer.
// Other methods return an error wrapping registry.ErrClosed afterwards; a
// second Close returns nil.
func (r *memRegistry) Close() error {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil
	}
	r.closed = true
	clear(r.services)
	r.next = time.Time{}
	if r.timer != nil {
		r.timer.Stop()
	}
	watchers := r.watchers
	r.watchers = map[*watchq.Watcher]struct{}{}
	r.mu.Unlock()
	for w := range watchers {
		w.End()
	}
	return nil
}

// forget drops a stopped watcher. A watcher locks its own mutex after the
// registry's, so this runs outside the watcher's lock.
func (r *memRegistry) forget(w *watchq.Watcher) {
	r.mu.Lock()
	delete(r.watchers, w)
	r.mu.Unlock()
}

// dueLocked reports whether some node may have expired by now.
func (r *memRegistry) dueLocked(now time.Time) bool {
	return !r.next.IsZero() && !now.Before(r.next)
}

// expire removes the nodes expired by now; the timer and reads call it.
func (r *memRegistry) expire(now time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.expireLocked(now)
}

// expireLocked removes the nodes expired by now, tells watchers, and
// re-arms the timer for the next expiry.
func (r *memRegistry) expireLocked(now time.Time) {
	if !r.dueLocked(now) {
		return
	}
	var next time.Time
	for name, versions := range r.services {
		for version, e := range versions {
			var removed []*registry.Node
			for id, n := range e.nodes {
				switch {
				case n.expired(now):
					delete(e.nodes, id)
					removed = append(removed, n.Node)
				case !n.expires.IsZero() && (next.IsZero() || n.expires.Before(next)):
					next = n.expires
				}
			}
			if len(removed) > 0 {
				r.removeIfEmptyLocked(name, version, e)
				slices.SortFunc(removed, byID)
				r.notifyLocked(registry.Delete, name, version, e, removed)
			}
		}
	}
	r.next = next
	r.armLocked(now)
}

// armLocked sets the timer to fire at r.next, or stops it when no node has
// a TTL.
func (r *memRegistry) armLocked(now time.Time) {
	if r.next.IsZero() {
		if r.timer != nil {
			r.timer.Stop()
		}
		return
	}
	d := r.next.Sub(now)
	if r.timer == nil {
		r.timer = time.AfterFunc(d, func() { r.expire(time.Now()) })
		return
	}
	r.timer.Reset(d)
}

func (r *memRegistry) removeIfEmptyLocked(name, version string, e *entry) {
	if len(e.nodes) > 0 {
		return
	}
	delete(r.services[name], version)
	if len(r.services[name]) == 0 {
		delete(r.services, name)
	}
}

// notifyLocked queues a result for each interested watcher. Each gets its
// own deep copy, so one watcher's changes cannot reach another.
func (r *memRegistry) notifyLocked(a registry.Action, name, version string, e *entry, nodes []*registry.Node) {
	if len(r.watchers) == 0 {
		return
	}
	s := shared(name, version, e, nodes)
	for w := range r.watchers {
		if w.Wants(name) {
			w.Push(&registry.Result{Action: a, Service: s.Clone()})
		}
	}
}

// snapshot returns a deep copy of e without its expired nodes, or nil if
// none is live.
func snapshot(name, version string, e *entry, now time.Time) *registry.Service {
	nodes := sortedNodes(e.nodes, now)
	if len(nodes) == 0 {
		return nil
	}
	return shared(name, version, e, nodes).Clone()
}

// shared returns the service e holds with nodes, sharing e's values: clone
// it before it leaves the registry.
func shared(name, version string, e *entry, nodes []*registry.Node) *registry.Service {
	return &registry.Service{
		Name:      name,
		Version:   version,
		Metadata:  e.metadata,
		Endpoints: e.endpoints,
		Nodes:     nodes,
	}
}

// sortedNodes returns e's live nodes (not copies) ordered by ID.
func sortedNodes(nodes map[string]*node, now time.Time) []*registry.Node {
	out := make([]*registry.Node, 0, len(nodes))
	for _, n := range nodes {
		if !n.expired(now) {
			out = append(out, n.Node)
		}
	}
	slices.SortFunc(out, byID)
	return out
}

func byID(a, b *registry.Node) int { return cmp.Compare(a.ID, b.ID) }

func validate(s *registry.Service) error { return regvalid.Check("registry/memory", s) }

func sameNode(a, b *registry.Node) bool {
	return a.Address == b.Address && maps.Equal(a.Metadata, b.Metadata)
}

func sameEndpoint(a, b *registry.Endpoint) bool {
	if a == nil || b == nil {
		return a == b
	}
	return a.Name == b.Name && maps.Equal(a.Metadata, b.Metadata)
}

// notFoundError is the error of a lookup that found nothing. It says why
// a service running in another process is not found: a newcomer who set
// MICRO_REGISTRY=memory in two processes sees two registries.
type notFoundError string

func (e notFoundError) Error() string {
	return fmt.Sprintf("registry: service %q not found in the memory registry, which holds only this process's services; use mdns (the default) to find services in other processes", string(e))
}

func (e notFoundError) Unwrap() error { return registry.ErrNotFound }
