package etcd_test

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/protoc-gen-micro/micro/internal/leakcheck"
	"github.com/protoc-gen-micro/micro/plugins/etcd"
	"github.com/protoc-gen-micro/micro/runtime/registry"
	"github.com/protoc-gen-micro/micro/runtime/registry/registrytest"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// While etcd restarts, lookups answer from the cache (the registry logs
// that it is stale); afterwards the registered nodes are there without the
// caller doing anything, the cache is current again, and a node whose lease
// was lost is written again on a new lease by the next refresh.
func TestEtcdRestart(t *testing.T) {
	leakcheck.Check(t)
	srv, err := newServer(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.stop)
	ctx := ctxT(t)
	l := newLogs()
	owner := newRegistry(t, srv.addr())
	r := newRegistry(t, srv.addr(), etcd.WithLogger(l.logger()))
	// The cache's first read is done before anything is registered, so
	// the watch sees each registration as its own event.
	if _, err := r.ListServices(ctx); err != nil {
		t.Fatal(err)
	}
	w := registrytest.Watch(t, r, "svc")
	if err := owner.Register(ctx, service("svc", "v1", node("leased", 8001)), 30*time.Second); err != nil {
		t.Fatal(err)
	}
	if err := owner.Register(ctx, service("svc", "v1", node("kept", 8002)), 0); err != nil {
		t.Fatal(err)
	}
	expect(t, w, registry.Create, "leased")
	expect(t, w, registry.Update, "kept")

	t0 := time.Now()
	srv.stop()
	l.await(t, "etcd is unreachable", 1)
	t.Logf("stale %v after the stop", time.Since(t0).Round(time.Millisecond))
	got, err := r.GetService(ctx, "svc")
	if err != nil || len(got) != 1 || len(got[0].Nodes) != 2 {
		t.Fatalf("GetService during the outage = %v, %v; want both nodes from the cache", got, err)
	}
	t0 = time.Now()
	if err := srv.start(); err != nil {
		t.Fatal(err)
	}
	t.Logf("restarted in %v", time.Since(t0).Round(time.Millisecond))
	l.await(t, "reachable again", 1)
	t.Logf("fresh %v after the start", time.Since(t0).Round(time.Millisecond))
	if n := l.count("etcd is unreachable"); n != 1 {
		t.Errorf("%d WARN lines for one outage, want 1", n)
	}
	resp, err := rawClient(t, srv.addr()).Get(ctx, "/micro/registry/svc/", clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil || resp.Count != 2 {
		t.Fatalf("keys in etcd after the restart: %v, %v; want 2", resp, err)
	}
	// The watch resumed: a change after the restart arrives.
	if err := owner.Register(ctx, service("svc", "v1", node("after", 8003)), 0); err != nil {
		t.Fatal(err)
	}
	expect(t, w, registry.Update, "after")

	// Lose the lease behind the owner's back: its node goes, and the
	// owner's next refresh grants a new lease and writes it again.
	cli := rawClient(t, srv.addr())
	kv, err := cli.Get(ctx, "/micro/registry/svc/leased")
	if err != nil || len(kv.Kvs) != 1 {
		t.Fatalf("Get leased: %v, %v", kv, err)
	}
	if _, err := cli.Revoke(ctx, clientv3.LeaseID(kv.Kvs[0].Lease)); err != nil {
		t.Fatal(err)
	}
	expect(t, w, registry.Delete, "leased")
	if err := owner.Register(ctx, service("svc", "v1", node("leased", 8001)), 30*time.Second); err != nil {
		t.Fatal(err)
	}
	expect(t, w, registry.Update, "leased")
}

// When etcd comes back without its data (lost, or restored from an old
// backup), the registry writes its live registrations again by itself,
// with and without a lease, and another registry's cache, whose revision
// is now ahead of etcd's, reads the prefix again and finds them.
func TestEtcdDataLoss(t *testing.T) {
	leakcheck.Check(t)
	dir := t.TempDir()
	srv, err := newServer(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.stop)
	ctx := ctxT(t)
	l := newLogs()
	owner := newRegistry(t, srv.addr())
	r := newRegistry(t, srv.addr(), etcd.WithLogger(l.logger()))
	// The cache's first read is done before anything is registered, so
	// the watch sees each registration as its own event.
	if _, err := r.ListServices(ctx); err != nil {
		t.Fatal(err)
	}
	w := registrytest.Watch(t, r, "svc")
	if err := owner.Register(ctx, service("svc", "v1", node("leased", 8001)), 30*time.Second); err != nil {
		t.Fatal(err)
	}
	if err := owner.Register(ctx, service("svc", "v1", node("kept", 8002)), 0); err != nil {
		t.Fatal(err)
	}
	// A registration that lapses is not brought back.
	if err := owner.Register(ctx, service("svc", "v1", node("lapsed", 8003)), time.Second); err != nil {
		t.Fatal(err)
	}
	expect(t, w, registry.Create, "leased")
	expect(t, w, registry.Update, "kept")
	expect(t, w, registry.Update, "lapsed")
	expect(t, w, registry.Delete, "lapsed")
	// Push etcd's revision ahead of what the new etcd will reach.
	cli := rawClient(t, srv.addr())
	for i := range 20 {
		if _, err := cli.Put(ctx, "/elsewhere", fmt.Sprint(i)); err != nil {
			t.Fatal(err)
		}
	}

	srv.stop()
	l.await(t, "etcd is unreachable", 1)
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if err := os.RemoveAll(dir + "/" + e.Name()); err != nil {
			t.Fatal(err)
		}
	}
	if err := srv.start(); err != nil {
		t.Fatal(err)
	}
	l.await(t, "revision went back", 1)
	// In etcd, which lost them, the owner has written them again by
	// itself...
	cli = rawClient(t, srv.addr())
	for _, id := range []string{"kept", "leased"} {
		ch := cli.Watch(ctx, "/micro/registry/svc/"+id, clientv3.WithRev(1))
		if resp, err := cli.Get(ctx, "/micro/registry/svc/"+id); err != nil || len(resp.Kvs) == 0 {
			if ev := <-ch; len(ev.Events) == 0 {
				t.Fatalf("%s was not written again: %v", id, ev.Err())
			}
		}
	}
	// ...and the other registry's cache, which read the prefix again,
	// follows etcd again.
	if err := owner.Register(ctx, service("svc", "v1", node("after", 8004)), 0); err != nil {
		t.Fatal(err)
	}
	for {
		res := next(t, w)
		if res.Service.Nodes[0].ID == "after" {
			break
		}
	}
	got, err := r.GetService(ctx, "svc")
	if err != nil || len(got) != 1 || len(got[0].Nodes) != 3 {
		t.Fatalf("GetService after the restore = %v, %v; want kept, leased and after", got, err)
	}
	resp, err := rawClient(t, srv.addr()).Get(ctx, "/micro/registry/svc/leased")
	if err != nil || len(resp.Kvs) != 1 || resp.Kvs[0].Lease == 0 {
		t.Fatalf("the leased node after the restore: %v, %v; want it on a lease", resp, err)
	}
}

// TestHelperRegister registers a node with the TTL its parent gives, prints
// "registered" and waits for its standard input to close; the parent kills
// it first.
func TestHelperRegister(t *testing.T) {
	if os.Getenv(envHelper) != "1" {
		t.Skip("helper process")
	}
	ttl, err := time.ParseDuration(os.Getenv(envTTL))
	if err != nil {
		t.Fatal(err)
	}
	r, err := etcd.NewRegistry(etcd.WithEndpoints(os.Getenv(envAddr)), etcd.WithPrefix(os.Getenv(envPrefix)))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if err := r.Register(ctxT(t), service("svc", "v1", node("doomed", 8001)), ttl); err != nil {
		t.Fatal(err)
	}
	fmt.Println("registered")
	io.Copy(io.Discard, os.Stdin)
}

// startHelper runs TestHelperRegister in a child process of this test
// binary and returns once the child has registered.
func startHelper(t testing.TB, addr, prefix string, ttl time.Duration) *exec.Cmd {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(self, "-test.run=^TestHelperRegister$", "-test.count=1", "-test.timeout=2m")
	cmd.Env = append(os.Environ(), envHelper+"=1", envAddr+"="+addr, envPrefix+"="+prefix, envTTL+"="+ttl.String())
	// The child dies with us, and sees its standard input close if we end.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if _, err := cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	line := make(chan string, 1)
	go func() {
		b, _ := io.ReadAll(io.LimitReader(out, int64(len("registered\n"))))
		line <- string(b)
		io.Copy(io.Discard, out)
	}()
	select {
	case got := <-line:
		if got != "registered\n" {
			cmd.Process.Kill()
			cmd.Wait()
			t.Fatalf("helper printed %q; stderr:\n%s", got, stderr.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatal("helper did not register within 30s")
	}
	return cmd
}

// A node whose process is killed without deregistering disappears once
// its lease's TTL has passed.
func TestDeadNodeExpires(t *testing.T) {
	leakcheck.Check(t)
	p := testPrefix(t)
	r := newRegistry(t, "", etcd.WithPrefix(p))
	w := registrytest.Watch(t, r, "svc")
	child := startHelper(t, shared.addr(), p, time.Second)
	expect(t, w, registry.Create, "doomed")
	if err := child.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	killed := time.Now()
	expect(t, w, registry.Delete, "doomed") // the watch's deadline bounds the wait
	t.Logf("Delete %v after SIGKILL (TTL 1s)", time.Since(killed).Round(time.Millisecond))
	if err := child.Wait(); err == nil || !strings.Contains(err.Error(), "killed") {
		t.Fatalf("child: %v", err)
	}
}
