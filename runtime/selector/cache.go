package selector

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/protoc-gen-micro/micro/internal/cache"
	"github.com/protoc-gen-micro/micro/internal/rendezvous"
	"github.com/protoc-gen-micro/micro/runtime/registry"
)

// service is what the selector keeps of one service besides the registry
// cache's Snapshot: a view of the snapshot's nodes with what calls taught
// it about them. Select reads the view without a lock; the view is rebuilt
// when the cache's snapshot changes.
type service struct {
	name    string
	rr      atomic.Uint64 // round-robin position
	ejected atomic.Int32  // nodes in view with failures; while 0, Select reads no clock
	view    cache.View[*view]

	mu sync.Mutex // serialises rebuilding the view and changes to ejections
}

// view is an immutable view of a service's nodes, derived from one
// registry cache Snapshot, so that Select needs no lock and no map: nodes
// is sorted by address, one entry per address.
type view struct {
	nodes  []entry
	byAddr map[string]*nodeState // for Mark
}

type entry struct {
	node  *registry.Node
	hash  uint64 // of the address, for ConsistentHash
	state *nodeState
}

// nodeState is what the selector learns about a node from calls. It is
// carried from snapshot to snapshot while the node's address stays.
type nodeState struct {
	inflight atomic.Int32 // LeastRequest: calls between Select and Mark
	// until is when the node's ejection ends, in Unix nanoseconds of the
	// selector's clock, or 0 if the node has not failed since its last
	// success. A node is ejected while until is ahead of the clock.
	until   atomic.Int64
	backoff time.Duration // the current ejection's length; guarded by service.mu
}

// release ends a call counted in flight, never going below zero: a node
// that left and came back starts a new count that older calls must not
// drive negative.
func (st *nodeState) release() {
	for {
		n := st.inflight.Load()
		if n <= 0 || st.inflight.CompareAndSwap(n, n-1) {
			return
		}
	}
}

// rebuild derives the view of snap, carrying over from old the state of
// addresses that stay; cache.View calls it when the snapshot changes.
func (svc *service) rebuild(snap *cache.Snapshot, old *view) *view {
	svc.mu.Lock()
	defer svc.mu.Unlock()
	v := &view{nodes: make([]entry, 0, len(snap.Nodes)), byAddr: make(map[string]*nodeState, len(snap.Nodes))}
	var ejected int32
	for _, n := range snap.Nodes {
		if _, dup := v.byAddr[n.Address]; dup {
			continue // the same address in two versions is one node
		}
		var st *nodeState
		if old != nil {
			st = old.byAddr[n.Address]
		}
		if st == nil {
			st = &nodeState{}
		}
		if st.until.Load() != 0 {
			ejected++
		}
		v.byAddr[n.Address] = st
		v.nodes = append(v.nodes, entry{node: n, hash: rendezvous.Hash(n.Address), state: st})
	}
	// A failure reported between this and the view's publication counts
	// in the old view's state; should that node have left, the count is
	// one too high until the next rebuild, which only makes Select read
	// the clock.
	svc.ejected.Store(ejected)
	return v
}

// fail ejects the node at addr after a failed call.
func (svc *service) fail(addr string, now time.Time) {
	svc.mu.Lock()
	defer svc.mu.Unlock()
	st := svc.current(addr)
	if st == nil {
		return
	}
	t := now.UnixNano()
	switch until := st.until.Load(); {
	case until == 0:
		st.backoff = minBackoff
		svc.ejected.Add(1)
	case t < until:
		// Calls that were in flight when the node failed report it too;
		// they do not lengthen its ejection.
		return
	default:
		st.backoff = min(2*st.backoff, maxBackoff)
	}
	st.until.Store(t + int64(st.backoff))
}

// succeed forgets the failures of the node at addr once its ejection has
// ended. A success reported during the ejection comes from a call that
// started before it, and says nothing about the node now.
func (svc *service) succeed(addr string, now time.Time) {
	svc.mu.Lock()
	defer svc.mu.Unlock()
	st := svc.current(addr)
	if st == nil {
		return
	}
	if until := st.until.Load(); until == 0 || now.UnixNano() < until {
		return
	}
	st.until.Store(0)
	st.backoff = 0
	svc.ejected.Add(-1)
}

// current returns the state of addr in the current view; svc.mu held.
func (svc *service) current(addr string) *nodeState {
	if v, ok := svc.view.Last(); ok {
		return v.byAddr[addr]
	}
	return nil
}
