package mdns

import (
	"encoding/binary"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/protoc-gen-micro/micro/runtime/registry"
)

// Names built here must equal the names miekg/dns reads back from the
// wire, or records for our own instances would not be recognised.
func TestInstanceNamesRoundTrip(t *testing.T) {
	nm := newNames("local.")
	for _, id := range []string{
		"greeter-1b4e28ba-2fa1-11d2-883f-0016d3cca427",
		"with.dots and spaces",
		`quote"back\slash(paren);semi@at$dollar'tick`,
		"ünïcödé-ノード",
		"ctl\x01\x7f",
		strings.Repeat("x", 100),
		strings.Repeat("é", 40),
	} {
		name := nm.instance(id)
		buf := make([]byte, 512)
		off, err := dns.PackDomainName(name, buf, 0, nil, false)
		if err != nil {
			t.Fatalf("%q: pack %q: %v", id, name, err)
		}
		if label := buf[0]; int(label) > maxLabel {
			t.Fatalf("%q: label of %d bytes", id, label)
		}
		got, _, err := dns.UnpackDomainName(buf[:off], 0)
		if err != nil || got != name {
			t.Fatalf("%q: unpacked %q, %v; want %q", id, got, err, name)
		}
		host := nm.host(id)
		if _, ok := dns.IsDomainName(host); !ok || strings.ContainsAny(strings.TrimSuffix(host, ".local."), ".\\ ") {
			t.Fatalf("%q: host %q", id, host)
		}
		if l := len(strings.TrimSuffix(host, ".local.")); l > maxLabel {
			t.Fatalf("%q: host label of %d bytes", id, l)
		}
	}
	if a, b := nm.host("a.b"), nm.host("a_b"); a == b {
		t.Fatalf("distinct IDs share host %q", a)
	}
	if a, b := nm.instance(strings.Repeat("x", 64)+"1"), nm.instance(strings.Repeat("x", 64)+"2"); a == b {
		t.Fatalf("distinct long IDs share instance %q", a)
	}
}

// The largest node the TXT budget admits, with the longest names and the
// most addresses, still fits in a packet on an interface with IPv6's
// minimum MTU, and so does a node of a service with 200 endpoints.
func TestNodeFitsInOnePacket(t *testing.T) {
	nm := newNames("local.")
	l := testLink(1280, "10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.4",
		"fd00::1", "fd00::2", "fd00::3", "fd00::4")
	long := strings.Repeat("n", 200)
	full := &registry.Service{Name: strings.Repeat("s", 100), Version: "v", Metadata: map[string]string{},
		Nodes: []*registry.Node{{ID: long, Address: ":65535"}}}
	// Grow the metadata to the last byte the budget allows.
	for i, size := 0, 250; size > 0; {
		k := string(rune('a' + i))
		full.Metadata[k] = strings.Repeat("v", size)
		if _, err := encodeTXT(full, full.Nodes[0]); err != nil {
			delete(full.Metadata, k)
			size--
			continue
		}
		i++
	}
	if txt, _ := encodeTXT(full, full.Nodes[0]); len(strings.Join(txt, "."))+1 != txtBudget {
		t.Fatalf("metadata fills %d bytes, not the budget", len(strings.Join(txt, "."))+1)
	}
	for _, s := range []*registry.Service{
		full,
		{Name: "big", Version: "v1", Endpoints: manyEndpointsWire(200), Nodes: []*registry.Node{{ID: long, Address: ":1"}}},
	} {
		ln, err := newLocalNode(nm, s, s.Nodes[0], 0, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		rrs := ln.records(nm, l, defaultTTL, true)
		msgs, err := pack(&dns.Msg{MsgHdr: dns.MsgHdr{Response: true}}, [][]dns.RR{rrs}, l.budget())
		if err != nil || len(msgs) != 1 {
			t.Fatalf("pack: %d messages, %v", len(msgs), err)
		}
		if n := len(msgs[0]); n > minMessage {
			t.Fatalf("%d bytes, more than %d", n, minMessage)
		}
		var m dns.Msg
		if err := m.Unpack(msgs[0]); err != nil {
			t.Fatalf("strict unpack: %v", err)
		}
		t.Logf("%s: %d records in %d bytes", s.Name[:3], len(m.Answer), len(msgs[0]))
	}
}

func manyEndpointsWire(n int) []*registry.Endpoint {
	var es []*registry.Endpoint
	for i := range n {
		es = append(es, &registry.Endpoint{Name: "/big.v1.Service/Method" + strings.Repeat("x", i%7), Metadata: map[string]string{"stream": "unary"}})
	}
	return es
}

func testLink(mtu int, addrs ...string) *link {
	l := &link{ifi: &net.Interface{Index: 7, Name: "test0", MTU: mtu}}
	for _, a := range addrs {
		l.addrs = append(l.addrs, netip.MustParseAddr(a))
	}
	return l
}

// Many nodes split into several packets, each within the interface's
// budget, each node whole.
func TestPackSplitsWholeNodes(t *testing.T) {
	nm := newNames("local.")
	l := testLink(1500, "10.0.0.1", "fd00::1")
	var groups [][]dns.RR
	for i := range 30 {
		s := &registry.Service{Name: "svc", Metadata: map[string]string{"k": strings.Repeat("v", 100)},
			Nodes: []*registry.Node{{ID: "node-" + string(rune('a'+i)), Address: ":80"}}}
		ln, err := newLocalNode(nm, s, s.Nodes[0], 0, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		groups = append(groups, ln.records(nm, l, 120, true))
	}
	msgs, err := pack(&dns.Msg{MsgHdr: dns.MsgHdr{Response: true}}, groups, l.budget())
	if err != nil {
		t.Fatal(err)
	}
	total := 0
	for _, b := range msgs {
		if len(b) > maxMessage {
			t.Fatalf("%d bytes", len(b))
		}
		var m dns.Msg
		if err := m.Unpack(b); err != nil {
			t.Fatal(err)
		}
		if len(m.Answer)%5 != 0 { // PTR, SRV, A, AAAA, TXT
			t.Fatalf("a node split across packets: %d records", len(m.Answer))
		}
		total += len(m.Answer)
	}
	if total != 30*5 || len(msgs) < 2 {
		t.Fatalf("%d records in %d packets", total, len(msgs))
	}
}

// A record that fails to parse (here an NSEC with a broken type bitmap, as
// python-zeroconf 0.47 writes) costs only itself: the records around it
// are read, and the whole-packet parser of miekg/dns would have lost them.
func TestParseSkipsMalformedRecord(t *testing.T) {
	nm := newNames("local.")
	ln, err := newLocalNode(nm, &registry.Service{Name: "greeter"}, &registry.Node{ID: "g1", Address: "10.1.2.3:80"}, 0, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	ln.svc.Nodes = []*registry.Node{{ID: "g1", Address: "10.1.2.3:80"}}
	rrs := ln.records(nm, testLink(1500), 120, true)
	b := buildPacket(t, rrs[:2], badNSEC("g1._micro._tcp.local."), rrs[2:])

	if err := new(dns.Msg).Unpack(b); err == nil {
		t.Fatal("miekg/dns parsed the malformed packet; the test proves nothing")
	}
	m, err := parseMessage(b)
	if err != nil {
		t.Fatal(err)
	}
	if m.skipped != 1 || len(m.records) != len(rrs) {
		t.Fatalf("skipped %d, kept %d of %d", m.skipped, len(m.records), len(rrs))
	}
	c := newCache()
	touched := c.add(nm, m, 1, time.Now())
	for k := range touched {
		v := c.node(k, nil)
		if v == nil || v.node.Address != "10.1.2.3:80" || v.name != "greeter" {
			t.Fatalf("node = %+v", v)
		}
		return
	}
	t.Fatal("no instance")
}

// Answers for other service types, and records of other hosts, are not
// cached.
func TestCacheIgnoresOtherServices(t *testing.T) {
	nm := newNames("local.")
	hdr := func(name string, t uint16) dns.RR_Header {
		return dns.RR_Header{Name: name, Rrtype: t, Class: dns.ClassINET | cacheFlush, Ttl: 120}
	}
	rrs := []dns.RR{
		&dns.PTR{Hdr: hdr("_http._tcp.local.", dns.TypePTR), Ptr: "web._http._tcp.local."},
		&dns.SRV{Hdr: hdr("web._http._tcp.local.", dns.TypeSRV), Target: "web.local.", Port: 80},
		&dns.TXT{Hdr: hdr("web._http._tcp.local.", dns.TypeTXT), Txt: []string{"txtvers=1", "name=x", "node=y"}},
		&dns.A{Hdr: hdr("web.local.", dns.TypeA), A: net.IPv4(10, 0, 0, 9)},
		&dns.PTR{Hdr: hdr("_services._dns-sd._udp.local.", dns.TypePTR), Ptr: "_http._tcp.local."},
	}
	m, err := parseMessage(buildPacket(t, rrs))
	if err != nil {
		t.Fatal(err)
	}
	c := newCache()
	if touched := c.add(nm, m, 1, time.Now()); len(touched) != 0 {
		t.Fatalf("touched %v", touched)
	}
	if len(c.ptr)+len(c.srv)+len(c.txt)+len(c.addr) != 0 {
		t.Fatalf("cached %+v", c)
	}
}

// buildPacket packs records into a response, inserting raw records given
// as []byte as they are.
func buildPacket(t *testing.T, parts ...any) []byte {
	t.Helper()
	b := make([]byte, 12, 1500)
	binary.BigEndian.PutUint16(b[2:], 1<<15|1<<10) // response, authoritative
	count := 0
	for _, p := range parts {
		switch p := p.(type) {
		case []dns.RR:
			for _, rr := range p {
				buf := make([]byte, 1500)
				off, err := dns.PackRR(rr, buf, 0, nil, false)
				if err != nil {
					t.Fatal(err)
				}
				b = append(b, buf[:off]...)
				count++
			}
		case []byte:
			b = append(b, p...)
			count++
		}
	}
	binary.BigEndian.PutUint16(b[6:], uint16(count))
	return b
}

// badNSEC returns an NSEC record whose type bitmap claims more bytes than
// it has.
func badNSEC(name string) []byte {
	buf := make([]byte, 300)
	off, _ := dns.PackDomainName(name, buf, 0, nil, false)
	rdata := []byte{0xc0, 12, 0, 40} // next name (pointer), window 0, bitmap of 40 bytes...
	rdata = append(rdata, 0x40)      // ...of which one is present
	h := make([]byte, 10)
	binary.BigEndian.PutUint16(h[0:], dns.TypeNSEC)
	binary.BigEndian.PutUint16(h[2:], dns.ClassINET|cacheFlush)
	binary.BigEndian.PutUint32(h[4:], 120)
	binary.BigEndian.PutUint16(h[8:], uint16(len(rdata)))
	return append(append(buf[:off], h...), rdata...)
}

// Metadata, names and IDs of any bytes survive the wire: miekg/dns reads
// and writes TXT strings in an escaped presentation format.
func TestTXTBytesSurviveTheWire(t *testing.T) {
	nm := newNames("local.")
	odd := "back\\slash \"quoted\" ünï \x01\x7f\xff; 100%"
	s := &registry.Service{
		Name:      "odd" + odd,
		Version:   odd,
		Metadata:  map[string]string{"k": odd, `key\"`: "v"},
		Endpoints: []*registry.Endpoint{{Name: "/odd/" + odd, Metadata: map[string]string{odd: odd}}},
	}
	n := &registry.Node{ID: "odd-" + odd, Address: "10.0.0.1:1", Metadata: map[string]string{"protocol": odd}}
	ln, err := newLocalNode(nm, s, n, 0, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	msgs, err := pack(&dns.Msg{MsgHdr: dns.MsgHdr{Response: true}}, [][]dns.RR{ln.records(nm, testLink(1500), 120, true)}, maxMessage)
	if err != nil {
		t.Fatal(err)
	}
	m, err := parseMessage(msgs[0])
	if err != nil || m.skipped != 0 {
		t.Fatalf("parse: %v, %d skipped", err, m.skipped)
	}
	c := newCache()
	c.add(nm, m, 1, time.Now())
	v := c.node(key(ln.instance), nil)
	if v == nil {
		t.Fatal("no node")
	}
	want := &nodeView{name: s.Name, version: s.Version, svcMeta: s.Metadata, endpoints: s.Endpoints,
		node: &registry.Node{ID: n.ID, Address: "10.0.0.1:1", Metadata: n.Metadata}}
	if !v.same(want) {
		t.Fatalf("got %+v %+v\nwant %+v %+v", v, v.node, want, want.node)
	}
}
