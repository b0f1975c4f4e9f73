package direct

import (
	"net"
	"testing"

	"github.com/protoc-gen-micro/micro/internal/advertise"
	"github.com/protoc-gen-micro/micro/internal/leakcheck"
	"github.com/protoc-gen-micro/micro/runtime/registry/memory"
)

// A broker listening on every interface registers a routable address, as
// services do, never a loopback one when the host has another.
func TestAdvertisedAddress(t *testing.T) {
	leakcheck.Check(t)
	b := NewBroker(WithRegistry(memory.NewRegistry()))
	if err := b.Connect(); err != nil {
		t.Fatal(err)
	}
	defer b.Disconnect()
	host, _, err := net.SplitHostPort(AddressOf(b))
	if err != nil {
		t.Fatal(err)
	}
	if want := advertise.HostIPv4().String(); host != want {
		t.Errorf("registered host %s, want %s", host, want)
	}
	if !advertise.HostIPv4().IsLoopback() && net.ParseIP(host).IsLoopback() {
		t.Errorf("registered loopback %s although the host has %s", host, advertise.HostIPv4())
	}
	for listen, want := range map[string]string{
		"10.1.2.3:80": "10.1.2.3:80",
		"[::1]:80":    "[::1]:80",
		":80":         net.JoinHostPort(advertise.HostIPv4().String(), "80"),
		"0.0.0.0:80":  net.JoinHostPort(advertise.HostIPv4().String(), "80"),
		"[::]:80":     net.JoinHostPort(advertise.HostIPv4().String(), "80"),
	} {
		if got := advertise.Address(listen); got != want {
			t.Errorf("advertise.Address(%q) = %q, want %q", listen, got, want)
		}
	}
}
