package mdns

import (
	"syscall"

	"golang.org/x/sys/unix"
)

// control sets the options every socket on port 5353 needs before bind:
// address and port reuse, so that this process, other registries in it
// and other responders (avahi, mDNSResponder) share the port; and, on
// Linux, IP_MULTICAST_ALL off, so the socket receives only the groups it
// joined on the interfaces it joined them on, not every group joined by
// any socket on the host.
func control(network, address string, c syscall.RawConn) error {
	var serr error
	err := c.Control(func(fd uintptr) {
		if serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEADDR, 1); serr != nil {
			return
		}
		if serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEPORT, 1); serr != nil {
			return
		}
		if network == "udp4" {
			_ = unix.SetsockoptInt(int(fd), unix.IPPROTO_IP, unix.IP_MULTICAST_ALL, 0)
		} else {
			_ = unix.SetsockoptInt(int(fd), unix.IPPROTO_IPV6, unix.IPV6_MULTICAST_ALL, 0) // Linux ≥ 4.20
		}
	})
	if err != nil {
		return err
	}
	return serr
}

// loopbackIPv6 says whether IPv6 multicast works on a loopback interface.
// Linux joins ff02::fb on lo but fails every send there with "network is
// unreachable", so IPv6 is not used on it.
const loopbackIPv6 = false
