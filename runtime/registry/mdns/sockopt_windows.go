package mdns

import "syscall"

// control sets SO_REUSEADDR before bind, so that other responders can
// share port 5353.
func control(network, address string, c syscall.RawConn) error {
	var serr error
	err := c.Control(func(fd uintptr) {
		serr = syscall.SetsockoptInt(syscall.Handle(fd), syscall.SOL_SOCKET, syscall.SO_REUSEADDR, 1)
	})
	if err != nil {
		return err
	}
	return serr
}

// loopbackIPv6 says whether IPv6 multicast works on a loopback interface.
const loopbackIPv6 = true
