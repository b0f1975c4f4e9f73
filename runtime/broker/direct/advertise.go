package direct

import "net"

// advertiseAddress returns the address to register for a server listening
// on listen, the way runtime/service advertises its nodes: a concrete host
// is kept; an unspecified one (empty, 0.0.0.0 or ::) cannot be dialled from
// elsewhere, so it is replaced by the first IPv4 address of an interface
// that is up, not loopback and not link-local, or 127.0.0.1 when there is
// none. It mirrors the service package's unexported function of the same
// name; both should become one shared function.
func advertiseAddress(listen string) string {
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return listen
	}
	if ip := net.ParseIP(host); host != "" && (ip == nil || !ip.IsUnspecified()) {
		return listen
	}
	return net.JoinHostPort(hostIPv4().String(), port)
}

// hostIPv4 returns the first usable IPv4 address of an up interface, or
// 127.0.0.1.
func hostIPv4() net.IP {
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
		for _, a := range addrs {
			if n, ok := a.(*net.IPNet); ok {
				if ip4 := n.IP.To4(); ip4 != nil && !ip4.IsLoopback() && !ip4.IsLinkLocalUnicast() {
					return ip4
				}
			}
		}
	}
	return net.IPv4(127, 0, 0, 1)
}
