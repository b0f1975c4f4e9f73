// Package mdns is a registry.Registry that needs no server: nodes are
// advertised and found with multicast DNS service discovery (RFC 6762,
// RFC 6763) on the local network. It registers itself as "mdns" with
// registry.RegisterFactory; a service uses it unless MICRO_REGISTRY names
// another.
//
// Every node is a DNS-SD instance of one service type, _micro._tcp.local.,
// named after its node ID, with PTR, SRV, TXT and A/AAAA records of its
// own (the SRV target is a host name derived from the node ID), so
// standard tools list our nodes too:
//
//	avahi-browse -rt _micro._tcp
//	dns-sd -B _micro._tcp
//	dig -p 5353 @224.0.0.251 _micro._tcp.local PTR
//
// The TXT record holds key=value strings: txtvers=1, name, version and
// node (the node ID), protocol (the node's "protocol" metadata),
// s.<key> for service metadata and n.<key> for other node metadata, and
// the endpoints. Every string is at most 255 bytes and the record at most
// 800, so that a node's records always fit in one packet of at most 1440
// bytes (less on an interface with a smaller MTU): Register refuses
// metadata that does not fit, saying which, rather than truncate it.
// Endpoints travel only as far as they fit: in order, compactly encoded
// under numbered keys (e0=/pkg.Service/Method?stream=unary, then
// e1=+Next for the same service; DNS-SD readers keep only the first
// occurrence of a key), with "eps" giving their number. A lookup in
// another process returns the first endpoints of a service, typically 20
// to 30; lookups in the registering process return all. Endpoints
// describe a service; they are not needed to call it.
//
// Register announces a node at once and twice more (after the announce
// interval, then twice that); Deregister and Close send goodbyes (the
// records with TTL 0). Records live for the ttl given to Register (120 s
// when it is 0), and a registration not refreshed within its TTL is
// withdrawn like a Deregister. Lookups and watches browse continuously
// once used: they listen to every announcement and goodbye, query with
// backoff from 1 s to 60 s, refresh records at 80–95% of their TTL, and
// drop the nodes of a host that vanished without a goodbye when their TTL
// runs out. Watch events are queued without bound, never dropped. A lookup
// answers from the cache at once when the service is there; otherwise it
// queries and returns as soon as answers arrive plus a short settle time,
// within a max wait (2 s by default). Its first query asks for unicast
// answers (RFC 6762 §5.4), which responders send at once even in the
// second after announcing, when they hold back multicast answers (§6);
// the max wait outlasts that second, re-querying within it.
//
// Queries for our nodes are answered at once, by multicast, and by unicast
// to a querier on another host of the link that asked for it; each
// querier gets an answer sent after its query arrived, however many ask
// at the same moment.
//
// By default every interface that is up and multicast-capable is used
// (MICRO_MDNS_INTERFACES or WithInterfaces choose others), over
// IPv4 and IPv6. A node registered with an unspecified host (":8080",
// "0.0.0.0:8080", "[::]:8080") is advertised, on each interface, with
// that interface's own addresses; a node registered with an IP or a host
// name is advertised with exactly that. The address a lookup returns
// comes from the records heard, preferring IPv4, then IPv6; an IPv6
// link-local address gets the zone of the interface it was heard on.
//
// Where mDNS cannot run (no usable interface, port 5353 unavailable, or
// a test binary outside internal/netns's private namespace) the registry
// still works within its process, and a failed lookup says why.
//
// It does not probe for name conflicts (node IDs are unique by
// construction), does not answer for other services, and does not cross
// routers: multicast DNS is link-local by design. It needs the interface
// each packet arrives on, which Linux and the BSDs (macOS) report.
package mdns

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"maps"
	"net/netip"
	"os"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/protoc-gen-micro/micro/internal/regvalid"
	"github.com/protoc-gen-micro/micro/internal/watchq"
	"github.com/protoc-gen-micro/micro/runtime/registry"
)

// errClosed is returned by the registry's methods after Close.
var errClosed = fmt.Errorf("registry/mdns: %w", registry.ErrClosed)

// Timings that are not options.
const (
	announcements   = 3                      // unsolicited responses per change, RFC 6762 §8.3
	browseFirst     = time.Second            // first browse query gap, doubling
	browseMax       = 60 * time.Second       // largest browse query gap
	coldRetry       = 200 * time.Millisecond // first re-query gap of a cold lookup, doubling
	answerGap       = 20 * time.Millisecond  // see answerLocked
	queryGap        = 20 * time.Millisecond  // identical queries closer than this are sent once
	ownPacketMemory = 5 * time.Second        // how long sent packets are recognised
	copyMemory      = time.Second            // how long copies of a packet heard are counted, see copyLocked
)

// linkRefresh is how often the interfaces and their addresses are read
// again, to join new interfaces and announce on changed ones.
const linkRefresh = 10 * time.Second

// mdnsRegistry is the mDNS registry; it is safe for concurrent use. It
// opens its sockets and starts its goroutines on first use and holds them
// until Close.
type mdnsRegistry struct {
	opts  options
	names names
	log   *slog.Logger

	mu      sync.Mutex
	state   int // idle, running or closed
	tr      *transport
	netErr  error // why there is no transport
	links   map[int]*link
	linksAt time.Time

	local    map[string]*localNode // instance key → node registered here
	byHost   map[string]*localNode // host key → node registered here
	goodbyes map[string]goodbyeDue // instance key → second goodbye to send
	cache    *cache                // records heard
	view     map[string]*nodeView  // instance key → what lookups see
	versions map[svcKey]int        // live nodes per name+version
	seq      uint64                // last nodeView.seq given
	changed  chan struct{}         // closed and replaced when view changes
	watchers map[*watchq.Watcher]struct{}
	sent     map[uint64]time.Time   // fingerprints of packets sent recently
	outq     []outgoing             // packets made, not yet written; see unlockAndSend
	copies   map[copyKey]*copyCount // responses heard recently; see copyLocked

	browsing    bool
	browseSince time.Time
	heard       time.Time // when records heard last changed the view
	nextBrowse  time.Time
	browseGap   time.Duration
	lastQuery   time.Time

	sendMu sync.Mutex // held while writing outq's packets; taken before mu, never while holding it

	wake chan struct{} // nudges loop to recompute its deadline
	done chan struct{} // closed by Close
	wg   sync.WaitGroup
}

const (
	idle = iota
	running
	closed
)

// copyKey is a response heard on an interface: its fingerprint and the
// interface.
type copyKey struct {
	fp      uint64
	ifindex int
}

// copyCount counts the copies of a response heard on each family, and
// when one was last heard.
type copyCount struct {
	n    [2]int // IPv4, IPv6
	last time.Time
}

type goodbyeDue struct {
	node *localNode
	at   time.Time
}

// outgoing is a packet to send once the registry's lock is released (see
// unlockAndSend).
type outgoing struct {
	family  family
	ifindex int
	to      netip.AddrPort // invalid: the family's group
	data    []byte
}

// NewRegistry returns an mDNS registry. It sends and listens nothing until
// first used; its owner must Close it. It panics on an invalid
// WithNetwork.
func NewRegistry(opts ...Option) registry.Registry {
	o := newOptions(opts)
	switch o.network {
	case "udp", "udp4", "udp6":
	default:
		panic(fmt.Sprintf("registry/mdns: WithNetwork(%q): want udp, udp4 or udp6", o.network))
	}
	return &mdnsRegistry{
		opts:     o,
		names:    newNames(domain),
		log:      o.logger.With("registry", "mdns"),
		local:    map[string]*localNode{},
		byHost:   map[string]*localNode{},
		goodbyes: map[string]goodbyeDue{},
		cache:    newCache(),
		view:     map[string]*nodeView{},
		versions: map[svcKey]int{},
		changed:  make(chan struct{}),
		watchers: map[*watchq.Watcher]struct{}{},
		sent:     map[uint64]time.Time{},
		copies:   map[copyKey]*copyCount{},
		wake:     make(chan struct{}, 1),
		done:     make(chan struct{}),
	}
}

// String returns "mdns".
func (r *mdnsRegistry) String() string { return "mdns" }

// Register advertises the service's nodes, or refreshes them. A new node,
// or one whose records changed, is announced at once; watchers here see a
// Create for a new name+version and an Update for changed nodes, as
// watchers elsewhere will when the announcement reaches them. The service
// must have a name and nodes, every node an ID and a host:port address,
// and its name, version, IDs and metadata must fit a TXT record (see the
// package documentation). A node ID names the mDNS instance, so it may not
// be registered under another service or version at the same time. The
// records live for ttl, 120 s when it is 0 (see the package
// documentation).
func (r *mdnsRegistry) Register(ctx context.Context, s *registry.Service, ttl time.Duration) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := validate(s); err != nil {
		return err
	}
	now := time.Now()
	nodes := make([]*localNode, 0, len(s.Nodes))
	for _, n := range s.Nodes {
		ln, err := newLocalNode(r.names, s, n, ttl, now)
		if err != nil {
			return fmt.Errorf("registry/mdns: register %q: %w", s.Name, err)
		}
		nodes = append(nodes, ln)
	}

	r.mu.Lock()
	if err := r.startLocked(now); err != nil {
		r.mu.Unlock()
		return err
	}
	for _, ln := range nodes {
		if old := r.local[key(ln.instance)]; old != nil && (old.svc.Name != s.Name || old.svc.Version != s.Version) {
			r.mu.Unlock()
			return fmt.Errorf("registry/mdns: register %q version %q: node %q is registered as service %q version %q; deregister it first",
				s.Name, s.Version, ln.svc.Nodes[0].ID, old.svc.Name, old.svc.Version)
		}
	}
	var out []outgoing
	touched := map[string]struct{}{}
	for _, ln := range nodes {
		k := key(ln.instance)
		if old := r.local[k]; old != nil && sameAdvert(old, ln) {
			old.expires = ln.expires
			continue
		}
		ln.announceLeft = announcements - 1
		ln.nextAnnounce = now.Add(r.opts.announceInterval)
		ln.announceGap = 2 * r.opts.announceInterval
		if old := r.local[k]; old != nil {
			delete(r.byHost, key(old.host))
		}
		r.local[k] = ln
		if !ln.named {
			r.byHost[key(ln.host)] = ln // a registered host name is not ours to answer for
		}
		delete(r.goodbyes, k)
		out = append(out, r.announceLocked([]*localNode{ln}, false)...)
		touched[k] = struct{}{}
	}
	r.updateLocked(touched)
	r.nudgeLocked()
	r.unlockAndSend(out)
	return nil
}

// Deregister withdraws the service's nodes, matched by ID, from the
// service of the same name and version, and sends goodbyes for them.
// Deregistering unknown nodes is not an error.
func (r *mdnsRegistry) Deregister(ctx context.Context, s *registry.Service) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if s == nil || s.Name == "" {
		return errors.New("registry/mdns: deregister: service has no name")
	}
	now := time.Now()
	r.mu.Lock()
	if err := r.startLocked(now); err != nil {
		r.mu.Unlock()
		return err
	}
	var gone []*localNode
	touched := map[string]struct{}{}
	for _, n := range s.Nodes {
		if n == nil {
			continue
		}
		k := key(r.names.instance(n.ID))
		ln := r.local[k]
		if ln == nil || ln.svc.Name != s.Name || ln.svc.Version != s.Version {
			continue
		}
		r.removeLocked(k, now)
		gone = append(gone, ln)
		touched[k] = struct{}{}
	}
	out := r.announceLocked(gone, true)
	r.updateLocked(touched)
	r.nudgeLocked()
	r.unlockAndSend(out)
	return nil
}

// removeLocked forgets local node k and schedules its second goodbye.
func (r *mdnsRegistry) removeLocked(k string, now time.Time) {
	ln := r.local[k]
	delete(r.local, k)
	delete(r.byHost, key(ln.host))
	r.goodbyes[k] = goodbyeDue{node: ln, at: now.Add(r.opts.announceInterval)}
}

// GetService returns every version of the named service with its nodes,
// versions in ascending order and nodes by ID. It answers from what the
// registry has heard when the service is there; otherwise it queries the
// network and returns once answers arrive and the settle time has passed,
// or fails after the max wait (or when ctx ends) with an error that wraps
// registry.ErrNotFound and says what was queried.
func (r *mdnsRegistry) GetService(ctx context.Context, name string) ([]*registry.Service, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	start := time.Now()
	r.mu.Lock()
	if err := r.startLocked(start); err != nil {
		r.mu.Unlock()
		return nil, err
	}
	out := r.browseLocked(start)
	if svcs := r.lookupLocked(name); len(svcs) > 0 {
		r.unlockAndSend(out)
		return svcs, nil
	}
	if len(r.joinedLocked()) == 0 {
		err := r.notFoundLocked(name, 0, nil)
		r.mu.Unlock()
		return nil, err
	}
	// The first query of a cold lookup asks for unicast answers (QU, RFC
	// 6762 §5.4): a responder that has just announced holds back multicast
	// answers for a second (§6), but answers a QU query at once. The
	// re-queries are ordinary (QM) ones, answered by multicast, in case the
	// unicast answer went to another socket on port 5353 (§15.1).
	out = append(out, r.queryLocked(start, nil, true)...)
	r.unlockAndSend(out)

	deadline := start.Add(r.opts.maxWait)
	retry, gap := start.Add(coldRetry), 2*coldRetry
	var found time.Time // when the service was first seen
	for {
		r.mu.Lock()
		if r.state == closed {
			r.mu.Unlock()
			return nil, errClosed
		}
		now := time.Now()
		svcs := r.lookupLocked(name)
		switch {
		case len(svcs) == 0:
			found = time.Time{}
		case found.IsZero():
			found = now
		}
		if len(svcs) > 0 && (now.Sub(found) >= r.opts.settle || !now.Before(deadline)) {
			r.mu.Unlock()
			return svcs, nil
		}
		if !now.Before(deadline) {
			err := r.notFoundLocked(name, now.Sub(start), nil)
			r.mu.Unlock()
			return nil, err
		}
		var out []outgoing
		wake := deadline
		if found.IsZero() {
			if !now.Before(retry) {
				out = r.queryLocked(now, nil, false)
				retry, gap = now.Add(gap), 2*gap
			}
			wake = minTime(wake, retry)
		} else {
			wake = minTime(wake, found.Add(r.opts.settle))
		}
		changed := r.changed
		r.unlockAndSend(out)

		t := time.NewTimer(wake.Sub(now))
		select {
		case <-changed:
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			r.mu.Lock()
			defer r.mu.Unlock()
			if svcs := r.lookupLocked(name); len(svcs) > 0 {
				return svcs, nil
			}
			return nil, r.notFoundLocked(name, time.Since(start), ctx.Err())
		}
		t.Stop()
	}
}

// ListServices returns every service known, one entry per name and
// version, sorted by name then version. Once the registry's cache is warm
// it answers at once. Before that it queries, again with growing gaps
// until answers come, and returns when answers have come in and settled,
// or after the max wait, or when ctx ends.
func (r *mdnsRegistry) ListServices(ctx context.Context) ([]*registry.Service, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	start := time.Now()
	r.mu.Lock()
	if err := r.startLocked(start); err != nil {
		r.mu.Unlock()
		return nil, err
	}
	out := r.browseLocked(start)
	if len(out) == 0 && !r.warmLocked(start) {
		out = r.queryLocked(start, nil, false)
	}
	r.unlockAndSend(out)

	retry, gap := start.Add(coldRetry), 2*coldRetry
	for {
		r.mu.Lock()
		if r.state == closed {
			r.mu.Unlock()
			return nil, errClosed
		}
		now := time.Now()
		if r.warmLocked(now) || len(r.joinedLocked()) == 0 {
			svcs := services(slices.Collect(maps.Values(r.view)))
			r.mu.Unlock()
			return svcs, nil
		}
		wake := r.browseSince.Add(r.opts.maxWait)
		out = nil
		if r.heard.After(r.browseSince) {
			wake = minTime(wake, r.heard.Add(r.opts.settle))
		} else {
			// Nothing heard yet: the query, or its answers, may have
			// been lost; ask again.
			if !now.Before(retry) {
				out = r.queryLocked(now, nil, false)
				retry, gap = now.Add(gap), 2*gap
			}
			wake = minTime(wake, retry)
		}
		changed := r.changed
		r.unlockAndSend(out)

		t := time.NewTimer(wake.Sub(now))
		select {
		case <-changed:
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return nil, ctx.Err()
		}
		t.Stop()
	}
}

// Watch reports changes from now on, in order, for the named service, or
// for every service when service is "": nodes registered here and nodes
// heard on the network. It does not replay the current state. Results
// queue without bound until Next takes them, so a slow watcher costs
// memory, never a lost result. The watch ends when Stop is called, ctx
// ends, or the registry is closed.
func (r *mdnsRegistry) Watch(ctx context.Context, service string) (registry.Watcher, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	w := watchq.New(service, r.forget)
	now := time.Now()
	r.mu.Lock()
	if err := r.startLocked(now); err != nil {
		r.mu.Unlock()
		return nil, err
	}
	out := r.browseLocked(now)
	r.watchers[w] = struct{}{}
	r.unlockAndSend(out)
	w.StopOnDone(ctx)
	return w, nil
}

// forget drops a stopped watcher. A watcher locks its own mutex after the
// registry's, so this runs outside the watcher's lock.
func (r *mdnsRegistry) forget(w *watchq.Watcher) {
	r.mu.Lock()
	delete(r.watchers, w)
	r.mu.Unlock()
}

// Close sends goodbyes for every node registered here, ends all watches,
// and stops the registry's goroutines and sockets. Other methods return an
// error wrapping registry.ErrClosed afterwards; a second Close returns nil.
func (r *mdnsRegistry) Close() error {
	r.mu.Lock()
	if r.state == closed {
		r.mu.Unlock()
		return nil
	}
	wasRunning := r.state == running
	r.state = closed
	nodes := slices.Collect(maps.Values(r.local))
	out := r.announceLocked(nodes, true)
	clear(r.local)
	watchers := r.watchers
	r.watchers = map[*watchq.Watcher]struct{}{}
	close(r.changed) // wakes lookups, which see the state
	r.unlockAndSend(out)
	if wasRunning {
		close(r.done)
		if r.tr != nil {
			r.tr.close()
		}
		r.wg.Wait()
	}
	for w := range watchers {
		w.End()
	}
	return nil
}

// startLocked opens the sockets and starts the goroutines on first use.
func (r *mdnsRegistry) startLocked(now time.Time) error {
	switch r.state {
	case closed:
		return errClosed
	case running:
		return nil
	}
	r.state = running
	r.refreshLinksLocked(now)
	r.wg.Add(1)
	go r.loop()
	return nil
}

// refreshLinksLocked opens the sockets if they are not open yet, reads the
// interfaces and joins the groups on new ones, and announces the local
// nodes on interfaces that are new or whose addresses changed.
func (r *mdnsRegistry) refreshLinksLocked(now time.Time) []outgoing {
	r.linksAt = now
	if multicastForbidden() {
		if r.netErr == nil {
			r.netErr = errors.New("a test binary sends no multicast outside a private network namespace (see internal/netns)")
			r.log.Debug("mDNS is off; registrations are visible in this process only", "reason", r.netErr)
		}
		return nil
	}
	if r.tr == nil {
		tr, err := listen(r.opts.network)
		if tr == nil {
			if r.netErr == nil || r.netErr.Error() != err.Error() {
				r.log.Warn("mDNS is unavailable; registrations are visible in this process only", "error", err)
			}
			r.netErr = err
			return nil
		}
		if err != nil {
			r.log.Debug("mDNS runs on one IP family only", "error", err)
		}
		r.tr, r.netErr = tr, nil
		for _, f := range []family{ip4, ip6} {
			if (f == ip4 && tr.c4 != nil) || (f == ip6 && tr.c6 != nil) {
				r.wg.Add(1)
				go r.read(f)
			}
		}
	}
	links, err := scanLinks(r.opts.interfaces)
	if err != nil {
		r.log.Warn("cannot read the interfaces", "error", err)
		return nil
	}
	var out []outgoing
	var fresh []*link
	for i, l := range links {
		old := r.links[i]
		if old != nil && old.ifi.Name == l.ifi.Name {
			l.joined4, l.joined6 = old.joined4, old.joined6
		}
		if err := r.tr.join(l); err != nil {
			r.log.Debug("cannot join the mDNS group", "interface", l.ifi.Name, "error", err)
		}
		if old == nil || !slices.Equal(old.addrs, l.addrs) {
			fresh = append(fresh, l)
		}
	}
	for i, old := range r.links {
		if links[i] == nil {
			r.tr.leave(old)
		}
	}
	first := r.links == nil
	r.links = links
	if first {
		for _, name := range r.opts.interfaces {
			if !slices.ContainsFunc(r.joinedLocked(), func(l *link) bool { return l.ifi.Name == name }) {
				r.log.Warn("cannot use the interface for mDNS: missing, down or without multicast", "interface", name)
			}
		}
		if len(r.joinedLocked()) == 0 {
			r.log.Warn("no interface to run mDNS on; registrations are visible in this process only",
				"interfaces", r.opts.interfaces)
		}
	}
	if !first && len(r.local) > 0 {
		for _, l := range fresh {
			out = append(out, r.multicastLocked([]*link{l}, slices.Collect(maps.Values(r.local)), false)...)
		}
	}
	return out
}

// multicastForbidden reports whether this is a test binary running
// outside the private network namespace internal/netns gives tests
// (which sets MICROTEST_NETNS=ready there). A test that reaches this registry
// by accident, through a default, must not announce itself on a real
// network: the registry then works within the process only.
func multicastForbidden() bool {
	return testing.Testing() && os.Getenv("MICROTEST_NETNS") != "ready"
}

// joinedLocked returns the links on which the registry sends on some
// family.
func (r *mdnsRegistry) joinedLocked() []*link {
	var out []*link
	for _, l := range r.links {
		if l.joined(ip4) || l.joined(ip6) {
			out = append(out, l)
		}
	}
	return out
}

// loop does everything that happens at a time rather than in response to
// a call or a packet: repeated announcements and goodbyes, expiry of
// registrations and of records heard, browse and refresh queries, and
// rereading the interfaces.
func (r *mdnsRegistry) loop() {
	defer r.wg.Done()
	t := time.NewTimer(time.Hour)
	defer t.Stop()
	for {
		r.mu.Lock()
		if r.state == closed {
			r.mu.Unlock()
			return
		}
		now := time.Now()
		out, next := r.tickLocked(now)
		r.unlockAndSend(out)

		// The floor keeps a deadline that is somehow always due from
		// spinning the loop.
		t.Reset(max(next.Sub(now), time.Millisecond))
		select {
		case <-t.C:
		case <-r.wake:
		case <-r.done:
			return
		}
	}
}

// tickLocked does what is due by now and returns when to come back.
func (r *mdnsRegistry) tickLocked(now time.Time) ([]outgoing, time.Time) {
	var out []outgoing
	next := r.linksAt.Add(linkRefresh)
	if !now.Before(next) {
		out = append(out, r.refreshLinksLocked(now)...)
		next = now.Add(linkRefresh)
	}

	touched := map[string]struct{}{}
	var announce, expired []*localNode
	owed := map[linkFamily][]*localNode{}
	for k, ln := range r.local {
		if !ln.expires.IsZero() && !now.Before(ln.expires) {
			r.removeLocked(k, now)
			expired = append(expired, ln)
			touched[k] = struct{}{}
			continue
		}
		for lf, at := range ln.deferred {
			if now.Before(at) {
				next = minTime(next, at)
				continue
			}
			delete(ln.deferred, lf)
			owed[lf] = append(owed[lf], ln)
		}
		if ln.announceLeft > 0 && !now.Before(ln.nextAnnounce) {
			announce = append(announce, ln)
			ln.announceLeft--
			ln.nextAnnounce = now.Add(ln.announceGap)
			ln.announceGap *= 2
		}
		if ln.announceLeft > 0 {
			next = minTime(next, ln.nextAnnounce)
		}
		if !ln.expires.IsZero() {
			next = minTime(next, ln.expires)
		}
	}
	for lf, nodes := range owed {
		out = append(out, r.answerDeferredLocked(lf, nodes, now)...)
	}
	if len(announce) > 0 {
		slices.SortFunc(announce, func(a, b *localNode) int { return cmp.Compare(a.instance, b.instance) })
		out = append(out, r.announceLocked(announce, false)...)
	}
	// Goodbyes of expired registrations, and second goodbyes.
	var bye []*localNode
	for k, g := range r.goodbyes {
		if !now.Before(g.at) {
			delete(r.goodbyes, k)
			if r.local[k] == nil {
				bye = append(bye, g.node)
			}
			continue
		}
		next = minTime(next, g.at)
	}
	bye = append(bye, expired...)
	out = append(out, r.announceLocked(bye, true)...)

	for k := range r.cache.expire(now) {
		touched[k] = struct{}{}
	}
	r.updateLocked(touched)

	if r.browsing {
		var qs []dns.Question
		if !now.Before(r.nextBrowse) {
			r.nextBrowse = now.Add(r.browseGap)
			r.browseGap = min(2*r.browseGap, browseMax)
			qs = append(qs, dns.Question{Name: r.names.service, Qtype: dns.TypePTR, Qclass: dns.ClassINET})
		}
		qs = append(qs, r.cache.due(r.names, now)...)
		if len(qs) > 0 {
			out = append(out, r.queryLocked(now, qs, false)...)
		}
		next = minTime(next, r.nextBrowse)
	}
	next = minTime(next, r.cache.next(r.browsing))

	for h, at := range r.sent {
		if now.Sub(at) > ownPacketMemory {
			delete(r.sent, h)
		}
	}
	for k, c := range r.copies {
		if now.Sub(c.last) > copyMemory {
			delete(r.copies, k)
		}
	}
	return out, next
}

// nudgeLocked makes loop recompute its deadline.
func (r *mdnsRegistry) nudgeLocked() {
	select {
	case r.wake <- struct{}{}:
	default: // already nudged
	}
}

// browseLocked starts browsing if it has not started, and returns the
// first query, which asks for unicast answers (see GetService).
func (r *mdnsRegistry) browseLocked(now time.Time) []outgoing {
	if r.browsing {
		return nil
	}
	r.browsing = true
	r.browseSince = now
	r.nextBrowse = now.Add(browseFirst)
	r.browseGap = 2 * browseFirst
	r.nudgeLocked()
	return r.queryLocked(now, nil, true)
}

// queryLocked returns a query for the questions, or for the service
// type's PTR when there are none, on every link, listing the PTR records
// held as known answers. A PTR query sent less than queryGap ago is not
// repeated. qu asks for unicast answers to the PTR question.
func (r *mdnsRegistry) queryLocked(now time.Time, qs []dns.Question, qu bool) []outgoing {
	if len(qs) == 0 {
		if now.Sub(r.lastQuery) < queryGap {
			return nil
		}
		class := uint16(dns.ClassINET)
		if qu {
			class |= unicastResponse
		}
		qs = []dns.Question{{Name: r.names.service, Qtype: dns.TypePTR, Qclass: class}}
	}
	if qs[0].Qtype == dns.TypePTR {
		r.lastQuery = now
	}
	m := &dns.Msg{Question: qs, Compress: true}
	if m.Len() > minMessage {
		m.Question = qs[:1] // refresh questions beyond a packet wait for the next round
	}
	if qs[0].Qtype == dns.TypePTR {
		for _, rr := range r.cache.knownAnswers(r.names, now) {
			m.Answer = append(m.Answer, rr)
			if m.Len() > minMessage {
				m.Answer = m.Answer[:len(m.Answer)-1]
				break
			}
		}
	}
	b, err := m.Pack()
	if err != nil {
		r.log.Error("packing a query", "error", err)
		return nil
	}
	var out []outgoing
	for _, l := range r.links {
		for _, f := range []family{ip4, ip6} {
			if l.joined(f) {
				out = append(out, r.outLocked(f, l.ifi.Index, netip.AddrPort{}, b, now))
			}
		}
	}
	return out
}

// announceLocked returns unsolicited responses with the nodes' records on
// every link: announcements, or goodbyes.
func (r *mdnsRegistry) announceLocked(nodes []*localNode, goodbye bool) []outgoing {
	return r.multicastLocked(slices.Collect(maps.Values(r.links)), nodes, goodbye)
}

// multicastLocked returns unsolicited responses holding the nodes' records
// for each link and family; goodbye sends them with TTL 0, otherwise each
// node's own TTL is used.
func (r *mdnsRegistry) multicastLocked(links []*link, nodes []*localNode, goodbye bool) []outgoing {
	if len(nodes) == 0 {
		return nil
	}
	now := time.Now()
	var out []outgoing
	for _, l := range links {
		if !l.joined(ip4) && !l.joined(ip6) {
			continue
		}
		groups := make([][]dns.RR, 0, len(nodes))
		for _, n := range nodes {
			ttl := n.ttl
			if goodbye {
				ttl = 0
			} else {
				for _, f := range []family{ip4, ip6} {
					if l.joined(f) {
						n.lastMulticast[linkFamily{l.ifi.Index, f}] = now
					}
				}
			}
			groups = append(groups, n.records(r.names, l, ttl, true))
		}
		msgs, err := pack(&dns.Msg{MsgHdr: dns.MsgHdr{Response: true, Authoritative: true}}, groups, l.budget())
		if err != nil {
			r.log.Error("packing an announcement", "interface", l.ifi.Name, "error", err)
		}
		for _, b := range msgs {
			for _, f := range []family{ip4, ip6} {
				if l.joined(f) {
					out = append(out, r.outLocked(f, l.ifi.Index, netip.AddrPort{}, b, now))
				}
			}
		}
	}
	return out
}

// outLocked returns a packet for sending. A response is remembered as
// ours, so that when multicast loopback brings it back the registry does
// not take its own nodes for remote ones (a Deregister racing its own
// earlier announcement would otherwise resurrect the node). Queries are
// not: every cold browser sends the same bytes, and another's query must
// be answered even when it is identical to ours.
func (r *mdnsRegistry) outLocked(f family, ifindex int, to netip.AddrPort, b []byte, now time.Time) outgoing {
	if len(b) > 2 && b[2]&0x80 != 0 { // QR: a response
		r.sent[fingerprint(b)] = now
	}
	return outgoing{family: f, ifindex: ifindex, to: to, data: b}
}

func fingerprint(b []byte) uint64 {
	h := fnv.New64a()
	h.Write(b)
	return h.Sum64()
}

// unlockAndSend queues packets made under the registry's lock, releases
// the lock, and writes every packet queued so far.
//
// Packets are made under the lock but written outside it, by whichever
// goroutine made them: a reader answering a query, the loop announcing,
// Register or Deregister. Were each to write its own, a packet made
// before another could reach the wire after it: an answer listing a node,
// made just before Deregister took the lock, written after Deregister's
// goodbye, brings the node back on every other host until its second
// goodbye or its TTL. Queueing under the lock and writing in queue order
// puts packets on the wire in the order the registry's state changed.
func (r *mdnsRegistry) unlockAndSend(out []outgoing) {
	if len(out) == 0 {
		r.mu.Unlock()
		return
	}
	r.outq = append(r.outq, out...)
	r.mu.Unlock()
	r.flush()
}

// flush writes the queued packets, in order, and returns once every packet
// queued before it was called has been written: by this goroutine, or by
// the one that held sendMu before it.
func (r *mdnsRegistry) flush() {
	r.sendMu.Lock()
	defer r.sendMu.Unlock()
	for {
		r.mu.Lock()
		out, tr := r.outq, r.tr
		r.outq = nil
		r.mu.Unlock()
		if len(out) == 0 || tr == nil {
			return
		}
		for _, p := range out {
			if err := tr.send(p.family, p.ifindex, p.to, p.data); err != nil {
				r.log.Debug("sending", "family", p.family, "ifindex", p.ifindex, "error", err)
			}
		}
	}
}

// read reads packets from one socket until Close.
func (r *mdnsRegistry) read(f family) {
	defer r.wg.Done()
	buf := make([]byte, 9000) // RFC 6762 §17: no mDNS packet is larger
	for {
		p, err := r.tr.read(f, buf)
		if err != nil {
			select {
			case <-r.done:
				return
			case <-time.After(50 * time.Millisecond): // do not spin on a persistent error
				r.log.Debug("reading", "family", f, "error", err)
				continue
			}
		}
		r.handle(p)
	}
}

// handle processes one packet: a response feeds the cache, a query is
// answered.
func (r *mdnsRegistry) handle(p received) {
	now := time.Now()
	r.mu.Lock()
	l := r.links[p.ifindex]
	if r.state != running || l == nil {
		r.mu.Unlock()
		return
	}
	fp := fingerprint(p.data)
	if _, ours := r.sent[fp]; ours {
		r.mu.Unlock()
		return
	}
	m, err := parseMessage(p.data)
	if m == nil {
		r.mu.Unlock()
		return
	}
	if err != nil || m.skipped > 0 {
		r.log.Debug("malformed packet, using what parsed", "from", p.from, "error", err, "skipped", m.skipped)
	}
	var out []outgoing
	if m.response {
		// RFC 6762 §6: responses must come from port 5353; §11: a unicast
		// one (the answer to a QU query) only from an address on the link
		// it arrived on.
		unicast := p.dst.IsValid() && !p.dst.IsMulticast()
		if unicast && !l.onLink(p.from.Addr()) {
			r.log.Debug("unicast response from off the link ignored", "from", p.from, "interface", l.ifi.Name)
		} else if p.from.Port() == port && !r.copyLocked(fp, p, now) {
			if r.updateLocked(r.cache.add(r.names, m, p.ifindex, now)) {
				r.heard = now
			}
			r.nudgeLocked()
		}
	} else {
		out = r.answerLocked(m, p, l, now)
	}
	r.unlockAndSend(out)
}

// copyLocked reports whether response p, with fingerprint fp, is a copy
// of one already handled: the same packet sent on the other IP family.
//
// A responder multicasts every announcement and goodbye on both families,
// and the two copies arrive on two sockets, read by two goroutines, in no
// set order between them. Handling every copy would let the IPv6 copy of
// an announcement, read late, undo the IPv4 copy of the goodbye sent after
// it, bringing the node back until the goodbye's IPv6 copy (or, were that
// lost, its TTL). So for each packet heard on an interface recently, the
// copies heard on each family are counted, and a copy is handled only when
// its family has not fallen behind the other: the n-th copy of the same
// bytes on a family is the n-th sending of them, handled when it first
// arrives on either family. A packet sent on one family only (an answer to
// a query heard there) is always handled, and so is the same packet sent
// again later, as when a node registers again after a goodbye.
func (r *mdnsRegistry) copyLocked(fp uint64, p received, now time.Time) bool {
	k := copyKey{fp, p.ifindex}
	c := r.copies[k]
	if c == nil || now.Sub(c.last) > copyMemory {
		c = &copyCount{}
		r.copies[k] = c
	}
	c.last = now
	i := 0
	if p.family == ip6 {
		i = 1
	}
	c.n[i]++
	return c.n[i] <= c.n[1-i]
}

// answerLocked answers a query with the records of local nodes. A
// multicast answer for a node goes out on the interface and family the
// query came in on, with that interface's addresses. Answers are sent at
// once: RFC 6762 §6 would have a shared record delayed by 20–120 ms and
// not multicast more than once a second, but each node here has its own
// records, and a lookup should not wait for another querier's answer.
//
// A node already answered on the interface and family less than
// answerGap ago is answered once more when the gap has passed, for every
// query that came within it: the answer before may have gone out before
// such a querier was listening (two processes starting together send the
// same query from the same address and port, so the source cannot tell
// them apart). A burst of identical queries thus gets two answers, and
// every querier hears one sent after its query arrived.
//
// A query from a port other than 5353 (a one-shot "legacy" query, such as
// dig's) gets a unicast answer (RFC 6762 §6.7). So does a query whose
// questions all ask for one (QU, §5.4) from another host on the link,
// for each node multicast on the interface within the last quarter of its
// TTL; the others are multicast. A QU query from this host is answered by
// multicast: a unicast answer to port 5353 here reaches one of the
// sockets sharing that port, not necessarily the querier's (§15.1).
func (r *mdnsRegistry) answerLocked(m *message, p received, l *link, now time.Time) []outgoing {
	if len(r.local) == 0 || len(m.questions) == 0 {
		return nil
	}
	legacy := p.from.Port() != port
	qu := !legacy && !l.own(p.from.Addr()) && l.onLink(p.from.Addr())
	for _, q := range m.questions {
		qu = qu && q.Qclass&unicastResponse != 0
	}
	service, enum := key(r.names.service), key(r.names.enum)
	var nodes []*localNode
	seen := map[*localNode]bool{}
	addNode := func(n *localNode) {
		if n != nil && !seen[n] {
			seen[n] = true
			nodes = append(nodes, n)
		}
	}
	withEnum := false
	for _, q := range m.questions {
		if c := q.Qclass &^ cacheFlush; c != dns.ClassINET && c != dns.ClassANY {
			continue
		}
		name, t := key(q.Name), q.Qtype
		switch {
		case name == service && (t == dns.TypePTR || t == dns.TypeANY):
			for _, k := range slices.Sorted(maps.Keys(r.local)) {
				if n := r.local[k]; !known(m, r.names, n) {
					addNode(n)
				}
			}
		case name == enum && (t == dns.TypePTR || t == dns.TypeANY):
			withEnum = true
		case t == dns.TypeSRV || t == dns.TypeTXT || t == dns.TypeANY:
			addNode(r.local[name])
			if t == dns.TypeANY {
				addNode(r.byHost[name])
			}
		case t == dns.TypeA || t == dns.TypeAAAA:
			addNode(r.byHost[name])
		}
	}
	lf := linkFamily{l.ifi.Index, p.family}
	var groups, unicast [][]dns.RR // groups: the multicast answer, or the legacy one
	if withEnum {
		if qu {
			unicast = append(unicast, []dns.RR{enumRecord(r.names, defaultTTL)})
		} else {
			groups = append(groups, []dns.RR{enumRecord(r.names, defaultTTL)})
		}
	}
	for _, n := range nodes {
		switch {
		case legacy:
			groups = append(groups, n.records(r.names, l, min(n.ttl, legacyTTL), false))
		case qu && now.Sub(n.lastMulticast[lf]) < time.Duration(n.ttl)*time.Second/4:
			unicast = append(unicast, n.records(r.names, l, n.ttl, true))
		case now.Sub(n.lastAnswer[lf]) < answerGap:
			if _, owed := n.deferred[lf]; !owed {
				n.deferred[lf] = n.lastAnswer[lf].Add(answerGap)
				r.nudgeLocked()
			}
		default:
			n.lastAnswer[lf], n.lastMulticast[lf] = now, now
			delete(n.deferred, lf)
			groups = append(groups, n.records(r.names, l, n.ttl, true))
		}
	}
	base := &dns.Msg{MsgHdr: dns.MsgHdr{Response: true, Authoritative: true}}
	to := netip.AddrPort{}
	if legacy {
		base.Id = m.id
		base.Question = m.questions[:1]
		to = p.from
	}
	out := r.packLocked(base, groups, l, p.family, to, now)
	if len(unicast) > 0 {
		out = append(out, r.packLocked(&dns.Msg{MsgHdr: dns.MsgHdr{Response: true, Authoritative: true}}, unicast, l, p.family, p.from, now)...)
	}
	return out
}

// answerDeferredLocked returns the multicast answers owed on lf (see
// answerLocked).
func (r *mdnsRegistry) answerDeferredLocked(lf linkFamily, nodes []*localNode, now time.Time) []outgoing {
	l := r.links[lf.ifindex]
	if l == nil || !l.joined(lf.family) {
		return nil
	}
	slices.SortFunc(nodes, func(a, b *localNode) int { return cmp.Compare(a.instance, b.instance) })
	groups := make([][]dns.RR, 0, len(nodes))
	for _, n := range nodes {
		n.lastAnswer[lf], n.lastMulticast[lf] = now, now
		groups = append(groups, n.records(r.names, l, n.ttl, true))
	}
	return r.packLocked(&dns.Msg{MsgHdr: dns.MsgHdr{Response: true, Authoritative: true}}, groups, l, lf.family, netip.AddrPort{}, now)
}

// packLocked packs groups of records into responses sent on l over family
// f, to the group or, when to is valid, to that address.
func (r *mdnsRegistry) packLocked(base *dns.Msg, groups [][]dns.RR, l *link, f family, to netip.AddrPort, now time.Time) []outgoing {
	if len(groups) == 0 {
		return nil
	}
	msgs, err := pack(base, groups, l.budget())
	if err != nil {
		r.log.Error("packing an answer", "interface", l.ifi.Name, "error", err)
	}
	out := make([]outgoing, 0, len(msgs))
	for _, b := range msgs {
		out = append(out, r.outLocked(f, l.ifi.Index, to, b, now))
	}
	return out
}

// known reports whether the query lists n's PTR record as a known answer
// with at least half its TTL left (RFC 6762 §7.1).
func known(m *message, nm names, n *localNode) bool {
	for _, rr := range m.records {
		if p, ok := rr.(*dns.PTR); ok && key(p.Hdr.Name) == key(nm.service) &&
			key(p.Ptr) == key(n.instance) && p.Hdr.Ttl >= n.ttl/2 {
			return true
		}
	}
	return false
}

// updateLocked recomputes the view of the touched instances, tells
// watchers and waiting lookups what changed, and reports whether anything
// did.
func (r *mdnsRegistry) updateLocked(touched map[string]struct{}) bool {
	if len(touched) == 0 {
		return false
	}
	changes := map[svcKey]*change{}
	get := func(k svcKey) *change {
		c := changes[k]
		if c == nil {
			c = &change{key: k, before: r.versions[k]}
			changes[k] = c
		}
		return c
	}
	type pair struct {
		k        string
		old, now *nodeView
	}
	var pairs []pair
	for k := range touched {
		var v *nodeView
		if ln := r.local[k]; ln != nil {
			v = viewOf(ln)
		} else {
			v = r.cache.node(k, r.links)
		}
		if old := r.view[k]; !old.same(v) {
			pairs = append(pairs, pair{k, old, v})
		}
	}
	if len(pairs) == 0 {
		return false
	}
	for _, p := range pairs {
		if p.old != nil {
			get(p.old.key())
		}
		if p.now != nil {
			get(p.now.key())
		}
	}
	for _, p := range pairs {
		if p.old != nil && (p.now == nil || p.old.key() != p.now.key()) {
			c := get(p.old.key())
			c.deleted = append(c.deleted, p.old)
			r.versions[p.old.key()]--
			if r.versions[p.old.key()] == 0 {
				delete(r.versions, p.old.key())
			}
			delete(r.view, p.k)
		}
		if p.now != nil {
			r.seq++
			p.now.seq = r.seq
			c := get(p.now.key())
			c.changed = append(c.changed, p.now)
			if p.old == nil || p.old.key() != p.now.key() {
				r.versions[p.now.key()]++
			}
			r.view[p.k] = p.now
		}
	}
	close(r.changed)
	r.changed = make(chan struct{})
	if len(r.watchers) > 0 {
		for _, res := range results(changes) {
			for w := range r.watchers {
				if w.Wants(res.Service.Name) {
					w.Push(&registry.Result{Action: res.Action, Service: res.Service.Clone()})
				}
			}
		}
	}
	return true
}

// warmLocked reports whether the registry has been browsing long enough
// to trust its cache for a listing: answers came in after browsing began
// and then settled, or the max wait has passed.
func (r *mdnsRegistry) warmLocked(now time.Time) bool {
	return r.browsing && (!now.Before(r.browseSince.Add(r.opts.maxWait)) ||
		(r.heard.After(r.browseSince) && now.Sub(r.heard) >= r.opts.settle))
}

// lookupLocked returns a copy of every version of the named service.
func (r *mdnsRegistry) lookupLocked(name string) []*registry.Service {
	var vs []*nodeView
	for _, v := range r.view {
		if v.name == name {
			vs = append(vs, v)
		}
	}
	if len(vs) == 0 {
		return nil
	}
	return services(vs)
}

// notFoundLocked is the error of a lookup that found nothing.
func (r *mdnsRegistry) notFoundLocked(name string, waited time.Duration, ctxErr error) error {
	e := &notFoundError{service: name, ctxErr: ctxErr}
	switch {
	case r.tr == nil:
		e.detail = fmt.Sprintf("mDNS is unavailable (%v)", r.netErr)
	case len(r.joinedLocked()) == 0:
		e.detail = "no interface to query: none is up with multicast"
		if len(r.opts.interfaces) > 0 {
			e.detail = fmt.Sprintf("no interface to query: none of %v is up with multicast", r.opts.interfaces)
		}
		e.detail += fmt.Sprintf(" (choose with %s or the Interfaces option)", envInterfaces)
	default:
		e.detail = fmt.Sprintf("no answer after querying %s for %v; if it runs on another host, multicast (UDP %d to %v and %v) may be blocked between the hosts",
			linkNames(r.links), waited.Round(time.Millisecond), port, group4, group6)
	}
	return e
}

// notFoundError wraps registry.ErrNotFound, and the context's error when
// the lookup's context ended it.
type notFoundError struct {
	service string
	detail  string
	ctxErr  error
}

func (e *notFoundError) Error() string {
	s := fmt.Sprintf("registry/mdns: service %q not found: %s", e.service, e.detail)
	if e.ctxErr != nil {
		s += " (" + e.ctxErr.Error() + ")"
	}
	return s
}

func (e *notFoundError) Unwrap() []error {
	if e.ctxErr != nil {
		return []error{registry.ErrNotFound, e.ctxErr}
	}
	return []error{registry.ErrNotFound}
}

func validate(s *registry.Service) error {
	if err := regvalid.Check("registry/mdns", s); err != nil {
		return err
	}
	ids := map[string]bool{}
	for _, n := range s.Nodes {
		if ids[n.ID] {
			return fmt.Errorf("registry/mdns: register %q: node ID %q appears twice", s.Name, n.ID)
		}
		ids[n.ID] = true
	}
	return nil
}
