package mdns

import (
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/protoc-gen-micro/micro/runtime/registry"
)

// A host sends each announcement and goodbye on IPv4 and IPv6, and this
// registry reads the two copies from two sockets in two goroutines, so
// one family's copy of an announcement may be handled after the other
// family's copy of the goodbye that followed it. The late copy is of a
// packet already heard and must not bring the node back; a later packet,
// even with the same bytes (the node registered again), must.
func TestLateCopyOnOtherFamilyDoesNotResurrect(t *testing.T) {
	nm := newNames("local.")
	ifi := &net.Interface{Index: 7, Name: "eth7", MTU: 1500, Flags: net.FlagUp | net.FlagMulticast}
	l := &link{ifi: ifi, addrs: []netip.Addr{netip.MustParseAddr("10.0.0.2")}, has4: true, has6: true, joined4: true, joined6: true}
	r := NewRegistry().(*mdnsRegistry)
	r.state = running // no sockets, no loop: handle is fed by hand
	r.links = map[int]*link{ifi.Index: l}

	svc := &registry.Service{Name: "s", Version: "v1", Nodes: []*registry.Node{{ID: "n1", Address: "10.0.0.9:80"}}}
	ln, err := newLocalNode(nm, svc, svc.Nodes[0], 0, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	packet := func(ttl uint32) []byte {
		msgs, err := pack(&dns.Msg{MsgHdr: dns.MsgHdr{Response: true, Authoritative: true}}, [][]dns.RR{ln.records(nm, l, ttl, true)}, l.budget())
		if err != nil || len(msgs) != 1 {
			t.Fatalf("pack: %d messages, %v", len(msgs), err)
		}
		return msgs[0]
	}
	announce, goodbye := packet(120), packet(0)
	from := netip.MustParseAddrPort("10.0.0.9:5353")
	k := key(ln.instance)
	step := func(what string, f family, b []byte, want bool) {
		t.Helper()
		r.handle(received{family: f, ifindex: ifi.Index, from: from, data: b})
		if got := r.view[k] != nil; got != want {
			t.Fatalf("after %s on %v: node present = %v, want %v", what, f, got, want)
		}
	}
	step("announcement", ip4, announce, true)
	step("goodbye", ip4, goodbye, false)
	step("late copy of the announcement", ip6, announce, false)
	step("copy of the goodbye", ip6, goodbye, false)
	// Registered again: the same bytes, sent again, on both families.
	step("new announcement", ip6, announce, true)
	step("its copy", ip4, announce, true)
	step("goodbye", ip4, goodbye, false)
	step("its copy", ip6, goodbye, false)
	// One family only (an answer to a query heard on it): every packet counts.
	step("answer", ip4, announce, true)
	step("goodbye", ip4, goodbye, false)
	step("answer", ip4, announce, true)
}
