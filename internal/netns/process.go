//go:build linux

package netns

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// IsHelper reports whether this test binary was started by Start or
// Host.Start to run one helper test. Helper tests begin with
//
//	if !netns.IsHelper() {
//		t.Skip("helper process for TestSomething")
//	}
func IsHelper() bool { return os.Getenv(envHelper) == "1" }

// Process is a helper test process. Its standard output is read line by
// line with Expect; its standard error goes to the test's log when the test
// fails.
type Process struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	lines chan string // stdout, closed at EOF
	name  string

	done chan struct{} // closed when the process has been waited for
	err  error         // the exit error, set before done is closed

	mu     sync.Mutex
	stderr strings.Builder
}

// Start runs the helper test named test (e.g. "TestHelperRegister") of this
// test binary in the current namespace, with env ("KEY=value") added to
// the environment. The process is killed when the test ends.
func Start(t testing.TB, test string, env ...string) *Process {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	return start(t, test, exec.Command(self, helperArgs(test)...), env)
}

func helperArgs(test string) []string {
	return []string{"-test.run=^" + test + "$", "-test.count=1", "-test.timeout=2m"}
}

func start(t testing.TB, test string, cmd *exec.Cmd, env []string) *Process {
	t.Helper()
	if os.Getenv(envInside) != stateReady {
		t.Fatal("netns: helper processes need TestMain to call netns.RunInNamespace")
	}
	cmd.Env = append(append(os.Environ(), envHelper+"=1"), env...)
	// Pdeathsig ends the helper if the test process dies without running
	// its cleanups; a helper waiting on its standard input sees it close.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	p := &Process{cmd: cmd, lines: make(chan string, 64), name: test, done: make(chan struct{})}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = &lockedWriter{p: p}
	if err := cmd.Start(); err != nil {
		t.Fatalf("netns: starting %s: %v", test, err)
	}
	p.stdin = stdin
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			p.lines <- sc.Text()
		}
		close(p.lines)
		// Wait only once the pipe is drained, as os/exec requires.
		p.err = cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		p.Kill()
		if t.Failed() {
			p.mu.Lock()
			t.Logf("%s stderr:\n%s", test, p.stderr.String())
			p.mu.Unlock()
		}
	})
	return p
}

type lockedWriter struct{ p *Process }

func (w *lockedWriter) Write(b []byte) (int, error) {
	w.p.mu.Lock()
	defer w.p.mu.Unlock()
	return w.p.stderr.Write(b)
}

// Pid returns the process ID.
func (p *Process) Pid() int { return p.cmd.Process.Pid }

// Expect returns the rest of the first line of output that starts with
// prefix, skipping other lines, or fails the test after timeout or when
// the process ends first.
func (p *Process) Expect(t testing.TB, prefix string, timeout time.Duration) string {
	t.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		select {
		case line, ok := <-p.lines:
			if !ok {
				<-p.done
				err := p.err
				t.Fatalf("netns: %s ended (%v) before printing %q; stderr:\n%s", p.name, err, prefix, p.Stderr())
			}
			if rest, ok := strings.CutPrefix(line, prefix); ok {
				return rest
			}
		case <-deadline.C:
			t.Fatalf("netns: %s printed no %q within %v; stderr:\n%s", p.name, prefix, timeout, p.Stderr())
		}
	}
}

// Stderr returns what the process wrote to its standard error so far.
func (p *Process) Stderr() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.stderr.String()
}

// CloseStdin closes the process's standard input; helpers may wait for
// that as their signal to finish.
func (p *Process) CloseStdin() { _ = p.stdin.Close() }

// Signal sends sig to the process.
func (p *Process) Signal(sig os.Signal) error { return p.cmd.Process.Signal(sig) }

// Wait waits for the process to end and returns its exit error. Output
// not yet read with Expect is discarded.
func (p *Process) Wait() error {
	for range p.lines {
	}
	<-p.done
	return p.err
}

// Kill kills the process and waits for it; it may be called more than
// once.
func (p *Process) Kill() {
	_ = p.cmd.Process.Kill()
	_ = p.Wait()
}

// Command returns a command for name with args that runs in the host's
// namespace.
func (h *Host) Command(ctx context.Context, name string, args ...string) *exec.Cmd {
	return exec.CommandContext(ctx, "nsenter", append([]string{"--net=" + h.nsPath(), "--", name}, args...)...)
}

// Start runs the helper test named test of this test binary on the host,
// like the package-level Start.
func (h *Host) Start(t testing.TB, test string, env ...string) *Process {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	return start(t, test, h.Command(context.Background(), self, helperArgs(test)...), env)
}

func (h *Host) nsPath() string { return fmt.Sprintf("/proc/%d/ns/net", h.holder.Process.Pid) }
