package mdns_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/protoc-gen-micro/micro/internal/leakcheck"
	"github.com/protoc-gen-micro/micro/internal/netns"
	"github.com/protoc-gen-micro/micro/runtime/registry"
	"github.com/protoc-gen-micro/micro/runtime/registry/registrytest"
)

// python-zeroconf, a standard DNS-SD implementation, lists our nodes with
// all their TXT keys, and we find a node it publishes in our format, though its responses carry
// NSEC records it writes malformed (0.47). Skipped unless python3 with the
// zeroconf module is installed (Debian: apt-get install python3-zeroconf);
// CI installs it and sets MICROTEST_REQUIRE_ZEROCONF, so that there it fails
// rather than skips.
func TestZeroconfInterop(t *testing.T) {
	leakcheck.Check(t)
	python := findPython(t)
	ctx := context.Background()
	r := newRegistry(t)

	t.Run("it lists ours", func(t *testing.T) {
		browser := startPython(t, python, "browse")
		browser.expect(t, "browsing")
		s := service("interop", "v1", node("interop-1", ":7300"))
		s.Endpoints = nil
		for _, m := range []string{"A", "B", "C", "D"} {
			s.Endpoints = append(s.Endpoints, &registry.Endpoint{Name: "/interop.v1.Svc/" + m})
		}
		if err := r.Register(ctx, s, 0); err != nil {
			t.Fatal(err)
		}
		got := browser.expect(t, "found ")
		// Each endpoint under a key of its own: a DNS-SD reader keeps
		// only the first occurrence of a key (RFC 6763 §6.4).
		for _, want := range []string{"interop-1._micro._tcp.local. 7300 127.0.0.1", "name=interop", "node=interop-1", "protocol=grpc", "s.team=core", "version=v1",
			"eps=4", "e0=/interop.v1.Svc/A", "e1=+B", "e2=+C", "e3=+D"} {
			if !strings.Contains(got, want) {
				t.Errorf("zeroconf found %q, which lacks %q", got, want)
			}
		}
		if err := r.Deregister(ctx, s); err != nil {
			t.Fatal(err)
		}
		browser.expect(t, "removed interop-1._micro._tcp.local.")
	})

	t.Run("we find its", func(t *testing.T) {
		w := registrytest.Watch(t, r, "pyservice")
		publisher := startPython(t, python, "publish")
		publisher.expect(t, "published")
		res := expect(t, w, registry.Create, "py-1")
		if n := res.Service.Nodes[0]; n.Address != "127.0.0.1:9999" || res.Service.Metadata["lang"] != "python" {
			t.Fatalf("Create %s", dump(res.Service))
		}
		publisher.stdin.Close()
		expect(t, w, registry.Delete, "py-1")
	})
}

// findPython returns a python3 that imports zeroconf, or skips the test
// (fails it under MICROTEST_REQUIRE_ZEROCONF).
func findPython(t *testing.T) string {
	t.Helper()
	for _, p := range []string{"/usr/bin/python3", "python3"} {
		if exec.Command(p, "-c", "import zeroconf").Run() == nil {
			return p
		}
	}
	if os.Getenv("MICROTEST_REQUIRE_ZEROCONF") != "" {
		t.Fatal("MICROTEST_REQUIRE_ZEROCONF is set but python3 cannot import zeroconf (apt-get install python3-zeroconf)")
	}
	t.Skip("python3 with zeroconf is not installed (apt-get install python3-zeroconf)")
	return ""
}

// A process started just after python-zeroconf registered a service finds
// it. python-zeroconf holds back multicast answers for a second after
// announcing (RFC 6762 §6). From another host, the lookup's first query
// asks for a unicast answer (QU, §5.4), which comes at once. On the same
// host the unicast answer goes to python-zeroconf's own socket, bound to
// the address it answers to (§15.1), and the lookup must wait out the
// hold: the default max wait outlasts it. The lookups use the default max
// wait.
func TestZeroconfColdLookup(t *testing.T) {
	leakcheck.Check(t)
	python := findPython(t)
	lookup := func(t *testing.T, on func(t testing.TB, test string, env ...string) *netns.Process, service string) *netns.Process {
		return on(t, "TestHelperLookup", envService+"="+service, envDefaultWait+"=1", "GORACE=atexit_sleep_ms=0")
	}

	t.Run("another host", func(t *testing.T) {
		lan := netns.NewLAN(t, 2)
		py, us := lan.Hosts[0], lan.Hosts[1]
		server := startPythonCmd(t, py.Command(context.Background(), python, "testdata/zeroconf_interop.py", "serve", py.IPv4.String()))
		const tries = 15
		failed := 0
		for i := range tries {
			fmt.Fprintf(server.stdin, "publish %d\n", i)
			server.expect(t, fmt.Sprintf("published py-%d", i))
			got := lookup(t, us.Start, "pyservice-"+strconv.Itoa(i)).Expect(t, "", 10*time.Second)
			if want := fmt.Sprintf("found py-%d %s:9999", i, py.IPv4); got != want {
				failed++
				t.Logf("try %d: %s", i, got)
			}
		}
		if failed > 0 {
			t.Fatalf("%d of %d cold lookups failed", failed, tries)
		}
	})

	// Each lookup here takes the hold, over a second, so three run at
	// once, each for a service of its own.
	t.Run("this host", func(t *testing.T) {
		server := startPythonCmd(t, exec.Command(python, "testdata/zeroconf_interop.py", "serve", "127.0.0.1"))
		const tries = 3
		var lookups []*netns.Process
		for i := range tries {
			fmt.Fprintf(server.stdin, "publish local-%d\n", i)
			server.expect(t, fmt.Sprintf("published py-local-%d", i))
		}
		for i := range tries {
			lookups = append(lookups, lookup(t, netns.Start, "pyservice-local-"+strconv.Itoa(i)))
		}
		failed := 0
		for i, l := range lookups {
			if got, want := l.Expect(t, "", 10*time.Second), fmt.Sprintf("found py-local-%d 127.0.0.1:9999", i); got != want {
				failed++
				t.Logf("lookup %d: %s", i, got)
			}
		}
		if failed > 0 {
			t.Fatalf("%d of %d cold lookups failed", failed, tries)
		}
	})
}

type pyProc struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	lines chan string
}

func startPython(t *testing.T, python, mode string) *pyProc {
	t.Helper()
	return startPythonCmd(t, exec.Command(python, "testdata/zeroconf_interop.py", mode))
}

func startPythonCmd(t *testing.T, cmd *exec.Cmd) *pyProc {
	t.Helper()
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &pyProc{cmd: cmd, stdin: stdin, lines: make(chan string, 16)}
	done := make(chan struct{})
	go func() {
		defer close(done)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			p.lines <- sc.Text()
		}
		close(p.lines)
	}()
	t.Cleanup(func() {
		stdin.Close()
		timer := time.AfterFunc(5*time.Second, func() { cmd.Process.Kill() })
		for range p.lines {
		}
		<-done
		cmd.Wait()
		timer.Stop()
		if t.Failed() {
			t.Logf("python stderr:\n%s", stderr.String())
		}
	})
	return p
}

func (p *pyProc) expect(t *testing.T, prefix string) string {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		select {
		case line, ok := <-p.lines:
			if !ok {
				t.Fatalf("python ended before printing %q", prefix)
			}
			if strings.HasPrefix(line, prefix) {
				return line
			}
			t.Logf("python: %s", line)
		case <-timeout:
			t.Fatalf("python printed no %q", prefix)
		}
	}
}
