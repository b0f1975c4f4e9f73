package mdns

import (
	"encoding/binary"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/protoc-gen-micro/micro/runtime/registry"
)

// FuzzPacket feeds a packet from a peer through everything a response
// goes through: the lenient parser, the cache (TXT records through
// decodeTXT) and the assembly of nodes. It never panics, and a node it
// assembles has an ID, a service name and an address.
func FuzzPacket(f *testing.F) {
	nm := newNames("local.")
	s := &registry.Service{Name: "greeter", Version: "v1", Metadata: map[string]string{"team": "core"}, Endpoints: manyEndpoints(30)}
	ln, err := newLocalNode(nm, s, &registry.Node{ID: "g1", Address: "10.1.2.3:80", Metadata: map[string]string{"protocol": "grpc"}}, 0, time.Now())
	if err != nil {
		f.Fatal(err)
	}
	msgs, err := pack(&dns.Msg{MsgHdr: dns.MsgHdr{Response: true, Authoritative: true}}, [][]dns.RR{ln.records(nm, testLink(1500, "fd00::1"), 120, true)}, maxMessage)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(msgs[0])
	// The same with a malformed NSEC record, as python-zeroconf 0.47
	// writes, after the answers.
	bad := append(append([]byte(nil), msgs[0]...), badNSEC("g1._micro._tcp.local.")...)
	binary.BigEndian.PutUint16(bad[6:], binary.BigEndian.Uint16(bad[6:])+1)
	f.Add(bad)
	q := &dns.Msg{Question: []dns.Question{{Name: nm.service, Qtype: dns.TypePTR, Qclass: dns.ClassINET | unicastResponse}}}
	if b, err := q.Pack(); err == nil {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		m, _ := parseMessage(b)
		if m == nil {
			return
		}
		c := newCache()
		now := time.Now()
		for k := range c.add(nm, m, 1, now) {
			if v := c.node(k, nil); v != nil && (v.node.ID == "" || v.name == "" || v.node.Address == "") {
				t.Fatalf("node %+v", v)
			}
		}
		c.due(nm, now.Add(time.Hour))
		c.expire(now.Add(time.Hour))
	})
}
