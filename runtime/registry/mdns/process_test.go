package mdns_test

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/protoc-gen-micro/micro/internal/leakcheck"
	"github.com/protoc-gen-micro/micro/internal/netns"
	"github.com/protoc-gen-micro/micro/runtime/registry"
	"github.com/protoc-gen-micro/micro/runtime/registry/mdns"
	"github.com/protoc-gen-micro/micro/runtime/registry/registrytest"
)

// Helper processes take their orders from the environment.
const (
	envService = "MDNS_TEST_SERVICE" // service name
	envNode    = "MDNS_TEST_NODE"    // node ID
	envAddr    = "MDNS_TEST_ADDR"    // node address
	envTTL     = "MDNS_TEST_TTL"     // registration TTL, a time.Duration
	envNetwork = "MDNS_TEST_NETWORK" // the Network option
	// envDefaultWait, set, leaves the max wait at its default rather than
	// the helpers' generous 5 s.
	envDefaultWait = "MDNS_TEST_DEFAULT_WAIT"
)

func helperOptions() []mdns.Option {
	opts := []mdns.Option{mdns.WithAnnounceInterval(50 * time.Millisecond)}
	if os.Getenv(envDefaultWait) == "" {
		opts = append(opts, mdns.WithMaxWait(5*time.Second))
	}
	if n := os.Getenv(envNetwork); n != "" {
		opts = append(opts, mdns.WithNetwork(n))
	}
	return opts
}

// TestHelperRegister registers a node, prints "registered", refreshes the
// registration until its standard input closes, then closes the registry
// (sending goodbyes) and prints "closed".
func TestHelperRegister(t *testing.T) {
	if !netns.IsHelper() {
		t.Skip("helper process")
	}
	ctx := context.Background()
	r := mdns.NewRegistry(helperOptions()...)
	var ttl time.Duration
	if s := os.Getenv(envTTL); s != "" {
		ttl, _ = time.ParseDuration(s)
	}
	s := service(os.Getenv(envService), "v1", node(os.Getenv(envNode), os.Getenv(envAddr)))
	if err := r.Register(ctx, s, ttl); err != nil {
		t.Fatal(err)
	}
	fmt.Println("registered")
	eof := make(chan struct{})
	go func() { io.Copy(io.Discard, os.Stdin); close(eof) }()
	refresh := time.NewTicker(max(ttl/3, 10*time.Millisecond))
	defer refresh.Stop()
	for {
		select {
		case <-refresh.C:
			if ttl > 0 {
				if err := r.Register(ctx, s, ttl); err != nil {
					t.Fatal(err)
				}
			}
			continue
		case <-eof:
		}
		break
	}
	r.Close()
	fmt.Println("closed")
}

// TestHelperWatch prints "watching", then one line per result,
// "event <action> <service> <node> <address>", until its standard input
// closes.
func TestHelperWatch(t *testing.T) {
	if !netns.IsHelper() {
		t.Skip("helper process")
	}
	r := mdns.NewRegistry(helperOptions()...)
	defer r.Close()
	w, err := r.Watch(context.Background(), os.Getenv(envService))
	if err != nil {
		t.Fatal(err)
	}
	go func() { io.Copy(io.Discard, os.Stdin); w.Stop() }()
	fmt.Println("watching")
	for {
		res, err := w.Next()
		if err != nil {
			return
		}
		for _, n := range res.Service.Nodes {
			fmt.Println("event", res.Action, res.Service.Name, n.ID, n.Address)
		}
	}
}

// TestHelperLookup looks the service up once and prints "found <node>
// <address>" for each node, or "error <error>".
func TestHelperLookup(t *testing.T) {
	if !netns.IsHelper() {
		t.Skip("helper process")
	}
	r := mdns.NewRegistry(helperOptions()...)
	defer r.Close()
	svcs, err := r.GetService(context.Background(), os.Getenv(envService))
	if err != nil {
		fmt.Println("error", err)
		return
	}
	for _, s := range svcs {
		for _, n := range s.Nodes {
			fmt.Println("found", n.ID, n.Address)
		}
	}
}

// TestHelperAskUnicast sends a QU query and prints "unicast from
// <address>" for the first unicast answer, or "error <error>".
func TestHelperAskUnicast(t *testing.T) {
	if !netns.IsHelper() {
		t.Skip("helper process")
	}
	from, err := mdns.AskUnicast(5 * time.Second)
	if err != nil {
		fmt.Println("error", err)
		return
	}
	fmt.Println("unicast from", from)
}

func helperEnv(service, node, addr string, extra ...string) []string {
	return append([]string{envService + "=" + service, envNode + "=" + node, envAddr + "=" + addr}, extra...)
}

// A node registered by another process is found, watched, and gone after
// its goodbye.
func TestAcrossProcesses(t *testing.T) {
	leakcheck.Check(t)
	ctx := context.Background()
	r := newRegistry(t)
	w := registrytest.Watch(t, r, "xproc")

	child := netns.Start(t, "TestHelperRegister", helperEnv("xproc", "xproc-1", ":6000")...)
	child.Expect(t, "registered", 10*time.Second)
	res := expect(t, w, registry.Create, "xproc-1")
	if a := res.Service.Nodes[0].Address; a != "127.0.0.1:6000" {
		t.Fatalf("address %q", a)
	}
	got, err := r.GetService(ctx, "xproc")
	if err != nil || got[0].Nodes[0].ID != "xproc-1" {
		t.Fatalf("GetService = %s, %v", dump(got...), err)
	}
	// And the other way round: the child's lookup finds ours.
	if err := r.Register(ctx, service("xproc-parent", "v1", node("xproc-parent-1", ":6001")), 0); err != nil {
		t.Fatal(err)
	}
	lookup := netns.Start(t, "TestHelperLookup", envService+"=xproc-parent")
	if line := lookup.Expect(t, "", 10*time.Second); line != "found xproc-parent-1 127.0.0.1:6001" {
		t.Fatalf("child lookup: %q", line)
	}

	child.CloseStdin()
	child.Expect(t, "closed", 10*time.Second)
	expect(t, w, registry.Delete, "xproc-1")
	if err := child.Wait(); err != nil {
		t.Fatalf("child: %v\n%s", err, child.Stderr())
	}
}

// A node whose process dies without a goodbye disappears when its records'
// TTL runs out: the browser's refresh queries go unanswered.
func TestExpiryWithoutGoodbye(t *testing.T) {
	leakcheck.Check(t)
	_, _, await := mdns.Sniff(t)
	r := newRegistry(t)
	w := registrytest.Watch(t, r, "vanish")

	const ttl = time.Second
	child := netns.Start(t, "TestHelperRegister", helperEnv("vanish", "vanish-1", ":6100", envTTL+"="+ttl.String())...)
	child.Expect(t, "registered", 10*time.Second)
	expect(t, w, registry.Create, "vanish-1")
	// Outlive one TTL: wait for a response from the child a TTL after
	// the node was first heard of, so the node must have been kept alive
	// by what refreshed it since (the child registers again every third
	// of the TTL and answers queries).
	created := time.Now()
	await("response a TTL after the node appeared", func(ps []mdns.Packet) bool {
		for _, p := range ps {
			if _, live, _ := classify(p); live > 0 && p.At.Sub(created) > ttl {
				return true
			}
		}
		return false
	})
	if svcs, err := r.GetService(context.Background(), "vanish"); err != nil || len(svcs[0].Nodes) != 1 {
		t.Fatalf("after a TTL with the child alive: %s, %v", dump(svcs...), err)
	}

	if err := child.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	killed := time.Now()
	expect(t, w, registry.Delete, "vanish-1")
	t.Logf("Delete %v after SIGKILL (record TTL %v)", time.Since(killed).Round(time.Millisecond), ttl)
	if err := child.Wait(); err == nil || !strings.Contains(err.Error(), "killed") {
		t.Fatalf("child: %v", err)
	}
}
