package selector

import (
	"cmp"
	"context"
	"errors"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/protoc-gen-micro/micro/runtime/registry"
)

// service is the cache entry of one service. Select reads its snapshot
// without a lock; changes build a new snapshot under mu.
type service struct {
	name    string
	rr      atomic.Uint64 // round-robin position
	ejected atomic.Int32  // nodes in snap with failures; while 0, Select reads no clock
	snap    atomic.Pointer[snapshot]

	mu      sync.Mutex
	nodes   map[nodeKey]*registry.Node // what the registry says
	loading chan struct{}              // closed when a lookup in flight ends
	pending []*registry.Result         // changes seen while loading
}

type nodeKey struct{ version, id string }

// snapshot is an immutable view of a service's nodes, replaced whole on
// every change so that Select needs no lock and no map: nodes is sorted by
// address, one entry per address.
type snapshot struct {
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

func keyOf(version string, n *registry.Node) nodeKey {
	id := n.ID
	if id == "" {
		id = n.Address
	}
	return nodeKey{version, id}
}

// resetLocked replaces what the registry says with versions.
func (svc *service) resetLocked(versions []*registry.Service) {
	svc.nodes = map[nodeKey]*registry.Node{}
	for _, v := range versions {
		if v == nil {
			continue
		}
		for _, n := range v.Nodes {
			if n != nil {
				svc.nodes[keyOf(v.Version, n)] = n
			}
		}
	}
}

// applyLocked applies a watch result: Create and Update add or replace the
// nodes they carry, Delete removes them (all of the version's when it
// carries none). Applying a result twice, or one already reflected in a
// lookup, changes nothing.
func (svc *service) applyLocked(r *registry.Result) {
	v := r.Service
	switch r.Action {
	case registry.Create, registry.Update:
		for _, n := range v.Nodes {
			if n != nil {
				svc.nodes[keyOf(v.Version, n)] = n
			}
		}
	case registry.Delete:
		if len(v.Nodes) == 0 {
			for k := range svc.nodes {
				if k.version == v.Version {
					delete(svc.nodes, k)
				}
			}
		}
		for _, n := range v.Nodes {
			if n != nil {
				delete(svc.nodes, keyOf(v.Version, n))
			}
		}
	}
}

// publishLocked builds and publishes a snapshot of svc.nodes, carrying
// over the state of addresses that stay.
func (svc *service) publishLocked() *snapshot {
	old := svc.snap.Load()
	list := make([]*registry.Node, 0, len(svc.nodes))
	for _, n := range svc.nodes {
		if n.Address != "" {
			list = append(list, n)
		}
	}
	slices.SortFunc(list, func(a, b *registry.Node) int {
		return cmp.Or(cmp.Compare(a.Address, b.Address), cmp.Compare(a.ID, b.ID))
	})
	snap := &snapshot{nodes: make([]entry, 0, len(list)), byAddr: make(map[string]*nodeState, len(list))}
	var ejected int32
	for _, n := range list {
		if _, dup := snap.byAddr[n.Address]; dup {
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
		snap.byAddr[n.Address] = st
		snap.nodes = append(snap.nodes, entry{node: n, hash: hashString(n.Address), state: st})
	}
	svc.ejected.Store(ejected)
	svc.snap.Store(snap)
	return snap
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

// current returns the state of addr in the current snapshot; svc.mu held.
func (svc *service) current(addr string) *nodeState {
	if snap := svc.snap.Load(); snap != nil {
		return snap.byAddr[addr]
	}
	return nil
}

// watchLocked starts a watch of the whole registry and keeps it for Close,
// or returns nil if the registry refuses or the selector is closed; s.mu
// held. One watch serves every service: one goroutine and one registry
// subscription however many services are called, started before the first
// lookup so that no change is missed between lookups of different services.
func (s *selector) watchLocked() registry.Watcher {
	if s.closed.Load() {
		return nil
	}
	w, err := s.registry.Watch(s.ctx)
	if err != nil {
		return nil
	}
	s.watcher = w
	return w
}

// run applies the watch's changes to the cache. When the watch ends or
// cannot start, it refreshes the cache from the registry and retries the
// watch with a backoff, until Close.
func (s *selector) run(w registry.Watcher) {
	defer s.wg.Done()
	fails := 0
	for {
		if w != nil {
			started := time.Now()
			s.follow(w)
			s.mu.Lock()
			mine := s.watcher == w // else Close has taken it to stop it
			if mine {
				s.watcher = nil
			}
			s.mu.Unlock()
			if mine {
				w.Stop()
			}
			if time.Since(started) > s.maxRefresh {
				fails = 0
			}
		}
		if s.ctx.Err() != nil {
			return
		}
		// Without a watch, changes go unseen: read them from the registry.
		s.refresh()
		wait := s.maxRefresh
		if fails < 16 {
			wait = min(s.minRefresh<<fails, s.maxRefresh)
			fails++
		}
		t := time.NewTimer(wait)
		select {
		case <-s.ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		s.mu.Lock()
		w = s.watchLocked()
		s.mu.Unlock()
		if w != nil {
			// Changes between the last refresh and the new watch.
			s.refresh()
		}
	}
}

// follow applies the watcher's results until it fails or stops.
func (s *selector) follow(w registry.Watcher) {
	for {
		r, err := w.Next()
		if err != nil {
			return
		}
		if r == nil || r.Service == nil {
			continue
		}
		svc := (*s.services.Load())[r.Service.Name]
		if svc == nil {
			continue // not cached: its first lookup will see the change
		}
		svc.mu.Lock()
		switch {
		case svc.loading != nil:
			svc.pending = append(svc.pending, r)
		case svc.snap.Load() != nil:
			svc.applyLocked(r)
			svc.publishLocked()
		}
		// Neither: the last lookup failed; the next one starts afresh.
		svc.mu.Unlock()
	}
}

// refresh looks every cached service up again. A lookup that fails keeps
// what the cache had.
func (s *selector) refresh() {
	for _, svc := range *s.services.Load() {
		if s.ctx.Err() != nil {
			return
		}
		ctx, cancel := context.WithTimeout(s.ctx, refreshTimeout)
		versions, err := s.registry.GetService(ctx, svc.name)
		cancel()
		if err != nil && !errors.Is(err, registry.ErrNotFound) {
			continue
		}
		svc.mu.Lock()
		// A service being looked up by Select gets fresh nodes from that.
		if svc.loading == nil && svc.snap.Load() != nil {
			svc.resetLocked(versions)
			svc.publishLocked()
		}
		svc.mu.Unlock()
	}
}
