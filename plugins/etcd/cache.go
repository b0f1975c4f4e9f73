package etcd

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/protoc-gen-micro/micro/internal/watchq"
	"github.com/protoc-gen-micro/micro/runtime/registry"
	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc/connectivity"
)

// Bounds of what the cache reads and remembers.
const (
	// pageSize is the number of keys one read of the prefix asks for, so
	// that a response holds at most pageSize values of maxValueSize.
	pageSize = 64
	// maxBadKeys bounds the keys whose malformed value has been logged
	// (each is logged once); past it, one more line says so.
	maxBadKeys = 1024
)

// maxNodes bounds the nodes the cache holds; further keys are skipped
// (and the first one logged). A variable for the tests.
var maxNodes = 100_000

// record is a node read from etcd: its service with that one node.
type record struct {
	svc    *registry.Service // owned by the cache; cloned before it leaves
	modRev int64
}

func (r *record) node() *registry.Node { return r.svc.Nodes[0] }

// change is a key's new record, nil when the key was deleted or holds
// nothing usable.
type change struct {
	key string
	rec *record
}

// cache is the watch-fed view of the prefix that lookups and watches read.
// One goroutine (run) reads the prefix once at revision R, then watches
// from R+1, applying events in revision order; another (monitor) follows
// the connection to etcd to tell when the view may be stale.
type cache struct {
	cli    *clientv3.Client
	prefix string
	log    *slog.Logger
	opts   *options

	mu       sync.Mutex
	started  bool
	closed   bool
	keys     map[string]*record
	services map[string]map[string]map[string]*record // name → version → node ID → record
	rev      int64                                    // last revision applied
	synced   bool                                     // the prefix has been read once
	stale    bool                                     // etcd is unreachable: the view may be behind
	lastErr  error
	advanced chan struct{} // closed and replaced when rev, synced or stale change
	watchers map[*watchq.Watcher]struct{}
	bad      map[string]struct{} // malformed keys already logged
	full     bool                // maxNodes was reached and logged

	// A send on kick ends the current watch; run watches again at once.
	kick chan struct{}
	// For tests (export_test.go): while hold is not nil, run waits for it
	// to close before watching again, and closes held once waiting.
	hold, held chan struct{}
}

func newCache(cli *clientv3.Client, o *options) *cache {
	return &cache{
		cli:      cli,
		prefix:   o.prefix,
		log:      o.logger,
		opts:     o,
		keys:     map[string]*record{},
		services: map[string]map[string]map[string]*record{},
		advanced: make(chan struct{}),
		watchers: map[*watchq.Watcher]struct{}{},
		bad:      map[string]struct{}{},
		kick:     make(chan struct{}, 1),
	}
}

// start starts the cache's goroutines on first use; ctx ends them.
func (c *cache) start(ctx context.Context, wg *sync.WaitGroup) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.started || c.closed {
		return
	}
	c.started = true
	wg.Add(2)
	go func() { defer wg.Done(); c.run(ctx) }()
	go func() { defer wg.Done(); c.monitor(ctx) }()
}

// close ends every watch; the goroutines end with their context.
func (c *cache) close() {
	c.mu.Lock()
	c.closed = true
	ws := c.watchers
	c.watchers = nil
	c.wakeLocked()
	c.mu.Unlock()
	for w := range ws {
		w.End()
	}
}

func (c *cache) wakeLocked() {
	close(c.advanced)
	c.advanced = make(chan struct{})
}

// run keeps the view: a read of the prefix, then a watch from the next
// revision, resumed from the last revision seen after a broken watch, and a
// new read (whose differences watchers see) after a compaction.
func (c *cache) run(ctx context.Context) {
	wctx := clientv3.WithRequireLeader(ctx)
	b := backoff{min: 50 * time.Millisecond, max: 2 * time.Second}
	read := true
	for ctx.Err() == nil {
		if read {
			if err := c.read(ctx); err != nil {
				if ctx.Err() == nil {
					c.setStale(fmt.Errorf("reading %s: %w", c.prefix, err))
				}
				b.sleep(ctx)
				continue
			}
			read = false
			b.reset()
		}
		c.mu.Lock()
		hold, held := c.hold, c.held
		c.mu.Unlock()
		if hold != nil {
			close(held)
			select {
			case <-hold:
			case <-ctx.Done():
				return
			}
		}
		var kicked bool
		read, kicked = c.follow(wctx, &b)
		if !read && !kicked {
			b.sleep(ctx)
		}
	}
}

// follow watches the prefix from the revision after the last one applied
// until the watch ends, and reports whether it ended because that revision
// was compacted, or because of a kick. A watch established resets b.
func (c *cache) follow(ctx context.Context, b *backoff) (compacted, kicked bool) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	c.mu.Lock()
	from := c.rev + 1
	c.mu.Unlock()
	wch := c.cli.Watch(ctx, c.prefix, clientv3.WithPrefix(), clientv3.WithRev(from),
		clientv3.WithCreatedNotify(), clientv3.WithFragment())
	for {
		var resp clientv3.WatchResponse
		var ok bool
		select {
		case resp, ok = <-wch:
		case <-c.kick:
			return false, true
		}
		if !ok {
			return false, false
		}
		if resp.CompactRevision != 0 {
			c.log.Info("registry/etcd: watched revisions were compacted; reading the prefix again",
				"from", from, "compacted", resp.CompactRevision)
			return true, false
		}
		if err := resp.Err(); err != nil {
			if errors.Is(err, rpctypes.ErrCompacted) {
				return true, false
			}
			c.setStale(fmt.Errorf("watching %s: %w", c.prefix, err))
			return false, false
		}
		if resp.Created && resp.Header.GetRevision() < from-1 {
			// etcd is at a revision before one we applied: its data was
			// lost or restored from a backup. Only a new read tells what
			// it holds now.
			c.log.Warn("registry/etcd: etcd's revision went back; reading the prefix again",
				"applied", from-1, "etcd", resp.Header.GetRevision())
			return true, false
		}
		if resp.Created {
			b.reset()
		}
		if resp.Created || resp.IsProgressNotify() {
			c.progress(resp.Header.GetRevision(), resp.IsProgressNotify())
			continue
		}
		c.apply(resp.Events)
	}
}

// monitor marks the view stale while the connection to etcd is down, and
// renews the watch when it is back.
func (c *cache) monitor(ctx context.Context) {
	conn := c.cli.ActiveConnection()
	state := conn.GetState()
	for conn.WaitForStateChange(ctx, state) {
		state = conn.GetState()
		switch state {
		case connectivity.TransientFailure:
			c.setStale(fmt.Errorf("connection to %v failed", c.opts.endpoints))
		case connectivity.Ready:
			if c.isStale() {
				// Watch again from the last revision applied: the new
				// watch's creation marks the view fresh, and the events
				// missed follow.
				select {
				case c.kick <- struct{}{}:
				default:
				}
			}
		}
	}
}

func (c *cache) isStale() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.stale
}

// setStale marks the view stale, logging once per outage.
func (c *cache) setStale(err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.lastErr = err
	if c.stale || c.closed {
		return
	}
	c.stale = true
	c.wakeLocked()
	if c.synced {
		c.log.Warn("registry/etcd: etcd is unreachable; lookups answer from the cache, which may be stale, until it is back",
			"endpoints", c.opts.endpoints, "revision", c.rev, "error", err)
	} else {
		c.log.Warn("registry/etcd: etcd is unreachable; lookups fail until it answers",
			"endpoints", c.opts.endpoints, "error", err)
	}
}

// freshLocked marks the view fresh again.
func (c *cache) freshLocked() {
	if !c.stale {
		return
	}
	c.stale = false
	c.lastErr = nil
	c.wakeLocked()
	c.log.Info("registry/etcd: etcd is reachable again; the cache is current", "revision", c.rev)
}

// progress records that the watch is established (created) or has
// delivered every event up to rev (a progress notice).
func (c *cache) progress(rev int64, notice bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if notice && rev > c.rev {
		c.rev = rev
		c.wakeLocked()
	}
	c.freshLocked()
}

// read reads the prefix page by page at one revision and replaces the
// view with it, telling watchers the differences.
func (c *cache) read(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, c.opts.dialTimeout)
	defer cancel()
	end := clientv3.GetPrefixRangeEnd(c.prefix)
	from := c.prefix
	var rev int64
	got := map[string]*record{}
	for {
		opts := []clientv3.OpOption{clientv3.WithRange(end), clientv3.WithLimit(pageSize)}
		if rev != 0 {
			opts = append(opts, clientv3.WithRev(rev))
		}
		resp, err := c.cli.Get(ctx, from, opts...)
		if err != nil {
			return err
		}
		if rev == 0 {
			rev = resp.Header.Revision
		}
		for _, kv := range resp.Kvs {
			if rec := c.decode(kv); rec != nil {
				got[string(kv.Key)] = rec
			}
		}
		if !resp.More || len(resp.Kvs) == 0 {
			break
		}
		from = string(resp.Kvs[len(resp.Kvs)-1].Key) + "\x00"
	}

	c.mu.Lock()
	defer c.mu.Unlock()
	var changes []change
	for _, k := range slices.Sorted(maps.Keys(c.keys)) {
		if got[k] == nil {
			changes = append(changes, change{k, nil})
		}
	}
	for _, k := range slices.Sorted(maps.Keys(got)) {
		changes = append(changes, change{k, got[k]})
	}
	c.applyLocked(changes)
	c.rev = rev
	c.synced = true
	c.freshLocked()
	c.wakeLocked()
	return nil
}

// apply applies watched events, one revision at a time.
func (c *cache) apply(events []*clientv3.Event) {
	var changes []change
	var decoded []change
	for _, ev := range events {
		ch := change{key: string(ev.Kv.Key)}
		if ev.Type == mvccpb.PUT {
			ch.rec = c.decode(ev.Kv)
		}
		decoded = append(decoded, ch)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for i, ev := range events {
		changes = append(changes, decoded[i])
		if i+1 == len(events) || events[i+1].Kv.ModRevision != ev.Kv.ModRevision {
			c.applyLocked(changes)
			changes = changes[:0]
			c.rev = ev.Kv.ModRevision
		}
	}
	c.freshLocked()
	c.wakeLocked()
}

// decode returns the record of kv, or nil, logged once per key, when its
// value is not a node of ours.
func (c *cache) decode(kv *mvccpb.KeyValue) *record {
	s, err := decode(c.prefix, kv.Key, kv.Value)
	if err != nil {
		c.mu.Lock()
		defer c.mu.Unlock()
		k := string(kv.Key)
		if _, seen := c.bad[k]; seen {
			return nil
		}
		switch {
		case len(c.bad) < maxBadKeys:
			c.log.Warn("registry/etcd: skipping a value that is not a node", "key", k, "size", len(kv.Value), "error", err)
		case len(c.bad) == maxBadKeys:
			c.log.Warn("registry/etcd: more values that are not nodes; no longer logging them", "prefix", c.prefix)
		default:
			return nil
		}
		c.bad[k] = struct{}{}
		return nil
	}
	c.mu.Lock()
	delete(c.bad, string(kv.Key))
	c.mu.Unlock()
	return &record{svc: s, modRev: kv.ModRevision}
}

// group is what one batch of changes did to one name and version.
type group struct {
	name, version string
	before        bool      // it had nodes before the batch
	removed       []*record // nodes that left it
	changed       []*record // nodes added or changed
}

// applyLocked applies changes that happened together (one revision, or
// the differences a new read found) and tells watchers: per name and
// version, a Delete of the nodes that left, then a Create (if it had no
// nodes before) or an Update of the nodes added or changed.
func (c *cache) applyLocked(changes []change) {
	var groups []*group
	find := func(name, version string) *group {
		for _, g := range groups {
			if g.name == name && g.version == version {
				return g
			}
		}
		g := &group{name: name, version: version, before: len(c.services[name][version]) > 0}
		groups = append(groups, g)
		return g
	}
	for _, ch := range changes {
		old := c.keys[ch.key]
		if old != nil && ch.rec != nil && sameRecord(old, ch.rec) {
			continue // a rewrite of the same node, or a read that found it again
		}
		if old == nil && ch.rec != nil && len(c.keys) >= maxNodes {
			if !c.full {
				c.full = true
				c.log.Warn("registry/etcd: the cache holds its maximum of nodes; skipping more", "max", maxNodes, "key", ch.key)
			}
			continue
		}
		if old != nil {
			g := find(old.svc.Name, old.svc.Version)
			if ch.rec == nil || ch.rec.svc.Name != old.svc.Name || ch.rec.svc.Version != old.svc.Version {
				g.removed = append(g.removed, old)
			}
			c.unlinkLocked(old)
			delete(c.keys, ch.key)
		}
		if ch.rec != nil {
			g := find(ch.rec.svc.Name, ch.rec.svc.Version)
			g.changed = append(g.changed, ch.rec)
			c.keys[ch.key] = ch.rec
			c.linkLocked(ch.rec)
		}
	}
	if len(c.watchers) == 0 {
		return
	}
	for _, g := range groups {
		if len(g.removed) > 0 {
			c.notifyLocked(registry.Delete, g.removed)
		}
		if len(g.changed) > 0 {
			a := registry.Update
			if !g.before {
				a = registry.Create
			}
			c.notifyLocked(a, g.changed)
		}
	}
}

func (c *cache) linkLocked(r *record) {
	s := r.svc
	versions := c.services[s.Name]
	if versions == nil {
		versions = map[string]map[string]*record{}
		c.services[s.Name] = versions
	}
	nodes := versions[s.Version]
	if nodes == nil {
		nodes = map[string]*record{}
		versions[s.Version] = nodes
	}
	nodes[r.node().ID] = r
}

func (c *cache) unlinkLocked(r *record) {
	s := r.svc
	nodes := c.services[s.Name][s.Version]
	delete(nodes, r.node().ID)
	if len(nodes) == 0 {
		delete(c.services[s.Name], s.Version)
		if len(c.services[s.Name]) == 0 {
			delete(c.services, s.Name)
		}
	}
}

// notifyLocked gives each interested watcher its own copy of a result
// holding recs' nodes, described by the most recently written of them.
func (c *cache) notifyLocked(a registry.Action, recs []*record) {
	s := assemble(recs)
	for w := range c.watchers {
		if w.Wants(s.Name) {
			w.Push(&registry.Result{Action: a, Service: s.Clone()})
		}
	}
}

// assemble returns the service recs (of one name and version) describe,
// sharing their values: clone it before it leaves. The description is that
// of the most recently written node.
func assemble(recs []*record) *registry.Service {
	latest := recs[0]
	nodes := make([]*registry.Node, 0, len(recs))
	for _, r := range recs {
		if r.modRev > latest.modRev {
			latest = r
		}
		nodes = append(nodes, r.node())
	}
	slices.SortFunc(nodes, func(a, b *registry.Node) int { return cmp.Compare(a.ID, b.ID) })
	d := latest.svc
	return &registry.Service{Name: d.Name, Version: d.Version, Metadata: d.Metadata, Endpoints: d.Endpoints, Nodes: nodes}
}

// wait returns once the view holds every change up to revision rev (this
// registry's last write), at once while etcd is unreachable, and waits
// for the first read of the prefix at most the dial timeout.
func (c *cache) wait(ctx context.Context, rev int64) error {
	var first <-chan time.Time
	c.mu.Lock()
	defer c.mu.Unlock()
	for {
		switch {
		case c.closed:
			return errClosed
		case c.synced && (c.rev >= rev || c.stale):
			return nil
		}
		if !c.synced && first == nil {
			t := time.NewTimer(c.opts.dialTimeout)
			defer t.Stop()
			first = t.C
		}
		ch := c.advanced
		c.mu.Unlock()
		var err error
		select {
		case <-ch:
		case <-ctx.Done():
			err = ctx.Err()
		case <-first:
			err = errUnreachable
		}
		c.mu.Lock()
		if err == errUnreachable {
			if c.synced {
				continue
			}
			return fmt.Errorf("registry/etcd: no answer from etcd at %v within %v: %w", c.opts.endpoints, c.opts.dialTimeout, c.lastErrLocked())
		}
		if err != nil {
			return err
		}
	}
}

var errUnreachable = errors.New("etcd is unreachable")

func (c *cache) lastErrLocked() error {
	if c.lastErr != nil {
		return c.lastErr
	}
	return errUnreachable
}

// get returns copies of every version of the named service, in ascending
// version order with nodes by ID.
func (c *cache) get(name string) []*registry.Service {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []*registry.Service
	for _, nodes := range c.services[name] {
		out = append(out, assemble(slices.Collect(maps.Values(nodes))).Clone())
	}
	slices.SortFunc(out, func(a, b *registry.Service) int { return cmp.Compare(a.Version, b.Version) })
	return out
}

// list returns copies of every service, by name then version.
func (c *cache) list() []*registry.Service {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []*registry.Service
	for _, versions := range c.services {
		for _, nodes := range versions {
			out = append(out, assemble(slices.Collect(maps.Values(nodes))).Clone())
		}
	}
	slices.SortFunc(out, func(a, b *registry.Service) int {
		return cmp.Or(cmp.Compare(a.Name, b.Name), cmp.Compare(a.Version, b.Version))
	})
	return out
}

func (c *cache) add(w *watchq.Watcher) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return errClosed
	}
	c.watchers[w] = struct{}{}
	return nil
}

func (c *cache) forget(w *watchq.Watcher) {
	c.mu.Lock()
	delete(c.watchers, w)
	c.mu.Unlock()
}

func sameRecord(a, b *record) bool {
	x, y := a.svc, b.svc
	return x.Name == y.Name && x.Version == y.Version && maps.Equal(x.Metadata, y.Metadata) &&
		slices.EqualFunc(x.Endpoints, y.Endpoints, func(p, q *registry.Endpoint) bool {
			return p.Name == q.Name && maps.Equal(p.Metadata, q.Metadata)
		}) &&
		a.node().ID == b.node().ID && a.node().Address == b.node().Address && maps.Equal(a.node().Metadata, b.node().Metadata)
}

// backoff doubles a wait from min to max.
type backoff struct {
	min, max, cur time.Duration
}

func (b *backoff) reset() { b.cur = 0 }

// sleep waits the next backoff or until ctx ends.
func (b *backoff) sleep(ctx context.Context) {
	b.cur = min(max(b.cur*2, b.min), b.max)
	t := time.NewTimer(b.cur)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}
