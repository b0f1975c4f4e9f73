package mdns

import (
	"net"
	"testing"
	"time"

	"github.com/miekg/dns"
)

func cacheMessage(ttl uint32, rrs ...dns.RR) *message {
	for _, rr := range rrs {
		rr.Header().Ttl = ttl
	}
	return &message{response: true, records: rrs}
}

func testRecords() (ptr, srv, txt, a dns.RR) {
	const inst = "n1._micro._tcp.local."
	h := func(name string, t uint16) dns.RR_Header {
		return dns.RR_Header{Name: name, Rrtype: t, Class: dns.ClassINET | cacheFlush}
	}
	return &dns.PTR{Hdr: dns.RR_Header{Name: "_micro._tcp.local.", Rrtype: dns.TypePTR, Class: dns.ClassINET}, Ptr: inst},
		&dns.SRV{Hdr: h(inst, dns.TypeSRV), Target: "n1.local.", Port: 80},
		&dns.TXT{Hdr: h(inst, dns.TypeTXT), Txt: []string{"txtvers=1", "name=s", "node=n1"}},
		&dns.A{Hdr: h("n1.local.", dns.TypeA), A: net.IPv4(10, 0, 0, 1)}
}

// Records are refreshed at 80, 85, 90 and 95% of their TTL (plus up to 2%
// jitter), then expire; every record due is asked for, even one whose
// companions are gone, so no deadline stays due forever.
func TestCacheRefreshAndExpiry(t *testing.T) {
	nm := newNames("local.")
	c := newCache()
	t0 := time.Now()
	ptr, srv, txt, a := testRecords()
	c.add(nm, cacheMessage(100, ptr, srv, txt, a), 1, t0)
	if v := c.node("n1._micro._tcp.local.", nil); v == nil || v.node.Address != "10.0.0.1:80" {
		t.Fatalf("node %+v", v)
	}
	if qs := c.due(nm, t0.Add(79*time.Second)); len(qs) != 0 {
		t.Fatalf("due at 79%%: %v", qs)
	}
	for i, at := range []time.Duration{83, 88, 93, 98} {
		qs := c.due(nm, t0.Add(at*time.Second))
		if len(qs) != 5 { // PTR, SRV, TXT, A, AAAA
			t.Fatalf("refresh %d at %ds: %v", i, at, qs)
		}
	}
	if qs := c.due(nm, t0.Add(99*time.Second)); len(qs) != 0 {
		t.Fatalf("a fifth refresh: %v", qs)
	}
	if touched := c.expire(t0.Add(100 * time.Second)); len(touched) != 1 {
		t.Fatalf("expired %v", touched)
	}
	if len(c.ptr)+len(c.srv)+len(c.txt)+len(c.addr) != 0 {
		t.Fatalf("left %+v", c)
	}

	// A TXT record alone is refreshed, and its due time then moves on.
	c.add(nm, cacheMessage(100, txt), 1, t0)
	now := t0.Add(83 * time.Second) // past 80% and the most jitter
	if !c.next(true).Before(now) {
		t.Fatal("not due")
	}
	if qs := c.due(nm, now); len(qs) != 2 || qs[0].Name != "n1._micro._tcp.local." {
		t.Fatalf("due: %v", qs)
	}
	if !c.next(true).After(now) {
		t.Fatal("still due after its query")
	}
}

// A goodbye removes the instance at once; a cache-flush address replaces
// the addresses heard on that interface more than a second before.
func TestCacheGoodbyeAndFlush(t *testing.T) {
	nm := newNames("local.")
	const inst = "n1._micro._tcp.local."
	c := newCache()
	t0 := time.Now()
	ptr, srv, txt, a := testRecords()
	c.add(nm, cacheMessage(120, ptr, srv, txt, a), 1, t0)

	b := &dns.A{Hdr: *a.Header(), A: net.IPv4(10, 0, 0, 2)}
	c.add(nm, cacheMessage(120, b), 1, t0.Add(2*time.Second))
	if n := len(c.addr["n1.local."]); n != 2 {
		t.Fatalf("%d addresses right after the flush, want both for a second", n)
	}
	c.expire(t0.Add(3 * time.Second))
	if v := c.node(inst, nil); v == nil || v.node.Address != "10.0.0.2:80" {
		t.Fatalf("after the flush: %+v", v)
	}
	// The same address heard on another interface is kept apart.
	c.add(nm, cacheMessage(120, a), 2, t0.Add(4*time.Second))
	if n := len(c.addr["n1.local."]); n != 2 {
		t.Fatalf("%d addresses", n)
	}

	if touched := c.add(nm, cacheMessage(0, ptr), 1, t0.Add(5*time.Second)); len(touched) != 1 {
		t.Fatalf("goodbye touched %v", touched)
	}
	if c.node(inst, nil) != nil || len(c.srv)+len(c.txt)+len(c.addr) != 0 {
		t.Fatalf("after the goodbye: %+v", c)
	}
}
