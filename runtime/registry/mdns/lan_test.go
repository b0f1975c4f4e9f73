package mdns_test

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/protoc-gen-micro/micro/internal/leakcheck"
	"github.com/protoc-gen-micro/micro/internal/netns"
)

// Three hosts on one LAN: a node registered on A is found by B and C at
// A's address on that LAN, never at A's loopback or at the address of
// A's other interface, over IPv4 and IPv6; its goodbye reaches both.
func TestLAN(t *testing.T) {
	leakcheck.Check(t)
	for _, tc := range []struct {
		name    string
		network string   // the Network option of every host
		setup   []string // run on every host first
		want    func(a *netns.Host, ll netip.Addr) string
	}{
		{"IPv4 and IPv6", "udp", nil,
			func(a *netns.Host, _ netip.Addr) string { return a.IPv4.String() + ":8080" }},
		{"over IPv6 only", "udp6", nil,
			func(a *netns.Host, _ netip.Addr) string { return a.IPv4.String() + ":8080" }},
		{"IPv6 addresses only", "udp", []string{"ip -4 addr flush dev eth0"},
			func(a *netns.Host, _ netip.Addr) string { return "[" + a.IPv6.String() + "]:8080" }},
		{"IPv6 link-local only", "udp", []string{"ip -4 addr flush dev eth0", "ip -6 addr flush dev eth0 scope global"},
			func(_ *netns.Host, ll netip.Addr) string { return "[" + ll.String() + "%eth0]:8080" }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			lan := netns.NewLAN(t, 3)
			a, b, c := lan.Hosts[0], lan.Hosts[1], lan.Hosts[2]
			for _, h := range lan.Hosts {
				run(t, h, tc.setup...)
			}
			// A also has a multicast loopback and a second link, whose
			// addresses must stay off the LAN.
			run(t, a,
				"ip link set lo multicast on",
				"ip link add eth1 type veth peer name eth1p",
				"ip addr add 10.99.0.1/24 dev eth1",
				"ip addr add fd99::1/64 dev eth1",
				"ip link set eth1 up",
				"ip link set eth1p up",
			)
			want := tc.want(a, linkLocal(t, a))
			env := func(more ...string) []string {
				return append(helperEnv("lan", "lan-a", ":8080", envNetwork+"="+tc.network), more...)
			}

			wb, wc := b.Start(t, "TestHelperWatch", env()...), c.Start(t, "TestHelperWatch", env()...)
			wb.Expect(t, "watching", 10*time.Second)
			wc.Expect(t, "watching", 10*time.Second)
			ra := a.Start(t, "TestHelperRegister", env()...)
			ra.Expect(t, "registered", 10*time.Second)
			for _, w := range []*netns.Process{wb, wc} {
				if got := w.Expect(t, "event ", 10*time.Second); got != "create lan lan-a "+want {
					t.Fatalf("watcher saw %q, want create at %s", got, want)
				}
			}
			t.Logf("B and C see lan-a at %s", want)
			lookup := c.Start(t, "TestHelperLookup", env()...)
			if got := lookup.Expect(t, "", 10*time.Second); got != "found lan-a "+want {
				t.Fatalf("lookup on C: %q, want lan-a at %s", got, want)
			}

			ra.CloseStdin()
			ra.Expect(t, "closed", 10*time.Second)
			for _, w := range []*netns.Process{wb, wc} {
				if got := w.Expect(t, "event ", 10*time.Second); got != "delete lan lan-a "+want {
					t.Fatalf("watcher saw %q, want the delete", got)
				}
			}
		})
	}
}

// A QU query from another host, just after a node was announced, is
// answered by unicast to the querier (RFC 6762 §5.4).
func TestLANUnicastAnswer(t *testing.T) {
	leakcheck.Check(t)
	lan := netns.NewLAN(t, 2)
	a, b := lan.Hosts[0], lan.Hosts[1]
	ra := a.Start(t, "TestHelperRegister", helperEnv("qu", "qu-a", ":8080")...)
	ra.Expect(t, "registered", 10*time.Second)
	ask := b.Start(t, "TestHelperAskUnicast")
	if got, want := ask.Expect(t, "", 10*time.Second), "unicast from "+a.IPv4.String()+":5353"; got != want {
		t.Fatalf("querier on B: %q, want %q", got, want)
	}
}

// run runs command lines on host h.
func run(t *testing.T, h *netns.Host, lines ...string) {
	t.Helper()
	for _, line := range lines {
		f := strings.Fields(line)
		if out, err := h.Command(context.Background(), f[0], f[1:]...).CombinedOutput(); err != nil {
			t.Fatalf("%s: %s: %v: %s", h.Name, line, err, out)
		}
	}
}

// linkLocal returns the IPv6 link-local address of h's LAN interface.
func linkLocal(t *testing.T, h *netns.Host) netip.Addr {
	t.Helper()
	out, err := h.Command(context.Background(), "ip", "-6", "-o", "addr", "show", "dev", h.Interface, "scope", "link").Output()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range strings.Fields(string(out)) {
		if p, err := netip.ParsePrefix(f); err == nil && p.Addr().IsLinkLocalUnicast() {
			return p.Addr()
		}
	}
	t.Fatal(fmt.Sprintf("no link-local address on %s: %s", h.Name, out))
	return netip.Addr{}
}
