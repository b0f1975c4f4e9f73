package etcd_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/protoc-gen-micro/micro/internal/leakcheck"
	"github.com/protoc-gen-micro/micro/plugins/etcd"
	"github.com/protoc-gen-micro/micro/runtime/registry"
	"github.com/protoc-gen-micro/micro/runtime/registry/registrytest"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// Two registries, each with its own client, on one etcd see each other's
// nodes.
func TestTwoClients(t *testing.T) {
	leakcheck.Check(t)
	p := testPrefix(t)
	a := newRegistry(t, "", etcd.WithPrefix(p))
	b := newRegistry(t, "", etcd.WithPrefix(p))
	ctx := ctxT(t)
	wa, wb := registrytest.Watch(t, a, "svc"), registrytest.Watch(t, b, "svc")

	if err := a.Register(ctx, service("svc", "v1", node("from-a", 8001)), 0); err != nil {
		t.Fatal(err)
	}
	expect(t, wb, registry.Create, "from-a")
	if got, err := b.GetService(ctx, "svc"); err != nil || len(got) != 1 || got[0].Nodes[0].ID != "from-a" {
		t.Fatalf("b.GetService = %v, %v", got, err)
	}
	if err := b.Register(ctx, service("svc", "v1", node("from-b", 8002)), 0); err != nil {
		t.Fatal(err)
	}
	expect(t, wa, registry.Create, "from-a")
	expect(t, wa, registry.Update, "from-b")
	got, err := a.GetService(ctx, "svc")
	if err != nil || len(got) != 1 || len(got[0].Nodes) != 2 {
		t.Fatalf("a.GetService = %v, %v; want both nodes", got, err)
	}
	if err := b.Deregister(ctx, ref("svc", "v1", "from-a")); err != nil {
		t.Fatal(err)
	}
	expect(t, wa, registry.Delete, "from-a")
}

// Concurrent changes from another client reach a watcher in order, each
// one, per node; a watcher whose registry first reads the prefix while the
// changes are under way misses none after the state it read.
func TestWatchNoLoss(t *testing.T) {
	leakcheck.Check(t)
	p := testPrefix(t)
	writer := newRegistry(t, "", etcd.WithPrefix(p))
	early := newRegistry(t, "", etcd.WithPrefix(p))
	late := newRegistry(t, "", etcd.WithPrefix(p))
	ctx := ctxT(t)
	if _, err := early.ListServices(ctx); err != nil { // read the prefix before
		t.Fatal(err)
	}
	we := registrytest.Watch(t, early, "")

	const nodes, changes = 4, 50 // 200 changes, then a delete each
	// want[id] is what each change of the node looks like to a watcher.
	want := map[string][]string{}
	for n := range nodes {
		id := fmt.Sprintf("n%d", n)
		for i := range changes {
			want[id] = append(want[id], fmt.Sprintf("put 127.0.0.1:%d", 10000+i))
		}
		want[id] = append(want[id], "delete")
	}
	var wg sync.WaitGroup
	started := make(chan struct{})
	for n := range nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			id := fmt.Sprintf("n%d", n)
			for i := range changes {
				if i == changes/4 && n == 0 {
					close(started)
				}
				if err := writer.Register(ctx, service("svc", "v1", node(id, 10000+i)), 0); err != nil {
					t.Error(err)
					return
				}
			}
			if err := writer.Deregister(ctx, ref("svc", "v1", id)); err != nil {
				t.Error(err)
			}
		}()
	}
	<-started
	wl := registrytest.Watch(t, late, "") // its first read happens mid-stream

	collect := func(w registry.Watcher) map[string][]string {
		got := map[string][]string{}
		deleted := 0
		for deleted < nodes {
			res := next(t, w)
			for _, n := range res.Service.Nodes {
				if res.Action == registry.Delete {
					got[n.ID] = append(got[n.ID], "delete")
					deleted++
				} else {
					got[n.ID] = append(got[n.ID], "put "+n.Address)
				}
			}
		}
		return got
	}
	early_ := collect(we)
	late_ := collect(wl)
	wg.Wait()
	for id, seq := range want {
		if !slices.Equal(early_[id], seq) {
			t.Errorf("early watcher saw %s as %v\nwant %v", id, early_[id], seq)
		}
		// The late watcher starts from the state it read: a suffix of the
		// changes, without a gap.
		if got := late_[id]; len(got) == 0 || !slices.Equal(got, seq[len(seq)-len(got):]) {
			t.Errorf("late watcher saw %s as %v\nwant a suffix of %v", id, got, seq)
		}
	}
}

// A compaction while the cache is behind makes it read the prefix again
// and report the differences; nothing is lost and watching goes on.
func TestCompaction(t *testing.T) {
	leakcheck.Check(t)
	p := testPrefix(t)
	l := newLogs()
	writer := newRegistry(t, "", etcd.WithPrefix(p))
	r := newRegistry(t, "", etcd.WithPrefix(p), etcd.WithLogger(l.logger()))
	ctx := ctxT(t)
	if _, err := r.ListServices(ctx); err != nil {
		t.Fatal(err)
	}
	w := registrytest.Watch(t, r, "svc")
	for _, id := range []string{"a", "b"} {
		if err := writer.Register(ctx, service("svc", "v1", node(id, 8001)), 0); err != nil {
			t.Fatal(err)
		}
	}
	expect(t, w, registry.Create, "a")
	expect(t, w, registry.Update, "b")

	resume := etcd.HoldWatch(r)
	if err := writer.Register(ctx, service("svc", "v1", node("a", 9001)), 0); err != nil {
		t.Fatal(err)
	}
	if err := writer.Deregister(ctx, ref("svc", "v1", "b")); err != nil {
		t.Fatal(err)
	}
	if err := writer.Register(ctx, service("svc", "v1", node("c", 8003)), 0); err != nil {
		t.Fatal(err)
	}
	cli := rawClient(t, "")
	resp, err := cli.Get(ctx, "compact-me")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cli.Compact(ctx, resp.Header.Revision, clientv3.WithCompactPhysical()); err != nil {
		t.Fatal(err)
	}
	resume()

	// The differences, as one batch: b left, a changed, c came.
	expect(t, w, registry.Delete, "b")
	if res := expect(t, w, registry.Update, "a", "c"); res.Service.Nodes[0].Address != "127.0.0.1:9001" {
		t.Fatalf("a's update carries %s", res.Service.Nodes[0].Address)
	}
	l.await(t, "compacted", 1)
	got, err := r.GetService(ctx, "svc")
	if err != nil || len(got) != 1 || len(got[0].Nodes) != 2 {
		t.Fatalf("GetService after the compaction = %v, %v", got, err)
	}
	// The watch goes on from the new read.
	if err := writer.Deregister(ctx, ref("svc", "v1", "a")); err != nil {
		t.Fatal(err)
	}
	expect(t, w, registry.Delete, "a")
}

// Values in the prefix that are not nodes of ours are skipped, each logged
// once, and a node overwritten by one disappears.
func TestMalformedValues(t *testing.T) {
	leakcheck.Check(t)
	p := testPrefix(t)
	l := newLogs()
	cli := rawClient(t, "")
	ctx := ctxT(t)
	bad := map[string]string{
		"garbage/x":   "not json",
		"empty/x":     "",
		"null/x":      "null",
		"nonode/x":    `{"name":"nonode","version":"v1"}`,
		"nullnode/x":  `{"name":"nullnode","nodes":[null]}`,
		"twonodes/x":  `{"name":"twonodes","nodes":[{"id":"x"},{"id":"y"}]}`,
		"elsewhere/x": `{"name":"other","nodes":[{"id":"x"}]}`,
		"nullep/x":    `{"name":"nullep","endpoints":[null],"nodes":[{"id":"x"}]}`,
		"huge/x":      `{"name":"huge","nodes":[{"id":"x","metadata":{"pad":"` + strings.Repeat("x", etcd.MaxValueSize) + `"}}]}`,
	}
	for k, v := range bad {
		if _, err := cli.Put(ctx, p+k, v); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := cli.Put(ctx, p+"good/g1", `{"name":"good","version":"v1","nodes":[{"id":"g1","address":"127.0.0.1:1"}]}`); err != nil {
		t.Fatal(err)
	}
	r := newRegistry(t, "", etcd.WithPrefix(p), etcd.WithLogger(l.logger()))
	list, err := r.ListServices(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 1 || list[0].Name != "good" || list[0].Nodes[0].Address != "127.0.0.1:1" {
		t.Fatalf("ListServices = %v, want the good node only", list)
	}
	if n := l.count("not a node"); n != len(bad) {
		t.Fatalf("%d lines about values that are not nodes, want %d", n, len(bad))
	}

	w := registrytest.Watch(t, r, "")
	if _, err := cli.Put(ctx, p+"good/g1", "{"); err != nil {
		t.Fatal(err)
	}
	expect(t, w, registry.Delete, "g1")
	if _, err := cli.Put(ctx, p+"garbage/x", "still not json"); err != nil {
		t.Fatal(err)
	}
	if _, err := cli.Put(ctx, p+"good/g1", `{"name":"good","version":"v1","nodes":[{"id":"g1","address":"127.0.0.1:2"}]}`); err != nil {
		t.Fatal(err)
	}
	expect(t, w, registry.Create, "g1")
	// Once per key: the second bad value of garbage/x was not logged.
	if n := l.count("not a node"); n != len(bad)+1 {
		t.Fatalf("%d lines about values that are not nodes, want %d", n, len(bad)+1)
	}
}

// The cache holds at most its bound of nodes and says so once.
func TestMaxNodes(t *testing.T) {
	leakcheck.Check(t)
	defer etcd.SetMaxNodes(3)()
	p := testPrefix(t)
	l := newLogs()
	writer := newRegistry(t, "", etcd.WithPrefix(p))
	r := newRegistry(t, "", etcd.WithPrefix(p), etcd.WithLogger(l.logger()))
	ctx := ctxT(t)
	for i := range 5 {
		if err := writer.Register(ctx, service("svc", "v1", node(fmt.Sprint("n", i), 8000+i)), 0); err != nil {
			t.Fatal(err)
		}
	}
	got, err := r.GetService(ctx, "svc")
	if err != nil || len(got[0].Nodes) != 3 {
		t.Fatalf("GetService = %v, %v; want 3 nodes", got, err)
	}
	if n := l.count("maximum of nodes"); n != 1 {
		t.Fatalf("%d lines about the bound, want 1", n)
	}
	// Register refuses a value larger than a reader accepts.
	big := service("big", "v1", node("b", 1))
	big.Metadata["pad"] = strings.Repeat("x", etcd.MaxValueSize)
	if err := writer.Register(ctx, big, 0); err == nil || !strings.Contains(err.Error(), "bytes") {
		t.Fatalf("Register of a value over 1 MiB = %v, want an error", err)
	}
}

// Close withdraws the registry's nodes, with and without a lease, ends its
// watches and makes later calls fail with registry.ErrClosed.
func TestCloseWithdraws(t *testing.T) {
	leakcheck.Check(t)
	p := testPrefix(t)
	a := newRegistry(t, "", etcd.WithPrefix(p))
	b := newRegistry(t, "", etcd.WithPrefix(p))
	ctx := ctxT(t)
	wb := registrytest.Watch(t, b, "svc")
	if err := a.Register(ctx, service("svc", "v1", node("leased", 8001)), time.Minute); err != nil {
		t.Fatal(err)
	}
	if err := a.Register(ctx, service("svc", "v1", node("kept", 8002)), 0); err != nil {
		t.Fatal(err)
	}
	expect(t, wb, registry.Create, "leased")
	expect(t, wb, registry.Update, "kept")
	wa := registrytest.Watch(t, a, "")
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := wa.Next(); !errors.Is(err, registry.ErrWatcherStopped) {
		t.Fatalf("Next after Close = %v", err)
	}
	deleted := map[string]bool{}
	for len(deleted) < 2 {
		res := next(t, wb)
		if res.Action != registry.Delete {
			t.Fatalf("after Close: %s", res.Action)
		}
		for _, n := range res.Service.Nodes {
			deleted[n.ID] = true
		}
	}
	if resp, err := rawClient(t, "").Get(ctx, p, clientv3.WithPrefix(), clientv3.WithCountOnly()); err != nil || resp.Count != 0 {
		t.Fatalf("keys left after Close: %v, %v", resp, err)
	}
	if _, err := a.GetService(ctx, "svc"); !errors.Is(err, registry.ErrClosed) {
		t.Fatalf("GetService after Close = %v", err)
	}
}

// registry.New("etcd", address) makes one, with comma-separated endpoints.
func TestFactory(t *testing.T) {
	leakcheck.Check(t)
	r, err := registry.New("etcd", " "+shared.addr()+" ,")
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if r.String() != "etcd" {
		t.Fatalf("String() = %q", r.String())
	}
	ctx := ctxT(t)
	name := "factory-" + fmt.Sprint(time.Now().UnixNano())
	if err := r.Register(ctx, service(name, "v1", node(name+"-1", 8001)), 0); err != nil {
		t.Fatal(err)
	}
	defer r.Deregister(ctx, ref(name, "v1", name+"-1"))
	if got, err := r.GetService(ctx, name); err != nil || got[0].Nodes[0].ID != name+"-1" {
		t.Fatalf("GetService = %v, %v", got, err)
	}
}

// A first lookup fails, saying so, when etcd never answers.
func TestUnreachable(t *testing.T) {
	leakcheck.Check(t)
	port, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	l := newLogs()
	r := newRegistry(t, fmt.Sprintf("127.0.0.1:%d", port), etcd.WithDialTimeout(300*time.Millisecond), etcd.WithLogger(l.logger()))
	_, err = r.GetService(context.Background(), "svc")
	if err == nil || !strings.Contains(err.Error(), "no answer from etcd") {
		t.Fatalf("GetService with etcd unreachable = %v", err)
	}
}

// A refresh (Register of the same nodes with the same TTL) that changes
// nothing writes nothing; one after another client deleted the node
// writes it again.
func TestRefresh(t *testing.T) {
	leakcheck.Check(t)
	for _, ttl := range []time.Duration{0, 30 * time.Second} {
		t.Run(ttl.String(), func(t *testing.T) {
			p := testPrefix(t)
			owner := newRegistry(t, "", etcd.WithPrefix(p))
			other := newRegistry(t, "", etcd.WithPrefix(p))
			cli := rawClient(t, "")
			ctx := ctxT(t)
			w := registrytest.Watch(t, other, "svc")
			s := service("svc", "v1", node("n", 8001))
			if err := owner.Register(ctx, s, ttl); err != nil {
				t.Fatal(err)
			}
			expect(t, w, registry.Create, "n")
			before, err := cli.Get(ctx, p+"svc/n")
			if err != nil || len(before.Kvs) != 1 {
				t.Fatalf("Get: %v, %v", before, err)
			}
			if err := owner.Register(ctx, s, ttl); err != nil {
				t.Fatal(err)
			}
			after, err := cli.Get(ctx, p+"svc/n")
			if err != nil || len(after.Kvs) != 1 || after.Kvs[0].ModRevision != before.Kvs[0].ModRevision {
				t.Fatalf("after a refresh that changes nothing, the key is %v (%v); want it unwritten at revision %d", after.Kvs, err, before.Kvs[0].ModRevision)
			}
			if err := other.Deregister(ctx, ref("svc", "v1", "n")); err != nil {
				t.Fatal(err)
			}
			expect(t, w, registry.Delete, "n")
			if err := owner.Register(ctx, s, ttl); err != nil {
				t.Fatal(err)
			}
			expect(t, w, registry.Create, "n")
			// A changed node is written on the same lease.
			s.Nodes[0].Address = "127.0.0.1:9001"
			if err := owner.Register(ctx, s, ttl); err != nil {
				t.Fatal(err)
			}
			if res := expect(t, w, registry.Update, "n"); res.Service.Nodes[0].Address != "127.0.0.1:9001" {
				t.Fatalf("Update carries %s", res.Service.Nodes[0].Address)
			}
			final, err := cli.Get(ctx, p+"svc/n")
			if err != nil || len(final.Kvs) != 1 || final.Kvs[0].Lease != before.Kvs[0].Lease {
				t.Fatalf("the key's lease went from %x to %v (%v)", before.Kvs[0].Lease, final.Kvs, err)
			}
		})
	}
}

// Malformed values are logged once each up to a bound, then once more to
// say so: a prefix full of them cannot flood the log or grow the set of
// keys remembered.
func TestMalformedLogBound(t *testing.T) {
	leakcheck.Check(t)
	p := testPrefix(t)
	l := newLogs()
	cli := rawClient(t, "")
	ctx := ctxT(t)
	const n = 1100
	var ops []clientv3.Op
	for i := range n {
		ops = append(ops, clientv3.OpPut(fmt.Sprintf("%sbad/%d", p, i), "not json"))
		if len(ops) == 100 || i == n-1 {
			if _, err := cli.Txn(ctx).Then(ops...).Commit(); err != nil {
				t.Fatal(err)
			}
			ops = nil
		}
	}
	r := newRegistry(t, "", etcd.WithPrefix(p), etcd.WithLogger(l.logger()))
	if list, err := r.ListServices(ctx); err != nil || len(list) != 0 {
		t.Fatalf("ListServices = %v, %v", list, err)
	}
	if got := l.count("skipping a value"); got != etcd.MaxBadKeys {
		t.Errorf("%d values logged, want %d", got, etcd.MaxBadKeys)
	}
	if got := l.count("no longer logging"); got != 1 {
		t.Errorf("%d lines saying logging stopped, want 1", got)
	}
}
