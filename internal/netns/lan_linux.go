package netns

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
)

// LAN is a set of hosts on one Ethernet segment, each host a network
// namespace of its own, nested in the test's namespace.
type LAN struct {
	// Hosts are the LAN's hosts, in order.
	Hosts []*Host
}

// Host is one namespace of a LAN. Its interface to the LAN is named
// Interface ("eth0") and has the addresses IPv4 (10.250.X.i/24) and IPv6
// (fd42:0:0:X::i/64), plus its IPv6 link-local address. Its loopback is up
// but, unlike the test namespace's, not multicast-capable.
type Host struct {
	Name      string
	Interface string
	IPv4      netip.Addr
	IPv6      netip.Addr

	holder *exec.Cmd      // the process keeping the namespace alive
	stdin  io.WriteCloser // closing it ends holder
}

var lans atomic.Uint32

// NewLAN creates a switch namespace with a bridge and n host namespaces,
// each joined to the bridge by a veth pair, with IPv4 and IPv6 addresses
// and a multicast route on the host's end only. Every namespace is removed
// when the test ends, pass or fail, and by the kernel if the test process
// dies first.
//
// It needs TestMain to call RunInNamespace. When the LAN cannot be built
// (e.g. veth is missing from the kernel) the test is skipped, or fails if
// MICROTEST_REQUIRE_NETNS=1.
func NewLAN(t testing.TB, n int) *LAN {
	t.Helper()
	if os.Getenv(envInside) != stateReady || IsHelper() {
		t.Fatal("netns: NewLAN needs TestMain to call netns.RunInNamespace")
	}
	seq := int(lans.Add(1)) % 250
	var lan LAN
	fail := func(err error) {
		t.Helper()
		if os.Getenv(EnvRequire) == "1" {
			t.Fatalf("netns: cannot build a LAN (%s=1): %v", EnvRequire, err)
		}
		t.Skipf("skipping: cannot build a LAN of network namespaces: %v", err)
	}

	sw, err := newHolder(t, "switch")
	if err != nil {
		fail(err)
	}
	if err := sw.run(
		"ip link add br0 type bridge",
		// With snooping a bridge may stop flooding a group to a port until
		// it sees a report from it; a test LAN wants plain flooding.
		"ip link set br0 type bridge mcast_snooping 0",
		"ip link set br0 up",
	); err != nil {
		fail(err)
	}
	for i := range n {
		h, err := newHolder(t, fmt.Sprintf("h%d", i))
		if err != nil {
			fail(err)
		}
		h.Interface = "eth0"
		h.IPv4 = netip.AddrFrom4([4]byte{10, 250, byte(seq), byte(i + 1)})
		h.IPv6 = netip.AddrFrom16([16]byte{0: 0xfd, 1: 0x42, 7: byte(seq), 15: byte(i + 1)})
		veth := fmt.Sprintf("v%d", i)
		if err := h.run(
			// No duplicate address detection: addresses are usable at once.
			"sysctl -qw net.ipv6.conf.all.accept_dad=0 net.ipv6.conf.default.accept_dad=0",
			"ip link set lo up",
		); err != nil {
			fail(err)
		}
		if err := sw.run(
			fmt.Sprintf("ip link add %s type veth peer name %s netns %d", veth, h.Interface, h.holder.Process.Pid),
			fmt.Sprintf("ip link set %s master br0 up", veth),
		); err != nil {
			fail(err)
		}
		if err := h.run(
			fmt.Sprintf("ip link set %s up", h.Interface),
			fmt.Sprintf("ip addr add %s/24 dev %s", h.IPv4, h.Interface),
			fmt.Sprintf("ip addr add %s/64 dev %s", h.IPv6, h.Interface),
			fmt.Sprintf("ip route add 224.0.0.0/4 dev %s", h.Interface),
		); err != nil {
			fail(err)
		}
		lan.Hosts = append(lan.Hosts, h)
	}
	return &lan
}

// newHolder starts a process in a new network namespace that lives until
// the test ends.
func newHolder(t testing.TB, name string) (*Host, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(self)
	// A race-enabled binary sleeps a second on exit by default, which
	// every LAN would pay once per namespace; a holder runs no test code.
	gorace := strings.TrimSpace(os.Getenv("GORACE") + " atexit_sleep_ms=0")
	cmd.Env = append(os.Environ(), envHold+"=1", "GORACE="+gorace)
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWNET, Pdeathsig: syscall.SIGKILL}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("creating namespace %s: %w", name, err)
	}
	h := &Host{Name: name, holder: cmd, stdin: stdin}
	t.Cleanup(func() {
		_ = h.stdin.Close()
		_ = h.holder.Wait()
	})
	return h, nil
}

// run runs each command line (split on spaces) in the namespace.
func (h *Host) run(lines ...string) error {
	for _, line := range lines {
		f := strings.Fields(line)
		out, err := h.Command(context.Background(), f[0], f[1:]...).CombinedOutput()
		if err != nil {
			return fmt.Errorf("%s: %s: %v: %s", h.Name, line, err, bytes.TrimSpace(out))
		}
	}
	return nil
}
