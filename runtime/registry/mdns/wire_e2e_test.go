package mdns_test

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/protoc-gen-micro/micro/internal/leakcheck"
	"github.com/protoc-gen-micro/micro/runtime/registry"
	"github.com/protoc-gen-micro/micro/runtime/registry/mdns"
	"github.com/protoc-gen-micro/micro/runtime/registry/registrytest"
)

// Every packet the registries send, announcements, answers split over
// several packets, queries with known answers and goodbyes, stays within
// the size bound and parses strictly.
func TestEveryPacketFitsAndParses(t *testing.T) {
	leakcheck.Check(t)
	packets, _, await := mdns.Sniff(t)
	ctx := context.Background()
	a, b := newRegistry(t), newRegistry(t)

	big := service("sizes-big", "v1", node("sizes-big-1", ":1"))
	for i := range 200 {
		big.Endpoints = append(big.Endpoints, &registry.Endpoint{Name: fmt.Sprintf("/sizes.v1.Big/Method%03d", i)})
	}
	if err := a.Register(ctx, big, 0); err != nil {
		t.Fatal(err)
	}
	for i := range 40 {
		s := service("sizes", "v1", node(fmt.Sprintf("sizes-%02d", i), fmt.Sprintf(":%d", 2000+i)))
		s.Metadata["filler"] = strings.Repeat("x", 200)
		if err := a.Register(ctx, s, 0); err != nil {
			t.Fatal(err)
		}
	}
	// A cold registry's query is answered with every node: many packets.
	if got, err := b.GetService(ctx, "sizes"); err != nil {
		t.Fatal(err)
	} else if len(got[0].Nodes) < 30 {
		t.Logf("only %d nodes after settling", len(got[0].Nodes))
	}
	if list, err := b.ListServices(ctx); err != nil || len(list) != 2 {
		t.Fatalf("ListServices: %d, %v", len(list), err)
	}
	a.Close()
	await("goodbye from the closed registry", func(ps []mdns.Packet) bool {
		_, _, dead := tally(ps)
		return dead > 0
	})

	var queries, responses, largest int
	for _, p := range packets() {
		if len(p.Data) > mdns.MaxMessage {
			t.Errorf("a %d-byte packet from %v", len(p.Data), p.From)
		}
		largest = max(largest, len(p.Data))
		var m dns.Msg
		if err := m.Unpack(p.Data); err != nil {
			t.Fatalf("a packet from %v does not parse: %v", p.From, err)
		}
		if p.From.Port() != 5353 {
			t.Errorf("sent from port %d", p.From.Port())
		}
		if m.Response {
			responses++
			for _, rr := range m.Answer {
				if _, ptr := rr.(*dns.PTR); ptr && rr.Header().Class != dns.ClassINET {
					t.Errorf("shared PTR record with class %#x: %v", rr.Header().Class, rr)
				}
			}
		} else {
			queries++
		}
	}
	if queries == 0 || responses < 10 {
		t.Fatalf("saw %d queries and %d responses", queries, responses)
	}
	t.Logf("%d queries and %d responses, the largest %d bytes", queries, responses, largest)
}

// Records that do not parse cost only themselves, and other service
// types are ignored: hand-built packets as another responder might send.
func TestToleratesMalformedAndForeignRecords(t *testing.T) {
	leakcheck.Check(t)
	_, send, _ := mdns.Sniff(t)
	ctx := context.Background()
	r := newRegistry(t, mdns.WithMaxWait(100*time.Millisecond))
	w := registrytest.Watch(t, r, "")
	if _, err := r.ListServices(ctx); err != nil { // start browsing
		t.Fatal(err)
	}

	hdr := func(name string, t uint16, ttl uint32) dns.RR_Header {
		return dns.RR_Header{Name: name, Rrtype: t, Class: dns.ClassINET | 1<<15, Ttl: ttl}
	}
	inst := "tolerant-1._micro._tcp.local."
	ours := []dns.RR{
		&dns.PTR{Hdr: dns.RR_Header{Name: "_micro._tcp.local.", Rrtype: dns.TypePTR, Class: dns.ClassINET, Ttl: 120}, Ptr: inst},
		&dns.SRV{Hdr: hdr(inst, dns.TypeSRV, 120), Target: "tolerant-host.local.", Port: 4242},
		&dns.TXT{Hdr: hdr(inst, dns.TypeTXT, 120), Txt: []string{"txtvers=1", "name=tolerant", "version=v9", "node=tolerant-1", "s.k=v"}},
		&dns.A{Hdr: hdr("tolerant-host.local.", dns.TypeA, 120), A: net.IPv4(10, 9, 8, 7)},
	}
	foreign := []dns.RR{
		&dns.PTR{Hdr: dns.RR_Header{Name: "_http._tcp.local.", Rrtype: dns.TypePTR, Class: dns.ClassINET, Ttl: 120}, Ptr: "web._http._tcp.local."},
		&dns.SRV{Hdr: hdr("web._http._tcp.local.", dns.TypeSRV, 120), Target: "web.local.", Port: 80},
		&dns.TXT{Hdr: hdr("web._http._tcp.local.", dns.TypeTXT, 120), Txt: []string{"txtvers=1", "name=web", "node=web-1"}},
		&dns.A{Hdr: hdr("web.local.", dns.TypeA, 120), A: net.IPv4(10, 0, 0, 1)},
	}
	// A foreign service, then a packet whose malformed NSEC sits between
	// our records.
	send(rawPacket(t, foreign))
	pkt := rawPacket(t, ours[:2], badNSEC(inst), ours[2:])
	if err := new(dns.Msg).Unpack(pkt); err == nil {
		t.Fatal("the malformed packet parses strictly; the test proves nothing")
	}
	send(pkt)

	res := expect(t, w, registry.Create, "tolerant-1")
	if n := res.Service.Nodes[0]; n.Address != "10.9.8.7:4242" || res.Service.Version != "v9" || res.Service.Metadata["k"] != "v" {
		t.Fatalf("Create %s", dump(res.Service))
	}
	list, err := r.ListServices(ctx)
	if err != nil || len(list) != 1 || list[0].Name != "tolerant" {
		t.Fatalf("ListServices = %s, %v", dump(list...), err)
	}

	// A goodbye from the other responder removes the node at once.
	for _, rr := range ours {
		rr.Header().Ttl = 0
	}
	send(rawPacket(t, ours))
	expect(t, w, registry.Delete, "tolerant-1")
}

func rawPacket(t *testing.T, parts ...any) []byte {
	t.Helper()
	b := make([]byte, 12, 1500)
	binary.BigEndian.PutUint16(b[2:], 1<<15|1<<10)
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

// badNSEC is an NSEC record whose type bitmap claims 40 bytes and has one,
// the kind of record python-zeroconf 0.47 writes and cannot read back.
func badNSEC(name string) []byte {
	buf := make([]byte, 300)
	off, _ := dns.PackDomainName(name, buf, 0, nil, false)
	rdata := []byte{0xc0, 12, 0, 40, 0x40}
	h := make([]byte, 10)
	binary.BigEndian.PutUint16(h[0:], dns.TypeNSEC)
	binary.BigEndian.PutUint16(h[2:], dns.ClassINET|1<<15)
	binary.BigEndian.PutUint32(h[4:], 120)
	binary.BigEndian.PutUint16(h[8:], uint16(len(rdata)))
	return append(append(buf[:off], h...), rdata...)
}

// A one-shot query from a port other than 5353, as dig sends, is answered
// by unicast to that port, echoing the ID, without cache-flush bits and
// with a TTL of at most 10 s (RFC 6762 §6.7).
func TestLegacyUnicastQuery(t *testing.T) {
	leakcheck.Check(t)
	ctx := context.Background()
	r := newRegistry(t)
	if err := r.Register(ctx, service("legacy", "v1", node("legacy-1", ":5000")), 0); err != nil {
		t.Fatal(err)
	}
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	q := new(dns.Msg)
	q.SetQuestion("_micro._tcp.local.", dns.TypePTR)
	q.Id = 4711
	b, _ := q.Pack()
	if _, err := c.WriteTo(b, &net.UDPAddr{IP: net.IPv4(224, 0, 0, 251), Port: 5353}); err != nil {
		t.Fatal(err)
	}
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 9000)
	n, from, err := c.ReadFrom(buf)
	if err != nil {
		t.Fatal(err)
	}
	var m dns.Msg
	if err := m.Unpack(buf[:n]); err != nil {
		t.Fatal(err)
	}
	if m.Id != 4711 || len(m.Question) != 1 || len(m.Answer) < 4 || from.(*net.UDPAddr).Port != 5353 {
		t.Fatalf("answer from %v: %v", from, &m)
	}
	for _, rr := range m.Answer {
		if h := rr.Header(); h.Class != dns.ClassINET || h.Ttl > 10 {
			t.Fatalf("legacy answer record %v", rr)
		}
	}
}

// Register announces three times (at once, after the announce interval,
// after twice that more); Deregister sends the same records with TTL 0,
// twice. A browser queries at once, then with growing gaps.
func TestAnnouncementsGoodbyesAndQueries(t *testing.T) {
	leakcheck.Check(t)
	_, _, await := mdns.Sniff(t)
	ctx := context.Background()
	const interval = 100 * time.Millisecond
	a := newRegistry(t, mdns.WithAnnounceInterval(interval))
	s := service("announce", "v1", node("announce-1", ":1234"))
	start := time.Now()
	if err := a.Register(ctx, s, 0); err != nil {
		t.Fatal(err)
	}
	// Each phase waits for the packets it expects; a packet too many
	// would still be seen by the end, three browse queries (3 s) later.
	await("three announcements", func(ps []mdns.Packet) bool {
		_, live, _ := tally(ps)
		return live >= 3
	})
	if err := a.Deregister(ctx, s); err != nil {
		t.Fatal(err)
	}
	await("two goodbyes", func(ps []mdns.Packet) bool {
		_, _, dead := tally(ps)
		return dead >= 2
	})

	browseStart := time.Now()
	registrytest.Watch(t, newRegistry(t), "") // browses from now on
	seen := await("three browse queries", func(ps []mdns.Packet) bool {
		queries, _, _ := tally(ps)
		return queries >= 3
	})

	var announced, goodbyes, queries []time.Duration
	for _, p := range seen {
		query, live, dead, err := records(p)
		switch {
		case err != nil:
			t.Fatal(err)
		case query:
			queries = append(queries, p.At.Sub(browseStart))
		case live >= 4 && dead == 0: // PTR, SRV, TXT, A and maybe AAAA
			announced = append(announced, p.At.Sub(start))
		case dead >= 4 && live == 0:
			goodbyes = append(goodbyes, p.At.Sub(start))
		default:
			t.Fatalf("a response with %d live and %d dead records", live, dead)
		}
	}
	t.Logf("announcements at %v, goodbyes at %v, queries at %v", announced, goodbyes, queries)
	if len(announced) != 3 || len(goodbyes) != 2 {
		t.Fatalf("%d announcements and %d goodbyes, want 3 and 2", len(announced), len(goodbyes))
	}
	// Gaps of the interval and twice it, give or take the start-up of the
	// sockets, which the first announcement waits for.
	if g1, g2 := announced[1]-announced[0], announced[2]-announced[1]; g1 < interval*8/10 || g2 < 2*interval*8/10 || g2 < g1 {
		t.Fatalf("announcement gaps %v and %v, want about %v and %v", g1, g2, interval, 2*interval)
	}
	// Queries at about 0, 1 s and 3 s: each gap at least the one before.
	if len(queries) != 3 || queries[2]-queries[1] < queries[1]-queries[0] || queries[1]-queries[0] < 900*time.Millisecond {
		t.Fatalf("browse queries at %v, want three with gaps of 1 s and 2 s", queries)
	}
}

// tally counts sniffed packets as queries, live responses (every answer
// with a TTL: announcements and answers) and goodbyes (every answer with
// TTL 0). A packet that does not parse counts as none.
func tally(ps []mdns.Packet) (queries, live, dead int) {
	for _, p := range ps {
		q, l, d := classify(p)
		queries, live, dead = queries+q, live+l, dead+d
	}
	return queries, live, dead
}

// classify is tally for one packet: 1 for what it is, 0 otherwise.
func classify(p mdns.Packet) (query, live, dead int) {
	q, l, d, err := records(p)
	switch {
	case err != nil:
		return 0, 0, 0
	case q:
		return 1, 0, 0
	case l > 0 && d == 0:
		return 0, 1, 0
	case d > 0 && l == 0:
		return 0, 0, 1
	}
	return 0, 0, 0
}

// records parses a sniffed packet: a query, or a response with its live
// answers (with a TTL) and dead ones (TTL 0, goodbyes).
func records(p mdns.Packet) (query bool, live, dead int, err error) {
	var m dns.Msg
	if err := m.Unpack(p.Data); err != nil {
		return false, 0, 0, fmt.Errorf("a packet from %v does not parse: %w", p.From, err)
	}
	if !m.Response {
		return true, 0, 0, nil
	}
	for _, rr := range m.Answer {
		if rr.Header().Ttl == 0 {
			dead++
		} else {
			live++
		}
	}
	return false, live, dead, nil
}

// A cold lookup's first query asks for unicast answers (QU, RFC 6762
// §5.4), so that a responder holding back multicast answers answers at
// once; its re-queries do not.
func TestFirstColdQueryAsksForUnicast(t *testing.T) {
	leakcheck.Check(t)
	_, _, await := mdns.Sniff(t)
	r := newRegistry(t, mdns.WithMaxWait(500*time.Millisecond))
	if _, err := r.GetService(context.Background(), "nowhere"); !errors.Is(err, registry.ErrNotFound) {
		t.Fatalf("GetService: %v", err)
	}
	r.Close() // no browse queries later: what is sniffed was sent within the wait
	var qu []bool
	for _, p := range await("second query", func(ps []mdns.Packet) bool { q, _, _ := tally(ps); return q >= 2 }) {
		var m dns.Msg
		if m.Unpack(p.Data) != nil || m.Response || len(m.Question) == 0 {
			continue
		}
		qu = append(qu, m.Question[0].Qclass&(1<<15) != 0)
	}
	// Queries at 0 and 200 ms, within the 500 ms wait.
	if len(qu) < 2 || !qu[0] || slices.Contains(qu[1:], true) {
		t.Fatalf("QU bits of the queries: %v, want the first only", qu)
	}
}

// A cold listing that hears nothing asks again within its wait: its query,
// or the answers, may have been lost.
func TestListServicesRequeries(t *testing.T) {
	leakcheck.Check(t)
	_, _, await := mdns.Sniff(t)
	r := newRegistry(t, mdns.WithMaxWait(500*time.Millisecond))
	if list, err := r.ListServices(context.Background()); err != nil || len(list) != 0 {
		t.Fatalf("ListServices = %s, %v", dump(list...), err)
	}
	r.Close() // no browse queries later: what is sniffed was sent within the wait
	await("second query", func(ps []mdns.Packet) bool { q, _, _ := tally(ps); return q >= 2 })
}

// Two identical queries sent together, as two processes starting at once
// send them, get two answers: the second querier may have missed the
// answer to the first, which may have gone out before it was listening.
func TestAnswersEveryQuerier(t *testing.T) {
	leakcheck.Check(t)
	packets, send, await := mdns.Sniff(t)
	r := newRegistry(t)
	if err := r.Register(context.Background(), service("each", "v1", node("each-1", ":1")), 0); err != nil {
		t.Fatal(err)
	}
	before := await("three announcements", func(ps []mdns.Packet) bool {
		_, live, _ := tally(ps)
		return live >= 3
	})
	q := new(dns.Msg)
	q.SetQuestion("_micro._tcp.local.", dns.TypePTR)
	q.Id = 0
	b, err := q.Pack()
	if err != nil {
		t.Fatal(err)
	}
	send(b)
	send(b)
	await("answers to both queries", func(ps []mdns.Packet) bool {
		_, live, _ := tally(ps[len(before):])
		return live >= 2
	})
	// The second answer follows the second query.
	ps := packets()[len(before):]
	last := -1
	for i, p := range ps {
		if q, _, _ := classify(p); q == 1 {
			last = i
		}
	}
	if _, live, _ := tally(ps[last+1:]); live == 0 {
		t.Fatal("no answer after the second query")
	}
}
