package lantest_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/protoc-gen-micro/micro/internal/leakcheck"
	"github.com/protoc-gen-micro/micro/internal/netns"
	"github.com/protoc-gen-micro/micro/runtime/broker"
	"github.com/protoc-gen-micro/micro/runtime/broker/direct"
	"github.com/protoc-gen-micro/micro/runtime/registry"
	"github.com/protoc-gen-micro/micro/runtime/registry/mdns"
)

// Every test here sends multicast, so all run in a private namespace.
func TestMain(m *testing.M) { netns.RunInNamespace(m) }

const topic = "orders.created"

// Helper processes take their orders from the environment.
const (
	envLog    = "BROKER_TEST_LOG"    // file a helper appends message IDs to
	envQueue  = "BROKER_TEST_QUEUE"  // a worker's queue group; none when empty
	envCount  = "BROKER_TEST_COUNT"  // messages the publisher publishes
	envExpect = "BROKER_TEST_EXPECT" // subscriptions the publisher waits for
)

func newBroker(t *testing.T) (broker.Broker, registry.Registry, func()) {
	reg := mdns.NewRegistry(mdns.WithAnnounceInterval(50*time.Millisecond), mdns.WithMaxWait(2*time.Second))
	b := direct.NewBroker(direct.WithRegistry(reg))
	if err := b.Connect(); err != nil {
		t.Fatal(err)
	}
	return b, reg, func() {
		if err := b.Disconnect(); err != nil {
			t.Error(err)
		}
		reg.Close()
	}
}

// TestHelperWorker subscribes to the topic (in the queue group named by
// envQueue, if any), appends the ID of every message it handles to the
// file named by envLog before acknowledging it, prints "ready <address>",
// and disconnects when its standard input closes. A process killed between
// the two leaves an ID that no publisher saw acknowledged.
func TestHelperWorker(t *testing.T) {
	if !netns.IsHelper() {
		t.Skip("helper process for TestQueueGroupAcrossHosts")
	}
	log, err := os.OpenFile(os.Getenv(envLog), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer log.Close()
	b, _, stop := newBroker(t)
	opts := []broker.SubscribeOption{broker.WithConcurrency(4)}
	if q := os.Getenv(envQueue); q != "" {
		opts = append(opts, broker.WithQueue(q))
	}
	var mu sync.Mutex
	_, err = b.Subscribe(topic, func(ctx context.Context, m *broker.Message) error {
		time.Sleep(time.Millisecond) // work, so that some messages are in flight at any moment
		mu.Lock()
		defer mu.Unlock()
		_, err := log.WriteString(m.ID + "\n")
		return err
	}, opts...)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Println("ready", b.(interface{ Address() string }).Address())
	io.Copy(io.Discard, os.Stdin)
	stop()
	fmt.Println("closed")
}

// TestHelperPublisher waits until envExpect subscriptions are registered,
// then publishes envCount messages from 4 goroutines, appending "acked <id>"
// or "failed <id> <error>" to the file named by envLog, printing
// "progress <n>" every 100 acknowledgements and "done <acked> <failed>" at
// the end. It disconnects when its standard input closes.
func TestHelperPublisher(t *testing.T) {
	if !netns.IsHelper() {
		t.Skip("helper process for TestQueueGroupAcrossHosts")
	}
	// The broker's own registry answers its first lookup of the topic:
	// once it has heard of every subscription, so will the broker.
	b, reg, stop := newBroker(t)
	defer stop()
	want, _ := strconv.Atoi(os.Getenv(envExpect))
	deadline := time.Now().Add(30 * time.Second)
	for {
		n := 0
		if svcs, err := reg.GetService(context.Background(), "micro.broker."+topic); err == nil {
			for _, s := range svcs {
				n += len(s.Nodes)
			}
		}
		if n >= want {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d subscriptions registered after 30 s", n, want)
		}
		time.Sleep(50 * time.Millisecond)
	}
	log, err := os.Create(os.Getenv(envLog))
	if err != nil {
		t.Fatal(err)
	}
	defer log.Close()
	count, _ := strconv.Atoi(os.Getenv(envCount))
	fmt.Println("publishing")
	var mu sync.Mutex
	var acked, failed atomic.Int32
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := g; i < count; i += 4 {
				m := &broker.Message{Body: []byte(strconv.Itoa(i))}
				ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
				err := b.Publish(ctx, topic, m)
				cancel()
				mu.Lock()
				if err != nil {
					failed.Add(1)
					fmt.Fprintf(log, "failed %s %v\n", m.ID, err)
				} else {
					fmt.Fprintf(log, "acked %s\n", m.ID)
					if n := acked.Add(1); n%100 == 0 {
						fmt.Println("progress", n)
					}
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	fmt.Println("done", acked.Load(), failed.Load())
	io.Copy(io.Discard, os.Stdin)
}

// Two services on a LAN of five hosts: the publisher on h0, a queue group
// of three workers on h1-h3 and a group-less auditor on h4, all finding
// each other through mDNS. A worker is killed with SIGKILL mid-stream. Every
// publication must still be acknowledged, the auditor must have each
// message once, and each message must have been handled by the group —
// by two members only if one of them is the one killed, which may have
// handled it without its acknowledgement getting out.
func TestQueueGroupAcrossHosts(t *testing.T) {
	leakcheck.Check(t)
	lan := netns.NewLAN(t, 5)
	dir := t.TempDir()
	logOf := func(name string) string { return filepath.Join(dir, name+".log") }

	var workers []*netns.Process
	for i, h := range lan.Hosts[1:4] {
		p := h.Start(t, "TestHelperWorker", envLog+"="+logOf(fmt.Sprint("w", i+1)), envQueue+"=billing")
		workers = append(workers, p)
	}
	audit := lan.Hosts[4].Start(t, "TestHelperWorker", envLog+"="+logOf("audit"))
	for i, p := range append(append([]*netns.Process(nil), workers...), audit) {
		addr := p.Expect(t, "ready ", 20*time.Second)
		host, _, err := net.SplitHostPort(addr)
		if want := lan.Hosts[i+1].IPv4.String(); err != nil || host != want {
			t.Fatalf("subscriber on %s registered %s, want its LAN address %s", lan.Hosts[i+1].Name, addr, want)
		}
	}

	const n = 800
	pub := lan.Hosts[0].Start(t, "TestHelperPublisher", envLog+"="+logOf("publisher"), envCount+"="+strconv.Itoa(n), envExpect+"=4")
	pub.Expect(t, "publishing", 30*time.Second)
	pub.Expect(t, "progress", 30*time.Second)
	killed := workers[1]
	if err := killed.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	t.Log("killed worker w2 after 100 acknowledgements")
	result := strings.Fields(pub.Expect(t, "done ", 60*time.Second))
	pub.CloseStdin()
	for _, p := range []*netns.Process{workers[0], workers[2], audit} {
		p.CloseStdin()
		p.Expect(t, "closed", 20*time.Second)
	}
	for _, p := range []*netns.Process{pub, workers[0], workers[2], audit} {
		if err := p.Wait(); err != nil {
			t.Errorf("helper: %v\n%s", err, p.Stderr())
		}
	}

	var ackedIDs []string
	for _, line := range lines(t, logOf("publisher")) {
		if id, ok := strings.CutPrefix(line, "acked "); ok {
			ackedIDs = append(ackedIDs, id)
		} else {
			t.Errorf("publisher: %s", line)
		}
	}
	if len(result) != 2 || result[0] != strconv.Itoa(n) || result[1] != "0" || len(ackedIDs) != n {
		t.Fatalf("publisher: %v acknowledged and failed, %d acknowledged IDs logged; want all %d acknowledged", result, len(ackedIDs), n)
	}
	audited := counts(lines(t, logOf("audit")))
	w := []map[string]int{counts(lines(t, logOf("w1"))), counts(lines(t, logOf("w2"))), counts(lines(t, logOf("w3")))}
	dupes := 0
	for _, id := range ackedIDs {
		if audited[id] != 1 {
			t.Errorf("auditor handled %s %d times, want once", id, audited[id])
		}
		live, dead := w[0][id]+w[2][id], w[1][id]
		switch {
		case live+dead == 0:
			t.Errorf("acknowledged message %s was handled by no worker", id)
		case live > 1:
			t.Errorf("message %s was handled %d times by workers that stayed up", id, live)
		case live == 1 && dead > 0:
			dupes++ // w2 handled it but died before acknowledging
		}
	}
	t.Logf("workers handled %d, %d (killed) and %d messages; %d handled by the killed worker were redelivered",
		len(w[0]), len(w[1]), len(w[2]), dupes)
	if len(w[1]) == 0 || len(w[0]) == 0 || len(w[2]) == 0 {
		t.Errorf("the group's messages were not shared out: %d, %d, %d", len(w[0]), len(w[1]), len(w[2]))
	}
	if dupes > 64 {
		t.Errorf("%d messages redelivered after the kill; at most what w2 had in flight was expected", dupes)
	}
}

func lines(t *testing.T, path string) []string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if l := sc.Text(); l != "" {
			out = append(out, l)
		}
	}
	return out
}

func counts(ids []string) map[string]int {
	m := map[string]int{}
	for _, id := range ids {
		m[id]++
	}
	return m
}
