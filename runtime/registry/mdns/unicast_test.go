package mdns

import (
	"net/netip"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/protoc-gen-micro/micro/runtime/registry"
)

// testResponder returns a registry that is not started, answering for
// one node on a link with the address 10.0.0.1/24, and the link.
func testResponder(t *testing.T) (*mdnsRegistry, *link, *localNode) {
	t.Helper()
	r := NewRegistry().(*mdnsRegistry)
	l := testLink(1500, "10.0.0.1")
	l.prefixes = []netip.Prefix{netip.MustParsePrefix("10.0.0.1/24")}
	l.has4, l.joined4 = true, true
	r.links = map[int]*link{l.ifi.Index: l}
	r.linksAt = time.Now() // tickLocked leaves the interfaces alone
	s := &registry.Service{Name: "uni", Version: "v1", Nodes: []*registry.Node{{ID: "uni-1", Address: ":80"}}}
	ln, err := newLocalNode(r.names, s, s.Nodes[0], 0, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	r.local[key(ln.instance)] = ln
	r.byHost[key(ln.host)] = ln
	return r, l, ln
}

func ptrQuery(nm names, qu bool) *message {
	class := uint16(dns.ClassINET)
	if qu {
		class |= unicastResponse
	}
	return &message{questions: []dns.Question{{Name: nm.service, Qtype: dns.TypePTR, Qclass: class}}}
}

// A QU query from another host on the link is answered by unicast to the
// querier, with the records as multicast (full TTL, cache-flush bits), when
// the node was multicast within a quarter of its TTL; otherwise, from this
// host, from off the link, or without the QU bit, by multicast.
func TestQUQueryAnsweredByUnicast(t *testing.T) {
	peer := netip.MustParseAddrPort("10.0.0.9:5353")
	for _, tc := range []struct {
		name      string
		from      netip.AddrPort
		qu        bool
		multicast time.Duration // since the node was last multicast; 0: never
		unicast   bool
	}{
		{"QU from a peer", peer, true, time.Second, true},
		{"QU from a peer, not multicast lately", peer, true, 0, false},
		{"QU from a peer, multicast a half TTL ago", peer, true, defaultTTL / 2 * time.Second, false},
		{"QM from a peer", peer, false, time.Second, false},
		{"QU from this host", netip.MustParseAddrPort("10.0.0.1:5353"), true, time.Second, false},
		{"QU from loopback", netip.MustParseAddrPort("127.0.0.1:5353"), true, time.Second, false},
		{"QU from off the link", netip.MustParseAddrPort("192.0.2.7:5353"), true, time.Second, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, l, ln := testResponder(t)
			now := time.Now()
			lf := linkFamily{l.ifi.Index, ip4}
			if tc.multicast > 0 {
				ln.lastMulticast[lf] = now.Add(-tc.multicast)
			}
			p := received{family: ip4, ifindex: l.ifi.Index, from: tc.from, dst: group4}
			out := r.answerLocked(ptrQuery(r.names, tc.qu), p, l, now)
			if len(out) != 1 {
				t.Fatalf("%d packets, want 1", len(out))
			}
			if got := out[0].to.IsValid(); got != tc.unicast {
				t.Fatalf("answer to %v, want unicast %v", out[0].to, tc.unicast)
			}
			if tc.unicast && out[0].to != tc.from {
				t.Fatalf("unicast answer to %v, want the querier %v", out[0].to, tc.from)
			}
			var m dns.Msg
			if err := m.Unpack(out[0].data); err != nil {
				t.Fatal(err)
			}
			if !m.Response || m.Id != 0 || len(m.Answer) < 4 {
				t.Fatalf("answer %v", &m)
			}
			for _, rr := range m.Answer {
				h := rr.Header()
				if h.Ttl != defaultTTL || (h.Rrtype != dns.TypePTR) != (h.Class&cacheFlush != 0) {
					t.Fatalf("answer record %v", rr)
				}
			}
			// A unicast answer is not a multicast: it neither starts the
			// rate limit nor counts as keeping peers' caches fresh.
			if tc.unicast && (!ln.lastAnswer[lf].IsZero() || ln.lastMulticast[lf] != now.Add(-tc.multicast)) {
				t.Fatal("a unicast answer was counted as multicast")
			}
		})
	}
}

// A query that comes within answerGap of the last multicast answer, as a
// second process's identical query does, is owed an answer when the gap
// has passed; more queries within the gap add nothing to it.
func TestQueryWithinGapIsAnsweredAfterIt(t *testing.T) {
	r, l, ln := testResponder(t)
	lf := linkFamily{l.ifi.Index, ip4}
	p := received{family: ip4, ifindex: l.ifi.Index, from: netip.MustParseAddrPort("10.0.0.1:5353"), dst: group4}
	t0 := time.Now()
	if out := r.answerLocked(ptrQuery(r.names, false), p, l, t0); len(out) != 1 {
		t.Fatalf("first query: %d packets", len(out))
	}
	for i := 1; i <= 3; i++ {
		if out := r.answerLocked(ptrQuery(r.names, false), p, l, t0.Add(time.Duration(i)*time.Millisecond)); len(out) != 0 {
			t.Fatalf("query %d within the gap answered at once", i)
		}
	}
	if due := ln.deferred[lf]; !due.Equal(t0.Add(answerGap)) {
		t.Fatalf("answer owed at %v, want %v", due.Sub(t0), answerGap)
	}
	if out, _ := r.tickLocked(t0.Add(answerGap / 2)); countTo(out, netip.AddrPort{}) != 0 {
		t.Fatal("owed answer sent before the gap passed")
	}
	out, _ := r.tickLocked(t0.Add(answerGap))
	if n := countTo(out, netip.AddrPort{}); n != 1 {
		t.Fatalf("%d owed answers sent, want 1", n)
	}
	if len(ln.deferred) != 0 || !ln.lastAnswer[lf].Equal(t0.Add(answerGap)) {
		t.Fatalf("after the owed answer: deferred %v, last answer %v", ln.deferred, ln.lastAnswer[lf].Sub(t0))
	}
	if out, _ := r.tickLocked(t0.Add(3 * answerGap)); countTo(out, netip.AddrPort{}) != 0 {
		t.Fatal("owed answer sent twice")
	}
}

func countTo(out []outgoing, to netip.AddrPort) int {
	n := 0
	for _, o := range out {
		if o.to == to && len(o.data) > 2 && o.data[2]&0x80 != 0 {
			n++
		}
	}
	return n
}

// A unicast response (the answer to a QU query) is taken only from an
// address on the link it arrived on (RFC 6762 §11).
func TestUnicastResponseOnlyFromTheLink(t *testing.T) {
	for _, tc := range []struct {
		from string
		dst  netip.Addr
		want bool
	}{
		{"10.0.0.9:5353", netip.MustParseAddr("10.0.0.1"), true},
		{"192.0.2.7:5353", netip.MustParseAddr("10.0.0.1"), false},
		{"192.0.2.7:5353", group4, true}, // multicast: link-local by nature
	} {
		r, l, _ := testResponder(t)
		clear(r.local)
		r.state = running
		_, resp := quResponse(t)
		r.handle(received{family: ip4, ifindex: l.ifi.Index, from: netip.MustParseAddrPort(tc.from), dst: tc.dst, data: resp})
		if got := len(r.view) == 1; got != tc.want {
			t.Errorf("response from %s to %v: taken %v, want %v", tc.from, tc.dst, got, tc.want)
		}
	}
}

// quResponse returns a response holding another registry's node.
func quResponse(t *testing.T) (*localNode, []byte) {
	t.Helper()
	nm := newNames("local.")
	s := &registry.Service{Name: "remote", Nodes: []*registry.Node{{ID: "remote-1", Address: "10.0.0.9:80"}}}
	ln, err := newLocalNode(nm, s, s.Nodes[0], 0, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	msgs, err := pack(&dns.Msg{MsgHdr: dns.MsgHdr{Response: true, Authoritative: true}}, [][]dns.RR{ln.records(nm, testLink(1500), defaultTTL, true)}, maxMessage)
	if err != nil || len(msgs) != 1 {
		t.Fatal(len(msgs), err)
	}
	return ln, msgs[0]
}
