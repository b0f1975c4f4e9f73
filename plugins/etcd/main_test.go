package etcd_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/protoc-gen-micro/micro/plugins/etcd"
	"github.com/protoc-gen-micro/micro/runtime/registry"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// envHelper marks a helper process started by startHelper: it runs one
// helper test against the server its parent names, and starts none.
const (
	envHelper = "ETCD_REGISTRY_TEST_HELPER"
	envAddr   = "ETCD_REGISTRY_TEST_ADDR"
	envPrefix = "ETCD_REGISTRY_TEST_PREFIX"
	envTTL    = "ETCD_REGISTRY_TEST_TTL"
)

// shared is the etcd server most tests use; TestMain starts it.
var shared *server

func TestMain(m *testing.M) {
	if os.Getenv(envHelper) == "1" {
		os.Exit(m.Run())
	}
	dir, err := os.MkdirTemp("", "registry-etcd-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	shared, err = newServer(dir)
	if err != nil {
		fmt.Fprintln(os.Stderr, "starting etcd:", err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	shared.stop()
	os.RemoveAll(dir)
	os.Exit(code)
}

// newRegistry returns a registry on the shared server (or the one addr
// names) that the test closes when it ends.
func newRegistry(t testing.TB, addr string, opts ...etcd.Option) registry.Registry {
	t.Helper()
	if addr == "" {
		addr = shared.addr()
	}
	r, err := etcd.NewRegistry(append([]etcd.Option{etcd.WithEndpoints(addr)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

// rawClient returns a plain etcd client, the other writer tests use.
func rawClient(t testing.TB, addr string) *clientv3.Client {
	t.Helper()
	if addr == "" {
		addr = shared.addr()
	}
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{addr}, DialTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cli.Close() })
	return cli
}

// testPrefix returns a key prefix of the test's own.
func testPrefix(t testing.TB) string {
	return "/test/" + strings.ReplaceAll(t.Name(), "/", "-") + fmt.Sprintf("-%d/", time.Now().UnixNano())
}

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// logs records what a registry logs, for tests that wait for a line.
type logs struct {
	mu      sync.Mutex
	lines   []string
	changed chan struct{}
}

func newLogs() *logs { return &logs{changed: make(chan struct{})} }

func (l *logs) logger() *slog.Logger { return slog.New(l) }

func (l *logs) Enabled(context.Context, slog.Level) bool { return true }
func (l *logs) WithAttrs([]slog.Attr) slog.Handler       { return l }
func (l *logs) WithGroup(string) slog.Handler            { return l }
func (l *logs) Handle(_ context.Context, r slog.Record) error {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s", r.Level, r.Message)
	r.Attrs(func(a slog.Attr) bool { fmt.Fprintf(&b, " %s=%v", a.Key, a.Value); return true })
	l.mu.Lock()
	l.lines = append(l.lines, b.String())
	close(l.changed)
	l.changed = make(chan struct{})
	l.mu.Unlock()
	return nil
}

// count returns how many lines so far contain s.
func (l *logs) count(s string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, line := range l.lines {
		if strings.Contains(line, s) {
			n++
		}
	}
	return n
}

// await waits until n lines contain s, or fails the test after 20 s.
func (l *logs) await(t testing.TB, s string, n int) {
	t.Helper()
	deadline := time.NewTimer(20 * time.Second)
	defer deadline.Stop()
	for {
		l.mu.Lock()
		ch := l.changed
		l.mu.Unlock()
		if l.count(s) >= n {
			return
		}
		select {
		case <-ch:
		case <-deadline.C:
			l.mu.Lock()
			defer l.mu.Unlock()
			t.Fatalf("no %d log lines containing %q within 20s; logged:\n%s", n, s, strings.Join(l.lines, "\n"))
		}
	}
}

func service(name, version string, nodes ...*registry.Node) *registry.Service {
	return &registry.Service{Name: name, Version: version, Metadata: map[string]string{"team": "core"}, Nodes: nodes}
}

func node(id string, port int) *registry.Node {
	return &registry.Node{ID: id, Address: fmt.Sprintf("127.0.0.1:%d", port)}
}

func ref(name, version string, ids ...string) *registry.Service {
	s := &registry.Service{Name: name, Version: version}
	for _, id := range ids {
		s.Nodes = append(s.Nodes, &registry.Node{ID: id})
	}
	return s
}

// next returns the next result of w, failing the test when the watch ends.
func next(t testing.TB, w registry.Watcher) *registry.Result {
	t.Helper()
	res, err := w.Next()
	if err != nil {
		t.Fatalf("Next: %v", err)
	}
	return res
}

// expect checks that the next result of w is a of nodes ids (in any order).
func expect(t testing.TB, w registry.Watcher, a registry.Action, ids ...string) *registry.Result {
	t.Helper()
	res := next(t, w)
	var got []string
	for _, n := range res.Service.Nodes {
		got = append(got, n.ID)
	}
	if res.Action != a || strings.Join(got, ",") != strings.Join(ids, ",") {
		t.Fatalf("Next = %s %s %v; want %s %v", res.Action, res.Service.Name, got, a, ids)
	}
	return res
}
