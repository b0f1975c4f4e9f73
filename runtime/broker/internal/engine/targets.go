// Package engine is what the broker implementations share: the publisher
// side (targets, queue-group choice, batching outboxes, redelivery) and the
// subscriber side (admission, concurrency, acknowledgement). An
// implementation supplies where subscriptions are (a Resolve function) and
// how a batch of messages reaches one (a Link).
package engine

import (
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/protoc-gen-micro/micro/internal/rendezvous"
)

// TargetInfo describes one subscription, as a resolver found it.
type TargetInfo struct {
	// ID identifies the subscription, unique across brokers.
	ID string
	// Group is its queue group; "" for none.
	Group string
	// Address is where it is served; "" within the process.
	Address string
	// Handle is what the Link needs to reach it.
	Handle any
	// Window is how many deliveries it accepts at once (its MaxInFlight);
	// 0 when unknown. A publisher keeps no more than that in flight to
	// it, and queues the rest.
	Window int
}

// Targets is an immutable view of a topic's subscriptions.
type Targets struct {
	// All are the subscriptions without a queue group, each a target.
	All []*Target
	// Groups are the queue groups, each a target, sorted by name.
	Groups []*Group
}

// Len returns the number of targets: group-less subscriptions plus groups.
func (ts *Targets) Len() int {
	if ts == nil {
		return 0
	}
	return len(ts.All) + len(ts.Groups)
}

func (ts *Targets) group(name string) *Group {
	if ts == nil {
		return nil
	}
	i, ok := slices.BinarySearchFunc(ts.Groups, name, func(g *Group, n string) int { return strings.Compare(g.Name, n) })
	if !ok {
		return nil
	}
	return ts.Groups[i]
}

// Group is a queue group and its members, sorted by ID.
type Group struct {
	Name    string
	Members []*Target
	rr      atomic.Uint64
}

// Target is one subscription with what the publisher learns about it.
type Target struct {
	TargetInfo
	hash uint64 // rendezvous.Hash of the ID, for rendezvous hashing
	st   *state
}

// state is carried from one Targets to the next while the subscription
// stays, so that a change to a topic keeps outboxes and ejections.
type state struct {
	inflight atomic.Int32 // messages queued or sent, not yet answered
	until    atomic.Int64 // end of the ejection in Unix ns; 0 when not ejected

	mu      sync.Mutex
	backoff time.Duration // the current ejection's length
	queue   outbox        // messages waiting for a sender
	senders int           // senders draining queue
	sent    int           // messages in batches in flight
}

// NewTargets builds a view of infos, carrying over what old knew of the
// subscriptions that stay.
func NewTargets(infos []TargetInfo, old *Targets) *Targets {
	prev := map[string]*state{}
	if old != nil {
		for _, t := range old.All {
			prev[t.ID] = t.st
		}
		for _, g := range old.Groups {
			for _, t := range g.Members {
				prev[t.ID] = t.st
			}
		}
	}
	ts := &Targets{}
	groups := map[string]*Group{}
	for _, info := range infos {
		st := prev[info.ID]
		if st == nil {
			st = &state{}
		}
		t := &Target{TargetInfo: info, hash: rendezvous.Hash(info.ID), st: st}
		if info.Group == "" {
			ts.All = append(ts.All, t)
			continue
		}
		g := groups[info.Group]
		if g == nil {
			g = &Group{Name: info.Group}
			groups[info.Group] = g
			ts.Groups = append(ts.Groups, g)
		}
		g.Members = append(g.Members, t)
	}
	byID := func(a, b *Target) int { return strings.Compare(a.ID, b.ID) }
	slices.SortFunc(ts.All, byID)
	slices.SortFunc(ts.Groups, func(a, b *Group) int { return strings.Compare(a.Name, b.Name) })
	for _, g := range ts.Groups {
		slices.SortFunc(g.Members, byID)
	}
	return ts
}
