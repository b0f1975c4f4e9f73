// Package demo holds what the example demos (make demo, make demo-cluster)
// share: building their programs, running themselves again in a private
// network namespace, and the child processes whose output they echo and
// wait on. It is not test support and not public API.
package demo

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"regexp"
	"sync"
	"syscall"
	"time"
)

// Reexec runs build with a new temporary folder, then runs the current
// program again, with the same arguments, under `unshare -rn` (a new user
// and network namespace; no root needed) with env added and binEnv set to
// that folder. It returns the exit status to use; name prefixes its
// messages. The folder is removed afterwards.
func Reexec(name, binEnv string, env []string, build func(dir string) error) int {
	dir, err := os.MkdirTemp("", "micro-"+name)
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", name, err)
		return 1
	}
	defer os.RemoveAll(dir)
	if err := build(dir); err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", name, err)
		return 1
	}
	self, err := os.Executable()
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", name, err)
		return 1
	}
	cmd := exec.Command("unshare", append([]string{"-rn", "--", self}, os.Args[1:]...)...)
	cmd.Env = append(append(os.Environ(), env...), binEnv+"="+dir)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	if err := cmd.Run(); err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return ee.ExitCode()
		}
		fmt.Fprintf(os.Stderr, "%s: cannot create a private network namespace with unshare -rn (%v); the demo runs only inside one\n", name, err)
		return 1
	}
	return 0
}

// Proc is a child process whose output (standard output and error) is
// echoed line by line with a prefix and kept for WaitFor.
type Proc struct {
	Name string
	Cmd  *exec.Cmd

	stdin io.WriteCloser
	done  chan struct{} // closed once the process has been waited for

	mu    sync.Mutex
	lines []string
	more  chan struct{} // closed and replaced when a line arrives
}

// Start starts cmd, echoing each line it prints as prefix + " | " + line.
func Start(name, prefix string, cmd *exec.Cmd) (*Proc, error) {
	p := &Proc{Name: name, Cmd: cmd, done: make(chan struct{}), more: make(chan struct{})}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	p.stdin = stdin
	r, w := io.Pipe()
	cmd.Stdout, cmd.Stderr = w, w
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	go func() {
		sc := bufio.NewScanner(r)
		for sc.Scan() {
			fmt.Printf("  %s | %s\n", prefix, sc.Text())
			p.mu.Lock()
			p.lines = append(p.lines, sc.Text())
			close(p.more)
			p.more = make(chan struct{})
			p.mu.Unlock()
		}
		io.Copy(io.Discard, r) // a line too long for the scanner
	}()
	go func() {
		cmd.Wait()
		w.Close()
		close(p.done)
	}()
	return p, nil
}

// Done is closed once the process has exited.
func (p *Proc) Done() <-chan struct{} { return p.done }

// Lines returns what the process printed so far.
func (p *Proc) Lines() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.lines...)
}

// WaitFor waits up to d until the process has printed a line matching re
// (from its first line on) and returns the line's submatches.
func (p *Proc) WaitFor(re *regexp.Regexp, d time.Duration) ([]string, error) {
	deadline := time.After(d)
	for seen := 0; ; {
		p.mu.Lock()
		lines, more := p.lines[seen:], p.more
		seen = len(p.lines)
		p.mu.Unlock()
		for _, l := range lines {
			if m := re.FindStringSubmatch(l); m != nil {
				return m, nil
			}
		}
		select {
		case <-more:
		case <-p.done:
			return nil, fmt.Errorf("%s exited before printing a line matching %q", p.Name, re)
		case <-deadline:
			return nil, fmt.Errorf("%s did not print a line matching %q within %v", p.Name, re, d)
		}
	}
}

// Send writes line and a newline to the process's standard input.
func (p *Proc) Send(line string) error {
	_, err := io.WriteString(p.stdin, line+"\n")
	return err
}

// Signal sends sig and waits up to wait for the process to exit; then it
// kills it and reports that it did not exit in time.
func (p *Proc) Signal(sig syscall.Signal, wait time.Duration) error {
	p.Cmd.Process.Signal(sig)
	select {
	case <-p.done:
		return nil
	case <-time.After(wait):
		p.Cmd.Process.Kill()
		<-p.done
		return fmt.Errorf("%s did not exit within %v of %v", p.Name, wait, sig)
	}
}
