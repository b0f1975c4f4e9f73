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

	"github.com/protoc-gen-micro/micro/examples/greeter/greeterpb"
	"github.com/protoc-gen-micro/micro/internal/netns"
	"github.com/protoc-gen-micro/micro/internal/testcert"
	"github.com/protoc-gen-micro/micro/runtime/health"
	"github.com/protoc-gen-micro/micro/runtime/registry"
	"github.com/protoc-gen-micro/micro/runtime/registry/mdns"
	"github.com/protoc-gen-micro/micro/runtime/server"
)

// The tests build micro and the greeter example's server and auditor,
// then run them as separate processes found by mDNS, inside the private
// network namespace RunInNamespace makes: multicast never leaves it.
func TestMain(m *testing.M) { netns.RunInNamespace(m) }

// bound caps every wait: a process's output line, a command's run.
const bound = 60 * time.Second

// binDir holds the programs TestCLI built.
var binDir string

// build builds micro, the greeter server and the auditor into dir with the
// module cache the test was built from (there is no network in the
// namespace, so nothing may be downloaded).
func build(t *testing.T, dir string) {
	t.Helper()
	cmd := exec.Command("go", "build", "-o", dir+string(filepath.Separator),
		"github.com/protoc-gen-micro/micro/cmd/micro",
		"github.com/protoc-gen-micro/micro/examples/greeter/server",
		"github.com/protoc-gen-micro/micro/examples/greeter/auditor")
	cmd.Env = append(os.Environ(), "GOPROXY=off", "GOFLAGS=-mod=readonly")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	binDir = dir
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
	return startWith(t, nil, bin, env, args...)
}

// startWith is start with stdin as the process's standard input.
func startWith(t *testing.T, stdin io.Reader, bin string, env []string, args ...string) *proc {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdin = stdin
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

// pipe returns an OS pipe for a process's standard input: unlike an
// io.Pipe, the process reads it directly, so it can exit while the test
// still holds the writing end open.
func pipe(t *testing.T) (*os.File, *os.File) {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close(); w.Close() })
	return r, w
}

// wait waits for the process to exit and returns its exit status.
func (p *proc) wait(t *testing.T) int {
	t.Helper()
	select {
	case <-p.done:
	case <-time.After(bound):
		t.Fatalf("%s did not exit", p.cmd.Path)
	}
	for l := range p.lines {
		p.mu.Lock()
		p.seen = append(p.seen, l)
		p.mu.Unlock()
	}
	return p.cmd.ProcessState.ExitCode()
}

// output is what the process printed, once it has exited.
func (p *proc) output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return strings.Join(p.seen, "\n")
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
	cmd := exec.CommandContext(ctx, filepath.Join(binDir, "micro"), args...)
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
	p := start(t, filepath.Join(binDir, "server"), []string{"MICRO_SERVER_VERSION=" + version},
		append([]string{"-address", "127.0.0.1:0", "-instance", instance}, extra...)...)
	addr := p.expect(t, `^greeter: serving on (\S+)$`)[1]
	return p, addr
}

// TestCLI runs each command against two greeter servers (v1 and v2) and
// an auditor subscribed to greeter.greeted.
func TestCLI(t *testing.T) {
	build(t, t.TempDir())
	bin := binDir
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

	t.Run("health", func(t *testing.T) {
		r := micro(t, nil, nil, "health", "greeter")
		want(t, r, 0, "NODE", "STATUS")
		for _, w := range []string{addr1, addr2} {
			if !regexp.MustCompile(`(?m)^greeter-\S+ +v[12] +` + regexp.QuoteMeta(w) + ` +SERVING$`).MatchString(r.stdout) {
				t.Errorf("no SERVING line for the node at %s\n%s", w, r)
			}
		}
		r = micro(t, nil, nil, "health", "greeter", "-o", "json")
		want(t, r, 0)
		var nodes []struct{ Address, Status string }
		if err := json.Unmarshal([]byte(r.stdout), &nodes); err != nil || len(nodes) != 2 {
			t.Fatalf("-o json: %v, %d nodes\n%s", err, len(nodes), r)
		}
		for _, n := range nodes {
			if n.Status != "SERVING" {
				t.Errorf("node %s is %s", n.Address, n.Status)
			}
		}
		want(t, micro(t, nil, nil, "health", "greeter", "-service", "greeter.v1.Greeter", "-address", addr1), 0, "SERVING")
		want(t, micro(t, nil, nil, "health", "greeter", "-service", "no.such.Service", "-address", addr1), 64+5, "NotFound")
	})

	t.Run("describe", func(t *testing.T) {
		r := micro(t, nil, nil, "describe", "greeter")
		want(t, r, 0, "service greeter.v1.Greeter {",
			"rpc SayHello(greeter.v1.HelloRequest) returns (greeter.v1.HelloReply);  // unary",
			"rpc LotsOfReplies(greeter.v1.HelloRequest) returns (stream greeter.v1.HelloReply);  // server_stream",
			"rpc LotsOfGreetings(stream greeter.v1.HelloRequest) returns (greeter.v1.HelloReply);  // client_stream",
			"rpc Chat(stream greeter.v1.HelloRequest) returns (stream greeter.v1.HelloReply);  // bidi_stream",
			"service grpc.health.v1.Health {",
			"message greeter.v1.HelloRequest {\n  string name = 1;\n}")
		for _, sym := range []string{"greeter.v1.Greeter.SayHello", "Greeter.SayHello", "SayHello", "/greeter.v1.Greeter/SayHello"} {
			r := micro(t, nil, nil, "describe", "greeter", sym, "-o", "json")
			want(t, r, 0)
			var d struct {
				Methods []struct{ Name, Stream, Idempotency, Input string }
			}
			if err := json.Unmarshal([]byte(r.stdout), &d); err != nil || len(d.Methods) != 1 {
				t.Fatalf("describe %s -o json: %v\n%s", sym, err, r)
			}
			if m := d.Methods[0]; m.Name != "greeter.v1.Greeter.SayHello" || m.Stream != "unary" || m.Idempotency != "NO_SIDE_EFFECTS" || m.Input != "greeter.v1.HelloRequest" {
				t.Errorf("describe %s: %+v", sym, m)
			}
		}
		want(t, micro(t, nil, nil, "describe", "greeter", "Health.Check"), 0,
			"rpc Check(grpc.health.v1.HealthCheckRequest) returns (grpc.health.v1.HealthCheckResponse);",
			"  grpc.health.v1.HealthCheckResponse.ServingStatus status = 1;",
			"enum grpc.health.v1.HealthCheckResponse.ServingStatus {", "  SERVING = 1;")
		want(t, micro(t, nil, nil, "describe", "greeter", "HelloReply"), 0, "message greeter.v1.HelloReply {\n  string message = 1;\n}")
		want(t, micro(t, nil, nil, "describe", "greeter", "ServerReflectionInfo"), 2, "is ambiguous",
			"grpc.reflection.v1.ServerReflection.ServerReflectionInfo, grpc.reflection.v1alpha.ServerReflection.ServerReflectionInfo")
		want(t, micro(t, nil, nil, "describe", "greeter", "Nope"), 1, `no symbol "Nope"`, "greeter.v1.Greeter.Chat")
		want(t, micro(t, nil, nil, "describe", "greeter", "--address", addr2, "Greeter"), 0, "service greeter.v1.Greeter {")
	})

	t.Run("call unary", func(t *testing.T) {
		r := micro(t, nil, nil, "call", "greeter", "SayHello", `{"name":"Alice"}`)
		want(t, r, 0)
		if !regexp.MustCompile(`^\{\n  "message": "Hello Alice from (one|two)"\n\}\n$`).MatchString(r.stdout) {
			t.Errorf("unexpected response\n%s", r)
		}
		r = micro(t, nil, nil, "call", "greeter", "greeter.v1.Greeter.SayHello", `{"name":"Alice"}`, "-o", "json", "-H", "x-caller:ops", "--address", addr2)
		want(t, r, 0)
		if r.stdout != `{"message":"Hello Alice (asked by ops) from two"}`+"\n" {
			t.Errorf("-o json, -H and --address: got %q", r.stdout)
		}
		want(t, micro(t, nil, nil, "call", "greeter", "SayHello", `{"name":""}`), 64+3, "InvalidArgument: name is required")
		want(t, micro(t, nil, nil, "call", "greeter", "SayHello", `{"nom":"x"}`), 1, "is not a greeter.v1.HelloRequest in JSON")
		want(t, micro(t, nil, nil, "call", "greeter", "Greet", `{}`), 1, `no method "Greet"`, "greeter.v1.Greeter.SayHello")
		want(t, micro(t, nil, nil, "call", "greeter", "SayHello", `{"name":"x"}`, "--address", "127.0.0.1:1"), 1, "127.0.0.1:1", "connection refused")
	})

	t.Run("load balanced", func(t *testing.T) {
		// Each call picks a node as a client's selector does: over a few
		// calls, both nodes answer (all 30 on one: odds of 2 in 2^30).
		seen := map[string]bool{}
		for i := 0; i < 30 && len(seen) < 2; i++ {
			r := micro(t, nil, nil, "call", "greeter", "SayHello", `{"name":"lb"}`, "-o", "json")
			want(t, r, 0)
			if m := regexp.MustCompile(`from (one|two)`).FindStringSubmatch(r.stdout); m != nil {
				seen[m[1]] = true
			}
		}
		if len(seen) != 2 {
			t.Errorf("30 calls were answered by %v only", seen)
		}
	})

	t.Run("call server stream", func(t *testing.T) {
		r := micro(t, nil, nil, "call", "greeter", "LotsOfReplies", `{"name":"Bob"}`, "-o", "json")
		want(t, r, 0)
		if want := "{\"message\":\"1: Hello Bob\"}\n{\"message\":\"2: Bonjour Bob\"}\n{\"message\":\"3: Hallo Bob\"}\n"; r.stdout != want {
			t.Errorf("got %q, want %q", r.stdout, want)
		}
	})

	t.Run("call client stream", func(t *testing.T) {
		r := micro(t, strings.NewReader("{\"name\":\"a\"}\n\n{\"name\":\"b\"}\n"), nil, "call", "greeter", "LotsOfGreetings", "-o", "json")
		want(t, r, 0)
		if r.stdout != `{"message":"Hello a, b"}`+"\n" {
			t.Errorf("got %q", r.stdout)
		}
		r = micro(t, nil, nil, "call", "greeter", "LotsOfGreetings", `{"name":"solo"}`, "-o", "json")
		want(t, r, 0, `{"message":"Hello solo"}`)
		r = micro(t, strings.NewReader("{\"name\":\"a\"}\nnot json\n"), nil, "call", "greeter", "LotsOfGreetings")
		want(t, r, 1, "line 2 of standard input is not a greeter.v1.HelloRequest")
	})

	t.Run("call bidi", func(t *testing.T) {
		// Each answer is printed before the next request is written:
		// responses are printed as they arrive.
		in, w := pipe(t)
		p := startWith(t, in, filepath.Join(bin, "micro"), nil, "call", "greeter", "Chat", "-o", "json")
		for _, name := range []string{"a", "b", "c"} {
			fmt.Fprintf(w, "{\"name\":%q}\n", name)
			p.expect(t, `^\{"message":"Hello `+name+`"\}$`)
		}
		w.Close()
		if code := p.wait(t); code != 0 {
			t.Errorf("exit status %d\n%s", code, p.output())
		}
	})

	t.Run("timeout", func(t *testing.T) {
		// A client stream whose input never ends outlives -timeout.
		in, w := pipe(t)
		p := startWith(t, in, filepath.Join(bin, "micro"), nil, "call", "--timeout", "3s", "greeter", "LotsOfGreetings")
		fmt.Fprintln(w, `{"name":"late"}`)
		if code := p.wait(t); code != 64+4 {
			t.Errorf("exit status %d, want %d (64 + DeadlineExceeded)\n%s", code, 64+4, p.output())
		}
		if !strings.Contains(p.output(), "DeadlineExceeded") {
			t.Errorf("output does not say DeadlineExceeded\n%s", p.output())
		}
	})

	t.Run("publish typed", func(t *testing.T) {
		r := micro(t, nil, nil, "publish", "greeter.greeted", `{"message":"as proto"}`, "--type", "greeter.v1.HelloReply")
		want(t, r, 0, "published to greeter.greeted", "protobuf greeter.v1.HelloReply")
		auditor.expect(t, `auditor-1 handled event \S+: "as proto"`)
		want(t, micro(t, nil, nil, "publish", "greeter.greeted", `{"name":"x"}`, "--type", "greeter.v1.HelloReply"), 1, "is not a greeter.v1.HelloReply in JSON")
		want(t, micro(t, nil, nil, "publish", "greeter.greeted", `{}`, "--type", "no.such.Message"), 1, "knows message no.such.Message")
	})

	t.Run("mutual TLS", func(t *testing.T) {
		// micro takes MICRO_TLS_* as the service does. This server
		// registers as a third greeter while the test runs.
		ca := testcert.NewCA(t)
		cert, key, caFile := ca.WriteFiles(t, ca.Issue(t, "greeter"))
		env := []string{"MICRO_TLS_CERT=" + cert, "MICRO_TLS_KEY=" + key, "MICRO_TLS_CA=" + caFile}
		p := start(t, filepath.Join(bin, "server"), env, "-address", "127.0.0.1:0", "-instance", "tls")
		addr := p.expect(t, `^greeter: serving on (\S+)$`)[1]
		r := micro(t, nil, env, "call", "--address", addr, "greeter", "SayHello", `{"name":"Tess"}`, "-o", "json")
		want(t, r, 0, `{"message":"Hello Tess from tls"}`)
		want(t, micro(t, nil, nil, "call", "--address", addr, "greeter", "SayHello", `{"name":"Tess"}`), 1, "server reflection on "+addr+" failed")
		p.stop(t) // says goodbye to mDNS: the later tests see two greeters again
	})

	t.Run("reflection and health off", func(t *testing.T) {
		// A bare runtime/server, registered by hand: no reflection, no
		// health service.
		plain := netns.Start(t, "TestHelperPlainServer")
		addr := plain.Expect(t, "serving ", bound)
		for _, args := range [][]string{
			{"describe", "plain"},
			{"call", "plain", "SayHello", "{}"},
			{"describe", "--address", addr, "plain"},
		} {
			want(t, micro(t, nil, nil, args...), 1, "server reflection is not available on", "Unimplemented", "the server may have reflection off")
		}
		want(t, micro(t, nil, nil, "health", "plain"), 64+12, "Unimplemented", "the server may have health checking off", addr)
	})

	t.Run("health not serving", func(t *testing.T) {
		sick := netns.Start(t, "TestHelperNotServing")
		addr := sick.Expect(t, "serving ", bound)
		r := micro(t, nil, nil, "health", "sick")
		want(t, r, 1, "sick-1", addr, "NOT_SERVING", "sick-1 at "+addr+" is NOT_SERVING")
		want(t, micro(t, nil, nil, "health", "sick", "-service", "greeter.v1.Greeter"), 0, "SERVING")
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

// serveRegistered starts srv, registers it in mDNS as name (one node,
// name-1) and serves until standard input closes.
func serveRegistered(t *testing.T, srv server.Server, name string) {
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	defer srv.Stop()
	r := mdns.NewRegistry()
	defer r.Close()
	node := &registry.Service{Name: name, Version: "v0", Nodes: []*registry.Node{{ID: name + "-1", Address: srv.Address()}}}
	if err := r.Register(context.Background(), node, 0); err != nil {
		t.Fatal(err)
	}
	fmt.Println("serving " + srv.Address())
	_, _ = io.Copy(io.Discard, os.Stdin)
}

// TestHelperNotServing serves health on a bare runtime/server, with the
// server as a whole NOT_SERVING and greeter.v1.Greeter SERVING, registered
// in mDNS as "sick" until its standard input closes.
func TestHelperNotServing(t *testing.T) {
	if !netns.IsHelper() {
		t.Skip("helper process for TestCLI")
	}
	srv := server.NewServer(server.WithAddress("127.0.0.1:0"))
	hs := health.NewServer()
	hs.SetServingStatus("", health.NotServing)
	hs.SetServingStatus("greeter.v1.Greeter", health.Serving)
	if err := health.Register(srv, hs); err != nil {
		t.Fatal(err)
	}
	serveRegistered(t, srv, "sick")
}

// TestHelperPlainServer serves the greeter's methods (unimplemented) on a
// bare runtime/server, which serves neither reflection nor health, and
// registers it in mDNS as "plain" until its standard input closes.
func TestHelperPlainServer(t *testing.T) {
	if !netns.IsHelper() {
		t.Skip("helper process for TestCLI")
	}
	srv := server.NewServer(server.WithAddress("127.0.0.1:0"))
	if err := greeterpb.RegisterGreeterHandler(srv, greeterpb.UnimplementedGreeterHandler{}); err != nil {
		t.Fatal(err)
	}
	serveRegistered(t, srv, "plain")
}
