package direct

import (
	"context"
	"github.com/protoc-gen-micro/micro/internal/cowmap"
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/protoc-gen-micro/micro/runtime/broker/internal/engine"
	"github.com/protoc-gen-micro/micro/runtime/client"
	"github.com/protoc-gen-micro/micro/runtime/registry/cache"
)

// topics finds the subscriptions of the topics a broker publishes to in a
// registry cache, the one the RPC selector reads (see package
// registry/cache): a publication costs no registry round trip, and one
// watch keeps every topic current. Each topic's engine.Targets are derived
// from the cache's Snapshot of its registry service and rebuilt only when
// that snapshot changes.
type topics struct {
	cache *cache.Cache
	own   bool // made by the broker, closed with it

	views cowmap.Map[string, *topicView] // by topic
}

type topicView struct {
	service string // ServiceName(topic)
	cur     atomic.Pointer[derived]
	mu      sync.Mutex // serialises rebuilds
}

// derived is a topic's Targets and the snapshot they were built from.
type derived struct {
	src *cache.Snapshot
	ts  *engine.Targets
}

func newTopics(c *cache.Cache, own bool) *topics {
	return &topics{cache: c, own: own}
}

// targets returns the subscriptions of topic.
func (t *topics) targets(ctx context.Context, topic string) (*engine.Targets, error) {
	v, ok := t.views.Load(topic)
	if !ok {
		v = t.views.LoadOrAdd(topic, func() *topicView { return &topicView{service: ServiceName(topic)} })
	}
	snap, err := t.cache.Get(ctx, v.service)
	if err != nil {
		return nil, err
	}
	if d := v.cur.Load(); d != nil && d.src == snap {
		return d.ts, nil
	}
	return v.rebuild(t.cache, snap), nil
}

// rebuild derives the topic's Targets from the latest snapshot (snap, or a
// newer one the cache has), carrying over what the old Targets knew of the
// subscriptions that stay: outboxes, messages in flight, ejections.
func (v *topicView) rebuild(c *cache.Cache, snap *cache.Snapshot) *engine.Targets {
	v.mu.Lock()
	defer v.mu.Unlock()
	if latest := c.Current(v.service); latest != nil {
		snap = latest
	}
	old := v.cur.Load()
	if old != nil && old.src == snap {
		return old.ts
	}
	infos := make([]engine.TargetInfo, 0, len(snap.Nodes))
	seen := make(map[string]bool, len(snap.Nodes))
	for _, n := range snap.Nodes {
		if seen[n.ID] {
			continue // one subscription under two versions
		}
		seen[n.ID] = true
		window, _ := strconv.Atoi(n.Metadata[metaMaxInFlight])
		infos = append(infos, engine.TargetInfo{
			ID:      n.ID,
			Group:   n.Metadata[metaQueue],
			Address: n.Address,
			Window:  window,
			// Built once per change, so that a delivery allocates no
			// call options.
			Handle: []client.CallOption{client.WithAddress(n.Address), client.WithRetries(0)},
		})
	}
	var prev *engine.Targets
	if old != nil {
		prev = old.ts
	}
	ts := engine.NewTargets(infos, prev)
	v.cur.Store(&derived{src: snap, ts: ts})
	return ts
}

func (t *topics) close() {
	if t.own {
		t.cache.Close()
	}
}
