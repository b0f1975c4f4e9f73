package main_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/protoc-gen-micro/micro/internal/netns"
)

// The tests build micro and the greeter example's server and auditor,
// then run them as separate processes found by mDNS, inside the private
// network namespace RunInNamespace makes: multicast never leaves it.
func TestMain(m *testing.M) { netns.RunInNamespace(m) }

// bound caps every wait: a process's output line, a command's run.
const bound = 60 * time.Second

var (
	buildOnce sync.Once
	binDir    string
	buildErr  error
)

// binaries builds micro, the greeter server and the auditor once per test
// binary run, with the module cache the test was built from (there is no
// network in the namespace, so nothing may be downloaded).
func binaries(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		binDir, buildErr = os.MkdirTemp("", "micro-cli-test")
		if buildErr != nil {
			return
		}
		cmd := exec.Command("go", "build", "-o", binDir+string(filepath.Separator),
			"github.com/protoc-gen-micro/micro/cmd/micro",
			"github.com/protoc-gen-micro/micro/examples/greeter/server",
			"github.com/protoc-gen-micro/micro/examples/greeter/auditor")
		cmd.Env = append(os.Environ(), "GOPROXY=off", "GOFLAGS=-mod=readonly")
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binDir
}

// proc is a process whose output lines the test reads.
type proc struct {
	cmd   *exec.Cmd
	lines chan string // stdout and stderr, closed at EOF
	done  chan struct{}
	mu    sync.Mutex
	seen  []string
}

// start runs bin with args and env added, killed when the test ends.
func start(t *testing.T, bin string, env []string, args ...string) *proc {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	r, w := io.Pipe()
	cmd.Stdout, cmd.Stderr = w, w
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &proc{cmd: cmd, lines: make(chan string, 256), done: make(chan struct{})}
	go func() {
		sc := bufio.NewScanner(r)
		for sc.Scan() {
			p.lines <- sc.Text()
		}
		close(p.lines)
	}()
	go func() {
		_ = cmd.Wait()
		w.Close()
		close(p.done)
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-p.done
		if t.Failed() {
			p.mu.Lock()
			t.Logf("%s %v printed:\n%s", filepath.Base(bin), args, strings.Join(p.seen, "\n"))
			p.mu.Unlock()
		}
	})
	return p
}

// expect returns the submatches of the next line matching re.
func (p *proc) expect(t *testing.T, re string) []string {
	t.Helper()
	rx := regexp.MustCompile(re)
	timer := time.NewTimer(bound)
	defer timer.Stop()
	for {
		select {
		case l, ok := <-p.lines:
			if !ok {
				t.Fatalf("%s exited without printing a line matching %q", p.cmd.Path, re)
			}
			p.mu.Lock()
			p.seen = append(p.seen, l)
			p.mu.Unlock()
			if m := rx.FindStringSubmatch(l); m != nil {
				return m
			}
		case <-timer.C:
			t.Fatalf("%s printed no line matching %q within %v", p.cmd.Path, re, bound)
		}
	}
}

// stop sends SIGTERM and waits for the process to end.
func (p *proc) stop(t *testing.T) {
	t.Helper()
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(bound):
		t.Fatalf("%s did not stop on SIGTERM", p.cmd.Path)
	}
}

// result is what a run of micro printed and its exit status.
type result struct {
	stdout, stderr string
	code           int
}

func (r result) String() string {
	return fmt.Sprintf("exit %d\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
}

// micro runs the micro binary with args, stdin as its input (nil for
// none) and env added.
func micro(t *testing.T, stdin io.Reader, env []string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), bound)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(binaries(t), "micro"), args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdin = stdin
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	r := result{stdout: stdout.String(), stderr: stderr.String()}
	if ee, ok := err.(*exec.ExitError); ok {
		r.code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("micro %v: %v", args, err)
	}
	t.Logf("micro %s\n%s", strings.Join(args, " "), r)
	return r
}

// want fails the test unless r exited with code and its output contains
// each of the strings.
func want(t *testing.T, r result, code int, contains ...string) {
	t.Helper()
	if r.code != code {
		t.Errorf("exit status %d, want %d\n%s", r.code, code, r)
	}
	for _, s := range contains {
		if !strings.Contains(r.stdout+r.stderr, s) {
			t.Errorf("output does not contain %q\n%s", s, r)
		}
	}
}

// greeter starts a greeter server of version and returns its address.
func greeter(t *testing.T, version, instance string, extra ...string) (*proc, string) {
	t.Helper()
	p := start(t, filepath.Join(binaries(t), "server"), []string{"MICRO_SERVER_VERSION=" + version},
		append([]string{"-address", "127.0.0.1:0", "-instance", instance}, extra...)...)
	addr := p.expect(t, `^greeter: serving on (\S+)$`)[1]
	return p, addr
}

// TestCLI runs each command against two greeter servers (v1 and v2) and
// an auditor subscribed to greeter.greeted.
func TestCLI(t *testing.T) {
	bin := binaries(t)
	auditor := start(t, filepath.Join(bin, "auditor"), nil, "-instance", "auditor-1")
	auditor.expect(t, "subscribed to greeter.greeted")
	_, addr1 := greeter(t, "v1", "one")
	_, addr2 := greeter(t, "v2", "two")

	t.Run("services", func(t *testing.T) {
		r := micro(t, nil, nil, "services")
		want(t, r, 0, "SERVICE", "greeter.auditor", "micro.broker.greeter.greeted", "queue=auditors")
		for _, w := range []string{addr1, addr2} {
			if !regexp.MustCompile(`(?m)^greeter +v[12] +greeter-\S+ +` + regexp.QuoteMeta(w) + ` +protocol=grpc transport=http2$`).MatchString(r.stdout) {
				t.Errorf("no line for the node at %s\n%s", w, r)
			}
		}
		r = micro(t, nil, nil, "services", "greeter", "-o", "json")
		want(t, r, 0)
		var svcs []struct {
			Name, Version string
			Nodes         []struct{ ID, Address string }
		}
		if err := json.Unmarshal([]byte(r.stdout), &svcs); err != nil {
			t.Fatalf("-o json: %v\n%s", err, r)
		}
		got := map[string]string{}
		for _, s := range svcs {
			for _, n := range s.Nodes {
				got[s.Version] = n.Address
			}
		}
		if got["v1"] != addr1 || got["v2"] != addr2 || len(got) != 2 {
			t.Errorf("-o json gave versions and addresses %v, want v1 %s and v2 %s", got, addr1, addr2)
		}
	})

	t.Run("publish", func(t *testing.T) {
		r := micro(t, nil, nil, "publish", "greeter.greeted", `{"message":"as json"}`)
		want(t, r, 0, "published to greeter.greeted", "application/json")
		auditor.expect(t, `auditor-1 handled event \S+: "as json"`)
		r = micro(t, nil, nil, "publish", "greeter.nobody", `{"message":"lost"}`)
		want(t, r, 1, "no subscribers", "greeter.nobody")
		r = micro(t, nil, nil, "publish", "greeter.greeted", `{"message":`)
		want(t, r, 1, "not valid JSON")
	})

	t.Run("no node found", func(t *testing.T) {
		for _, args := range [][]string{
			{"services", "nosuch"},
			{"call", "nosuch", "SayHello", "{}"},
			{"health", "nosuch"},
		} {
			r := micro(t, nil, nil, args...)
			want(t, r, 1, `no node of "nosuch" found in the mdns registry on lo`, "after", "no answer after querying lo")
		}
	})

	t.Run("watch", func(t *testing.T) {
		w := start(t, filepath.Join(bin, "micro"), nil, "watch", "greeter", "-timeout", "50s")
		w.expect(t, `^watching service "greeter" in the mdns registry on lo`)
		p, addr := greeter(t, "v3", "three")
		w.expect(t, `^added greeter v3 greeter-\S+ `+regexp.QuoteMeta(addr)+`$`)
		p.stop(t)
		w.expect(t, `^removed greeter v3 greeter-\S+ `+regexp.QuoteMeta(addr)+`$`)
		w.stop(t)
		if code := w.cmd.ProcessState.ExitCode(); code != 0 {
			t.Errorf("watch ended by SIGTERM exited with %d, want 0", code)
		}
	})

	t.Run("watch json", func(t *testing.T) {
		w := start(t, filepath.Join(bin, "micro"), nil, "watch", "-o", "json", "greeter.auditor")
		w.expect(t, `^watching service "greeter.auditor"`)
		a := start(t, filepath.Join(bin, "auditor"), nil, "-instance", "auditor-2")
		a.expect(t, "subscribed to")
		w.expect(t, `^\{"action":"create","service":\{"name":"greeter.auditor","version":"latest"`)
		a.stop(t)
		w.expect(t, `^\{"action":"delete","service":\{"name":"greeter.auditor"`)
	})

	t.Run("usage and configuration errors", func(t *testing.T) {
		want(t, micro(t, nil, nil), 2, "Usage:")
		want(t, micro(t, nil, nil, "frobnicate"), 2, `no command "frobnicate"`)
		want(t, micro(t, nil, nil, "call", "greeter"), 2, "want <service> <method> [json]")
		want(t, micro(t, nil, nil, "services", "-nosuchflag"), 2, "flag provided but not defined")
		want(t, micro(t, nil, nil, "services", "-o", "yaml"), 2, "want text or json")
		want(t, micro(t, nil, nil, "help"), 0, "Exit status:", "64+code")
		want(t, micro(t, nil, nil, "call", "-h"), 0, "Usage: micro call", "-address", "-H")
		want(t, micro(t, nil, []string{"MICRO_REGISTRY=etcd"}, "services"), 1,
			`"etcd" is not a known registry (known: mdns, memory)`, "compiled into it")
		want(t, micro(t, nil, []string{"MICRO_BROKER=nats"}, "publish", "t", "{}"), 1,
			`MICRO_BROKER="nats" is not a known broker (known: direct, memory)`, "compiled into it")
		want(t, micro(t, nil, []string{"MICRO_REGISTRY_ADRESS=x"}, "services"), 2,
			"unknown environment variable MICRO_REGISTRY_ADRESS")
	})
}
