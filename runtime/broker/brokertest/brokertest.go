// Package brokertest is the behaviour every broker.Broker must show, as a
// suite of tests that any implementation runs with Run.
//
// It checks what package broker documents: fan-out, queue-group
// exclusivity, redelivery after handler errors (on another member for a
// queue group), ordering, unsubscribing, deadlines and metadata, large
// messages, concurrent publishers, publications without subscribers,
// backpressure, manual acknowledgement, asynchronous publishing, the
// typed helpers, and Publish returning once the handlers have.
//
// Apart from the tests of what Publish waits for, the suite checks what
// was delivered by waiting for it (at most 10 s, woken by each delivery),
// not when Publish returns, so that a broker whose Publish returns once a
// server has the message runs them too; that nothing extra arrived it
// checks with a probe published after the messages under test (see
// await).
//
// brokertest is test support: it is imported only by tests.
package brokertest

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/protoc-gen-micro/micro/internal/brokerkit"
	"github.com/protoc-gen-micro/micro/runtime/broker"
	"github.com/protoc-gen-micro/micro/runtime/metadata"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// NewBrokers returns at least three connected brokers that see each other's
// subscriptions, as brokers of separate processes would. It arranges for
// them to be disconnected when t ends.
type NewBrokers func(t *testing.T) []broker.Broker

// Run runs the suite against the brokers newBrokers makes, one set per
// test. The tests run one after the other.
func Run(t *testing.T, newBrokers NewBrokers) { RunSkipping(t, newBrokers, nil) }

// RunSkipping is Run for a broker that does not promise everything package
// broker documents: each test named in skip (its name under Run, such as
// "Redelivery") is reported as skipped with the reason given, so that what
// a broker leaves out is written down rather than silent. A name the suite
// does not have fails the test.
func RunSkipping(t *testing.T, newBrokers NewBrokers, skip map[string]string) {
	tests := []struct {
		name string
		fn   func(t *testing.T, bs []broker.Broker)
	}{
		{"FanOut", testFanOut},
		{"QueueGroup", testQueueGroup},
		{"Redelivery", testRedelivery},
		{"RedeliveryExhausted", testRedeliveryExhausted},
		{"QueueGroupFailover", testQueueGroupFailover},
		{"Ordering", testOrdering},
		{"Unsubscribe", testUnsubscribe},
		{"Deadline", testDeadline},
		{"Metadata", testMetadata},
		{"LargeMessage", testLargeMessage},
		{"ConcurrentPublishers", testConcurrentPublishers},
		{"NoSubscribers", testNoSubscribers},
		{"Backpressure", testBackpressure},
		{"BackpressureAcrossPublishers", testBackpressureAcrossPublishers},
		{"ManualAck", testManualAck},
		{"Async", testAsync},
		{"Key", testKey},
		{"Typed", testTyped},
		{"PublishWaitsForHandlers", testPublishWaitsForHandlers},
	}
	known := map[string]bool{}
	for _, tc := range tests {
		known[tc.name] = true
	}
	for name := range skip {
		if !known[name] {
			t.Errorf("brokertest: cannot skip %q: the suite has no such test", name)
		}
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if reason, ok := skip[tc.name]; ok {
				t.Skip(reason)
			}
			bs := newBrokers(t)
			if len(bs) < 3 {
				t.Fatalf("newBrokers returned %d brokers; the suite needs at least 3", len(bs))
			}
			tc.fn(t, bs)
		})
	}
}

var topicSeq atomic.Int64

// newTopic returns a topic no other test uses.
func newTopic(t *testing.T) string {
	name := strings.NewReplacer("/", ".", "_", "-").Replace(strings.ToLower(t.Name()))
	return fmt.Sprintf("brokertest.%s.%d", name, topicSeq.Add(1))
}

// probeHeader marks the messages await publishes; its value is the token
// of one await call. Recorders count probes apart from the messages under
// test.
const probeHeader = "brokertest-probe"

// waitLimit bounds every wait for a delivery. Deliveries are waited for
// on channels, so a broker that delivers at once ends the wait at once.
const waitLimit = 10 * time.Second

// changes is closed and replaced each time a recorder records something:
// eventually waits on it rather than polling.
var changes = struct {
	sync.Mutex
	ch chan struct{}
}{ch: make(chan struct{})}

func changed() {
	changes.Lock()
	close(changes.ch)
	changes.ch = make(chan struct{})
	changes.Unlock()
}

// eventually waits until missing reports nothing missing (""), waking at
// each delivery, and fails the test with what is missing after waitLimit.
func eventually(t *testing.T, missing func() string) {
	t.Helper()
	timeout := time.NewTimer(waitLimit)
	defer timeout.Stop()
	for {
		changes.Lock()
		ch := changes.ch
		changes.Unlock()
		what := missing()
		if what == "" {
			return
		}
		select {
		case <-ch:
		case <-timeout.C:
			t.Fatalf("not within %v: %s", waitLimit, what)
		}
	}
}

// received is what a handler saw of one message.
type received struct {
	id      string
	body    []byte
	header  map[string]string
	attempt int
}

// recorder records what one subscription receives.
type recorder struct {
	name string

	mu     sync.Mutex
	msgs   []received
	probes map[string]bool // tokens of the probes received
}

func newRecorder(name string) *recorder {
	return &recorder{name: name, probes: map[string]bool{}}
}

// handler records every message, then runs next (nil: acknowledge).
func (r *recorder) handler(next broker.Handler) broker.Handler {
	return func(ctx context.Context, m *broker.Message) error {
		if token := m.Header[probeHeader]; token != "" {
			r.mu.Lock()
			r.probes[token] = true
			r.mu.Unlock()
			changed()
			return m.Ack() // for ManualAck subscriptions; nothing otherwise
		}
		r.mu.Lock()
		r.msgs = append(r.msgs, received{id: m.ID, body: bytes.Clone(m.Body), header: m.Header, attempt: m.Attempt})
		r.mu.Unlock()
		changed()
		if next != nil {
			return next(ctx, m)
		}
		return nil
	}
}

func (r *recorder) all() []received {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]received(nil), r.msgs...)
}

func (r *recorder) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.msgs)
}

func (r *recorder) sawProbe(token string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.probes[token]
}

// waitCount waits until r has received at least n messages.
func (r *recorder) waitCount(t *testing.T, n int) {
	t.Helper()
	eventually(t, func() string {
		if got := r.count(); got < n {
			return fmt.Sprintf("%s received %d messages, want %d", r.name, got, n)
		}
		return ""
	})
}

// ids returns how many times r received each message ID.
func (r *recorder) ids() map[string]int {
	out := map[string]int{}
	for _, m := range r.all() {
		out[m.id]++
	}
	return out
}

// waitIDs waits until every ID of want has been received at least once
// across rs: by one subscription, or by the members of one queue group.
func waitIDs(t *testing.T, want []string, rs ...*recorder) {
	t.Helper()
	eventually(t, func() string {
		got := map[string]bool{}
		for _, r := range rs {
			for id := range r.ids() {
				got[id] = true
			}
		}
		missing := 0
		for _, id := range want {
			if !got[id] {
				missing++
			}
		}
		if missing > 0 {
			return fmt.Sprintf("%d of %d messages not received by %s", missing, len(want), names(rs))
		}
		return ""
	})
}

func names(rs []*recorder) string {
	var s []string
	for _, r := range rs {
		s = append(s, r.name)
	}
	return strings.Join(s, ", ")
}

// subscribe subscribes r on b, failing the test on error.
func subscribe(t *testing.T, b broker.Broker, topic string, r *recorder, next broker.Handler, opts ...broker.SubscribeOption) broker.Subscriber {
	t.Helper()
	s, err := b.Subscribe(topic, r.handler(next), opts...)
	if err != nil {
		t.Fatalf("Subscribe(%q) on %s: %v", topic, b, err)
	}
	t.Cleanup(func() { s.Unsubscribe() })
	return s
}

var probeSeq atomic.Int64

// await publishes probes of a fresh token from pub until each recorder has
// received one (a probe for a queue group reaches one member, so it takes
// as many as the members need).
//
// Before a test publishes, it tells that pub knows every subscription:
// brokers whose subscriptions become visible asynchronously (through a
// registry watch, a server round trip) need it.
//
// After a test published, it is how the suite sees that nothing extra
// arrives without waiting for a time. The test first waits for the
// messages it expects; then a probe published after them by the same
// publisher reaches each subscription after anything else of theirs that
// will reach it, in brokers whose Publish waits for the handlers (direct,
// memory) and in brokers that keep one publisher's order per subscription
// (NATS does, per connection, and JetStream delivers in stream order), so
// a duplicate would already be recorded. That takes handler calls
// recorded in the order of delivery, that is a concurrency of 1; tests
// with more also Unsubscribe first (see testConcurrentPublishers). A
// broker that does neither only makes this check weaker, never wrong. It
// says nothing of redeliveries, which come when the broker decides.
func await(t *testing.T, pub broker.Broker, topic string, rs ...*recorder) {
	t.Helper()
	token := strconv.FormatInt(probeSeq.Add(1), 10)
	deadline := time.Now().Add(waitLimit)
	for ; ; runtime.Gosched() {
		missing := ""
		for _, r := range rs {
			if !r.sawProbe(token) {
				missing = r.name
			}
		}
		if missing == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("subscription %s received no probe from %s within %v", missing, pub, waitLimit)
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		pub.Publish(ctx, topic, &broker.Message{Header: map[string]string{probeHeader: token}}, broker.WithAttempts(1))
		cancel()
	}
}

// meanwhile makes 20 synchronous round trips from pub to a subscription on
// sub of a topic of their own, failing the test with what if happened
// reports true at any point. A test that shows something does not happen
// (a Publish that must wait, an Unsubscribe that must wait) gives it the
// time of these round trips, through the same brokers and connections, to
// happen wrongly: a measure of progress rather than of the clock.
func meanwhile(t *testing.T, pub, sub broker.Broker, what string, happened func() bool) {
	t.Helper()
	topic := newTopic(t)
	tick := newRecorder("tick")
	subscribe(t, sub, topic, tick, nil)
	await(t, pub, topic, tick)
	for i := range 20 {
		if happened() {
			t.Fatalf("%s (after %d round trips)", what, i)
		}
		if err := pub.Publish(context.Background(), topic, &broker.Message{Body: []byte("tick")}); err != nil {
			t.Fatalf("a publication beside the test's: %v", err)
		}
	}
	if happened() {
		t.Fatal(what)
	}
}

// waitFor yields until cond holds, failing the test if it never does.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(waitLimit); !cond(); runtime.Gosched() {
		if time.Now().After(deadline) {
			t.Fatalf("never: %s", what)
		}
	}
}

// publish publishes n messages whose bodies are their sequence numbers and
// returns their IDs in order.
func publish(t *testing.T, b broker.Broker, topic string, n int, opts ...broker.PublishOption) []string {
	t.Helper()
	ids := make([]string, n)
	for i := range n {
		m := &broker.Message{Body: []byte(strconv.Itoa(i))}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		err := b.Publish(ctx, topic, m, opts...)
		cancel()
		if err != nil {
			t.Fatalf("Publish %d to %q: %v", i, topic, err)
		}
		if m.ID == "" {
			t.Fatalf("Publish did not set the message ID")
		}
		ids[i] = m.ID
	}
	return ids
}

// exactlyOnce fails unless every ID of want was received exactly once
// across rs, and nothing else was.
func exactlyOnce(t *testing.T, want []string, rs ...*recorder) {
	t.Helper()
	got := map[string]int{}
	for _, r := range rs {
		for id, n := range r.ids() {
			got[id] += n
		}
	}
	for _, id := range want {
		if got[id] != 1 {
			t.Errorf("message %s received %d times across %d subscriptions, want once", id, got[id], len(rs))
		}
		delete(got, id)
	}
	for id, n := range got {
		t.Errorf("unexpected message %s received %d times", id, n)
	}
}

func testFanOut(t *testing.T, bs []broker.Broker) {
	topic := newTopic(t)
	rs := []*recorder{newRecorder("s1@b1"), newRecorder("s2@b2"), newRecorder("s3@b2"), newRecorder("s4@b0")}
	subscribe(t, bs[1], topic, rs[0], nil)
	subscribe(t, bs[2], topic, rs[1], nil)
	subscribe(t, bs[2], topic, rs[2], nil)
	subscribe(t, bs[0], topic, rs[3], nil)
	await(t, bs[0], topic, rs...)
	ids := publish(t, bs[0], topic, 20)
	for _, r := range rs {
		waitIDs(t, ids, r)
	}
	await(t, bs[0], topic, rs...)
	for _, r := range rs {
		exactlyOnce(t, ids, r)
		for _, m := range r.all() {
			if m.attempt != 1 {
				t.Errorf("%s: message %s attempt %d, want 1", r.name, m.id, m.attempt)
			}
		}
	}
}

func testQueueGroup(t *testing.T, bs []broker.Broker) {
	topic := newTopic(t)
	workers := []*recorder{newRecorder("w1@b1"), newRecorder("w2@b2"), newRecorder("w3@b0"), newRecorder("w4@b1")}
	audit := []*recorder{newRecorder("a1@b1"), newRecorder("a2@b2")}
	all := newRecorder("all@b2")
	for i, r := range workers {
		subscribe(t, bs[[]int{1, 2, 0, 1}[i]], topic, r, nil, broker.WithQueue("workers"))
	}
	subscribe(t, bs[1], topic, audit[0], nil, broker.WithQueue("audit"))
	subscribe(t, bs[2], topic, audit[1], nil, broker.WithQueue("audit"))
	subscribe(t, bs[2], topic, all, nil)
	everyone := append(append([]*recorder{all}, workers...), audit...)
	await(t, bs[0], topic, everyone...)
	ids := publish(t, bs[0], topic, 60)
	waitIDs(t, ids, workers...)
	waitIDs(t, ids, audit...)
	waitIDs(t, ids, all)
	// Every member has then received a probe sent after the 60 messages:
	// a second delivery of one of them to any member would be recorded.
	await(t, bs[0], topic, everyone...)
	exactlyOnce(t, ids, workers...)
	exactlyOnce(t, ids, audit...)
	exactlyOnce(t, ids, all)
	busy := 0
	for _, r := range workers {
		if r.count() > 0 {
			busy++
		}
	}
	if busy < 2 {
		t.Errorf("60 messages went to %d of 4 workers; want them spread", busy)
	}
}

var errBoom = errors.New("boom")

func testRedelivery(t *testing.T, bs []broker.Broker) {
	topic := newTopic(t)
	r := newRecorder("flaky@b1")
	subscribe(t, bs[1], topic, r, func(ctx context.Context, m *broker.Message) error {
		if m.Attempt < 3 {
			return errBoom
		}
		return nil
	})
	await(t, bs[0], topic, r)
	ids := publish(t, bs[0], topic, 5, broker.WithBackoff(5*time.Millisecond, 20*time.Millisecond))
	r.waitCount(t, 15)
	// Each message's third attempt succeeded: the probe only shows that
	// no first delivery is outstanding.
	await(t, bs[0], topic, r)
	calls := map[string][]int{}
	for _, m := range r.all() {
		calls[m.id] = append(calls[m.id], m.attempt)
	}
	for _, id := range ids {
		if got := fmt.Sprint(calls[id]); got != "[1 2 3]" {
			t.Errorf("message %s delivered as attempts %s, want [1 2 3]", id, got)
		}
	}
	if len(calls) != len(ids) {
		t.Errorf("handler received %d distinct messages, want %d", len(calls), len(ids))
	}
}

func testRedeliveryExhausted(t *testing.T, bs []broker.Broker) {
	topic := newTopic(t)
	r := newRecorder("broken@b1")
	subscribe(t, bs[1], topic, r, func(ctx context.Context, m *broker.Message) error { return errBoom })
	ok := newRecorder("fine@b2")
	subscribe(t, bs[2], topic, ok, nil)
	await(t, bs[0], topic, r, ok)
	m := &broker.Message{Body: []byte("x")}
	err := bs[0].Publish(context.Background(), topic, m, broker.WithAttempts(2), broker.WithBackoff(5*time.Millisecond, 5*time.Millisecond))
	var pe *broker.PublishError
	if !errors.As(err, &pe) {
		t.Fatalf("Publish: %v, want a *broker.PublishError", err)
	}
	if pe.Topic != topic || pe.ID != m.ID || len(pe.Failed) != 1 {
		t.Fatalf("PublishError %+v, want topic %q, ID %s, 1 failed", pe, topic, m.ID)
	}
	for _, want := range []string{topic, "boom", "subscriber", "1 of 2 targets"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
	if n := r.count(); n != 2 {
		t.Errorf("failing handler called %d times, want 2 (Attempts(2))", n)
	}
	if n := ok.count(); n != 1 {
		t.Errorf("healthy subscriber received %d messages, want 1", n)
	}
}

func testQueueGroupFailover(t *testing.T, bs []broker.Broker) {
	topic := newTopic(t)
	bad := newRecorder("bad@b1")
	good := newRecorder("good@b2")
	subscribe(t, bs[1], topic, bad, func(ctx context.Context, m *broker.Message) error { return errBoom }, broker.WithQueue("q"))
	subscribe(t, bs[2], topic, good, nil, broker.WithQueue("q"))
	await(t, bs[0], topic, bad, good)
	ids := publish(t, bs[0], topic, 20, broker.WithAttempts(2), broker.WithBackoff(time.Millisecond, time.Millisecond))
	waitIDs(t, ids, good)
	exactlyOnce(t, ids, good)
	for _, m := range bad.all() {
		if m.attempt != 1 {
			t.Errorf("the failing member got message %s at attempt %d: a redelivery should prefer the other member", m.id, m.attempt)
		}
	}
}

func testOrdering(t *testing.T, bs []broker.Broker) {
	topic := newTopic(t)
	r := newRecorder("ordered@b1")
	subscribe(t, bs[1], topic, r, nil, broker.WithConcurrency(1))
	await(t, bs[0], topic, r)
	const n = 200
	publish(t, bs[0], topic, n)
	r.waitCount(t, n)
	await(t, bs[0], topic, r)
	got := r.all()
	if len(got) != n {
		t.Fatalf("received %d messages, want %d", len(got), n)
	}
	for i, m := range got {
		if string(m.body) != strconv.Itoa(i) {
			t.Fatalf("message %d has body %q: out of order", i, m.body)
		}
	}
}

func testUnsubscribe(t *testing.T, bs []broker.Broker) {
	topic := newTopic(t)
	gone := newRecorder("gone@b1")
	stays := newRecorder("stays@b2")
	gate := make(chan struct{})
	open := sync.OnceFunc(func() { close(gate) })
	entered := make(chan struct{}, 1)
	var handlerDone atomic.Bool
	s := subscribe(t, bs[1], topic, gone, func(ctx context.Context, m *broker.Message) error {
		if string(m.Body) == "block" {
			entered <- struct{}{}
			<-gate
			handlerDone.Store(true)
		}
		return nil
	})
	t.Cleanup(open) // before the subscription's cleanup, should the test fail
	subscribe(t, bs[2], topic, stays, nil)
	await(t, bs[0], topic, gone, stays)
	publish(t, bs[0], topic, 5)

	// Unsubscribe waits for the handler call in progress.
	done := make(chan error, 1)
	go func() {
		done <- bs[0].Publish(context.Background(), topic, &broker.Message{Body: []byte("block")})
	}()
	recv(t, entered, "the handler call of the blocking message")
	unsubscribed := make(chan struct{}, 1)
	var returned, early atomic.Bool
	go func() {
		s.Unsubscribe()
		early.Store(!handlerDone.Load())
		returned.Store(true)
		unsubscribed <- struct{}{}
	}()
	meanwhile(t, bs[0], bs[2], "Unsubscribe returned while a handler call was running", returned.Load)
	open()
	recv(t, unsubscribed, "Unsubscribe, once the handler call returned")
	if early.Load() {
		t.Fatal("Unsubscribe returned while a handler call was running")
	}
	if err := recv(t, done, "Publish during Unsubscribe"); err != nil {
		t.Fatalf("Publish during Unsubscribe: %v", err)
	}

	// The handler is not called again. A new subscription on the same
	// broker witnesses that what is published next has reached that broker.
	before := gone.count()
	witness := newRecorder("witness@b1")
	subscribe(t, bs[1], topic, witness, nil)
	await(t, bs[0], topic, stays, witness)
	ids := publish(t, bs[0], topic, 20)
	waitIDs(t, ids, stays)
	waitIDs(t, ids, witness)
	await(t, bs[0], topic, stays, witness)
	if n := gone.count(); n != before {
		t.Errorf("unsubscribed handler called %d more times", n-before)
	}
	for _, id := range ids {
		if stays.ids()[id] != 1 {
			t.Errorf("the remaining subscriber missed %s", id)
		}
	}
	if s.Topic() != topic {
		t.Errorf("Topic() = %q, want %q", s.Topic(), topic)
	}
}

// recv receives from c, failing the test if nothing comes within
// waitLimit.
func recv[T any](t *testing.T, c <-chan T, what string) T {
	t.Helper()
	timeout := time.NewTimer(waitLimit)
	defer timeout.Stop()
	select {
	case v := <-c:
		return v
	case <-timeout.C:
		t.Fatalf("not within %v: %s", waitLimit, what)
		panic("unreachable")
	}
}

// The handler runs with the publisher's deadline, and its context ends
// there. Whether Publish also ends there is testPublishWaitsForHandlers'.
func testDeadline(t *testing.T, bs []broker.Broker) {
	topic := newTopic(t)
	r := newRecorder("slow@b1")
	type seen struct {
		deadline time.Time
		err      error
	}
	ended := make(chan seen, 1)
	subscribe(t, bs[1], topic, r, func(ctx context.Context, m *broker.Message) error {
		d, _ := ctx.Deadline()
		<-ctx.Done()
		select {
		case ended <- seen{d, ctx.Err()}:
		default: // a redelivery
		}
		return nil
	})
	await(t, bs[0], topic, r)
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	want, _ := ctx.Deadline()
	published := make(chan error, 1)
	go func() { published <- bs[0].Publish(ctx, topic, &broker.Message{Body: []byte("x")}) }()
	got := recv(t, ended, "the handler's context ending")
	if got.deadline.IsZero() || got.deadline.Sub(want).Abs() > 100*time.Millisecond {
		t.Errorf("handler deadline %v, want the publisher's %v", got.deadline, want)
	}
	if !errors.Is(got.err, context.DeadlineExceeded) {
		t.Errorf("handler context ended with %v, want context.DeadlineExceeded", got.err)
	}
	recv(t, published, "Publish returning") // with an error, or not: the broker's choice
}

func testMetadata(t *testing.T, bs []broker.Broker) {
	topic := newTopic(t)
	r := newRecorder("md@b1")
	got := make(chan metadata.MD, 2)
	subscribe(t, bs[1], topic, r, func(ctx context.Context, m *broker.Message) error {
		md, _ := metadata.FromIncomingContext(ctx)
		got <- md
		return nil
	})
	await(t, bs[0], topic, r)
	ctx := metadata.AppendToOutgoingContext(context.Background(), "x-trace-id", "abc123", "x-tenant", "t1")
	m := &broker.Message{Header: map[string]string{"kind": "test"}, Body: []byte("x")}
	if err := bs[0].Publish(ctx, topic, m); err != nil {
		t.Fatal(err)
	}
	md := recv(t, got, "the message with metadata")
	if md.Value("x-trace-id") != "abc123" || md.Value("x-tenant") != "t1" {
		t.Errorf("handler metadata %v, want the publisher's x-trace-id and x-tenant", md)
	}
	if h := r.all()[0].header["kind"]; h != "test" {
		t.Errorf("header kind = %q, want test", h)
	}
	if err := bs[0].Publish(context.Background(), topic, &broker.Message{}); err != nil {
		t.Fatal(err)
	}
	if md := recv(t, got, "the message without metadata"); md.Value("x-trace-id") != "" {
		t.Errorf("a publication without metadata delivered %v", md)
	}
}

func testLargeMessage(t *testing.T, bs []broker.Broker) {
	topic := newTopic(t)
	r := newRecorder("large@b1")
	subscribe(t, bs[1], topic, r, nil)
	await(t, bs[0], topic, r)
	body := make([]byte, 1<<20)
	rand.Read(body)
	if err := bs[0].Publish(context.Background(), topic, &broker.Message{Body: body}); err != nil {
		t.Fatal(err)
	}
	r.waitCount(t, 1)
	await(t, bs[0], topic, r)
	if got := r.all(); len(got) != 1 || !bytes.Equal(got[0].body, body) {
		t.Fatalf("the 1 MiB message did not arrive intact, once")
	}
}

func testConcurrentPublishers(t *testing.T, bs []broker.Broker) {
	topic := newTopic(t)
	all := newRecorder("all@b2")
	q1, q2 := newRecorder("q1@b1"), newRecorder("q2@b2")
	subs := []broker.Subscriber{
		subscribe(t, bs[2], topic, all, nil, broker.WithConcurrency(4)),
		subscribe(t, bs[1], topic, q1, nil, broker.WithQueue("q"), broker.WithConcurrency(2)),
		subscribe(t, bs[2], topic, q2, nil, broker.WithQueue("q")),
	}
	await(t, bs[0], topic, all, q1, q2)
	await(t, bs[1], topic, all, q1, q2)
	const publishers, each = 8, 40
	var mu sync.Mutex
	var ids []string
	var wg sync.WaitGroup
	for p := range publishers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				m := &broker.Message{Body: []byte(fmt.Sprintf("%d-%d", p, i))}
				if err := bs[p%2].Publish(context.Background(), topic, m); err != nil {
					t.Errorf("publisher %d: %v", p, err)
					return
				}
				mu.Lock()
				ids = append(ids, m.ID)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if len(ids) != publishers*each {
		t.Fatalf("%d publications succeeded, want %d", len(ids), publishers*each)
	}
	waitIDs(t, ids, all)
	waitIDs(t, ids, q1, q2)
	// With a concurrency above 1, handler calls may be recorded out of the
	// order of delivery, so a probe's arrival does not show that the calls
	// of what came before it ran. Unsubscribe does: it waits for the
	// handler calls of every delivery accepted before it.
	await(t, bs[0], topic, all, q1, q2)
	await(t, bs[1], topic, all, q1, q2)
	for _, s := range subs {
		if err := s.Unsubscribe(); err != nil {
			t.Errorf("Unsubscribe: %v", err)
		}
	}
	exactlyOnce(t, ids, all)
	exactlyOnce(t, ids, q1, q2)
}

func statsOf(b broker.Broker) (brokerkit.Stats, bool) {
	s, ok := b.(interface{ Stats() brokerkit.Stats })
	if !ok {
		return brokerkit.Stats{}, false
	}
	return s.Stats(), true
}

func testNoSubscribers(t *testing.T, bs []broker.Broker) {
	topic := newTopic(t)
	before, hasStats := statsOf(bs[0])
	if err := bs[0].Publish(context.Background(), topic, &broker.Message{Body: []byte("x")}); err != nil {
		t.Errorf("Publish without subscribers: %v, want nil", err)
	}
	err := bs[0].Publish(context.Background(), topic, &broker.Message{Body: []byte("x")}, broker.WithRequireSubscribers())
	if !errors.Is(err, broker.ErrNoSubscribers) || !strings.Contains(err.Error(), topic) {
		t.Errorf("Publish with RequireSubscribers: %v, want ErrNoSubscribers naming the topic", err)
	}
	if hasStats {
		after, _ := statsOf(bs[0])
		if n := after.NoSubscribers - before.NoSubscribers; n != 2 {
			t.Errorf("Stats.NoSubscribers grew by %d, want 2", n)
		}
	}
	if err := bs[0].Publish(context.Background(), "bad topic", &broker.Message{}); err == nil {
		t.Error("Publish to an invalid topic succeeded")
	}
}

func testBackpressure(t *testing.T, bs []broker.Broker) {
	topic := newTopic(t)
	r := newRecorder("slow@b1")
	gate := make(chan struct{})
	var running, peak atomic.Int32
	subscribe(t, bs[1], topic, r, func(ctx context.Context, m *broker.Message) error {
		n := running.Add(1)
		for {
			p := peak.Load()
			if n <= p || peak.CompareAndSwap(p, n) {
				break
			}
		}
		defer running.Add(-1)
		select {
		case <-gate:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}, broker.WithConcurrency(1), broker.WithMaxInFlight(1))
	await(t, bs[0], topic, r)
	before, hasStats := statsOf(bs[0])

	// One delivery fills the subscription. A publication that returns
	// before the gate opens counts as early.
	var opened atomic.Bool
	var early atomic.Int32
	errs := make(chan error, 8)
	var wg sync.WaitGroup
	publishAsync := func(ctx context.Context, body string) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := bs[0].Publish(ctx, topic, &broker.Message{Body: []byte(body)})
			if !opened.Load() {
				early.Add(1)
			}
			errs <- err
		}()
	}
	publishAsync(context.Background(), "fill")
	r.waitCount(t, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := bs[0].Publish(ctx, topic, &broker.Message{Body: []byte("fast")}, broker.WithFailFast()); !errors.Is(err, broker.ErrBusy) {
		t.Fatalf("FailFast Publish to a full subscription: %v, want ErrBusy", err)
	}

	// Without FailFast, publishers wait for room.
	for range 3 {
		publishAsync(ctx, "patient")
	}
	if hasStats {
		waitFor(t, "the 5 publications accepted", func() bool {
			s, _ := statsOf(bs[0])
			return s.Published-before.Published == 5
		})
	}
	const returned = "a publication returned while the subscriber was full"
	meanwhile(t, bs[0], bs[2], returned, func() bool { return early.Load() > 0 })
	opened.Store(true)
	if early.Load() > 0 {
		t.Fatal(returned)
	}
	close(gate)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Errorf("Publish: %v", err)
		}
	}
	r.waitCount(t, 4)
	await(t, bs[0], topic, r)
	if n := r.count(); n != 4 {
		t.Errorf("%d messages delivered, want 4", n)
	}
	if p := peak.Load(); p != 1 {
		t.Errorf("%d handler calls ran at once, want at most Concurrency(1)", p)
	}
	if hasStats {
		after, _ := statsOf(bs[0])
		if after.Busy == before.Busy {
			t.Errorf("Stats.Busy did not grow")
		}
	}
}

// Two publishers compete for a subscription that takes one delivery at a
// time: the one that finds it full is refused by the subscriber itself.
func testBackpressureAcrossPublishers(t *testing.T, bs []broker.Broker) {
	topic := newTopic(t)
	r := newRecorder("slow@b2")
	gate := make(chan struct{})
	subscribe(t, bs[2], topic, r, func(ctx context.Context, m *broker.Message) error {
		select {
		case <-gate:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}, broker.WithMaxInFlight(1))
	await(t, bs[0], topic, r)
	await(t, bs[1], topic, r)
	filled := make(chan error, 1)
	go func() {
		filled <- bs[0].Publish(context.Background(), topic, &broker.Message{Body: []byte("fill")})
	}()
	r.waitCount(t, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := bs[1].Publish(ctx, topic, &broker.Message{Body: []byte("fast")}, broker.WithFailFast()); !errors.Is(err, broker.ErrBusy) {
		t.Fatalf("FailFast Publish to a subscription another publisher filled: %v, want ErrBusy", err)
	}
	patient := make(chan error, 1)
	var opened, early atomic.Bool
	go func() {
		err := bs[1].Publish(ctx, topic, &broker.Message{Body: []byte("patient")})
		early.Store(!opened.Load())
		patient <- err
	}()
	const returned = "Publish returned while the subscription was full"
	meanwhile(t, bs[1], bs[0], returned, early.Load)
	opened.Store(true)
	if early.Load() {
		t.Fatal(returned)
	}
	close(gate)
	for _, c := range []chan error{filled, patient} {
		if err := <-c; err != nil {
			t.Errorf("Publish: %v", err)
		}
	}
	r.waitCount(t, 2)
}

func testManualAck(t *testing.T, bs []broker.Broker) {
	topic := newTopic(t)
	r := newRecorder("manual@b1")
	held := make(chan *broker.Message, 8)
	subscribe(t, bs[1], topic, r, func(ctx context.Context, m *broker.Message) error {
		held <- m
		return nil // not yet acknowledged
	}, broker.WithManualAck(), broker.WithMaxInFlight(1))
	await(t, bs[0], topic, r)

	// Acknowledged later, from another goroutine: Publish waits for it.
	var acked, early atomic.Bool
	published := make(chan error, 1)
	go func() {
		err := bs[0].Publish(context.Background(), topic, &broker.Message{Body: []byte("later")})
		early.Store(!acked.Load())
		published <- err
	}()
	later := <-held
	const returned = "Publish returned before the handler acknowledged"
	meanwhile(t, bs[0], bs[2], returned, func() bool { return len(published) > 0 })
	acked.Store(true)
	if err := later.Ack(); err != nil {
		t.Fatalf("Ack: %v", err)
	}
	if err := <-published; err != nil {
		t.Fatal(err)
	}
	if early.Load() {
		t.Fatal(returned)
	}

	// Refused, then acknowledged on the redelivery.
	go func() {
		m := <-held
		m.Nack(errBoom)
		m = <-held
		m.Ack()
	}()
	if err := bs[0].Publish(context.Background(), topic, &broker.Message{Body: []byte("nacked")}, broker.WithBackoff(time.Millisecond, time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	if got := r.all(); len(got) != 3 || got[2].attempt != 2 {
		t.Errorf("deliveries %+v, want the refused message redelivered as attempt 2", got)
	}

	// Never acknowledged: the deadline settles it, and a late Ack is refused.
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	err := bs[0].Publish(ctx, topic, &broker.Message{Body: []byte("never")}, broker.WithAttempts(1))
	if err == nil {
		t.Fatal("Publish of a message never acknowledged succeeded")
	}
	m := <-held
	// The subscription takes one delivery at a time (MaxInFlight(1)): once
	// it admits another, the subscriber has ended this one too.
	waitFor(t, "the subscription admitting a delivery again", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		probe := &broker.Message{Header: map[string]string{probeHeader: "1"}}
		return bs[0].Publish(ctx, topic, probe, broker.WithAttempts(1), broker.WithFailFast()) == nil
	})
	if err := m.Ack(); !errors.Is(err, broker.ErrSettled) {
		t.Errorf("Ack after the delivery ended: %v, want ErrSettled", err)
	}
}

func testAsync(t *testing.T, bs []broker.Broker) {
	topic := newTopic(t)
	r := newRecorder("async@b1")
	gate := make(chan struct{})
	subscribe(t, bs[1], topic, r, func(ctx context.Context, m *broker.Message) error {
		if string(m.Body) == "fail" {
			return errBoom
		}
		<-gate
		return nil
	})
	await(t, bs[0], topic, r)
	// The handler waits for the gate, which opens only after Publish has
	// returned: a Publish that waited for the handler would not return.
	accepted := make(chan error, 1)
	go func() {
		accepted <- bs[0].Publish(context.Background(), topic, &broker.Message{Body: []byte("ok")}, broker.WithAsync(nil))
	}()
	select {
	case err := <-accepted:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		close(gate)
		t.Fatal("asynchronous Publish waited for the handler")
	}
	close(gate)
	r.waitCount(t, 1)

	reported := make(chan error, 1)
	err := bs[0].Publish(context.Background(), topic, &broker.Message{Body: []byte("fail")},
		broker.WithAsync(func(err error) { reported <- err }), broker.WithAttempts(1))
	if err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-reported:
		var pe *broker.PublishError
		if !errors.As(err, &pe) || pe.Topic != topic {
			t.Errorf("async error %v, want a *broker.PublishError for %q", err, topic)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the failed asynchronous publication was never reported")
	}
}

func testKey(t *testing.T, bs []broker.Broker) {
	topic := newTopic(t)
	ws := []*recorder{newRecorder("k1@b1"), newRecorder("k2@b2"), newRecorder("k3@b0")}
	for i, r := range ws {
		subscribe(t, bs[(i+1)%3], topic, r, nil, broker.WithQueue("k"))
	}
	await(t, bs[0], topic, ws...)
	ids := publish(t, bs[0], topic, 30, broker.WithKey("order-17"))
	waitIDs(t, ids, ws...)
	await(t, bs[0], topic, ws...)
	exactlyOnce(t, ids, ws...)
	holders := 0
	for _, r := range ws {
		if r.count() > 0 {
			holders++
		}
	}
	if holders != 1 {
		t.Errorf("messages with one key went to %d members, want 1", holders)
	}
}

func testTyped(t *testing.T, bs []broker.Broker) {
	topic := newTopic(t)
	probed := make(chan struct{}, 1)
	got := make(chan string, 4)
	cts := make(chan string, 4)
	sub, err := broker.Subscribe(bs[1], topic, func(ctx context.Context, m *wrapperspb.StringValue) error {
		msg, ok := broker.MessageFromContext(ctx)
		if !ok {
			return errors.New("no message in context")
		}
		if msg.Header[probeHeader] != "" {
			select {
			case probed <- struct{}{}:
			default:
			}
			return nil
		}
		cts <- msg.Header[brokerkit.HeaderContentType]
		got <- m.GetValue()
		return nil
	}, broker.WithQueue("typed"))
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	waitFor(t, "the typed subscription visible to the publisher", func() bool {
		bs[0].Publish(context.Background(), topic, &broker.Message{Header: map[string]string{probeHeader: "1"}}, broker.WithAttempts(1))
		return len(probed) > 0
	})

	pub := broker.NewPublisher[*wrapperspb.StringValue](bs[0], topic)
	if err := pub.Publish(context.Background(), wrapperspb.String("order 42")); err != nil {
		t.Fatal(err)
	}
	if v, ct := recv(t, got, "the typed proto message"), <-cts; v != "order 42" || ct != "" {
		t.Errorf("typed proto: got %q with content type %q, want \"order 42\" and none", v, ct)
	}
	jpub := broker.NewPublisher[*wrapperspb.StringValue](bs[2], topic, broker.WithContentType("json"))
	if err := jpub.Publish(context.Background(), wrapperspb.String("as json")); err != nil {
		t.Fatal(err)
	}
	if v, ct := recv(t, got, "the typed JSON message"), <-cts; v != "as json" || ct != "application/json" {
		t.Errorf("typed json: got %q with content type %q", v, ct)
	}
	// A body that does not decode never reaches the typed handler: the
	// next message it receives is the one published after. (That the
	// publisher hears of it is testPublishWaitsForHandlers'.)
	bs[0].Publish(context.Background(), topic, &broker.Message{Body: []byte{0xff, 0xff}}, broker.WithAttempts(1))
	if err := pub.Publish(context.Background(), wrapperspb.String("after")); err != nil {
		t.Fatal(err)
	}
	if v := recv(t, got, "the message after an undecodable one"); v != "after" {
		t.Errorf("typed handler received %q, want \"after\"", v)
	}
}

// testPublishWaitsForHandlers checks what package broker promises of
// Publish beyond delivery: it returns once the handlers returned (a
// refused message's redelivery included), at its deadline while a handler
// overruns it, and with the handlers' failure. A broker whose Publish
// returns once a server has the message skips it.
func testPublishWaitsForHandlers(t *testing.T, bs []broker.Broker) {
	topic := newTopic(t)
	r := newRecorder("gated@b1")
	gate := make(chan struct{})
	open := sync.OnceFunc(func() { close(gate) })
	subscribe(t, bs[1], topic, r, func(ctx context.Context, m *broker.Message) error {
		switch string(m.Body) {
		case "gated":
			select {
			case <-gate:
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		case "refused once":
			if m.Attempt == 1 {
				return errBoom
			}
		case "overrun":
			<-ctx.Done()
			return ctx.Err()
		}
		return nil
	})
	t.Cleanup(open) // before the subscription's cleanup, should the test fail
	await(t, bs[0], topic, r)

	var opened, early atomic.Bool
	published := make(chan error, 1)
	go func() {
		err := bs[0].Publish(context.Background(), topic, &broker.Message{Body: []byte("gated")})
		early.Store(!opened.Load())
		published <- err
	}()
	r.waitCount(t, 1)
	const returned = "Publish returned before the handler did"
	meanwhile(t, bs[0], bs[2], returned, func() bool { return len(published) > 0 })
	opened.Store(true)
	open()
	if err := recv(t, published, "Publish once the handler returned"); err != nil {
		t.Fatal(err)
	}
	if early.Load() {
		t.Fatal(returned)
	}

	m := &broker.Message{Body: []byte("refused once")}
	if err := bs[0].Publish(context.Background(), topic, m, broker.WithBackoff(time.Millisecond, time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	if n := r.ids()[m.ID]; n != 2 {
		t.Errorf("when Publish returned, the handler had received the refused message %d times, want 2", n)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	go func() {
		published <- bs[0].Publish(ctx, topic, &broker.Message{Body: []byte("overrun")})
	}()
	// recv waits far longer than the 100 ms deadline, and less than the 30 s default.
	if err := recv(t, published, "Publish at its deadline"); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Publish: %v, want an error wrapping context.DeadlineExceeded", err)
	}

	// A typed handler's decoding error is a handler error like any other.
	typed := newTopic(t)
	sub, err := broker.Subscribe(bs[2], typed, func(ctx context.Context, m *wrapperspb.StringValue) error { return nil })
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	waitFor(t, "publishing an undecodable body failing", func() bool {
		err = bs[0].Publish(context.Background(), typed, &broker.Message{Body: []byte{0xff, 0xff}}, broker.WithAttempts(1))
		return err != nil
	})
	var pe *broker.PublishError
	if !errors.As(err, &pe) || !strings.Contains(err.Error(), "decoding") {
		t.Errorf("publishing an undecodable body: %v, want a *broker.PublishError with the decoding error", err)
	}
}
