// Package advertise chooses the address a server listening on an
// unspecified host registers, for registries that take one address per
// node (mDNS instead advertises each interface's own). The service and the
// built-in broker share it, so their nodes are reachable the same way.
package advertise

import "net"

// Address returns the address to advertise for a server listening
// on listen. A concrete host is kept. An unspecified one (empty, 0.0.0.0 or
// ::) cannot be dialled from elsewhere, so it is replaced by the first
// non-loopback, non-link-local IPv4 address of an interface that is up, or
// by 127.0.0.1 when there is none.
func Address(listen string) string {
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return listen
	}
	if ip := net.ParseIP(host); host != "" && (ip == nil || !ip.IsUnspecified()) {
		return listen
	}
	return net.JoinHostPort(HostIPv4().String(), port)
}

// HostIPv4 returns the first usable IPv4 address of an up interface, or
// 127.0.0.1.
func HostIPv4() net.IP {
	ifaces, err := net.Interfaces()
	if err != nil {
		return net.IPv4(127, 0, 0, 1)
	}
	for _, iface := range ifaces {
		if iface.Flags&net.FlagUp == 0 || iface.Flags&net.FlagLoopback != 0 {
			continue
		}
		addrs, err := iface.Addrs()
		if err != nil {
			continue
		}
		if ip := firstIPv4(addrs); ip != nil {
			return ip
		}
	}
	return net.IPv4(127, 0, 0, 1)
}

// firstIPv4 returns the first IPv4 address in addrs that is neither
// loopback nor link-local, or nil.
func firstIPv4(addrs []net.Addr) net.IP {
	for _, a := range addrs {
		var ip net.IP
		switch a := a.(type) {
		case *net.IPNet:
			ip = a.IP
		case *net.IPAddr:
			ip = a.IP
		}
		if ip4 := ip.To4(); ip4 != nil && !ip4.IsLoopback() && !ip4.IsLinkLocalUnicast() {
			return ip4
		}
	}
	return nil
}
