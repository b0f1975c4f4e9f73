// Package etcd is a registry.Registry kept in etcd (v3), for services
// that need discovery beyond one network segment or a registry that
// outlives its members. It registers itself as "etcd" with
// registry.RegisterFactory; select it with a blank import and the
// environment:
//
//	import _ "github.com/protoc-gen-micro/micro/plugins/etcd"
//
//	MICRO_REGISTRY=etcd MICRO_REGISTRY_ADDRESS=10.0.0.1:2379,10.0.0.2:2379 ./greeter
//
// (an empty address means 127.0.0.1:2379), or create one with NewRegistry
// and the With options, named after the etcd client's own settings.
//
// Every node is one key, <prefix><service>/<node-id> (the prefix is
// "/micro/registry/" unless WithPrefix says otherwise; service name and
// node ID are path-escaped), whose value is the JSON of the service with
// that one node: name, version, metadata, endpoints and the node. The
// nodes of one Register call with a TTL share an etcd lease of that TTL
// (rounded up to whole seconds; etcd enforces its own minimum, 1.5
// election timeouts), so a node whose process dies disappears when the TTL
// runs out. A Register of the same nodes with the same TTL refreshes the
// lease and, in one transaction, writes the values that changed, or every
// key if one was changed or deleted by someone else; a refresh that
// changes nothing writes nothing. If etcd no longer knows the lease, the
// registry grants a new one and writes every key of the old lease again.
// ttl 0 writes the keys without a lease. Registrations survive etcd
// restarts: etcd keeps keys and leases, and when the connection comes back
// after failing, the registry re-asserts its registrations by itself the
// same way (a lease lost, or etcd's data lost, is restored; a
// registration whose TTL lapsed without a refresh is left to expire).
// Deregister deletes the keys (only if they still hold the version named)
// and revokes a lease no longer used. Close revokes this registry's leases
// and deletes its keys without a lease, withdrawing its nodes.
//
// Lookups and watches read a cache fed by an etcd watch: the first use
// reads the prefix once at revision R, then watches from R+1 and applies
// the events in order, so a lookup costs no round trip after the first,
// and a lookup after this registry's own Register or Deregister waits
// for that change to arrive. A broken watch resumes from the last revision
// seen; if that revision has been compacted (or etcd is back at an
// earlier revision, its data lost), the prefix is read again and watchers
// get the differences as Create, Update and Delete results. While
// etcd is unreachable lookups keep answering from the cache: the registry
// logs one WARN line ("etcd is unreachable; lookups answer from the
// cache...") when the outage starts and one INFO line when etcd is back.
// Only the first lookup fails if etcd never answered (after the dial
// timeout, 5 s by default).
//
// Every value read from etcd is treated as hostile: a value larger than
// 1 MiB, one that is not the JSON of a service with exactly one node, or
// whose name and node ID do not match its key, is skipped and logged once
// per key. The prefix is read in pages of 64 keys, watch responses are
// fragmented by the server, and the cache holds at most 100,000 nodes.
// Watch results queue without bound until Next takes them, never dropped.
package etcd

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/protoc-gen-micro/micro/internal/regvalid"
	"github.com/protoc-gen-micro/micro/internal/watchq"
	"github.com/protoc-gen-micro/micro/runtime/registry"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	grpcbackoff "google.golang.org/grpc/backoff"
	"google.golang.org/grpc/connectivity"
)

// maxTxnOps bounds the operations of one transaction; etcd refuses more
// than 128 by default.
const maxTxnOps = 64

// errClosed is returned by the registry's methods after Close.
var errClosed = fmt.Errorf("registry/etcd: %w", registry.ErrClosed)

// etcdRegistry is the etcd registry; it is safe for concurrent use.
type etcdRegistry struct {
	opts  options
	cli   *clientv3.Client
	cache *cache

	ctx    context.Context // ends at Close, ending calls in flight
	cancel context.CancelFunc
	wg     sync.WaitGroup
	closed atomic.Bool

	// written is the revision of this registry's last write, which its
	// lookups wait for the cache to reach.
	written atomic.Int64

	mu      sync.Mutex // serialises writes; guards own and keeping
	own     map[string]*ownKey
	keeping bool // the keeper runs
}

// ownKey is a key this registry wrote.
type ownKey struct {
	version string
	value   string
	ttl     time.Duration
	lease   clientv3.LeaseID // 0: none
	rev     int64            // the revision that wrote value
	// deadline is when the registration lapses unless refreshed (zero
	// for ttl 0); after it the keeper no longer restores the key.
	deadline time.Time
}

// NewRegistry returns a registry that keeps services in etcd. Creating it
// does not contact etcd: Register, Deregister and the first lookup or
// watch do. Close it when done.
func NewRegistry(opts ...Option) (registry.Registry, error) {
	o := newOptions(opts)
	cli, err := clientv3.New(clientv3.Config{
		Endpoints:   o.endpoints,
		DialTimeout: o.dialTimeout,
		TLS:         o.tls,
		Username:    o.username,
		Password:    o.password,
		// A page of the prefix is at most 64 values of 1 MiB; watch
		// responses are fragmented below etcd's request limit.
		MaxCallRecvMsgSize: 2 * pageSize * maxValueSize,
		Logger:             zap.NewNop(),
		// Reconnect within 3 s of etcd's return (gRPC's default backoff
		// grows to two minutes), so that the cache is current again soon.
		DialOptions: []grpc.DialOption{grpc.WithConnectParams(grpc.ConnectParams{
			Backoff:           grpcbackoff.Config{BaseDelay: 100 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: 3 * time.Second},
			MinConnectTimeout: o.dialTimeout,
		})},
	})
	if err != nil {
		return nil, fmt.Errorf("registry/etcd: %w", err)
	}
	r := &etcdRegistry{opts: o, cli: cli, own: map[string]*ownKey{}}
	r.ctx, r.cancel = context.WithCancel(context.Background())
	r.cache = newCache(cli, &r.opts)
	return r, nil
}

// String returns "etcd".
func (r *etcdRegistry) String() string { return "etcd" }

// bind returns ctx, also ended by Close.
func (r *etcdRegistry) bind(ctx context.Context) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(ctx)
	stop := context.AfterFunc(r.ctx, cancel)
	return ctx, func() { stop(); cancel() }
}

// fail returns the error to report for err from a call with ctx: the
// caller's context error, errClosed, or err wrapped.
func (r *etcdRegistry) fail(ctx context.Context, what string, err error) error {
	switch {
	case r.closed.Load():
		return errClosed
	case ctx.Err() != nil:
		return fmt.Errorf("registry/etcd: %s: %w", what, ctx.Err())
	}
	return fmt.Errorf("registry/etcd: %s: %w", what, err)
}

func (r *etcdRegistry) wrote(rev int64) {
	for {
		cur := r.written.Load()
		if rev <= cur || r.written.CompareAndSwap(cur, rev) {
			return
		}
	}
}

// Register writes one key per node of s. See the package comment for
// leases and refreshes.
func (r *etcdRegistry) Register(ctx context.Context, s *registry.Service, ttl time.Duration) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := regvalid.Check("registry/etcd", s); err != nil {
		return err
	}
	if r.closed.Load() {
		return errClosed
	}
	keys := make([]string, 0, len(s.Nodes))
	values := map[string]string{}
	for _, n := range s.Nodes {
		v, err := encode(s, n)
		if err != nil {
			return fmt.Errorf("registry/etcd: register %q: %w", s.Name, err)
		}
		k := key(r.opts.prefix, s.Name, n.ID)
		if _, dup := values[k]; !dup { // a transaction may not write a key twice; the last node wins
			keys = append(keys, k)
		}
		values[k] = string(v)
	}
	ctx, cancel := r.bind(ctx)
	defer cancel()
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed.Load() {
		return errClosed
	}
	now := time.Now()
	// Forget registrations that lapsed (etcd expires their keys), so that
	// a process registering ever new nodes does not remember them all.
	for k, o := range r.own {
		if !o.deadline.IsZero() && now.After(o.deadline) {
			delete(r.own, k)
		}
	}
	var deadline time.Time
	if ttl > 0 {
		deadline = now.Add(ttl)
	}
	if err := r.registerLocked(ctx, s.Version, keys, values, ttl); err != nil {
		return r.fail(ctx, fmt.Sprintf("register %q", s.Name), err)
	}
	for _, k := range keys {
		r.own[k].deadline = deadline
	}
	r.startKeeper()
	return nil
}

func (r *etcdRegistry) registerLocked(ctx context.Context, version string, keys []string, values map[string]string, ttl time.Duration) error {
	// A refresh: every node is ours, with this TTL, on one lease (or
	// none, for ttl 0).
	refresh := true
	lease := clientv3.LeaseID(-1)
	for _, k := range keys {
		o := r.own[k]
		if o == nil || o.ttl != ttl || (lease != -1 && o.lease != lease) {
			refresh = false
			break
		}
		lease = o.lease
	}
	if refresh && ttl > 0 {
		_, err := r.cli.KeepAliveOnce(ctx, lease)
		switch {
		case errors.Is(err, rpctypes.ErrLeaseNotFound):
			// The lease is gone (expired while etcd could not be
			// reached, or etcd lost it): its keys with it. Write them
			// all again on a new lease.
			refresh = false
			for k, o := range r.own {
				if o.lease == lease {
					if _, ok := values[k]; !ok {
						values[k] = o.value
						keys = append(keys, k)
					}
				}
			}
		case err != nil:
			return err
		}
	}
	if refresh {
		return r.refreshLocked(ctx, version, keys, values, ttl, lease)
	}
	if ttl > 0 {
		resp, err := r.cli.Grant(ctx, leaseSeconds(ttl))
		if err != nil {
			return err
		}
		lease = resp.ID
	} else {
		lease = 0
	}
	old := map[clientv3.LeaseID]bool{}
	for _, k := range keys {
		if o := r.own[k]; o != nil && o.lease != 0 && o.lease != lease {
			old[o.lease] = true
		}
	}
	err := r.put(ctx, version, keys, values, ttl, lease)
	if err != nil && lease != 0 {
		r.revoke(lease) // nothing of ours uses it
	}
	for l := range old {
		r.releaseLocked(ctx, l)
	}
	return err
}

// refreshLocked writes, on the live lease, the values of keys that
// changed, and every key of the call if one of them was changed or deleted
// by someone else since we wrote it; a refresh that changes nothing writes
// nothing.
func (r *etcdRegistry) refreshLocked(ctx context.Context, version string, keys []string, values map[string]string, ttl time.Duration, lease clientv3.LeaseID) error {
	for chunk := range chunks(keys, maxTxnOps) {
		var cmps []clientv3.Cmp
		var changed []string
		for _, k := range chunk {
			o := r.own[k]
			cmps = append(cmps, clientv3.Compare(clientv3.ModRevision(k), "=", o.rev))
			if o.value != values[k] {
				changed = append(changed, k)
			}
		}
		resp, err := r.cli.Txn(ctx).If(cmps...).
			Then(putOps(changed, values, lease)...).
			Else(putOps(chunk, values, lease)...).Commit()
		if err != nil {
			return err
		}
		written := chunk
		if resp.Succeeded {
			written = changed
		}
		if len(written) > 0 {
			r.recordLocked(version, written, values, ttl, lease, resp.Header.Revision)
		}
	}
	return nil
}

// put writes keys (values[k]) with lease, at most maxTxnOps a
// transaction, and records them as ours.
func (r *etcdRegistry) put(ctx context.Context, version string, keys []string, values map[string]string, ttl time.Duration, lease clientv3.LeaseID) error {
	for chunk := range chunks(keys, maxTxnOps) {
		resp, err := r.cli.Txn(ctx).Then(putOps(chunk, values, lease)...).Commit()
		if err != nil {
			return err
		}
		r.recordLocked(version, chunk, values, ttl, lease, resp.Header.Revision)
	}
	return nil
}

// recordLocked records keys as ours, written at revision rev.
func (r *etcdRegistry) recordLocked(version string, keys []string, values map[string]string, ttl time.Duration, lease clientv3.LeaseID, rev int64) {
	r.wrote(rev)
	for _, k := range keys {
		v := version
		if o := r.own[k]; o != nil && o.value == values[k] {
			v = o.version // a key of the lost lease, written again as it was
		}
		var deadline time.Time
		if o := r.own[k]; o != nil {
			deadline = o.deadline // Register sets it once the call succeeds
		}
		r.own[k] = &ownKey{version: v, value: values[k], ttl: ttl, lease: lease, rev: rev, deadline: deadline}
	}
}

func putOps(keys []string, values map[string]string, lease clientv3.LeaseID) []clientv3.Op {
	var opts []clientv3.OpOption
	if lease != 0 {
		opts = append(opts, clientv3.WithLease(lease))
	}
	ops := make([]clientv3.Op, len(keys))
	for i, k := range keys {
		ops[i] = clientv3.OpPut(k, values[k], opts...)
	}
	return ops
}

// startKeeper starts the keeper once this registry has registered.
func (r *etcdRegistry) startKeeper() {
	if r.keeping {
		return
	}
	r.keeping = true
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		r.keep(r.ctx)
	}()
}

// keep follows the connection to etcd and, each time it comes back after
// failing, restores this registry's registrations: a lease etcd no longer
// knows (it expired while we could not reach etcd, or etcd lost its data)
// is granted again and its keys written again, and keys changed or
// deleted meanwhile are written again. Registrations whose TTL has lapsed
// without a refresh are left to expire.
func (r *etcdRegistry) keep(ctx context.Context) {
	conn := r.cli.ActiveConnection()
	state := conn.GetState()
	down := false
	for conn.WaitForStateChange(ctx, state) {
		state = conn.GetState()
		switch state {
		case connectivity.TransientFailure:
			down = true
		case connectivity.Ready:
			if down {
				down = false
				r.restore(ctx)
			}
		}
	}
}

// restore re-asserts the live registrations, group by group of one lease.
func (r *etcdRegistry) restore(ctx context.Context) {
	r.mu.Lock()
	defer r.mu.Unlock()
	ctx, cancel := context.WithTimeout(ctx, r.opts.dialTimeout)
	defer cancel()
	now := time.Now()
	type group struct {
		lease clientv3.LeaseID
		ttl   time.Duration
	}
	groups := map[group][]string{}
	for k, o := range r.own {
		if !o.deadline.IsZero() && now.After(o.deadline) {
			continue // lapsed: etcd expires it, or has
		}
		g := group{o.lease, o.ttl}
		groups[g] = append(groups[g], k)
	}
	for g, keys := range groups {
		values := map[string]string{}
		for _, k := range keys {
			values[k] = r.own[k].value
		}
		if err := r.registerLocked(ctx, "", keys, values, g.ttl); err != nil {
			r.opts.logger.Warn("registry/etcd: restoring registrations after etcd came back failed; the next Register retries",
				"nodes", len(keys), "error", err)
		}
	}
}

// releaseLocked revokes lease unless a key of ours still uses it.
func (r *etcdRegistry) releaseLocked(ctx context.Context, lease clientv3.LeaseID) {
	for _, o := range r.own {
		if o.lease == lease {
			return
		}
	}
	_, _ = r.cli.Revoke(ctx, lease) // if this fails, the lease expires by itself
}

// revoke revokes a lease that no key of ours uses, in the background of a
// failed call.
func (r *etcdRegistry) revoke(lease clientv3.LeaseID) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.ctx), r.opts.dialTimeout)
	defer cancel()
	_, _ = r.cli.Revoke(ctx, lease)
}

// Deregister deletes the keys of s's nodes that hold s's version, in one
// transaction that fails if one of them changed since it was read.
func (r *etcdRegistry) Deregister(ctx context.Context, s *registry.Service) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if s == nil || s.Name == "" {
		return errors.New("registry/etcd: deregister: service has no name")
	}
	if r.closed.Load() {
		return errClosed
	}
	var keys []string
	for _, n := range s.Nodes {
		if n != nil && n.ID != "" {
			keys = append(keys, key(r.opts.prefix, s.Name, n.ID))
		}
	}
	ctx, cancel := r.bind(ctx)
	defer cancel()
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed.Load() {
		return errClosed
	}
	for chunk := range chunks(keys, maxTxnOps) {
		if err := r.deregisterLocked(ctx, s.Version, chunk); err != nil {
			return r.fail(ctx, fmt.Sprintf("deregister %q", s.Name), err)
		}
	}
	return nil
}

func (r *etcdRegistry) deregisterLocked(ctx context.Context, version string, keys []string) error {
	for attempt := 0; ; attempt++ {
		gets := make([]clientv3.Op, len(keys))
		for i, k := range keys {
			gets[i] = clientv3.OpGet(k)
		}
		resp, err := r.cli.Txn(ctx).Then(gets...).Commit()
		if err != nil {
			return err
		}
		var cmps []clientv3.Cmp
		var dels []clientv3.Op
		for i, rr := range resp.Responses {
			for _, kv := range rr.GetResponseRange().Kvs {
				if s, err := decode(r.opts.prefix, kv.Key, kv.Value); err == nil && s.Version == version {
					cmps = append(cmps, clientv3.Compare(clientv3.ModRevision(keys[i]), "=", kv.ModRevision))
					dels = append(dels, clientv3.OpDelete(keys[i]))
				}
			}
		}
		if len(dels) > 0 {
			tr, err := r.cli.Txn(ctx).If(cmps...).Then(dels...).Commit()
			if err != nil {
				return err
			}
			if !tr.Succeeded {
				if attempt < 3 {
					continue // changed since read: read again
				}
				return errors.New("the keys kept changing while being deleted")
			}
			r.wrote(tr.Header.Revision)
		}
		leases := map[clientv3.LeaseID]bool{}
		for _, k := range keys {
			if o := r.own[k]; o != nil && o.version == version {
				delete(r.own, k)
				if o.lease != 0 {
					leases[o.lease] = true
				}
			}
		}
		for l := range leases {
			r.releaseLocked(ctx, l)
		}
		return nil
	}
}

// GetService returns every version of the named service from the cache.
func (r *etcdRegistry) GetService(ctx context.Context, name string) ([]*registry.Service, error) {
	if err := r.lookup(ctx); err != nil {
		return nil, err
	}
	if out := r.cache.get(name); len(out) > 0 {
		return out, nil
	}
	return nil, fmt.Errorf("registry/etcd: service %q: %w", name, registry.ErrNotFound)
}

// ListServices returns every service from the cache, by name then version.
func (r *etcdRegistry) ListServices(ctx context.Context) ([]*registry.Service, error) {
	if err := r.lookup(ctx); err != nil {
		return nil, err
	}
	return r.cache.list(), nil
}

// lookup readies the cache for a lookup: started, read once, and holding
// this registry's own writes.
func (r *etcdRegistry) lookup(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if r.closed.Load() {
		return errClosed
	}
	r.cache.start(r.ctx, &r.wg)
	return r.cache.wait(ctx, r.written.Load())
}

// Watch reports changes to the named service (every service when service
// is ""), in the order of their revisions, from the cache's feed: from
// now on once the cache has read the prefix; before that, the first read
// reports every node found as a Create. Results queue without bound until
// Next takes them. The watch ends when Stop is called, ctx ends or the
// registry is closed.
func (r *etcdRegistry) Watch(ctx context.Context, service string) (registry.Watcher, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if r.closed.Load() {
		return nil, errClosed
	}
	w := watchq.New(service, r.cache.forget)
	if err := r.cache.add(w); err != nil {
		return nil, err
	}
	w.StopOnDone(ctx)
	r.cache.start(r.ctx, &r.wg)
	return w, nil
}

// Close ends every watch, revokes this registry's leases and deletes its
// keys without a lease (unless rewritten since), within the dial timeout,
// and closes the etcd client.
func (r *etcdRegistry) Close() error {
	if !r.closed.CompareAndSwap(false, true) {
		return nil
	}
	r.cancel()
	r.cache.close()

	r.mu.Lock()
	ctx, cancel := context.WithTimeout(context.Background(), r.opts.dialTimeout)
	var errs []error
	leases := map[clientv3.LeaseID]bool{}
	for k, o := range r.own {
		if o.lease != 0 {
			leases[o.lease] = true
			continue
		}
		_, err := r.cli.Txn(ctx).If(clientv3.Compare(clientv3.ModRevision(k), "=", o.rev)).Then(clientv3.OpDelete(k)).Commit()
		errs = append(errs, err)
	}
	for l := range leases {
		_, err := r.cli.Revoke(ctx, l)
		if errors.Is(err, rpctypes.ErrLeaseNotFound) {
			err = nil
		}
		errs = append(errs, err)
	}
	clear(r.own)
	cancel()
	r.mu.Unlock()

	r.wg.Wait()
	errs = append(errs, r.cli.Close())
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("registry/etcd: close: %w", err)
	}
	return nil
}

// leaseSeconds is ttl in whole seconds, rounded up: etcd's lease unit.
func leaseSeconds(ttl time.Duration) int64 {
	return max(1, int64(math.Ceil(ttl.Seconds())))
}

// chunks yields s in slices of at most n.
func chunks(s []string, n int) func(func([]string) bool) {
	return func(yield func([]string) bool) {
		for len(s) > 0 {
			c := s[:min(n, len(s))]
			s = s[len(c):]
			if !yield(c) {
				return
			}
		}
	}
}
