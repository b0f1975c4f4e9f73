package advertise

import (
	"net"
	"testing"
)

func TestAddressKeepsConcreteHosts(t *testing.T) {
	for _, addr := range []string{"127.0.0.1:80", "10.1.2.3:8080", "[2001:db8::1]:9", "example.com:443", "not an address"} {
		if got := Address(addr); got != addr {
			t.Errorf("Address(%q) = %q, want it unchanged", addr, got)
		}
	}
}

func TestAddressReplacesUnspecifiedHosts(t *testing.T) {
	for _, addr := range []string{":8080", "0.0.0.0:8080", "[::]:8080"} {
		host, port, err := net.SplitHostPort(Address(addr))
		ip := net.ParseIP(host)
		if err != nil || port != "8080" || ip == nil || ip.To4() == nil || ip.IsUnspecified() {
			t.Errorf("Address(%q) = %q, want a concrete IPv4 address and port 8080", addr, net.JoinHostPort(host, port))
		}
	}
}

func TestFirstIPv4(t *testing.T) {
	cidr := func(s string) net.Addr {
		ip, n, err := net.ParseCIDR(s)
		if err != nil {
			t.Fatal(err)
		}
		n.IP = ip
		return n
	}
	for _, c := range []struct {
		addrs []net.Addr
		want  string
	}{
		{[]net.Addr{cidr("fe80::1/64"), cidr("169.254.1.1/16"), cidr("127.0.0.2/8"), cidr("192.168.1.7/24"), cidr("10.0.0.1/8")}, "192.168.1.7"},
		{[]net.Addr{&net.IPAddr{IP: net.ParseIP("10.0.0.9")}}, "10.0.0.9"},
		{[]net.Addr{cidr("2001:db8::1/64")}, "<nil>"},
		{nil, "<nil>"},
	} {
		if got := firstIPv4(c.addrs).String(); got != c.want {
			t.Errorf("firstIPv4(%v) = %s, want %s", c.addrs, got, c.want)
		}
	}
}
