package mdns

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"

	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
)

const port = 5353

var (
	group4 = netip.MustParseAddr("224.0.0.251")
	group6 = netip.MustParseAddr("ff02::fb")
)

// Packet sizes. A node's records must fit in one packet (see txtBudget);
// a packet never exceeds maxMessage bytes of DNS message, which with the
// IPv6 and UDP headers (48 bytes) stays within a 1500-byte Ethernet MTU,
// or the interface's MTU less 48 when that is smaller: no packet we send
// is ever fragmented.
const (
	maxMessage = 1440
	ipUDPv6    = 48
	minMessage = 1280 - ipUDPv6 // IPv6's minimum MTU
	maxAddrs   = 4              // A and AAAA records per family and interface
)

type family uint8

const (
	ip4 family = 4
	ip6 family = 6
)

func (f family) String() string { return "IPv" + string('0'+byte(f)) }

// link is an interface the registry sends and listens on.
type link struct {
	ifi *net.Interface
	// addrs are the addresses advertised for nodes registered with an
	// unspecified host, when answering on this interface.
	addrs []netip.Addr
	// prefixes are all the interface's addresses with their prefixes: a
	// source within one of them is on the link, and one equal to an
	// address is this host.
	prefixes []netip.Prefix
	// has4 and has6 say whether the interface has an address of the
	// family to send from.
	has4, has6 bool
	// joined4 and joined6 say whether the group of that family was joined.
	joined4, joined6 bool
}

func (l *link) budget() int {
	return max(minMessage, min(maxMessage, l.ifi.MTU-ipUDPv6))
}

// onLink reports whether a is an address on l's link: one of its subnets,
// link-local, or this host's own. RFC 6762 §11: unicast responses and
// unicast answers to QU queries are accepted and sent only on the link.
func (l *link) onLink(a netip.Addr) bool {
	a = a.Unmap().WithZone("")
	if a.IsLoopback() || a.IsLinkLocalUnicast() {
		return true
	}
	for _, p := range l.prefixes {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// own reports whether a is an address of this host on l.
func (l *link) own(a netip.Addr) bool {
	a = a.Unmap().WithZone("")
	if a.IsLoopback() {
		return true
	}
	for _, p := range l.prefixes {
		if p.Addr() == a {
			return true
		}
	}
	return false
}

func (l *link) joined(f family) bool {
	if f == ip4 {
		return l.joined4 && l.has4
	}
	return l.joined6 && l.has6
}

// transport is the registry's two sockets, one per family, bound to port
// 5353 on every address.
type transport struct {
	c4 *ipv4.PacketConn
	c6 *ipv6.PacketConn
}

// listen opens the sockets the network option asks for ("udp", "udp4" or
// "udp6"). A family that cannot be opened is left out unless none can.
func listen(network string) (*transport, error) {
	var t transport
	var errs []error
	lc := net.ListenConfig{Control: control}
	if network != "udp6" {
		pc, err := lc.ListenPacket(context.Background(), "udp4", fmt.Sprintf("0.0.0.0:%d", port))
		if err == nil {
			setReadBuffer(pc)
			c := ipv4.NewPacketConn(pc)
			err = errors.Join(
				c.SetControlMessage(ipv4.FlagInterface|ipv4.FlagDst, true),
				c.SetMulticastTTL(255),
				c.SetMulticastLoopback(true),
			)
			if err != nil {
				pc.Close()
			} else {
				t.c4 = c
			}
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("IPv4: %w", err))
		}
	}
	if network != "udp4" {
		pc, err := lc.ListenPacket(context.Background(), "udp6", fmt.Sprintf("[::]:%d", port))
		if err == nil {
			setReadBuffer(pc)
			c := ipv6.NewPacketConn(pc)
			err = errors.Join(
				c.SetControlMessage(ipv6.FlagInterface|ipv6.FlagDst, true),
				c.SetMulticastHopLimit(255),
				c.SetMulticastLoopback(true),
			)
			if err != nil {
				pc.Close()
			} else {
				t.c6 = c
			}
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("IPv6: %w", err))
		}
	}
	if t.c4 == nil && t.c6 == nil {
		return nil, fmt.Errorf("listening on UDP port %d: %w", port, errors.Join(errs...))
	}
	return &t, errors.Join(errs...)
}

// setReadBuffer asks for a receive buffer that holds a burst of
// announcements (hundreds of nodes starting at once) while the reader
// catches up; the system may grant less.
func setReadBuffer(pc net.PacketConn) {
	if u, ok := pc.(*net.UDPConn); ok {
		_ = u.SetReadBuffer(1 << 20)
	}
}

// join joins the mDNS groups on l's interface, for the families open and
// present on it.
func (t *transport) join(l *link) error {
	var errs []error
	if t.c4 != nil && l.has4 && !l.joined4 {
		if err := t.c4.JoinGroup(l.ifi, &net.UDPAddr{IP: group4.AsSlice()}); err != nil {
			errs = append(errs, fmt.Errorf("joining %v on %s: %w", group4, l.ifi.Name, err))
		} else {
			l.joined4 = true
		}
	}
	if t.c6 != nil && l.has6 && !l.joined6 {
		if err := t.c6.JoinGroup(l.ifi, &net.UDPAddr{IP: group6.AsSlice()}); err != nil {
			errs = append(errs, fmt.Errorf("joining %v on %s: %w", group6, l.ifi.Name, err))
		} else {
			l.joined6 = true
		}
	}
	return errors.Join(errs...)
}

// leave leaves the groups on an interface that is no longer used; it may
// already be gone, so errors do not matter.
func (t *transport) leave(l *link) {
	if l.joined4 {
		_ = t.c4.LeaveGroup(l.ifi, &net.UDPAddr{IP: group4.AsSlice()})
	}
	if l.joined6 {
		_ = t.c6.LeaveGroup(l.ifi, &net.UDPAddr{IP: group6.AsSlice()})
	}
}

// send writes b from port 5353 out of interface ifindex, to the family's
// group or, when to is valid, to that address.
func (t *transport) send(f family, ifindex int, to netip.AddrPort, b []byte) error {
	if f == ip4 {
		if !to.IsValid() {
			to = netip.AddrPortFrom(group4, port)
		}
		_, err := t.c4.WriteTo(b, &ipv4.ControlMessage{IfIndex: ifindex}, net.UDPAddrFromAddrPort(to))
		return err
	}
	if !to.IsValid() {
		to = netip.AddrPortFrom(group6, port)
	}
	_, err := t.c6.WriteTo(b, &ipv6.ControlMessage{IfIndex: ifindex}, net.UDPAddrFromAddrPort(to))
	return err
}

// received is one packet read from a socket.
type received struct {
	family  family
	ifindex int
	from    netip.AddrPort
	dst     netip.Addr // the packet's destination: a group, or unicast to this host; invalid if unknown
	data    []byte
}

// read reads the next packet from the family's socket into buf.
func (t *transport) read(f family, buf []byte) (received, error) {
	var (
		n    int
		ifi  int
		dst  net.IP
		from net.Addr
		err  error
	)
	if f == ip4 {
		var cm *ipv4.ControlMessage
		n, cm, from, err = t.c4.ReadFrom(buf)
		if cm != nil {
			ifi, dst = cm.IfIndex, cm.Dst
		}
	} else {
		var cm *ipv6.ControlMessage
		n, cm, from, err = t.c6.ReadFrom(buf)
		if cm != nil {
			ifi, dst = cm.IfIndex, cm.Dst
		}
	}
	if err != nil {
		return received{}, err
	}
	var ap netip.AddrPort
	if u, ok := from.(*net.UDPAddr); ok {
		ap = u.AddrPort()
		ap = netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	}
	d, _ := netip.AddrFromSlice(dst)
	return received{family: f, ifindex: ifi, from: ap, dst: d.Unmap(), data: buf[:n]}, nil
}

func (t *transport) close() {
	if t.c4 != nil {
		t.c4.Close()
	}
	if t.c6 != nil {
		t.c6.Close()
	}
}

// scanLinks returns the interfaces to use: those named, or every one that
// is up and multicast-capable. It reads each one's addresses.
func scanLinks(only []string) (map[int]*link, error) {
	ifaces, err := net.Interfaces()
	if err != nil {
		return nil, fmt.Errorf("listing interfaces: %w", err)
	}
	links := map[int]*link{}
	for i := range ifaces {
		ifi := &ifaces[i]
		if ifi.Flags&net.FlagUp == 0 {
			continue
		}
		if len(only) > 0 {
			if !slices.Contains(only, ifi.Name) {
				continue
			}
		} else if ifi.Flags&net.FlagMulticast == 0 {
			continue
		}
		as, err := ifi.Addrs()
		if err != nil {
			continue
		}
		var all []netip.Addr
		var prefixes []netip.Prefix
		for _, a := range as {
			if p, err := netip.ParsePrefix(a.String()); err == nil {
				all = append(all, p.Addr().Unmap())
				prefixes = append(prefixes, netip.PrefixFrom(p.Addr().Unmap(), p.Bits()))
			}
		}
		l := &link{ifi: ifi, addrs: advertised(all), prefixes: prefixes}
		for _, a := range all {
			l.has4 = l.has4 || a.Is4()
			l.has6 = l.has6 || a.Is6()
		}
		if ifi.Flags&net.FlagLoopback != 0 && !loopbackIPv6 {
			l.has6 = false
		}
		links[ifi.Index] = l
	}
	return links, nil
}

// advertised chooses, from an interface's addresses, those to put in
// A/AAAA records: IPv4 and IPv6 addresses that are not link-local;
// IPv4 link-local only when there is no other IPv4 address; IPv6
// link-local only when there is no other address at all (a client must
// add the zone, which only it knows). At most maxAddrs per family.
func advertised(all []netip.Addr) []netip.Addr {
	var v4, v4ll, v6, v6ll []netip.Addr
	for _, a := range all {
		switch {
		case a.Is4() && a.IsLinkLocalUnicast():
			v4ll = append(v4ll, a)
		case a.Is4():
			v4 = append(v4, a)
		case a.IsLinkLocalUnicast():
			v6ll = append(v6ll, a.WithZone(""))
		case !a.IsMulticast() && !a.IsUnspecified():
			v6 = append(v6, a)
		}
	}
	if len(v4) == 0 {
		v4 = v4ll
	}
	if len(v4) == 0 && len(v6) == 0 {
		v6 = v6ll
	}
	return append(v4[:min(len(v4), maxAddrs)], v6[:min(len(v6), maxAddrs)]...)
}

func linkNames(links map[int]*link) string {
	var names []string
	for _, l := range links {
		var fams []string
		if l.joined4 {
			fams = append(fams, "IPv4")
		}
		if l.joined6 {
			fams = append(fams, "IPv6")
		}
		if len(fams) == 0 {
			fams = append(fams, "not joined")
		}
		names = append(names, fmt.Sprintf("%s (%s)", l.ifi.Name, strings.Join(fams, ", ")))
	}
	slices.Sort(names)
	return strings.Join(names, ", ")
}
