//go:build !unix && !windows

package mdns

import "syscall"

// control does nothing where sockets have no reuse options.
func control(network, address string, c syscall.RawConn) error { return nil }

// loopbackIPv6 says whether IPv6 multicast works on a loopback interface.
const loopbackIPv6 = true
