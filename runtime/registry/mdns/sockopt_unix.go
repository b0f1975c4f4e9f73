//go:build unix && !linux

package mdns

import (
	"syscall"

	"golang.org/x/sys/unix"
)

// control sets address and port reuse before bind, so that this process,
// other registries in it and other responders (mDNSResponder) share port
// 5353.
func control(network, address string, c syscall.RawConn) error {
	var serr error
	err := c.Control(func(fd uintptr) {
		if serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEADDR, 1); serr != nil {
			return
		}
		serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEPORT, 1)
	})
	if err != nil {
		return err
	}
	return serr
}

// loopbackIPv6 says whether IPv6 multicast works on a loopback interface.
const loopbackIPv6 = true
