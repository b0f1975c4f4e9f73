//go:build linux

package netns_test

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/protoc-gen-micro/micro/internal/leakcheck"
	"github.com/protoc-gen-micro/micro/internal/netns"
)

func TestMain(m *testing.M) { netns.RunInNamespace(m) }

// The test namespace has a loopback with multicast and nothing else.
func TestPrivateNamespace(t *testing.T) {
	ifaces, err := net.Interfaces()
	if err != nil {
		t.Fatal(err)
	}
	if len(ifaces) != 1 || ifaces[0].Name != "lo" {
		t.Fatalf("interfaces %v, want only lo", ifaces)
	}
	if f := ifaces[0].Flags; f&net.FlagUp == 0 || f&net.FlagMulticast == 0 {
		t.Fatalf("lo flags %v", f)
	}
	out, err := exec.Command("ip", "route", "show", "224.0.0.0/4").Output()
	if err != nil || !strings.Contains(string(out), "dev lo") {
		t.Fatalf("multicast route: %q, %v", out, err)
	}
}

// Hosts of a LAN reach each other over IPv4 and IPv6, and nothing of the
// LAN shows in the test's own namespace.
func TestLAN(t *testing.T) {
	leakcheck.Check(t)
	lan := netns.NewLAN(t, 3)
	if len(lan.Hosts) != 3 {
		t.Fatalf("%d hosts", len(lan.Hosts))
	}
	for i, h := range lan.Hosts {
		out, err := h.Command(context.Background(), "ip", "-o", "addr", "show", "dev", h.Interface).Output()
		if err != nil {
			t.Fatal(err)
		}
		for _, want := range []string{h.IPv4.String() + "/24", h.IPv6.String() + "/64"} {
			if !bytes.Contains(out, []byte(want)) {
				t.Fatalf("host %d: %s lacks %s", i, out, want)
			}
		}
	}
	if ifaces, _ := net.Interfaces(); len(ifaces) != 1 {
		t.Fatalf("the LAN leaked into the test namespace: %v", ifaces)
	}

	echo := lan.Hosts[0].Start(t, "TestHelperEcho")
	echo.Expect(t, "listening", 10*time.Second)
	for _, addr := range []string{lan.Hosts[0].IPv4.String(), lan.Hosts[0].IPv6.String()} {
		send := lan.Hosts[2].Start(t, "TestHelperSend", "NETNS_TEST_TO="+net.JoinHostPort(addr, "7777"))
		if got := send.Expect(t, "reply ", 10*time.Second); got != "hello" {
			t.Fatalf("reply %q", got)
		}
	}
}

// TestHelperEcho echoes UDP datagrams on port 7777.
func TestHelperEcho(t *testing.T) {
	if !netns.IsHelper() {
		t.Skip("helper process")
	}
	c, err := net.ListenPacket("udp", ":7777")
	if err != nil {
		t.Fatal(err)
	}
	fmt.Println("listening")
	buf := make([]byte, 100)
	for {
		n, from, err := c.ReadFrom(buf)
		if err != nil {
			t.Fatal(err)
		}
		c.WriteTo(buf[:n], from)
	}
}

// TestHelperSend sends "hello" to NETNS_TEST_TO and prints the reply.
func TestHelperSend(t *testing.T) {
	if !netns.IsHelper() {
		t.Skip("helper process")
	}
	c, err := net.Dial("udp", os.Getenv("NETNS_TEST_TO"))
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 100)
	for range 50 {
		c.Write([]byte("hello"))
		c.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
		if n, err := c.Read(buf); err == nil {
			fmt.Println("reply", string(buf[:n]))
			return
		}
	}
	t.Fatal("no reply")
}

// Without unshare the tests are skipped with a message, or fail when
// MICROTEST_REQUIRE_NETNS=1; a binary claiming to be inside a namespace it is
// not in refuses to run.
func TestUnavailable(t *testing.T) {
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	outer, err := os.Readlink("/proc/self/ns/net")
	if err != nil {
		t.Fatal(err)
	}
	var clean []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "MICRO") && !strings.HasPrefix(kv, "PATH=") {
			clean = append(clean, kv)
		}
	}
	for _, tc := range []struct {
		name string
		env  []string
		code int
		want string
	}{
		{"skip", []string{"PATH=/nonexistent"}, 0, "skipping: cannot create a private network namespace: unshare (util-linux) is not installed"},
		{"required", []string{"PATH=/nonexistent", netns.EnvRequire + "=1"}, 1, "FAIL: cannot create a private network namespace (MICROTEST_REQUIRE_NETNS=1)"},
		{"not inside", []string{"MICROTEST_NETNS=ready", "MICROTEST_NETNS_OUTER=" + outer}, 1, "refusing to run tests that send multicast: still in the network namespace we started from"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cmd := exec.Command(self, "-test.run=^TestPrivateNamespace$")
			cmd.Env = append(append(clean, "GORACE=atexit_sleep_ms=0"), tc.env...)
			out, err := cmd.CombinedOutput()
			code := 0
			if ee, ok := err.(*exec.ExitError); ok {
				code = ee.ExitCode()
			} else if err != nil {
				t.Fatal(err)
			}
			if code != tc.code || !strings.Contains(string(out), tc.want) {
				t.Fatalf("exit %d, output:\n%s\nwant exit %d and %q", code, out, tc.code, tc.want)
			}
		})
	}
}
