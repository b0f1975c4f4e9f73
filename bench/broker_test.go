package bench

import (
	"context"
	"encoding/binary"
	"fmt"
	"math/bits"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/protoc-gen-micro/micro/runtime/broker"
	"github.com/protoc-gen-micro/micro/runtime/broker/direct"
	"github.com/protoc-gen-micro/micro/runtime/registry/memory"
)

// BenchmarkBroker compares the built-in broker (runtime/broker/direct, over
// loopback with an in-memory registry) with an embedded NATS server and the
// nats.go client, in one process and one run. One publisher (one broker or
// one NATS connection) sends to one subscriber (1to1) or to a queue group of
// three, each subscriber its own broker or connection.
//
// Implementations, by what Publish waits for:
//
//   - micro-sync: Publish returns once the subscriber acknowledged (its
//     handler returned). 32 goroutines publish.
//   - nats-request: the same promise made with NATS request/reply, the
//     handler answering each message. 32 goroutines publish.
//   - micro-async: Publish returns once the message is accepted (broker.Async);
//     delivery is still acknowledged, retried and reported. One goroutine.
//   - nats-core: fire-and-forget Publish, at most once. One goroutine, kept
//     within 65536 messages of the subscribers so that none is dropped as a
//     slow consumer.
//   - *-serial: one goroutine publishing synchronously: pure latency.
//
// One op is one message. Besides ns/op (inverse throughput) each row
// reports msgs/s (messages handled by subscribers per second, from the
// first publication to the last delivery), the 50th and 99th percentiles
// of the time a Publish call takes (pub-p50-us, pub-p99-us) and of the time
// from the start of Publish to the subscriber's handler (e2e-p50-us,
// e2e-p99-us), and the CPU time the process (publisher, subscribers and,
// for NATS, the server) spent per message (cpu-ns/msg), which other load on
// the machine disturbs less than rates do. Queueing counts in e2e: a
// publisher that outruns its subscriber shows high e2e latency.
func BenchmarkBroker(b *testing.B) {
	type row struct {
		impl  string
		subs  int
		size  int
		conc  int
		async bool
	}
	var rows []row
	for _, subs := range []int{1, 3} {
		for _, size := range []int{128, 4 << 10} {
			rows = append(rows,
				row{impl: "micro-sync", subs: subs, size: size, conc: 32},
				row{impl: "nats-request", subs: subs, size: size, conc: 32},
				row{impl: "micro-async", subs: subs, size: size, conc: 1, async: true},
				row{impl: "nats-core", subs: subs, size: size, conc: 1, async: true},
			)
		}
	}
	rows = append(rows,
		row{impl: "micro-sync-serial", subs: 1, size: 128, conc: 1},
		row{impl: "nats-request-serial", subs: 1, size: 128, conc: 1},
	)
	for _, r := range rows {
		shape := "1to1"
		if r.subs > 1 {
			shape = fmt.Sprintf("1toQ%d", r.subs)
		}
		size := fmt.Sprintf("%dB", r.size)
		if r.size >= 1<<10 {
			size = fmt.Sprintf("%dKiB", r.size>>10)
		}
		b.Run(fmt.Sprintf("shape=%s/size=%s/impl=%s", shape, size, r.impl), func(b *testing.B) {
			runBroker(b, r.impl, r.subs, r.size, r.conc, r.async)
		})
	}
}

// pubsub is one implementation set up with its subscribers.
type pubsub interface {
	publish(ctx context.Context, body []byte) error
	// flush returns once every message published has left the publisher.
	flush() error
	close()
}

func runBroker(b *testing.B, impl string, subs, size, conc int, async bool) {
	var received atomic.Int64
	var e2e hist
	onMsg := func(body []byte) {
		if len(body) >= 8 {
			e2e.record(time.Now().UnixNano() - int64(binary.LittleEndian.Uint64(body)))
		}
		received.Add(1)
	}
	var ps pubsub
	switch impl {
	case "micro-sync", "micro-sync-serial", "micro-async":
		ps = newMicro(b, subs, onMsg, async)
	default:
		ps = newNATS(b, subs, onMsg, impl == "nats-core")
	}
	defer ps.close()
	// One message first: connections, caches and subscriptions are ready.
	ctx := context.Background()
	if err := ps.publish(ctx, make([]byte, size)); err != nil {
		b.Fatal(err)
	}
	for received.Load() < 1 {
		time.Sleep(time.Millisecond)
	}
	received.Store(0)
	e2e.reset()

	var pub hist
	var next atomic.Int64
	var failed atomic.Int64
	b.SetBytes(int64(size))
	b.ResetTimer()
	cpu0 := cpuTime()
	start := time.Now()
	var wg sync.WaitGroup
	for range conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for next.Add(1) <= int64(b.N) {
				if impl == "nats-core" {
					// Stay within NATS's default pending limit per
					// subscription: beyond it messages are dropped.
					for next.Load()-received.Load() > 65536 {
						time.Sleep(10 * time.Microsecond)
					}
				}
				body := make([]byte, size)
				t0 := time.Now()
				binary.LittleEndian.PutUint64(body, uint64(t0.UnixNano()))
				if err := ps.publish(ctx, body); err != nil {
					failed.Add(1)
				}
				pub.record(int64(time.Since(t0)))
			}
		}()
	}
	wg.Wait()
	if err := ps.flush(); err != nil {
		b.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for received.Load() < int64(b.N) && time.Now().Before(deadline) {
		time.Sleep(50 * time.Microsecond)
	}
	elapsed := time.Since(start)
	cpu := cpuTime() - cpu0
	b.StopTimer()
	if n := failed.Load(); n > 0 {
		b.Fatalf("%d publications failed", n)
	}
	if got := received.Load(); got != int64(b.N) {
		b.Fatalf("%d of %d messages delivered", got, b.N)
	}
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "msgs/s")
	b.ReportMetric(float64(cpu)/float64(b.N), "cpu-ns/msg")
	b.ReportMetric(pub.quantile(0.50)/1e3, "pub-p50-us")
	b.ReportMetric(pub.quantile(0.99)/1e3, "pub-p99-us")
	b.ReportMetric(e2e.quantile(0.50)/1e3, "e2e-p50-us")
	b.ReportMetric(e2e.quantile(0.99)/1e3, "e2e-p99-us")
}

const benchTopic = "bench.events"

type microPubSub struct {
	pub   broker.Broker
	subs  []broker.Broker
	async []broker.PublishOption
	errs  atomic.Int64
}

func newMicro(b *testing.B, subs int, onMsg func([]byte), async bool) *microPubSub {
	reg := memory.NewRegistry()
	newBroker := func() broker.Broker {
		br := direct.NewBroker(direct.WithRegistry(reg), direct.WithAddress("127.0.0.1:0"))
		if err := br.Connect(); err != nil {
			b.Fatal(err)
		}
		return br
	}
	m := &microPubSub{pub: newBroker()}
	for range subs {
		s := newBroker()
		var opts []broker.SubscribeOption
		if subs > 1 {
			opts = append(opts, broker.WithQueue("workers"))
		}
		if _, err := s.Subscribe(benchTopic, func(_ context.Context, msg *broker.Message) error {
			onMsg(msg.Body)
			return nil
		}, opts...); err != nil {
			b.Fatal(err)
		}
		m.subs = append(m.subs, s)
	}
	if async {
		m.async = []broker.PublishOption{broker.WithAsync(func(error) { m.errs.Add(1) })}
	}
	return m
}

func (m *microPubSub) publish(ctx context.Context, body []byte) error {
	return m.pub.Publish(ctx, benchTopic, &broker.Message{Body: body}, m.async...)
}

func (m *microPubSub) flush() error {
	if n := m.errs.Load(); n > 0 {
		return fmt.Errorf("%d asynchronous publications failed", n)
	}
	return nil
}

func (m *microPubSub) close() {
	m.pub.Disconnect()
	for _, s := range m.subs {
		s.Disconnect()
	}
}

type natsPubSub struct {
	srv   *natsserver.Server
	pub   *nats.Conn
	subs  []*nats.Conn
	core  bool
	reply bool
}

func newNATS(b *testing.B, subs int, onMsg func([]byte), core bool) *natsPubSub {
	srv, err := natsserver.NewServer(&natsserver.Options{Host: "127.0.0.1", Port: -1, NoLog: true, NoSigs: true})
	if err != nil {
		b.Fatal(err)
	}
	go srv.Start()
	if !srv.ReadyForConnections(5 * time.Second) {
		b.Fatal("nats-server did not start")
	}
	n := &natsPubSub{srv: srv, core: core}
	connect := func() *nats.Conn {
		nc, err := nats.Connect(srv.ClientURL())
		if err != nil {
			b.Fatal(err)
		}
		return nc
	}
	n.pub = connect()
	for range subs {
		nc := connect()
		handler := func(m *nats.Msg) {
			onMsg(m.Data)
			if !core {
				m.Respond(nil)
			}
		}
		var err error
		if subs > 1 {
			_, err = nc.QueueSubscribe(benchTopic, "workers", handler)
		} else {
			_, err = nc.Subscribe(benchTopic, handler)
		}
		if err != nil {
			b.Fatal(err)
		}
		if err := nc.Flush(); err != nil {
			b.Fatal(err)
		}
		n.subs = append(n.subs, nc)
	}
	return n
}

func (n *natsPubSub) publish(ctx context.Context, body []byte) error {
	if n.core {
		return n.pub.Publish(benchTopic, body)
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	_, err := n.pub.RequestWithContext(ctx, benchTopic, body)
	return err
}

func (n *natsPubSub) flush() error { return n.pub.Flush() }

func (n *natsPubSub) close() {
	n.pub.Close()
	for _, c := range n.subs {
		c.Close()
	}
	n.srv.Shutdown()
	n.srv.WaitForShutdown()
}

// cpuTime returns the user and system CPU time of the process so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// hist is a lock-free latency histogram: 64 linear sub-buckets per power of
// two of nanoseconds, so quantiles are within 1/64 (1.6%).
type hist struct {
	counts [64 * 64]atomic.Uint64
}

func bucket(v int64) int {
	if v < 64 {
		return int(max(v, 0))
	}
	e := bits.Len64(uint64(v)) // v in [2^(e-1), 2^e)
	return (e-6)*64 + int(uint64(v)>>(e-7)&63)
}

func bucketValue(i int) float64 {
	if i < 64 {
		return float64(i)
	}
	e := i/64 + 6
	return float64(uint64(64+i%64) << (e - 7))
}

func (h *hist) record(v int64) { h.counts[bucket(v)].Add(1) }

func (h *hist) reset() {
	for i := range h.counts {
		h.counts[i].Store(0)
	}
}

func (h *hist) quantile(q float64) float64 {
	var total uint64
	for i := range h.counts {
		total += h.counts[i].Load()
	}
	if total == 0 {
		return 0
	}
	want := uint64(q * float64(total))
	var seen uint64
	for i := range h.counts {
		seen += h.counts[i].Load()
		if seen > want {
			return bucketValue(i)
		}
	}
	return bucketValue(len(h.counts) - 1)
}
