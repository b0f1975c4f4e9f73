package selector

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/protoc-gen-micro/micro/runtime/registry"
)

// Backoff bounds for a node marked as failed: the first failure sidelines it
// for minBackoff, each failure after a backoff ends doubles that up to
// maxBackoff, and a success forgets it.
const (
	minBackoff = time.Second
	maxBackoff = 30 * time.Second
)

// errNoRegistry is returned by Select when the selector was built without a
// registry. There is deliberately no default: a selector silently reading an
// empty in-memory registry would fail every call with a misleading error.
var errNoRegistry = errors.New("selector: no registry configured (use selector.Registry)")

// Options configures NewSelector.
type Options struct {
	// Registry is where Select looks services up. Required.
	Registry registry.Registry
}

// Option sets a selector option.
type Option func(*Options)

// Registry sets the registry Select looks services up in.
func Registry(r registry.Registry) Option { return func(o *Options) { o.Registry = r } }

// strategy picks one of nodes whose Address is not in exclude. It is the
// seam where round-robin, power-of-two-choices and consistent hashing will
// plug in, together with a watch-fed node cache, when service discovery
// grows beyond a registry lookup per call.
type strategy func(nodes []*registry.Node, exclude []string) (*registry.Node, bool)

// NewSelector returns the default selector: on every Select it asks the
// registry for the service, takes the nodes of all its versions, and picks
// one at random, skipping excluded addresses and, while any other node is
// left, nodes in backoff after a failure reported with Mark (backoff is
// kept per address, whichever service the failed call was for). It needs a
// registry (see Registry); without one, Select fails.
//
// This is the minimal strategy. Round-robin, power-of-two-choices,
// consistent hashing and a watch-fed node cache, which spares the registry a
// lookup per call, come with service discovery.
func NewSelector(opts ...Option) Selector {
	var o Options
	for _, opt := range opts {
		opt(&o)
	}
	return &selector{
		registry: o.Registry,
		pick:     Random,
		now:      time.Now,
		failed:   map[string]*failure{},
	}
}

type selector struct {
	registry registry.Registry
	pick     strategy
	now      func() time.Time

	// nfailed mirrors len(failed) so that the common case, no node in
	// backoff, costs Select and Mark(nil) no lock.
	nfailed atomic.Int32
	mu      sync.Mutex
	failed  map[string]*failure // by node address
}

// failure is a node's backoff state.
type failure struct {
	until   time.Time     // skipped until then
	backoff time.Duration // length of the current backoff
}

func (s *selector) String() string { return "random" }

// Close releases nothing yet; the selector holds no watcher or cache.
func (s *selector) Close() error { return nil }

func (s *selector) Select(ctx context.Context, service string, exclude []string) (*registry.Node, error) {
	if s.registry == nil {
		return nil, errNoRegistry
	}
	services, err := s.registry.GetService(ctx, service)
	switch {
	case errors.Is(err, registry.ErrNotFound):
		return nil, fmt.Errorf("%w: service %q: %w", ErrNoneAvailable, service, err)
	case err != nil:
		return nil, fmt.Errorf("selector: looking up service %q: %w", service, err)
	}
	nodes := services[0].Nodes
	if len(services) > 1 {
		nodes = nil
		for _, v := range services {
			nodes = append(nodes, v.Nodes...)
		}
	}
	if len(nodes) == 0 {
		return nil, fmt.Errorf("%w: service %q has no nodes", ErrNoneAvailable, service)
	}
	if skip := s.backedOff(exclude); skip != nil {
		if n, ok := s.pick(nodes, skip); ok {
			return n, nil
		}
	}
	// Nodes in backoff are still better than none.
	if n, ok := s.pick(nodes, exclude); ok {
		return n, nil
	}
	return nil, fmt.Errorf("%w: service %q: all %d nodes excluded", ErrNoneAvailable, service, len(nodes))
}

// backedOff returns exclude plus the addresses in backoff, or nil when no
// address is.
func (s *selector) backedOff(exclude []string) []string {
	if s.nfailed.Load() == 0 {
		return nil
	}
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	var skip []string
	for addr, f := range s.failed {
		if now.Before(f.until) {
			if skip == nil {
				skip = slices.Clip(exclude)
			}
			skip = append(skip, addr)
		}
	}
	return skip
}

func (s *selector) Mark(service string, node *registry.Node, err error) {
	if node == nil {
		return
	}
	if err == nil {
		if s.nfailed.Load() == 0 {
			return
		}
		s.mu.Lock()
		delete(s.failed, node.Address)
		s.nfailed.Store(int32(len(s.failed)))
		s.mu.Unlock()
		return
	}
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	f := s.failed[node.Address]
	switch {
	case f == nil:
		f = &failure{backoff: minBackoff}
		s.failed[node.Address] = f
	case now.Before(f.until):
		// Calls that were in flight when the node failed report it too;
		// they do not lengthen the backoff.
		return
	default:
		f.backoff = min(2*f.backoff, maxBackoff)
	}
	f.until = now.Add(f.backoff)
	// Forget nodes that have not failed for a long while, such as nodes
	// that left the registry and were never picked again.
	for addr, old := range s.failed {
		if now.Sub(old.until) > maxBackoff {
			delete(s.failed, addr)
		}
	}
	s.nfailed.Store(int32(len(s.failed)))
}

// Random returns a node chosen uniformly at random among nodes whose Address
// is not in exclude, and false if there is none. It does not allocate. The
// selector picks with it, and the client uses it to choose among addresses
// given with a call.
func Random(nodes []*registry.Node, exclude []string) (*registry.Node, bool) {
	n := 0
	for _, node := range nodes {
		if eligible(node, exclude) {
			n++
		}
	}
	if n == 0 {
		return nil, false
	}
	// The top-level functions of math/rand/v2 use a per-thread source: no
	// lock is shared between concurrent calls.
	k := rand.IntN(n)
	for _, node := range nodes {
		if eligible(node, exclude) {
			if k == 0 {
				return node, true
			}
			k--
		}
	}
	panic("unreachable")
}

func eligible(n *registry.Node, exclude []string) bool {
	return n != nil && !slices.Contains(exclude, n.Address)
}
