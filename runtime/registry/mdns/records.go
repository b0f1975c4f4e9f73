package mdns

import (
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"time"

	hmdns "github.com/hashicorp/mdns"
	"github.com/miekg/dns"
	"github.com/protoc-gen-micro/micro/runtime/registry"
)

const (
	// defaultTTL is the record TTL of a registration with ttl 0: RFC 6762
	// §10 recommends 120 s for records naming a host, and a service
	// registry wants vanished nodes gone as soon as that anyway.
	defaultTTL = 120
	// legacyTTL caps the TTL in answers to one-shot (legacy unicast)
	// queries, RFC 6762 §6.7.
	legacyTTL = 10
	// cacheFlush is the top bit of a record's class: "this record set
	// replaces what you hold" (RFC 6762 §10.2), set on unique records.
	cacheFlush = 1 << 15
	// unicastResponse is the top bit of a question's class: the querier
	// asks for a unicast answer (a "QU" question, RFC 6762 §5.4).
	unicastResponse = 1 << 15
)

// localNode is a node registered with this registry, which answers for
// it.
type localNode struct {
	svc      *registry.Service // owned copy holding just this node
	instance string            // instance FQDN
	host     string            // SRV target FQDN
	port     uint16
	ip       netip.Addr // the registered IP; invalid when the host is unspecified or a name
	named    bool       // the registered host is a DNS name, used as the SRV target
	txt      []string
	ttl      uint32    // record TTL in seconds
	expires  time.Time // registration expiry; zero: never

	// Announcements still to send (RFC 6762 §8.3), the next one's time,
	// and the gap after it, which doubles.
	announceLeft int
	nextAnnounce time.Time
	announceGap  time.Duration
	// lastAnswer rate-limits multicast answers to queries per interface
	// and family; deferred holds the time of the answer owed to queries
	// that came within answerGap of the last one (see answerLocked).
	lastAnswer map[linkFamily]time.Time
	deferred   map[linkFamily]time.Time
	// lastMulticast is when the records were last multicast, per
	// interface and family: a QU query is answered by unicast only within
	// a quarter of the TTL of that (RFC 6762 §5.4).
	lastMulticast map[linkFamily]time.Time
}

type linkFamily struct {
	ifindex int
	family  family
}

// newLocalNode checks node n of s and prepares its records.
func newLocalNode(nm names, s *registry.Service, n *registry.Node, ttl time.Duration, now time.Time) (*localNode, error) {
	host, portStr, err := net.SplitHostPort(n.Address)
	if err != nil {
		return nil, fmt.Errorf("node %q: address %q is not host:port, which mDNS needs to advertise it", n.ID, n.Address)
	}
	p, err := strconv.ParseUint(portStr, 10, 16)
	if err != nil || p == 0 {
		return nil, fmt.Errorf("node %q: address %q has no valid port", n.ID, n.Address)
	}
	txt, err := encodeTXT(s, n)
	if err != nil {
		return nil, fmt.Errorf("node %q: %w", n.ID, err)
	}
	ln := &localNode{
		svc: &registry.Service{
			Name:      s.Name,
			Version:   s.Version,
			Metadata:  s.Metadata,
			Endpoints: s.Endpoints,
			Nodes:     []*registry.Node{n},
		},
		instance: nm.instance(n.ID),
		host:     nm.host(n.ID),
		port:     uint16(p),
		txt:      txt,
		ttl:      defaultTTL,

		lastAnswer:    map[linkFamily]time.Time{},
		deferred:      map[linkFamily]time.Time{},
		lastMulticast: map[linkFamily]time.Time{},
	}
	ln.svc = ln.svc.Clone()
	if ip, err := netip.ParseAddr(host); err == nil {
		if !ip.IsUnspecified() {
			ln.ip = ip.Unmap().WithZone("")
		}
	} else if host != "" {
		if !isHostName(host) {
			return nil, fmt.Errorf("node %q: address %q: %q is neither an IP address nor a host name", n.ID, n.Address, host)
		}
		ln.host, ln.named = dns.Fqdn(host), true
	}
	if ttl > 0 {
		ln.ttl = uint32(min((ttl+time.Second-1)/time.Second, 1<<31-1))
		ln.expires = now.Add(ttl)
	}
	return ln, nil
}

// sameAdvert reports whether a and b put the same records on the wire and
// describe the same service.
func sameAdvert(a, b *localNode) bool {
	if a.instance != b.instance || a.host != b.host || a.port != b.port || a.ip != b.ip || a.ttl != b.ttl || len(a.txt) != len(b.txt) {
		return false
	}
	for i := range a.txt {
		if a.txt[i] != b.txt[i] {
			return false
		}
	}
	return viewOf(a).same(viewOf(b))
}

// records returns the node's PTR, SRV, A/AAAA and TXT records as sent on
// link l with the given TTL; flush sets the cache-flush bit on the unique
// ones (all but the PTR). The records come from hashicorp/mdns's
// MDNSService zone.
func (n *localNode) records(nm names, l *link, ttl uint32, flush bool) []dns.RR {
	var ips []net.IP
	switch {
	case n.ip.IsValid():
		ips = []net.IP{n.ip.AsSlice()}
	case !n.named:
		for _, a := range l.addrs {
			ips = append(ips, a.AsSlice())
		}
	}
	if len(ips) == 0 {
		// MDNSService looks the host up in DNS when given no address; an
		// unspecified placeholder stops it and is dropped below.
		ips = []net.IP{net.IPv4zero}
	}
	label := n.instance[:len(n.instance)-len(nm.service)-1]
	zone, err := hmdns.NewMDNSService(label, serviceType, nm.domain, n.host, int(n.port), ips, escapeTXT(n.txt))
	if err != nil {
		return nil // cannot happen: newLocalNode checked the inputs
	}
	rrs := zone.Records(dns.Question{Name: nm.service, Qtype: dns.TypePTR, Qclass: dns.ClassINET})
	out := rrs[:0]
	for _, rr := range rrs {
		if a, ok := rr.(*dns.A); ok && a.A.IsUnspecified() {
			continue
		}
		h := rr.Header()
		h.Ttl = ttl
		if flush && h.Rrtype != dns.TypePTR {
			h.Class |= cacheFlush
		}
		out = append(out, rr)
	}
	return out
}

// enumRecord is the DNS-SD service type enumeration record (RFC 6763 §9).
func enumRecord(nm names, ttl uint32) dns.RR {
	return &dns.PTR{
		Hdr: dns.RR_Header{Name: nm.enum, Rrtype: dns.TypePTR, Class: dns.ClassINET, Ttl: ttl},
		Ptr: nm.service,
	}
}

// pack packs groups of records into as few messages as it can, keeping
// each group whole and each message within budget bytes. base gives the
// header and questions of every message. A group too large on its own
// (which txtBudget rules out) is dropped and reported.
func pack(base *dns.Msg, groups [][]dns.RR, budget int) ([][]byte, error) {
	var out [][]byte
	var dropped int
	m := newMsg(base)
	flush := func() error {
		if len(m.Answer) == 0 {
			return nil
		}
		b, err := m.Pack()
		if err != nil {
			return err
		}
		out = append(out, b)
		m = newMsg(base)
		return nil
	}
	for _, g := range groups {
		if len(g) == 0 {
			continue
		}
		n := len(m.Answer)
		m.Answer = append(m.Answer, g...)
		if m.Len() <= budget {
			continue
		}
		m.Answer = m.Answer[:n]
		if err := flush(); err != nil {
			return out, err
		}
		m.Answer = append(m.Answer, g...)
		if m.Len() > budget {
			m.Answer = m.Answer[:0]
			dropped++
		}
	}
	if err := flush(); err != nil {
		return out, err
	}
	if dropped > 0 {
		return out, fmt.Errorf("%d record set(s) larger than %d bytes left out", dropped, budget)
	}
	return out, nil
}

func newMsg(base *dns.Msg) *dns.Msg {
	m := &dns.Msg{MsgHdr: base.MsgHdr, Compress: true}
	m.Question = append([]dns.Question(nil), base.Question...)
	return m
}

// isHostName reports whether s is a DNS host name: dot-separated labels
// of letters, digits, hyphens and underscores, 1 to 63 bytes each.
func isHostName(s string) bool {
	s = strings.TrimSuffix(s, ".")
	if s == "" || len(s) > 253 {
		return false
	}
	for _, label := range strings.Split(s, ".") {
		if label == "" || len(label) > maxLabel {
			return false
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
				return false
			}
		}
	}
	return true
}

// escapeTXT returns TXT strings in the presentation format miekg/dns packs
// from, in which a backslash starts an escape: each backslash is doubled,
// and every other byte, printable or not, stands for itself.
func escapeTXT(txt []string) []string {
	out := make([]string, len(txt))
	for i, s := range txt {
		out[i] = strings.ReplaceAll(s, `\`, `\\`)
	}
	return out
}

// unescapeTXT returns the bytes of TXT strings miekg/dns unpacked into
// presentation format, where '"' and '\' are escaped with a backslash and
// unprintable bytes written \DDD.
func unescapeTXT(txt []string) []string {
	out := make([]string, len(txt))
	for i, s := range txt {
		if !strings.Contains(s, `\`) {
			out[i] = s
			continue
		}
		b := make([]byte, 0, len(s))
		for j := 0; j < len(s); j++ {
			c := s[j]
			if c == '\\' && j+1 < len(s) {
				if j+3 < len(s) && isDigit(s[j+1]) && isDigit(s[j+2]) && isDigit(s[j+3]) {
					c = (s[j+1]-'0')*100 + (s[j+2]-'0')*10 + (s[j+3] - '0')
					j += 3
				} else {
					c = s[j+1]
					j++
				}
			}
			b = append(b, c)
		}
		out[i] = string(b)
	}
	return out
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }
