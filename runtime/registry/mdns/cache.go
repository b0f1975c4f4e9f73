package mdns

import (
	"cmp"
	"maps"
	"math/rand/v2"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/miekg/dns"
	"github.com/protoc-gen-micro/micro/runtime/registry"
)

// cache holds the records of our service type heard on the network, as
// RFC 6762 §10 describes: each expires at its TTL, a goodbye (TTL 0)
// removes it, a cache-flush record replaces the older ones of its set.
// Records for other service types are never stored; addresses only for
// host names an SRV record here points at.
type cache struct {
	ptr   map[string]*ptrRec             // instance key → PTR _micro._tcp → instance
	srv   map[string]*srvRec             // instance key
	txt   map[string]*txtRec             // instance key
	addr  map[string]map[addrKey]*rec    // host key → address as heard on an interface
	hosts map[string]map[string]struct{} // host key → instance keys whose SRV points there
}

// rec is what every cached record has.
type rec struct {
	received time.Time
	expires  time.Time
	ttl      time.Duration
	// refreshes counts the queries sent to refresh the record before it
	// expires (RFC 6762 §5.2: at 80, 85, 90 and 95% of its TTL).
	refreshes int
	jitter    float64 // 0–2% of the TTL, so that queriers spread out
}

type ptrRec struct {
	rec
	instance string
}

type srvRec struct {
	rec
	name   string // instance FQDN as received
	target string // host FQDN as received
	port   uint16
}

type txtRec struct {
	rec
	name string // instance FQDN as received
	desc description
	ok   bool // the TXT record is ours and parsed
}

// addrKey is an address and the interface it was heard on, which gives an
// IPv6 link-local address its zone.
type addrKey struct {
	ip      netip.Addr
	ifindex int
}

// What a peer can make the cache hold is bounded: the records of at most
// maxInstances instances of each type (PTR, SRV, TXT; beyond it, records of
// instances not yet known are dropped until some expire), at most
// maxHostAddrs addresses per host name (hosts are bounded by the SRV
// records pointing at them), and no record kept longer than maxRecordTTL
// however long the TTL it came with, the 75 minutes RFC 6762 §10
// recommends for records other than host addresses.
const (
	maxInstances = 4096
	maxHostAddrs = 32
	maxRecordTTL = 75 * time.Minute
)

func newCache() *cache {
	return &cache{
		ptr:   map[string]*ptrRec{},
		srv:   map[string]*srvRec{},
		txt:   map[string]*txtRec{},
		addr:  map[string]map[addrKey]*rec{},
		hosts: map[string]map[string]struct{}{},
	}
}

func newRec(ttl uint32, now time.Time) rec {
	d := min(time.Duration(ttl)*time.Second, maxRecordTTL)
	return rec{received: now, expires: now.Add(d), ttl: d, jitter: rand.Float64() * 0.02}
}

// refreshAt returns when the next refreshing query for r is due, or zero
// once all four have been sent.
func (r *rec) refreshAt() time.Time {
	if r.refreshes >= 4 {
		return time.Time{}
	}
	f := 0.80 + 0.05*float64(r.refreshes) + r.jitter
	return r.received.Add(time.Duration(f * float64(r.ttl)))
}

// add stores the records of a response heard on interface ifindex and
// returns the instances whose records changed.
func (c *cache) add(nm names, m *message, ifindex int, now time.Time) map[string]struct{} {
	touched := map[string]struct{}{}
	service := key(nm.service)
	var addrs []dns.RR
	for _, rr := range m.records {
		h := rr.Header()
		if h.Class&^cacheFlush != dns.ClassINET {
			continue
		}
		switch rr := rr.(type) {
		case *dns.PTR:
			if key(h.Name) != service {
				continue // other service types, and the type enumeration
			}
			ik := key(rr.Ptr)
			if !isInstance(ik, service) {
				continue
			}
			if h.Ttl == 0 {
				// A goodbye. RFC 6762 §10.1 keeps the record a second
				// longer in case another responder still holds it; our
				// instances have one owner, so the node goes at once.
				c.removeInstance(ik)
			} else if _, known := c.ptr[ik]; known || len(c.ptr) < maxInstances {
				c.ptr[ik] = &ptrRec{rec: newRec(h.Ttl, now), instance: rr.Ptr}
			} else {
				continue
			}
			touched[ik] = struct{}{}
		case *dns.SRV:
			ik := key(h.Name)
			if !isInstance(ik, service) {
				continue
			}
			if old := c.srv[ik]; old != nil && (h.Ttl == 0 || key(old.target) != key(rr.Target)) {
				c.unlinkHost(ik)
			}
			if _, known := c.srv[ik]; !known && h.Ttl != 0 && len(c.srv) >= maxInstances {
				continue
			}
			if h.Ttl == 0 {
				delete(c.srv, ik)
			} else {
				c.srv[ik] = &srvRec{rec: newRec(h.Ttl, now), name: h.Name, target: rr.Target, port: rr.Port}
				hk := key(rr.Target)
				if c.hosts[hk] == nil {
					c.hosts[hk] = map[string]struct{}{}
				}
				c.hosts[hk][ik] = struct{}{}
			}
			touched[ik] = struct{}{}
		case *dns.TXT:
			ik := key(h.Name)
			if !isInstance(ik, service) {
				continue
			}
			if _, known := c.txt[ik]; !known && h.Ttl != 0 && len(c.txt) >= maxInstances {
				continue
			}
			if h.Ttl == 0 {
				delete(c.txt, ik)
			} else {
				d, ok := decodeTXT(unescapeTXT(rr.Txt))
				c.txt[ik] = &txtRec{rec: newRec(h.Ttl, now), name: h.Name, desc: d, ok: ok}
			}
			touched[ik] = struct{}{}
		case *dns.A, *dns.AAAA:
			addrs = append(addrs, rr) // once every SRV of the packet is in
		}
	}
	for _, rr := range addrs {
		h := rr.Header()
		hk := key(h.Name)
		if len(c.hosts[hk]) == 0 {
			continue
		}
		var ip netip.Addr
		switch rr := rr.(type) {
		case *dns.A:
			ip, _ = netip.AddrFromSlice(rr.A.To4())
		case *dns.AAAA:
			ip, _ = netip.AddrFromSlice(rr.AAAA.To16())
		}
		if !ip.IsValid() || ip.IsUnspecified() || ip.IsMulticast() {
			continue
		}
		ip = ip.Unmap()
		set := c.addr[hk]
		if set == nil {
			set = map[addrKey]*rec{}
			c.addr[hk] = set
		}
		if h.Class&cacheFlush != 0 {
			// RFC 6762 §10.2: records of the set heard on this interface
			// more than a second ago are replaced by this one.
			for k, r := range set {
				if k.ifindex == ifindex && k.ip.Is4() == ip.Is4() && now.Sub(r.received) > time.Second {
					r.expires = minTime(r.expires, now.Add(time.Second))
				}
			}
		}
		k := addrKey{ip, ifindex}
		if _, known := set[k]; !known && h.Ttl != 0 && len(set) >= maxHostAddrs {
			continue
		}
		if h.Ttl == 0 {
			delete(set, k)
		} else {
			r := newRec(h.Ttl, now)
			set[k] = &r
		}
		for ik := range c.hosts[hk] {
			touched[ik] = struct{}{}
		}
	}
	return touched
}

func isInstance(ik, service string) bool {
	return len(ik) > len(service)+1 && strings.HasSuffix(ik, "."+service)
}

func (c *cache) removeInstance(ik string) {
	c.unlinkHost(ik)
	delete(c.ptr, ik)
	delete(c.srv, ik)
	delete(c.txt, ik)
}

// unlinkHost forgets that ik's SRV points at its host, and the host's
// addresses once nothing points there.
func (c *cache) unlinkHost(ik string) {
	s := c.srv[ik]
	if s == nil {
		return
	}
	hk := key(s.target)
	delete(c.hosts[hk], ik)
	if len(c.hosts[hk]) == 0 {
		delete(c.hosts, hk)
		delete(c.addr, hk)
	}
}

// expire removes the records expired by now and returns the instances
// they belonged to.
func (c *cache) expire(now time.Time) map[string]struct{} {
	touched := map[string]struct{}{}
	gone := func(r *rec) bool { return !now.Before(r.expires) }
	for ik, r := range c.ptr {
		if gone(&r.rec) {
			c.removeInstance(ik)
			touched[ik] = struct{}{}
		}
	}
	for ik, r := range c.srv {
		if gone(&r.rec) {
			c.unlinkHost(ik)
			delete(c.srv, ik)
			touched[ik] = struct{}{}
		}
	}
	for ik, r := range c.txt {
		if gone(&r.rec) {
			delete(c.txt, ik)
			touched[ik] = struct{}{}
		}
	}
	for hk, set := range c.addr {
		for k, r := range set {
			if gone(r) {
				delete(set, k)
				for ik := range c.hosts[hk] {
					touched[ik] = struct{}{}
				}
			}
		}
	}
	return touched
}

// next returns the earliest time at which a record expires or, when
// refreshing, is due for a refreshing query; zero if none.
func (c *cache) next(refreshing bool) time.Time {
	var t time.Time
	consider := func(r *rec) {
		t = minTime(t, r.expires)
		if refreshing {
			t = minTime(t, r.refreshAt())
		}
	}
	for _, r := range c.ptr {
		consider(&r.rec)
	}
	for _, r := range c.srv {
		consider(&r.rec)
	}
	for _, r := range c.txt {
		consider(&r.rec)
	}
	for _, set := range c.addr {
		for _, r := range set {
			consider(r)
		}
	}
	return t
}

// due returns the questions that refresh the records due for it by now,
// counting the query as sent: the PTR question when a PTR is due, SRV and
// TXT questions for an instance whose SRV or TXT is, A and AAAA for a
// host whose address is.
func (c *cache) due(nm names, now time.Time) []dns.Question {
	isDue := func(r *rec) bool {
		at := r.refreshAt()
		if at.IsZero() || now.Before(at) {
			return false
		}
		r.refreshes++
		return true
	}
	ptr := false
	for _, r := range c.ptr {
		ptr = isDue(&r.rec) || ptr
	}
	instances := map[string]string{} // key → name as received
	for _, r := range c.srv {
		if isDue(&r.rec) {
			instances[key(r.name)] = r.name
		}
	}
	for _, r := range c.txt {
		if isDue(&r.rec) {
			instances[key(r.name)] = r.name
		}
	}
	hosts := map[string]string{}
	for hk, set := range c.addr {
		for _, r := range set {
			if isDue(r) {
				for ik := range c.hosts[hk] {
					hosts[hk] = c.srv[ik].target
				}
			}
		}
	}
	var qs []dns.Question
	if ptr {
		qs = append(qs, dns.Question{Name: nm.service, Qtype: dns.TypePTR, Qclass: dns.ClassINET})
	}
	for _, k := range slices.Sorted(maps.Keys(instances)) {
		qs = append(qs,
			dns.Question{Name: instances[k], Qtype: dns.TypeSRV, Qclass: dns.ClassINET},
			dns.Question{Name: instances[k], Qtype: dns.TypeTXT, Qclass: dns.ClassINET})
	}
	for _, k := range slices.Sorted(maps.Keys(hosts)) {
		qs = append(qs,
			dns.Question{Name: hosts[k], Qtype: dns.TypeA, Qclass: dns.ClassINET},
			dns.Question{Name: hosts[k], Qtype: dns.TypeAAAA, Qclass: dns.ClassINET})
	}
	return qs
}

// knownAnswers returns the PTR records to list in a query so that
// responders need not repeat them: those with more than half their TTL
// left (RFC 6762 §7.1).
func (c *cache) knownAnswers(nm names, now time.Time) []dns.RR {
	var out []dns.RR
	for _, ik := range slices.Sorted(maps.Keys(c.ptr)) {
		r := c.ptr[ik]
		left := r.expires.Sub(now)
		if left*2 <= r.ttl {
			continue
		}
		out = append(out, &dns.PTR{
			Hdr: dns.RR_Header{Name: nm.service, Rrtype: dns.TypePTR, Class: dns.ClassINET, Ttl: uint32(left / time.Second)},
			Ptr: r.instance,
		})
	}
	return out
}

// node assembles instance ik's node from its records, or returns nil while
// some are missing. links names the interfaces for IPv6 link-local zones.
func (c *cache) node(ik string, links map[int]*link) *nodeView {
	p, s, t := c.ptr[ik], c.srv[ik], c.txt[ik]
	if p == nil || s == nil || t == nil || !t.ok {
		return nil
	}
	host := ""
	if set := c.addr[key(s.target)]; len(set) > 0 {
		best := slices.MinFunc(slices.Collect(maps.Keys(set)), func(a, b addrKey) int {
			return cmp.Or(cmp.Compare(rank(a.ip), rank(b.ip)), cmp.Compare(a.ifindex, b.ifindex), a.ip.Compare(b.ip))
		})
		ip := best.ip
		if ip.Is6() && ip.IsLinkLocalUnicast() {
			ip = ip.WithZone(zone(best.ifindex, links))
		}
		host = ip.String()
	} else if !strings.HasSuffix(key(s.target), ".local.") {
		host = strings.TrimSuffix(s.target, ".") // a DNS name the node registered
	} else {
		return nil
	}
	d := t.desc
	return &nodeView{
		name:      d.name,
		version:   d.version,
		svcMeta:   d.svcMeta,
		endpoints: d.endpoints,
		node: &registry.Node{
			ID:       d.nodeID,
			Address:  net.JoinHostPort(host, strconv.Itoa(int(s.port))),
			Metadata: d.nodeMeta,
		},
	}
}

// rank orders the addresses of a node by preference: routable IPv4, then
// routable IPv6, loopback, IPv4 link-local, and IPv6 link-local last.
func rank(a netip.Addr) int {
	switch {
	case a.IsLoopback():
		return 2
	case a.IsLinkLocalUnicast() && a.Is4():
		return 3
	case a.IsLinkLocalUnicast():
		return 4
	case a.Is4():
		return 0
	default:
		return 1
	}
}

func zone(ifindex int, links map[int]*link) string {
	if l := links[ifindex]; l != nil {
		return l.ifi.Name
	}
	if ifi, err := net.InterfaceByIndex(ifindex); err == nil {
		return ifi.Name
	}
	return strconv.Itoa(ifindex)
}

func minTime(a, b time.Time) time.Time {
	if a.IsZero() || (!b.IsZero() && b.Before(a)) {
		return b
	}
	return a
}
