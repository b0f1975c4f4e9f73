package nats

import (
	"context"
	"fmt"
	"runtime"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	natsgo "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/protoc-gen-micro/micro/runtime/broker"
	"github.com/protoc-gen-micro/micro/runtime/broker/direct"
	"github.com/protoc-gen-micro/micro/runtime/registry/memory"
)

var benchTopic atomic.Int64

// BenchmarkBrokers publishes synchronously from one goroutine, from one
// broker to one subscription of another ("1to1") or to a queue group of
// three on three brokers ("1toQ3"), over loopback, with the built-in direct
// broker beside core NATS and JetStream. It reports messages/s (until the
// last one was handled, so Publish returning early does not count) and the
// 50th and 99th percentiles of Publish's latency, which is what each
// engine's acknowledgement costs: direct waits for the handler, core NATS
// for a PING round trip, JetStream for the stream's PubAck. The raw rows
// do the same with nats.go alone (Publish and Flush; JetStream Publish and
// a durable consumer that acks), the floor this plug-in adds its cost to.
//
//	go test -run '^$' -bench Brokers -benchtime 2000x ./plugins/nats
func BenchmarkBrokers(b *testing.B) {
	srv := startServer(b)
	engines := []struct {
		name   string
		make   func(b *testing.B) broker.Broker
		prefix string
	}{
		{"direct", nil, "bench"},
		{"core", func(b *testing.B) broker.Broker { return NewBroker(WithURL(srv.url())) }, "bench"},
		{"jetstream", func(b *testing.B) broker.Broker { return NewBroker(WithURL(srv.url()), WithJetStream("js")) }, "js"},
	}
	for _, js := range []bool{false, true} {
		for _, fan := range []string{"1to1", "1toQ3"} {
			for _, size := range []int{128, 4 << 10} {
				name := map[bool]string{false: "raw-core", true: "raw-jetstream"}[js]
				b.Run(fmt.Sprintf("%s/%s/%dB", name, fan, size), func(b *testing.B) {
					benchRaw(b, srv.url(), fmt.Sprintf("raw.t%d", benchTopic.Add(1)), js, fan == "1toQ3", size)
				})
			}
		}
	}
	for _, e := range engines {
		for _, fan := range []string{"1to1", "1toQ3"} {
			for _, size := range []int{128, 4 << 10} {
				b.Run(fmt.Sprintf("%s/%s/%dB", e.name, fan, size), func(b *testing.B) {
					mk := e.make
					if mk == nil {
						reg := memory.NewRegistry()
						mk = func(*testing.B) broker.Broker {
							return direct.NewBroker(direct.WithRegistry(reg), direct.WithAddress("127.0.0.1:0"))
						}
					}
					benchBrokers(b, mk, fmt.Sprintf("%s.t%d", e.prefix, benchTopic.Add(1)), fan == "1toQ3", size)
				})
			}
		}
	}
}

func benchBrokers(b *testing.B, mk func(*testing.B) broker.Broker, topic string, queue bool, size int) {
	var bs []broker.Broker
	for range 4 {
		br := mk(b)
		if err := br.Connect(); err != nil {
			b.Fatal(err)
		}
		defer br.Disconnect()
		bs = append(bs, br)
	}
	var got atomic.Int64
	h := func(context.Context, *broker.Message) error { got.Add(1); return nil }
	subs := 1
	var opts []broker.SubscribeOption
	if queue {
		subs, opts = 3, []broker.SubscribeOption{broker.WithQueue("q")}
	}
	for i := range subs {
		s, err := bs[1+i].Subscribe(topic, h, opts...)
		if err != nil {
			b.Fatal(err)
		}
		defer s.Unsubscribe()
	}
	pub, ctx := bs[0], context.Background()
	body := make([]byte, size)
	// Until one message arrives the subscriptions may not be visible yet
	// (the direct broker learns them through its registry).
	for deadline := time.Now().Add(10 * time.Second); got.Load() == 0; {
		if time.Now().After(deadline) {
			b.Fatal("the subscription never became visible")
		}
		pub.Publish(ctx, topic, &broker.Message{Body: body})
		runtime.Gosched()
	}
	measure(b, &got, size, func() error { return pub.Publish(ctx, topic, &broker.Message{Body: body}) })
}

// measure publishes b.N messages one after the other with publish and
// reports messages/s, counted until got says every one was handled, and
// publish's 50th and 99th percentile latency.
func measure(b *testing.B, got *atomic.Int64, size int, publish func() error) {
	base := got.Load()
	lat := make([]time.Duration, b.N)
	b.SetBytes(int64(size))
	b.ResetTimer()
	start := time.Now()
	for i := range b.N {
		t0 := time.Now()
		if err := publish(); err != nil {
			b.Fatal(err)
		}
		lat[i] = time.Since(t0)
	}
	for deadline := time.Now().Add(30 * time.Second); got.Load()-base < int64(b.N); runtime.Gosched() {
		if time.Now().After(deadline) {
			b.Fatalf("%d of %d messages handled", got.Load()-base, b.N)
		}
	}
	elapsed := time.Since(start)
	b.StopTimer()
	slices.Sort(lat)
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "msgs/s")
	b.ReportMetric(float64(lat[b.N/2].Microseconds()), "p50-µs")
	b.ReportMetric(float64(lat[b.N*99/100].Microseconds()), "p99-µs")
}

// benchRaw measures what benchBrokers does with nats.go alone: one
// connection publishes, one or three others receive (a queue group, or
// three pull subscriptions of one durable JetStream consumer).
func benchRaw(b *testing.B, url, topic string, js, queue bool, size int) {
	ctx := context.Background()
	conns := make([]*natsgo.Conn, 4)
	for i := range conns {
		nc, err := natsgo.Connect(url)
		if err != nil {
			b.Fatal(err)
		}
		defer nc.Close()
		conns[i] = nc
	}
	subs := 1
	if queue {
		subs = 3
	}
	var got atomic.Int64
	var publish func(body []byte) error // set below, per engine
	if js {
		pubJS, err := jetstream.New(conns[0])
		if err != nil {
			b.Fatal(err)
		}
		stream := fmt.Sprintf("RAW%d", benchTopic.Add(1))
		if _, err := pubJS.CreateOrUpdateStream(ctx, jetstream.StreamConfig{Name: stream, Subjects: []string{topic}}); err != nil {
			b.Fatal(err)
		}
		for i := range subs {
			sj, err := jetstream.New(conns[1+i])
			if err != nil {
				b.Fatal(err)
			}
			cons, err := sj.CreateOrUpdateConsumer(ctx, stream, jetstream.ConsumerConfig{Durable: "q", AckPolicy: jetstream.AckExplicitPolicy})
			if err != nil {
				b.Fatal(err)
			}
			cc, err := cons.Consume(func(m jetstream.Msg) { m.Ack(); got.Add(1) })
			if err != nil {
				b.Fatal(err)
			}
			defer cc.Stop()
		}
		publish = func(body []byte) error { _, err := pubJS.Publish(ctx, topic, body); return err }
	} else {
		for i := range subs {
			var err error
			h := func(*natsgo.Msg) { got.Add(1) }
			if queue {
				_, err = conns[1+i].QueueSubscribe(topic, "q", h)
			} else {
				_, err = conns[1+i].Subscribe(topic, h)
			}
			if err == nil {
				err = conns[1+i].Flush()
			}
			if err != nil {
				b.Fatal(err)
			}
		}
		publish = func(body []byte) error {
			if err := conns[0].Publish(topic, body); err != nil {
				return err
			}
			return conns[0].Flush()
		}
	}
	body := make([]byte, size)
	measure(b, &got, size, func() error { return publish(body) })
}
