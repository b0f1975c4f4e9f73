package mdns

import (
	"fmt"
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

// TestCacheBounded: a peer announcing ever more instances, addresses or
// a huge TTL cannot grow the cache past its bounds; known instances are
// still refreshed, and a goodbye makes room for a new one.
func TestCacheBounded(t *testing.T) {
	nm := newNames("local.")
	c := newCache()
	t0 := time.Now()
	instance := func(i int) []dns.RR {
		inst := fmt.Sprintf("n%d._micro._tcp.local.", i)
		h := func(t uint16) dns.RR_Header {
			return dns.RR_Header{Name: inst, Rrtype: t, Class: dns.ClassINET | cacheFlush}
		}
		return []dns.RR{
			&dns.PTR{Hdr: dns.RR_Header{Name: "_micro._tcp.local.", Rrtype: dns.TypePTR, Class: dns.ClassINET}, Ptr: inst},
			&dns.SRV{Hdr: h(dns.TypeSRV), Target: "flood.local.", Port: 80},
			&dns.TXT{Hdr: h(dns.TypeTXT), Txt: []string{"txtvers=1", "name=s", fmt.Sprintf("node=n%d", i)}},
		}
	}
	for i := range maxInstances + 100 {
		c.add(nm, cacheMessage(120, instance(i)...), 1, t0)
	}
	if len(c.ptr) != maxInstances || len(c.srv) != maxInstances || len(c.txt) != maxInstances {
		t.Fatalf("cache holds %d PTR, %d SRV, %d TXT after %d instances; want %d each",
			len(c.ptr), len(c.srv), len(c.txt), maxInstances+100, maxInstances)
	}
	// A known instance is refreshed; an unknown one is dropped.
	c.add(nm, cacheMessage(120, instance(0)...), 1, t0.Add(time.Minute))
	if got := c.ptr["n0._micro._tcp.local."].received; !got.Equal(t0.Add(time.Minute)) {
		t.Fatalf("known instance not refreshed at the bound: received %v", got)
	}
	if _, ok := c.srv["n4200._micro._tcp.local."]; ok {
		t.Fatal("an instance past the bound was cached")
	}
	// A goodbye makes room.
	c.add(nm, cacheMessage(0, instance(1)[0]), 1, t0)
	c.add(nm, cacheMessage(120, instance(maxInstances+50)...), 1, t0)
	if _, ok := c.srv[fmt.Sprintf("n%d._micro._tcp.local.", maxInstances+50)]; !ok {
		t.Fatal("no room for a new instance after a goodbye")
	}

	// Addresses of one host are bounded too.
	for i := range maxHostAddrs + 50 {
		a := &dns.A{Hdr: dns.RR_Header{Name: "flood.local.", Rrtype: dns.TypeA, Class: dns.ClassINET}, A: net.IPv4(10, 1, byte(i>>8), byte(i))}
		c.add(nm, cacheMessage(120, a), 1, t0)
	}
	if n := len(c.addr["flood.local."]); n != maxHostAddrs {
		t.Fatalf("%d addresses cached for one host, want %d", n, maxHostAddrs)
	}

	// No record outlives maxRecordTTL, whatever its TTL says.
	c2 := newCache()
	ptr, srv, txt, a := testRecords()
	c2.add(nm, cacheMessage(1<<31, ptr, srv, txt, a), 1, t0)
	if touched := c2.expire(t0.Add(maxRecordTTL)); len(touched) != 1 || len(c2.ptr)+len(c2.srv)+len(c2.txt) != 0 {
		t.Fatalf("records with a 68-year TTL still cached after %v: %d touched", maxRecordTTL, len(touched))
	}
}
