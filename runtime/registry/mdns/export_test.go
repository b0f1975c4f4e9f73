package mdns

import (
	"errors"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// Packet is a packet seen by a Sniffer.
type Packet struct {
	Family  int
	From    netip.AddrPort
	Ifindex int
	Data    []byte
	At      time.Time
}

// Sniff records every mDNS packet on the test namespace's interfaces
// until the test ends, and returns a function that reports them so far.
// It also returns a function that sends a packet from port 5353 to the
// IPv4 group on every interface, and one that blocks until cond holds of
// the packets seen so far and returns them: woken by each packet, it
// fails the test only if cond still does not hold after 10 s.
func Sniff(t *testing.T) (packets func() []Packet, send func([]byte), await func(what string, cond func([]Packet) bool) []Packet) {
	t.Helper()
	tr, err := listen("udp")
	if tr == nil {
		t.Fatal(err)
	}
	links, err := scanLinks(nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range links {
		_ = tr.join(l)
	}
	var (
		mu      sync.Mutex
		got     []Packet
		changed = make(chan struct{}) // closed and replaced on each packet
		wg      sync.WaitGroup
	)
	for _, f := range []family{ip4, ip6} {
		if (f == ip4 && tr.c4 == nil) || (f == ip6 && tr.c6 == nil) {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, 9000)
			for {
				p, err := tr.read(f, buf)
				if err != nil {
					return
				}
				mu.Lock()
				got = append(got, Packet{int(f), p.from, p.ifindex, append([]byte(nil), p.data...), time.Now()})
				close(changed)
				changed = make(chan struct{})
				mu.Unlock()
			}
		}()
	}
	t.Cleanup(func() {
		tr.close()
		wg.Wait()
	})
	packets = func() []Packet {
		mu.Lock()
		defer mu.Unlock()
		return append([]Packet(nil), got...)
	}
	send = func(b []byte) {
		for _, l := range links {
			if l.joined4 {
				if err := tr.send(ip4, l.ifi.Index, netip.AddrPort{}, b); err != nil {
					t.Errorf("sending on %s: %v", l.ifi.Name, err)
				}
			}
		}
	}
	await = func(what string, cond func([]Packet) bool) []Packet {
		t.Helper()
		watchdog := time.NewTimer(10 * time.Second)
		defer watchdog.Stop()
		for {
			mu.Lock()
			ps, wake := append([]Packet(nil), got...), changed
			mu.Unlock()
			if cond(ps) {
				return ps
			}
			select {
			case <-wake:
			case <-watchdog.C:
				t.Fatalf("sniffer: no %s within 10 s", what)
			}
		}
	}
	return packets, send, await
}

// MaxMessage is the largest DNS message the registry sends.
const MaxMessage = maxMessage

// AskUnicast sends one query for the service type with the QU bit from
// port 5353 over IPv4 on every interface, and returns the source of the
// first response sent to this host by unicast, or an error when none comes
// within wait.
func AskUnicast(wait time.Duration) (netip.AddrPort, error) {
	tr, err := listen("udp4")
	if tr == nil {
		return netip.AddrPort{}, err
	}
	defer tr.close()
	links, err := scanLinks(nil)
	if err != nil {
		return netip.AddrPort{}, err
	}
	q := &dns.Msg{Question: []dns.Question{{Name: newNames(domain).service, Qtype: dns.TypePTR, Qclass: dns.ClassINET | unicastResponse}}}
	b, err := q.Pack()
	if err != nil {
		return netip.AddrPort{}, err
	}
	for _, l := range links {
		if tr.join(l) == nil && l.joined4 {
			if err := tr.send(ip4, l.ifi.Index, netip.AddrPort{}, b); err != nil {
				return netip.AddrPort{}, err
			}
		}
	}
	if err := tr.c4.SetReadDeadline(time.Now().Add(wait)); err != nil {
		return netip.AddrPort{}, err
	}
	buf := make([]byte, 9000)
	for {
		p, err := tr.read(ip4, buf)
		if err != nil {
			return netip.AddrPort{}, errors.Join(errors.New("no unicast answer"), err)
		}
		if m, _ := parseMessage(p.data); m != nil && m.response && len(m.records) > 0 && p.dst.IsValid() && !p.dst.IsMulticast() {
			return p.from, nil
		}
	}
}
