package direct

import (
	"context"
	"log/slog"
	"strconv"
	"sync/atomic"

	"github.com/protoc-gen-micro/micro/internal/cache"
	"github.com/protoc-gen-micro/micro/internal/cowmap"
	"github.com/protoc-gen-micro/micro/runtime/broker/internal/engine"
	"github.com/protoc-gen-micro/micro/runtime/client"
)

// topics finds the subscriptions of the topics a broker publishes to in a
// registry cache, the one the RPC selector reads (see package
// registry/cache): a publication costs no registry round trip, and one
// watch keeps every topic current. Each topic's engine.Targets are derived
// from the cache's Snapshot of its registry service and rebuilt only when
// that snapshot changes.
type topics struct {
	cache *cache.Cache // the registry's shared cache; closed with the broker
	log   *slog.Logger

	views cowmap.Map[string, *topicView] // by topic
}

type topicView struct {
	service string // serviceName(topic)
	targets cache.View[*engine.Targets]
	told    atomic.Bool // the log has said the topic had no subscriber
}

func newTopics(c *cache.Cache, log *slog.Logger) *topics {
	return &topics{cache: c, log: log}
}

// targets returns the subscriptions of topic.
func (t *topics) targets(ctx context.Context, topic string) (*engine.Targets, error) {
	v, ok := t.views.Load(topic)
	if !ok {
		v = t.views.LoadOrAdd(topic, func() *topicView { return &topicView{service: serviceName(topic)} })
	}
	snap, err := t.cache.Get(ctx, v.service)
	if err != nil {
		return nil, err
	}
	ts := v.targets.Get(t.cache, snap, buildTargets)
	if ts.Len() == 0 && !v.told.Load() && !v.told.Swap(true) {
		t.logNoSubscriber(topic, snap)
	}
	return ts, nil
}

// logNoSubscriber says, once per topic and at the default log level, that
// a publication found no subscriber, and where they were sought: the
// usual cause is discovery split between processes, silent otherwise.
func (t *topics) logNoSubscriber(topic string, snap *cache.Snapshot) {
	reg := t.cache.Registry()
	attrs := []any{"topic", topic, "registry", reg.String()}
	if reg.String() == "memory" {
		attrs = append(attrs, "hint", "the memory registry holds only this process's subscriptions: subscribers in other processes are invisible to it; use mdns (the default) to find them")
	} else {
		if snap.NotFound != nil {
			attrs = append(attrs, "lookup", snap.NotFound.Error())
		}
		attrs = append(attrs, "hint", "publishers and subscribers find each other only through the same registry (MICRO_REGISTRY)")
	}
	t.log.Info("broker/direct: no subscriber found for topic; messages published to it are dropped", attrs...)
}

// buildTargets derives a topic's Targets from its snapshot, carrying over
// what old knew of the subscriptions that stay: outboxes, messages in
// flight, ejections.
func buildTargets(snap *cache.Snapshot, old *engine.Targets) *engine.Targets {
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
	return engine.NewTargets(infos, old)
}

func (t *topics) close() {
	t.cache.Close()
}
