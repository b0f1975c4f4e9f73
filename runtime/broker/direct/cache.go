package direct

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/protoc-gen-micro/micro/runtime/broker/internal/engine"
	"github.com/protoc-gen-micro/micro/runtime/client"
	"github.com/protoc-gen-micro/micro/runtime/registry"
)

// While the registry's watch is down, the cache is refreshed from the
// registry and the watch retried, after minRefresh, then twice as long each
// time up to maxRefresh. refreshTimeout bounds one lookup.
const (
	minRefresh     = time.Second
	maxRefresh     = 30 * time.Second
	refreshTimeout = 10 * time.Second
)

var errClosed = errors.New("broker/direct: closed")

// cache keeps the subscriptions of every topic a broker publishes to, as
// engine.Targets. The first publication to a topic looks it up in the
// registry; from then on one watch of the whole registry, started with the
// first lookup, keeps every cached topic current, so that a publication
// costs no registry round trip. It follows the selector's cache (package
// selector), which keeps nodes per service but cannot list them.
type cache struct {
	reg registry.Registry

	topics atomic.Pointer[map[string]*topicEntry] // by topic; replaced whole

	mu       sync.Mutex
	watching bool
	watcher  registry.Watcher
	closed   bool
	ctx      context.Context
	cancel   context.CancelFunc
	wg       sync.WaitGroup
}

// topicEntry is one topic's subscriptions. Publishers read snap without a
// lock; changes rebuild it under mu.
type topicEntry struct {
	name string // registry service name
	snap atomic.Pointer[engine.Targets]

	mu      sync.Mutex
	loaded  bool
	nodes   map[nodeKey]*registry.Node
	loading chan struct{}
	pending []*registry.Result
}

type nodeKey struct{ version, id string }

func newCache(reg registry.Registry) *cache {
	ctx, cancel := context.WithCancel(context.Background())
	c := &cache{reg: reg, ctx: ctx, cancel: cancel}
	c.topics.Store(&map[string]*topicEntry{})
	return c
}

// targets returns the subscriptions of topic.
func (c *cache) targets(ctx context.Context, topic string) (*engine.Targets, error) {
	if e := (*c.topics.Load())[topic]; e != nil {
		if ts := e.snap.Load(); ts != nil {
			return ts, nil
		}
	}
	return c.load(ctx, topic)
}

// load looks a topic up the first time. Concurrent first publications
// share one lookup; a failed lookup is not cached.
func (c *cache) load(ctx context.Context, topic string) (*engine.Targets, error) {
	e, err := c.entry(topic)
	if err != nil {
		return nil, err
	}
	name := e.name
	for {
		if ts := e.snap.Load(); ts != nil {
			return ts, nil
		}
		e.mu.Lock()
		if e.loaded {
			e.mu.Unlock()
			continue
		}
		if ch := e.loading; ch != nil {
			e.mu.Unlock()
			select {
			case <-ch:
				continue
			case <-ctx.Done():
				return nil, fmt.Errorf("looking up %q: %w", name, ctx.Err())
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
			return nil, fmt.Errorf("looking up %q in %s: %w", name, c.reg, err)
		}
		e.nodes = map[nodeKey]*registry.Node{}
		for _, v := range versions {
			for _, n := range v.Nodes {
				if n != nil {
					e.nodes[nodeKey{v.Version, n.ID}] = n
				}
			}
		}
		// Changes seen while the lookup ran may or may not be in its
		// answer; applied again, in order, they leave the right state.
		for _, r := range pending {
			e.applyLocked(r)
		}
		e.loaded = true
		ts := e.publishLocked()
		e.mu.Unlock()
		return ts, nil
	}
}

// entry returns the cache entry of a topic, adding it if needed. The first
// call starts the watch, before any lookup, so that no change after a
// lookup goes unseen.
func (c *cache) entry(topic string) (*topicEntry, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil, errClosed
	}
	if !c.watching {
		c.watching = true
		w := c.watchLocked()
		c.wg.Add(1)
		go c.run(w)
	}
	old := *c.topics.Load()
	if e := old[topic]; e != nil {
		return e, nil
	}
	e := &topicEntry{name: ServiceName(topic)}
	next := make(map[string]*topicEntry, len(old)+1)
	for k, v := range old {
		next[k] = v
	}
	next[topic] = e
	c.topics.Store(&next)
	return e, nil
}

func (c *cache) close() {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return
	}
	c.closed = true
	w := c.watcher
	c.watcher = nil
	c.mu.Unlock()
	c.cancel()
	if w != nil {
		w.Stop()
	}
	c.wg.Wait()
}

// applyLocked applies a watch result; e.mu held.
func (e *topicEntry) applyLocked(r *registry.Result) {
	v := r.Service
	switch r.Action {
	case registry.Create, registry.Update:
		for _, n := range v.Nodes {
			if n != nil {
				e.nodes[nodeKey{v.Version, n.ID}] = n
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
				delete(e.nodes, nodeKey{v.Version, n.ID})
			}
		}
	}
}

// publishLocked rebuilds the topic's Targets from its nodes; e.mu held.
func (e *topicEntry) publishLocked() *engine.Targets {
	infos := make([]engine.TargetInfo, 0, len(e.nodes))
	seen := map[string]bool{}
	for _, n := range e.nodes {
		if n.Address == "" || seen[n.ID] {
			continue
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
	ts := engine.NewTargets(infos, e.snap.Load())
	e.snap.Store(ts)
	return ts
}

// watchLocked starts a watch of the whole registry, or returns nil; c.mu
// held.
func (c *cache) watchLocked() registry.Watcher {
	if c.closed {
		return nil
	}
	w, err := c.reg.Watch(c.ctx)
	if err != nil {
		return nil
	}
	c.watcher = w
	return w
}

// run applies the watch's changes. When the watch ends or cannot start, it
// refreshes the cache from the registry and retries the watch with a
// backoff, until close.
func (c *cache) run(w registry.Watcher) {
	defer c.wg.Done()
	fails := 0
	for {
		if w != nil {
			started := time.Now()
			c.follow(w)
			c.mu.Lock()
			mine := c.watcher == w
			if mine {
				c.watcher = nil
			}
			c.mu.Unlock()
			if mine {
				w.Stop()
			}
			if time.Since(started) > maxRefresh {
				fails = 0
			}
		}
		if c.ctx.Err() != nil {
			return
		}
		c.refresh()
		wait := maxRefresh
		if fails < 16 {
			wait = min(minRefresh<<fails, maxRefresh)
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
			c.refresh()
		}
	}
}

// follow applies the watcher's results until it fails or stops.
func (c *cache) follow(w registry.Watcher) {
	for {
		r, err := w.Next()
		if err != nil {
			return
		}
		if r == nil || r.Service == nil {
			continue
		}
		topic, ok := strings.CutPrefix(r.Service.Name, ServicePrefix)
		e := (*c.topics.Load())[topic]
		if !ok || e == nil {
			continue // not a topic we publish to; its first lookup sees it
		}
		e.mu.Lock()
		switch {
		case e.loading != nil:
			e.pending = append(e.pending, r)
		case e.loaded:
			e.applyLocked(r)
			e.publishLocked()
		}
		e.mu.Unlock()
	}
}

// refresh looks every cached topic up again; a failed lookup keeps what the
// cache had.
func (c *cache) refresh() {
	for _, e := range *c.topics.Load() {
		if c.ctx.Err() != nil {
			return
		}
		ctx, cancel := context.WithTimeout(c.ctx, refreshTimeout)
		versions, err := c.reg.GetService(ctx, e.name)
		cancel()
		if err != nil && !errors.Is(err, registry.ErrNotFound) {
			continue
		}
		e.mu.Lock()
		if e.loading == nil && e.loaded {
			e.nodes = map[nodeKey]*registry.Node{}
			for _, v := range versions {
				for _, n := range v.Nodes {
					if n != nil {
						e.nodes[nodeKey{v.Version, n.ID}] = n
					}
				}
			}
			e.publishLocked()
		}
		e.mu.Unlock()
	}
}
