package selector

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/protoc-gen-micro/micro/internal/cache"
	"github.com/protoc-gen-micro/micro/internal/cowmap"
	"github.com/protoc-gen-micro/micro/runtime/registry"
)

// Ejection bounds: a node whose connection fails is ejected for minBackoff;
// each failure after an ejection ends doubles that, up to maxBackoff; a
// success once it has ended forgets the node's failures.
const (
	minBackoff = time.Second
	maxBackoff = 30 * time.Second
)

var errClosed = errors.New("selector: closed")

// NewSelector returns the default selector, which finds the nodes of a
// service in r. It reads them from a cache kept current by one watch of r,
// which every selector and broker of r in the process shares: the cache
// looks a service up on its first Select and from then on keeps it
// current, so Select costs no registry lookup.
//
// Select picks among the nodes of all versions of the service with the
// strategy set by WithStrategy (Random by default), skipping excluded
// addresses and ejected nodes. A node is ejected when Mark reports an error
// for it: for 1 s after its first failure, twice as long after each failure
// once an ejection has ended, up to 30 s; failures reported during an
// ejection, from calls that were already in flight, do not lengthen it,
// and a success after it has ended forgets the node's failures. When every
// node not excluded is ejected, Select picks among them anyway: a node that
// may have recovered is better than failing the call without trying.
// Ejections are kept per service and node address.
//
// Close lets go of the shared cache; r stays open for its other users.
// NewSelector panics if r is nil.
func NewSelector(r registry.Registry, opts ...Option) Selector {
	if r == nil {
		panic("selector: NewSelector with a nil registry")
	}
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	return &selector{strategy: o.strategy, now: time.Now, cache: cache.Shared(r)}
}

type selector struct {
	cache    *cache.Cache // shared with the other users of the registry
	strategy Strategy
	now      func() time.Time // the ejection clock; tests set it

	services cowmap.Map[string, *service] // Select and Mark find a service without a lock
	closed   atomic.Bool
}

func (s *selector) String() string { return s.strategy.String() }

// Close lets go of the selector's registry cache. Select fails afterwards.
func (s *selector) Close() error {
	if s.closed.Swap(true) {
		return nil
	}
	return s.cache.Close()
}

func (s *selector) Select(ctx context.Context, name string, exclude []string) (*registry.Node, error) {
	if s.closed.Load() {
		return nil, errClosed
	}
	snap, err := s.cache.Get(ctx, name)
	if err != nil {
		return nil, fmt.Errorf("selector: %w", err)
	}
	svc, ok := s.services.Load(name)
	if !ok {
		svc = s.services.LoadOrAdd(name, func() *service { return &service{name: name} })
	}
	v := svc.view.Get(s.cache, snap, svc.rebuild)
	if len(v.nodes) == 0 {
		if snap.NotFound != nil {
			// The registry's own explanation, such as what mDNS queried.
			return nil, fmt.Errorf("%w: %w", ErrNoneAvailable, snap.NotFound)
		}
		return nil, fmt.Errorf("%w: service %q: %w", ErrNoneAvailable, name, registry.ErrNotFound)
	}
	// While no node of the service has failed, no clock is read.
	var now int64
	if svc.ejected.Load() > 0 {
		now = s.now().UnixNano()
	}
	i := s.pick(ctx, svc, v.nodes, exclude, now)
	if i < 0 && now != 0 {
		// Every node left is ejected: trying one that may have recovered
		// beats failing the call untried.
		i = s.pick(ctx, svc, v.nodes, exclude, 0)
	}
	if i < 0 {
		return nil, fmt.Errorf("%w: service %q: all %d nodes excluded", ErrNoneAvailable, name, len(v.nodes))
	}
	e := &v.nodes[i]
	if s.strategy == LeastRequest {
		e.state.inflight.Add(1)
	}
	return e.node, nil
}

func (s *selector) Mark(name string, node *registry.Node, err error) {
	if node == nil {
		return
	}
	svc, ok := s.services.Load(name)
	if !ok || err == nil && s.strategy != LeastRequest && svc.ejected.Load() == 0 {
		return
	}
	v, ok := svc.view.Last()
	if !ok {
		return
	}
	st := v.byAddr[node.Address]
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
