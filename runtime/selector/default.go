package selector

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/protoc-gen-micro/micro/runtime/registry"
)

// Ejection bounds: a node whose connection fails is ejected for minBackoff;
// each failure after an ejection ends doubles that, up to maxBackoff; a
// success once it has ended forgets the node's failures.
const (
	minBackoff = time.Second
	maxBackoff = 30 * time.Second
)

// While the registry's watch is down, the cache is refreshed from the
// registry and the watch retried, first after minRefresh, then after twice
// as long each time, up to maxRefresh. refreshTimeout bounds one lookup.
const (
	minRefresh     = time.Second
	maxRefresh     = 30 * time.Second
	refreshTimeout = 10 * time.Second
)

// errNoRegistry is returned by Select when the selector was built without a
// registry. There is deliberately no default: a selector silently reading an
// empty in-memory registry would fail every call with a misleading error.
var errNoRegistry = errors.New("selector: no registry configured (use selector.Registry)")

var errClosed = errors.New("selector: closed")

// NewSelector returns the default selector. It keeps the nodes of every
// service it is asked for in a cache: the first Select of a service looks
// it up in the registry, and from then on one watch of the whole registry,
// started with that first Select, keeps every cached service current, so
// Select costs no registry lookup. Should the watch fail, the cache is
// refreshed from the registry and the watch retried with a backoff from
// 1 s to 30 s.
//
// Select picks among the nodes of all versions of the service with the
// strategy set by SetStrategy (Random by default), skipping excluded
// addresses and ejected nodes. A node is ejected when Mark reports an error
// for it: for 1 s after its first failure, twice as long after each failure
// once an ejection has ended, up to 30 s; failures reported during an
// ejection, from calls that were already in flight, do not lengthen it,
// and a success after it has ended forgets the node's failures. When every
// node not excluded is ejected, Select picks among them anyway: a node that
// may have recovered is better than failing the call without trying.
// Ejections are kept per service and node address.
//
// The selector needs a registry (see Registry); without one, Select fails.
// Close stops the watch.
func NewSelector(opts ...Option) Selector {
	var o Options
	for _, opt := range opts {
		opt(&o)
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &selector{
		registry:   o.Registry,
		strategy:   o.Strategy,
		now:        time.Now,
		minRefresh: minRefresh,
		maxRefresh: maxRefresh,
		ctx:        ctx,
		cancel:     cancel,
	}
	s.services.Store(&map[string]*service{})
	return s
}

type selector struct {
	registry   registry.Registry
	strategy   Strategy
	now        func() time.Time // the ejection clock; tests set it
	minRefresh time.Duration    // tests shorten these
	maxRefresh time.Duration

	// services is replaced whole when a service is first asked for, so
	// Select and Mark find a service without a lock.
	services atomic.Pointer[map[string]*service]
	closed   atomic.Bool

	mu       sync.Mutex // guards changes to services, and the fields below
	watching bool       // the watch goroutine has been started
	watcher  registry.Watcher
	ctx      context.Context // ends with Close
	cancel   context.CancelFunc
	wg       sync.WaitGroup // the watch goroutine
}

func (s *selector) String() string { return s.strategy.String() }

// Close stops the watch and waits for its goroutine to end. Select fails
// afterwards.
func (s *selector) Close() error {
	s.mu.Lock()
	if s.closed.Load() {
		s.mu.Unlock()
		return nil
	}
	s.closed.Store(true)
	w := s.watcher
	s.watcher = nil
	s.mu.Unlock()
	s.cancel()
	if w != nil {
		w.Stop()
	}
	s.wg.Wait()
	return nil
}

func (s *selector) Select(ctx context.Context, name string, exclude []string) (*registry.Node, error) {
	if s.closed.Load() {
		return nil, errClosed
	}
	svc := (*s.services.Load())[name]
	var snap *snapshot
	if svc != nil {
		snap = svc.snap.Load()
	}
	if snap == nil {
		var err error
		if svc, snap, err = s.load(ctx, name); err != nil {
			return nil, err
		}
	}
	if len(snap.nodes) == 0 {
		return nil, fmt.Errorf("%w: service %q: %w", ErrNoneAvailable, name, registry.ErrNotFound)
	}
	// While no node of the service has failed, no clock is read.
	var now int64
	if svc.ejected.Load() > 0 {
		now = s.now().UnixNano()
	}
	i := s.pick(ctx, svc, snap.nodes, exclude, now)
	if i < 0 && now != 0 {
		// Every node left is ejected: trying one that may have recovered
		// beats failing the call untried.
		i = s.pick(ctx, svc, snap.nodes, exclude, 0)
	}
	if i < 0 {
		return nil, fmt.Errorf("%w: service %q: all %d nodes excluded", ErrNoneAvailable, name, len(snap.nodes))
	}
	e := &snap.nodes[i]
	if s.strategy == LeastRequest {
		e.state.inflight.Add(1)
	}
	return e.node, nil
}

func (s *selector) Mark(name string, node *registry.Node, err error) {
	if node == nil {
		return
	}
	svc := (*s.services.Load())[name]
	if svc == nil || err == nil && s.strategy != LeastRequest && svc.ejected.Load() == 0 {
		return
	}
	snap := svc.snap.Load()
	if snap == nil {
		return
	}
	st := snap.byAddr[node.Address]
	if st == nil {
		return // the node has left the registry since
	}
	if s.strategy == LeastRequest {
		st.release()
	}
	switch {
	case err != nil:
		svc.fail(node.Address, s.now())
	case st.until.Load() != 0:
		svc.succeed(node.Address, s.now())
	}
}

// load returns the service's cache entry and snapshot, looking the service
// up in the registry the first time. Concurrent first Selects share one
// lookup; a lookup that fails is not cached.
func (s *selector) load(ctx context.Context, name string) (*service, *snapshot, error) {
	if s.registry == nil {
		return nil, nil, errNoRegistry
	}
	svc, err := s.service(name)
	if err != nil {
		return nil, nil, err
	}
	for {
		if snap := svc.snap.Load(); snap != nil {
			return svc, snap, nil
		}
		svc.mu.Lock()
		if svc.snap.Load() != nil {
			svc.mu.Unlock()
			continue
		}
		if ch := svc.loading; ch != nil {
			svc.mu.Unlock()
			select {
			case <-ch:
				continue // loaded, or failed: then try ourselves
			case <-ctx.Done():
				return nil, nil, fmt.Errorf("selector: looking up service %q: %w", name, ctx.Err())
			}
		}
		ch := make(chan struct{})
		svc.loading = ch
		svc.mu.Unlock()

		versions, err := s.registry.GetService(ctx, name)

		svc.mu.Lock()
		svc.loading = nil
		close(ch)
		pending := svc.pending
		svc.pending = nil
		if err != nil && !errors.Is(err, registry.ErrNotFound) {
			svc.mu.Unlock()
			return nil, nil, fmt.Errorf("selector: looking up service %q: %w", name, err)
		}
		// A service not found is cached empty: the watch fills it in
		// when it appears.
		svc.resetLocked(versions)
		// Changes seen while the lookup ran may or may not be in its
		// answer; applied again in order, they leave the right state.
		for _, r := range pending {
			svc.applyLocked(r)
		}
		snap := svc.publishLocked()
		svc.mu.Unlock()
		return svc, snap, nil
	}
}

// service returns the cache entry of the named service, adding an empty
// one if there is none. The first call starts the watch, before any
// service is looked up, so no change after a lookup goes unseen.
func (s *selector) service(name string) (*service, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed.Load() {
		return nil, errClosed
	}
	if !s.watching {
		s.watching = true
		w := s.watchLocked()
		s.wg.Add(1)
		go s.run(w)
	}
	old := *s.services.Load()
	if svc := old[name]; svc != nil {
		return svc, nil
	}
	svc := &service{name: name}
	next := make(map[string]*service, len(old)+1)
	for k, v := range old {
		next[k] = v
	}
	next[name] = svc
	s.services.Store(&next)
	return svc, nil
}
