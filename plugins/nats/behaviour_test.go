package nats

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	natsgo "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/protoc-gen-micro/micro/internal/brokerplugin"
	"github.com/protoc-gen-micro/micro/internal/leakcheck"
	"github.com/protoc-gen-micro/micro/internal/logtest"
	"github.com/protoc-gen-micro/micro/internal/testcert"
	"github.com/protoc-gen-micro/micro/runtime/broker"
	"github.com/protoc-gen-micro/micro/runtime/metadata"
	"github.com/protoc-gen-micro/micro/runtime/service"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// connect returns a connected broker for url, disconnected when t ends.
func connect(t *testing.T, url string, opts ...Option) broker.Broker {
	t.Helper()
	b := NewBroker(append([]Option{WithURL(url)}, opts...)...)
	if err := b.Connect(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := b.Disconnect(); err != nil {
			t.Error(err)
		}
	})
	return b
}

// delivery is what a handler saw.
type delivery struct {
	msg *broker.Message
	md  metadata.MD
	dl  time.Time
}

// sink subscribes a handler that sends each delivery to the returned
// channel and then returns what fn says (nil when fn is nil).
func sink(t *testing.T, b broker.Broker, topic string, fn func(*broker.Message) error, opts ...broker.SubscribeOption) (chan delivery, broker.Subscriber) {
	t.Helper()
	ch := make(chan delivery, 1024)
	s, err := b.Subscribe(topic, func(ctx context.Context, m *broker.Message) error {
		md, _ := metadata.FromIncomingContext(ctx)
		dl, _ := ctx.Deadline()
		ch <- delivery{msg: m, md: md, dl: dl}
		if fn != nil {
			return fn(m)
		}
		return nil
	}, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Unsubscribe() })
	return ch, s
}

func next(t *testing.T, ch chan delivery) delivery {
	t.Helper()
	select {
	case d := <-ch:
		return d
	case <-time.After(15 * time.Second):
		t.Fatal("no delivery within 15 s")
		return delivery{}
	}
}

func publish(t *testing.T, b broker.Broker, topic, body string, opts ...broker.PublishOption) *broker.Message {
	t.Helper()
	m := &broker.Message{Body: []byte(body)}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := b.Publish(ctx, topic, m, opts...); err != nil {
		t.Fatalf("Publish %q to %q: %v", body, topic, err)
	}
	return m
}

// waitFor yields until cond holds, failing the test if it never does.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(15 * time.Second); !cond(); runtime.Gosched() {
		if time.Now().After(deadline) {
			t.Fatalf("never: %s", what)
		}
	}
}

// TestCoreFanOutAndQueueGroups: every group-less subscription hears every
// message once, and a queue group's members share each message once.
func TestCoreFanOutAndQueueGroups(t *testing.T) {
	leakcheck.Check(t)
	srv := startServer(t)
	bs := []broker.Broker{connect(t, srv.url()), connect(t, srv.url()), connect(t, srv.url())}
	const topic, n = "orders.created", 30
	all1, _ := sink(t, bs[1], topic, nil)
	all2, _ := sink(t, bs[2], topic, nil)
	var members []chan delivery
	for i := range 3 {
		ch, _ := sink(t, bs[i], topic, nil, broker.WithQueue("billing"))
		members = append(members, ch)
	}
	want := map[string]bool{}
	for i := range n {
		want[publish(t, bs[0], topic, fmt.Sprint(i)).ID] = true
	}
	for _, ch := range []chan delivery{all1, all2} {
		got := map[string]bool{}
		for range n {
			got[next(t, ch).msg.ID] = true
		}
		if len(got) != n {
			t.Errorf("a group-less subscription got %d distinct messages of %d", len(got), n)
		}
	}
	got, byMember := map[string]int{}, make([]int, len(members))
	for len(got) < n {
		progress := false
		for i, ch := range members {
			select {
			case d := <-ch:
				got[d.msg.ID]++
				byMember[i]++
				progress = true
			default:
			}
		}
		if !progress {
			runtime.Gosched()
		}
	}
	for id, c := range got {
		if !want[id] || c != 1 {
			t.Errorf("queue group: message %s delivered %d times", id, c)
		}
	}
	for _, ch := range members {
		if len(ch) > 0 {
			t.Errorf("a queue member holds %d more deliveries than published", len(ch))
		}
	}
	busy := 0
	for _, c := range byMember {
		if c > 0 {
			busy++
		}
	}
	if busy < 2 {
		t.Errorf("%d messages went to %d of 3 members: %v", n, busy, byMember)
	}
}

// TestCoreAtMostOnce: a failing handler, or a Nack, is not redelivered;
// the message after it arrives, and the failed one was seen once.
func TestCoreAtMostOnce(t *testing.T) {
	leakcheck.Check(t)
	srv := startServer(t)
	b := connect(t, srv.url())
	ch, _ := sink(t, b, "jobs", func(m *broker.Message) error {
		if string(m.Body) == "fail" {
			return errors.New("boom")
		}
		return nil
	})
	publish(t, b, "jobs", "fail")
	publish(t, b, "jobs", "ok")
	if d := next(t, ch); string(d.msg.Body) != "fail" || d.msg.Attempt != 1 {
		t.Fatalf("first delivery %q attempt %d", d.msg.Body, d.msg.Attempt)
	}
	if d := next(t, ch); string(d.msg.Body) != "ok" {
		t.Fatalf("after a failed handler got %q, want the next message: core NATS must not redeliver", d.msg.Body)
	}

	held := make(chan *broker.Message, 4)
	_, err := b.Subscribe("manual", func(ctx context.Context, m *broker.Message) error { held <- m; return nil }, broker.WithManualAck())
	if err != nil {
		t.Fatal(err)
	}
	publish(t, b, "manual", "a")
	m := <-held
	if err := m.Nack(errors.New("no")); err != nil {
		t.Fatal(err)
	}
	if err := m.Ack(); !errors.Is(err, broker.ErrSettled) {
		t.Errorf("Ack after Nack: %v, want ErrSettled", err)
	}
	publish(t, b, "manual", "b")
	if m := <-held; string(m.Body) != "b" {
		t.Errorf("after a Nack got %q, want the next message", m.Body)
	}
}

// TestMetadataAndDeadline: the publisher's outgoing metadata, headers and
// deadline reach the handler, on both engines.
func TestMetadataAndDeadline(t *testing.T) {
	leakcheck.Check(t)
	srv := startServer(t)
	pub := connect(t, srv.url(), WithJetStream("durable"))
	sub := connect(t, srv.url(), WithJetStream("durable"))
	for _, topic := range []string{"plain.md", "durable.md"} {
		t.Run(topic, func(t *testing.T) {
			ch, _ := sink(t, sub, topic, nil, broker.WithQueue("q"))
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			want, _ := ctx.Deadline()
			ctx = metadata.AppendToOutgoingContext(ctx, "x-trace-id", "abc", "x-trace-id", "def", "x-tenant", "t1")
			m := &broker.Message{Header: map[string]string{"kind": "Test", "content-type": "application/json"}, Body: []byte(`{}`)}
			if err := pub.Publish(ctx, topic, m); err != nil {
				t.Fatal(err)
			}
			d := next(t, ch)
			if got := d.md.Get("x-trace-id"); len(got) != 2 || got[0] != "abc" || got[1] != "def" || d.md.Value("x-tenant") != "t1" {
				t.Errorf("handler metadata %v", d.md)
			}
			if d.msg.Header["kind"] != "Test" || d.msg.Header["content-type"] != "application/json" || len(d.msg.Header) != 2 {
				t.Errorf("handler headers %v", d.msg.Header)
			}
			if d.msg.ID != m.ID || d.msg.Topic != topic || string(d.msg.Body) != "{}" {
				t.Errorf("delivered %+v, want ID %s", d.msg, m.ID)
			}
			if d.dl.IsZero() || d.dl.Sub(want).Abs() > time.Second {
				t.Errorf("handler deadline %v, want about the publisher's %v", d.dl, want)
			}
		})
	}
	if err := pub.Publish(context.Background(), "plain.md", &broker.Message{Header: map[string]string{"Nats-Expected-Stream": "x"}}); err == nil {
		t.Error("a reserved header name was published")
	}
}

// TestCorePublishWaitsForServer is the fault test of core NATS: while the
// server is down Publish waits for it (and fails at its deadline, the
// message held in the reconnect buffer), a publication beyond the buffer
// fails at once, and after the server restarts the broker reconnects,
// resubscribes and sends what it held.
func TestCorePublishWaitsForServer(t *testing.T) {
	leakcheck.Check(t)
	srv := startServer(t)
	down, up := make(chan struct{}, 1), make(chan struct{}, 1)
	hooks := func(o *options) {
		o.nats = append(o.nats,
			natsgo.DisconnectErrHandler(func(*natsgo.Conn, error) { down <- struct{}{} }),
			natsgo.ReconnectHandler(func(*natsgo.Conn) { up <- struct{}{} }))
	}
	b := connect(t, srv.url(), WithReconnectBufSize(4<<10), WithReconnectWait(20*time.Millisecond), hooks)
	ch, _ := sink(t, b, "events", nil)
	publish(t, b, "events", "before")
	if d := next(t, ch); string(d.msg.Body) != "before" {
		t.Fatalf("got %q", d.msg.Body)
	}

	srv.stop()
	<-down
	held := []string{strings.Repeat("h", 1<<10), strings.Repeat("f", 4<<10)}
	for _, body := range held {
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		err := b.Publish(ctx, "events", &broker.Message{Body: []byte(body)})
		cancel()
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Publish while the server is down: %v, want it to wait for the server until its deadline", err)
		}
	}
	// The buffer holds more than its 4 KiB now: the next is refused at once.
	err := b.Publish(context.Background(), "events", &broker.Message{Body: []byte("overflow")})
	if !errors.Is(err, natsgo.ErrReconnectBufExceeded) {
		t.Fatalf("Publish beyond the reconnect buffer: %v, want nats.ErrReconnectBufExceeded", err)
	}

	srv.start()
	<-up
	for _, body := range held {
		if d := next(t, ch); string(d.msg.Body) != body {
			t.Fatalf("after reconnecting got %d bytes, want the %d held in the buffer", len(d.msg.Body), len(body))
		}
	}
	publish(t, b, "events", "after")
	if d := next(t, ch); string(d.msg.Body) != "after" {
		t.Fatalf("got %q, want \"after\" (the message beyond the buffer must not arrive)", d.msg.Body)
	}
}

// TestMaxPayload: a message above the server's max_payload is refused by
// Publish, on both engines.
func TestMaxPayload(t *testing.T) {
	leakcheck.Check(t)
	srv := &testServer{t: t, dir: t.TempDir(), port: -1, max: 64 << 10}
	srv.start()
	t.Cleanup(srv.stop)
	b := connect(t, srv.url(), WithJetStream("durable"))
	for _, topic := range []string{"plain", "durable.big"} {
		err := b.Publish(context.Background(), topic, &broker.Message{Body: make([]byte, 64<<10)})
		if !errors.Is(err, natsgo.ErrMaxPayload) {
			t.Errorf("Publish of 64 KiB and headers to %q: %v, want nats.ErrMaxPayload", topic, err)
		}
		publish(t, b, topic, strings.Repeat("x", 60<<10))
	}
}

// TestCoreMaxInFlight: a subscription holds at most WithMaxInFlight
// messages (one in its handler, the rest pending); NATS drops the rest.
func TestCoreMaxInFlight(t *testing.T) {
	leakcheck.Check(t)
	srv := startServer(t)
	b := connect(t, srv.url())
	gate := make(chan struct{})
	var handled atomic.Int32
	s, err := b.Subscribe("flood", func(ctx context.Context, m *broker.Message) error {
		<-gate
		handled.Add(1)
		return nil
	}, broker.WithMaxInFlight(4))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Unsubscribe()
	defer func() {
		select {
		case <-gate:
		default:
			close(gate)
		}
	}()
	const n = 50
	for i := range n {
		publish(t, b, "flood", fmt.Sprint(i))
	}
	ns := s.(*subscriber).nsub
	var pending, dropped int
	waitFor(t, "every message handled, pending or dropped", func() bool {
		pending, _, _ = ns.Pending()
		dropped, _ = ns.Dropped()
		return pending+dropped == n // the message in the handler is pending until it returns
	})
	t.Logf("pending %d, dropped %d", pending, dropped)
	if pending != 4 {
		t.Errorf("%d messages held, want MaxInFlight(4)", pending)
	}
	close(gate)
	waitFor(t, "the pending messages handled", func() bool { return int(handled.Load()) == n-dropped })
}

// TestJetStreamPublishStored: Publish to a JetStream topic returns once the
// stream stored the message, whether or not anyone subscribes.
func TestJetStreamPublishStored(t *testing.T) {
	leakcheck.Check(t)
	srv := startServer(t)
	b := connect(t, srv.url(), WithJetStream("orders"))
	m := publish(t, b, "orders.created", "x")
	js := jsOf(t, srv)
	st, err := js.Stream(context.Background(), "MICRO_ORDERS")
	if err != nil {
		t.Fatal(err)
	}
	raw, err := st.GetLastMsgForSubject(context.Background(), "orders.created")
	if err != nil {
		t.Fatalf("the stream does not hold the message Publish returned for: %v", err)
	}
	if raw.Header.Get(hdrID) != m.ID || string(raw.Data) != "x" {
		t.Errorf("stored %v %q, want ID %s", raw.Header, raw.Data, m.ID)
	}
	err = b.Publish(context.Background(), "orders.created", &broker.Message{}, broker.WithRequireSubscribers())
	if !errors.Is(err, broker.ErrNoSubscribers) {
		t.Errorf("RequireSubscribers without a consumer: %v", err)
	}
	sink(t, b, "orders.created", nil, broker.WithQueue("billing"))
	publish(t, b, "orders.created", "y", broker.WithRequireSubscribers())
}

// jsOf returns a JetStream client of its own on srv, closed when t ends.
func jsOf(t *testing.T, srv *testServer) jetstream.JetStream {
	t.Helper()
	nc, err := natsgo.Connect(srv.url())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return js
}

// TestJetStreamRedelivery: a handler error is redelivered with the next
// attempt number until the handler succeeds.
func TestJetStreamRedelivery(t *testing.T) {
	leakcheck.Check(t)
	srv := startServer(t)
	b := connect(t, srv.url(), WithJetStream("jobs"), WithBackOff(time.Millisecond), WithMaxDeliver(5))
	ch, _ := sink(t, b, "jobs.run", func(m *broker.Message) error {
		if m.Attempt < 3 {
			return errors.New("boom")
		}
		return nil
	}, broker.WithQueue("workers"))
	m := publish(t, b, "jobs.run", "x")
	for want := 1; want <= 3; want++ {
		d := next(t, ch)
		if d.msg.ID != m.ID || d.msg.Attempt != want {
			t.Fatalf("delivery %d: message %s attempt %d", want, d.msg.ID, d.msg.Attempt)
		}
	}
	m2 := publish(t, b, "jobs.run", "y")
	if d := next(t, ch); d.msg.ID != m2.ID {
		t.Fatalf("after the third attempt succeeded got %s again", d.msg.ID)
	}
}

// TestJetStreamManualAck: Nack redelivers, Ack settles, and settling twice
// is refused.
func TestJetStreamManualAck(t *testing.T) {
	leakcheck.Check(t)
	srv := startServer(t)
	b := connect(t, srv.url(), WithJetStream("jobs"), WithBackOff(time.Millisecond))
	held := make(chan *broker.Message, 4)
	s, err := b.Subscribe("jobs.manual", func(ctx context.Context, m *broker.Message) error { held <- m; return nil },
		broker.WithManualAck(), broker.WithQueue("w"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Unsubscribe()
	m := publish(t, b, "jobs.manual", "x")
	first := <-held
	if err := first.Nack(errors.New("later")); err != nil {
		t.Fatal(err)
	}
	second := <-held
	if second.ID != m.ID || second.Attempt != 2 {
		t.Fatalf("after Nack: %s attempt %d, want %s attempt 2", second.ID, second.Attempt, m.ID)
	}
	if err := second.Ack(); err != nil {
		t.Fatal(err)
	}
	if err := second.Ack(); !errors.Is(err, broker.ErrSettled) {
		t.Errorf("second Ack: %v, want ErrSettled", err)
	}
	m2 := publish(t, b, "jobs.manual", "y")
	if third := <-held; third.ID != m2.ID {
		t.Errorf("after Ack got %s (attempt %d) again", third.ID, third.Attempt)
	}
}

// TestJetStreamDeadLetter: a handler that keeps failing gets MaxDeliver
// deliveries, then the message, with its headers and the last error, is
// stored under dlq.TOPIC.
func TestJetStreamDeadLetter(t *testing.T) {
	leakcheck.Check(t)
	srv := startServer(t)
	b := connect(t, srv.url(), WithJetStream("pay"), WithBackOff(time.Millisecond), WithMaxDeliver(4))
	dead := connect(t, srv.url()) // a core subscription hears the dead letter live
	letters, _ := sink(t, dead, "dlq.pay.charge", nil)
	var calls atomic.Int32
	sink(t, b, "pay.charge", func(m *broker.Message) error {
		calls.Add(1)
		return fmt.Errorf("card declined (attempt %d)", m.Attempt)
	}, broker.WithQueue("charger"))
	ctx := metadata.AppendToOutgoingContext(context.Background(), "x-trace-id", "t9")
	m := &broker.Message{Header: map[string]string{"order": "42"}, Body: []byte("charge")}
	if err := b.Publish(ctx, "pay.charge", m); err != nil {
		t.Fatal(err)
	}
	d := next(t, letters)
	if d.msg.ID != m.ID || d.msg.Header["order"] != "42" || d.md.Value("x-trace-id") != "t9" || string(d.msg.Body) != "charge" {
		t.Errorf("dead letter %+v md %v, want the original message, headers and metadata", d.msg, d.md)
	}
	if n := calls.Load(); n != 4 {
		t.Errorf("handler called %d times, want MaxDeliver(4)", n)
	}
	// The live subscription may hear the dead letter before the stream has
	// stored it; a consumer of the stream sees it only once stored.
	cons, err := jsOf(t, srv).OrderedConsumer(context.Background(), deadLetterStream, jetstream.OrderedConsumerConfig{FilterSubjects: []string{"dlq.pay.charge"}})
	if err != nil {
		t.Fatal(err)
	}
	raw, err := cons.Next(jetstream.FetchMaxWait(10 * time.Second))
	if err != nil {
		t.Fatalf("dead letter not stored: %v", err)
	}
	if r := raw.Headers().Get(hdrReason); r != "card declined (attempt 4)" {
		t.Errorf("%s = %q", hdrReason, r)
	}
}

// TestJetStreamDurableAcrossRestart: what is published while a durable
// subscriber is away, and the server restarts, is delivered when it
// returns; the publisher reconnects by itself.
func TestJetStreamDurableAcrossRestart(t *testing.T) {
	leakcheck.Check(t)
	srv := startServer(t)
	opts := []Option{WithJetStream("orders"), WithReconnectWait(20 * time.Millisecond)}
	pub := connect(t, srv.url(), opts...)
	first := NewBroker(append([]Option{WithURL(srv.url())}, opts...)...)
	if err := first.Connect(); err != nil {
		t.Fatal(err)
	}
	ch, _ := sink(t, first, "orders.paid", nil, broker.WithQueue("shipping"))
	m1 := publish(t, pub, "orders.paid", "1")
	if d := next(t, ch); d.msg.ID != m1.ID {
		t.Fatalf("got %s", d.msg.ID)
	}
	if err := first.Disconnect(); err != nil { // the subscriber goes away
		t.Fatal(err)
	}
	m2 := publish(t, pub, "orders.paid", "2")

	srv.restart()
	var m3 *broker.Message
	waitFor(t, "a publication accepted after the restart", func() bool {
		m := &broker.Message{Body: []byte("3")}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		if pub.Publish(ctx, "orders.paid", m) != nil {
			return false
		}
		m3 = m
		return true
	})

	back := connect(t, srv.url(), opts...)
	ch, _ = sink(t, back, "orders.paid", nil, broker.WithQueue("shipping"))
	if d := next(t, ch); d.msg.ID != m2.ID || d.msg.Attempt != 1 {
		t.Fatalf("the returning subscriber got %s attempt %d, want %s (published while it was away)", d.msg.ID, d.msg.Attempt, m2.ID)
	}
	if d := next(t, ch); d.msg.ID != m3.ID {
		t.Fatalf("then %s, want %s", d.msg.ID, m3.ID)
	}
}

// TestJetStreamMaxInFlight: WithMaxInFlight is the consumer's MaxAckPending:
// the server holds back what is beyond it.
func TestJetStreamMaxInFlight(t *testing.T) {
	leakcheck.Check(t)
	srv := startServer(t)
	b := connect(t, srv.url(), WithJetStream("flood"))
	gate := make(chan struct{})
	s, err := b.Subscribe("flood.in", func(ctx context.Context, m *broker.Message) error {
		<-gate
		return nil
	}, broker.WithMaxInFlight(2), broker.WithConcurrency(2), broker.WithQueue("w"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Unsubscribe()
	defer close(gate)
	for i := range 10 {
		publish(t, b, "flood.in", fmt.Sprint(i))
	}
	cons, err := jsOf(t, srv).Consumer(context.Background(), "MICRO_FLOOD", s.(*subscriber).consumerName())
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "2 deliveries awaiting acks and 8 held back", func() bool {
		ci, err := cons.Info(context.Background())
		return err == nil && ci.NumAckPending == 2 && ci.NumPending == 8
	})
}

// TestPluginFactory: MICRO_BROKER=nats with MICRO_BROKER_ADDRESS picks this
// broker through the service configuration.
func TestPluginFactory(t *testing.T) {
	leakcheck.Check(t)
	srv := startServer(t)
	f, ok := brokerplugin.Lookup("nats")
	if !ok {
		t.Fatal(`brokerplugin.Lookup("nats") found nothing`)
	}
	if b, err := f("", slog.Default()); err != nil || b.(*natsBroker).o.urls[0] != DefaultURL {
		t.Fatalf(`factory(""): %v, %v; want a broker for %s`, b, err, DefaultURL)
	}
	t.Setenv("MICRO_REGISTRY", "memory")
	t.Setenv("MICRO_BROKER", "nats")
	t.Setenv("MICRO_BROKER_ADDRESS", srv.url())
	var logs logtest.Recorder
	svc := service.NewService(service.WithName("natstest"), service.WithAddress("127.0.0.1:0"), service.WithSignal(false),
		service.WithLogger(logs.Logger(slog.LevelInfo)))
	b := svc.Broker()
	if b.String() != "nats" {
		t.Fatalf("MICRO_BROKER=nats gave %q", b.String())
	}
	// The broker logs through the service's logger, naming it and its node.
	b.(*natsBroker).o.logger.Info("broker/nats: probe")
	if recs := logs.Records(t); len(recs) != 1 || recs[0]["service"] != "natstest" || !strings.HasPrefix(recs[0]["node"].(string), "natstest-") {
		t.Fatalf("the broker logged %v; want one line naming service natstest and its node", recs)
	}
	if err := b.Connect(); err != nil {
		t.Fatal(err)
	}
	defer b.Disconnect()
	ch, _ := sink(t, b, "svc.ping", nil)
	publish(t, b, "svc.ping", "pong")
	if d := next(t, ch); string(d.msg.Body) != "pong" {
		t.Fatalf("got %q", d.msg.Body)
	}
}

// TestJetStreamNamedSubscriber: a subscription without a queue group is
// durable when its broker has a name: what is published while the broker
// is away reaches the broker of the same name that comes back.
func TestJetStreamNamedSubscriber(t *testing.T) {
	leakcheck.Check(t)
	srv := startServer(t)
	pub := connect(t, srv.url(), WithJetStream("audit"))
	first := NewBroker(WithURL(srv.url()), WithJetStream("audit"), WithName("auditor"))
	if err := first.Connect(); err != nil {
		t.Fatal(err)
	}
	sink(t, first, "audit.log", nil)
	if _, err := first.Subscribe("audit.log", func(context.Context, *broker.Message) error { return nil }); err == nil {
		t.Error("a second group-less subscription of one named broker to one topic was accepted")
	}
	if err := first.Disconnect(); err != nil {
		t.Fatal(err)
	}
	m := publish(t, pub, "audit.log", "while away")
	back := connect(t, srv.url(), WithJetStream("audit"), WithName("auditor"))
	ch, _ := sink(t, back, "audit.log", nil)
	if d := next(t, ch); d.msg.ID != m.ID {
		t.Fatalf("got %s, want %s", d.msg.ID, m.ID)
	}
}

// TestTyped: the typed helpers over NATS, with the JSON codec named in the
// content-type header.
func TestTyped(t *testing.T) {
	leakcheck.Check(t)
	srv := startServer(t)
	b := connect(t, srv.url())
	got := make(chan string, 1)
	s, err := broker.Subscribe(b, "typed", func(ctx context.Context, m *wrapperspb.StringValue) error {
		msg, _ := broker.MessageFromContext(ctx)
		got <- msg.Header["content-type"] + " " + m.GetValue()
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Unsubscribe()
	if err := broker.NewPublisher[*wrapperspb.StringValue](b, "typed", broker.WithContentType("json")).Publish(context.Background(), wrapperspb.String("42")); err != nil {
		t.Fatal(err)
	}
	if v := <-got; v != "application/json 42" {
		t.Errorf("got %q", v)
	}
}

// TestPublishDoesNotWaitForHandlers is what acknowledgement means on each
// engine: Publish returns while the handler is still running, once the
// server has the message (core) or the stream stored it (JetStream). With
// WithRequireSubscribers a core publication returns once a subscription
// received it.
func TestPublishDoesNotWaitForHandlers(t *testing.T) {
	leakcheck.Check(t)
	srv := startServer(t)
	pub := connect(t, srv.url(), WithJetStream("durable"))
	sub := connect(t, srv.url(), WithJetStream("durable"))
	for _, topic := range []string{"plain", "durable.x"} {
		t.Run(topic, func(t *testing.T) {
			gate, entered := make(chan struct{}), make(chan struct{}, 2)
			s, err := sub.Subscribe(topic, func(ctx context.Context, m *broker.Message) error {
				entered <- struct{}{}
				<-gate
				return nil
			}, broker.WithQueue("q"))
			if err != nil {
				t.Fatal(err)
			}
			defer s.Unsubscribe()
			defer close(gate)
			publish(t, pub, topic, "1", broker.WithRequireSubscribers())
			<-entered // the handler holds the message; a Publish that waited for it would not return
			publish(t, pub, topic, "2")
		})
	}
}

// TestJetStreamAsync: an asynchronous publication returns at once, and a
// PubAck that fails reaches the callback as a *broker.PublishError.
func TestJetStreamAsync(t *testing.T) {
	leakcheck.Check(t)
	srv := startServer(t)
	b := connect(t, srv.url(), WithJetStream("async"))
	ch, _ := sink(t, b, "async.ok", nil, broker.WithQueue("q"))
	failed := make(chan error, 1)
	onError := func(err error) { failed <- err }
	if err := b.Publish(context.Background(), "async.ok", &broker.Message{Body: []byte("x")}, broker.WithAsync(onError)); err != nil {
		t.Fatal(err)
	}
	if d := next(t, ch); string(d.msg.Body) != "x" {
		t.Fatalf("got %q", d.msg.Body)
	}
	// Without its stream the server has nobody to store the message.
	if err := jsOf(t, srv).DeleteStream(context.Background(), "MICRO_ASYNC"); err != nil {
		t.Fatal(err)
	}
	m := &broker.Message{Body: []byte("y")}
	if err := b.Publish(context.Background(), "async.ok", m, broker.WithAsync(onError)); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-failed:
		var pe *broker.PublishError
		if !errors.As(err, &pe) || pe.ID != m.ID || pe.Topic != "async.ok" {
			t.Errorf("async error %v, want a *broker.PublishError for %s", err, m.ID)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("the failed asynchronous publication was never reported")
	}
}

// TestAuth: WithToken and WithUserInfo reach the server, which refuses a
// broker without them.
func TestAuth(t *testing.T) {
	leakcheck.Check(t)
	for _, tc := range []struct {
		name string
		auth func(*server.Options)
		opt  Option
	}{
		{"token", func(o *server.Options) { o.Authorization = "s3cret" }, WithToken("s3cret")},
		{"user", func(o *server.Options) { o.Username, o.Password = "svc", "pw" }, WithUserInfo("svc", "pw")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := &testServer{t: t, dir: t.TempDir(), port: -1, auth: tc.auth}
			srv.start()
			t.Cleanup(srv.stop)
			anon := NewBroker(WithURL(srv.url()), WithConnectTimeout(5*time.Second))
			if err := anon.Connect(); err == nil || !errors.Is(err, natsgo.ErrAuthorization) {
				t.Errorf("Connect without credentials: %v, want nats.ErrAuthorization", err)
			}
			anon.Disconnect()
			b := connect(t, srv.url(), tc.opt)
			ch, _ := sink(t, b, "secure", nil)
			publish(t, b, "secure", "x")
			next(t, ch)
		})
	}
}

// TestCoreSubscriberAnswersOnlyItsPublishers: a core subscription answers
// the reply subject only of a publisher requiring subscribers. Someone
// else's request to the subject, such as a JetStream publish waiting for
// the stream's PubAck (a dead letter heard live, in the test above), gets
// no answer from it: once, an empty answer raced the PubAck and made the
// dead-letter publish fail.
func TestCoreSubscriberAnswersOnlyItsPublishers(t *testing.T) {
	leakcheck.Check(t)
	srv := startServer(t)
	b := connect(t, srv.url())
	got, _ := sink(t, b, "req.x", nil)
	nc, err := natsgo.Connect(srv.url())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	m := natsgo.NewMsg("req.x")
	m.Header.Set(hdrID, "other-request")
	if _, err := nc.RequestMsg(m, 300*time.Millisecond); !errors.Is(err, natsgo.ErrTimeout) {
		t.Fatalf("a request that did not ask for an answer got %v; want no answer (timeout)", err)
	}
	if d := next(t, got); d.msg.ID != "other-request" {
		t.Fatalf("delivered %q", d.msg.ID)
	}
	// A publisher requiring subscribers is answered.
	if err := b.Publish(context.Background(), "req.x", &broker.Message{Body: []byte("x")}, broker.WithRequireSubscribers()); err != nil {
		t.Fatalf("Publish requiring subscribers: %v", err)
	}
}

// TestMutualTLS: WithTLSConfig connects to a server that requires TLS and
// a client certificate; without them the connection is refused.
func TestMutualTLS(t *testing.T) {
	leakcheck.Check(t)
	ca := testcert.NewCA(t)
	serverCfg := ca.MutualConfig(ca.Issue(t, "nats-server"))
	srv := &testServer{t: t, dir: t.TempDir(), port: -1, auth: func(o *server.Options) {
		o.TLSConfig, o.TLS, o.TLSVerify = serverCfg, true, true
	}}
	srv.start()
	t.Cleanup(srv.stop)
	plain := NewBroker(WithURL(srv.url()), WithConnectTimeout(5*time.Second))
	if err := plain.Connect(); err == nil {
		t.Error("Connect without TLS to a server requiring it succeeded")
	}
	plain.Disconnect()
	b := connect(t, srv.url(), WithTLSConfig(ca.MutualConfig(ca.Issue(t, "client"))))
	ch, _ := sink(t, b, "secure", nil)
	publish(t, b, "secure", "x")
	next(t, ch)
}
