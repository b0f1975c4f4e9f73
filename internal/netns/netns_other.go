//go:build !linux

package netns

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"testing"
	"time"
)

// EnvRequire, set to 1, turns "cannot create a namespace" from a skip into
// a failure.
const EnvRequire = "MICROTEST_REQUIRE_NETNS"

// RunInNamespace skips every test: network namespaces are Linux only.
func RunInNamespace(m *testing.M) {
	if os.Getenv(EnvRequire) == "1" {
		fmt.Fprintf(os.Stderr, "FAIL: cannot create a private network namespace (%s=1): not Linux\n", EnvRequire)
		os.Exit(1)
	}
	fmt.Println("skipping: cannot create a private network namespace: network namespaces are Linux only")
	os.Exit(0)
}

// IsHelper reports false: there are no helper processes without namespaces.
func IsHelper() bool { return false }

// LAN is unavailable outside Linux.
type LAN struct{ Hosts []*Host }

// Host is unavailable outside Linux.
type Host struct {
	Name      string
	Interface string
	IPv4      netip.Addr
	IPv6      netip.Addr
}

// Process is unavailable outside Linux.
type Process struct{}

func unsupported(t testing.TB) { t.Helper(); t.Skip("network namespaces are Linux only") }

// NewLAN skips the test.
func NewLAN(t testing.TB, n int) *LAN { unsupported(t); return nil }

// Start skips the test.
func Start(t testing.TB, test string, env ...string) *Process { unsupported(t); return nil }

// Start skips the test.
func (h *Host) Start(t testing.TB, test string, env ...string) *Process { unsupported(t); return nil }

// Command returns a command that fails.
func (h *Host) Command(ctx context.Context, name string, args ...string) *exec.Cmd {
	return exec.CommandContext(ctx, "false")
}

// Pid returns 0.
func (p *Process) Pid() int { return 0 }

// Expect skips the test.
func (p *Process) Expect(t testing.TB, prefix string, timeout time.Duration) string {
	unsupported(t)
	return ""
}

// Stderr returns "".
func (p *Process) Stderr() string { return "" }

// CloseStdin does nothing.
func (p *Process) CloseStdin() {}

// Signal does nothing.
func (p *Process) Signal(sig os.Signal) error { return nil }

// Wait returns nil.
func (p *Process) Wait() error { return nil }

// Kill does nothing.
func (p *Process) Kill() {}
