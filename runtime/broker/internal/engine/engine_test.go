package engine

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/protoc-gen-micro/micro/internal/brokerkit"
	"github.com/protoc-gen-micro/micro/runtime/broker"
	"github.com/protoc-gen-micro/micro/runtime/selector"
)

// gateLink answers every message with nil, each batch once gate is open.
type gateLink struct {
	gate    chan struct{}
	batches atomic.Int32
	largest atomic.Int32
}

func (l *gateLink) Deliver(ctx context.Context, t *Target, msgs []Outgoing, out []error) error {
	l.batches.Add(1)
	for {
		n := l.largest.Load()
		if int32(len(msgs)) <= n || l.largest.CompareAndSwap(n, int32(len(msgs))) {
			break
		}
	}
	<-l.gate
	return nil
}

func oneTarget(window int) func(context.Context, string) (*Targets, error) {
	resolve, _ := oneTargetState(window)
	return resolve
}

// oneTargetState is oneTarget that also returns the target's state, for
// tests that wait for messages to reach its outbox.
func oneTargetState(window int) (func(context.Context, string) (*Targets, error), *state) {
	ts := NewTargets([]TargetInfo{{ID: "s1", Window: window}}, nil)
	return func(context.Context, string) (*Targets, error) { return ts, nil }, ts.All[0].st
}

// outboxOf returns how many messages st holds in batches in flight and how
// many wait in its outbox.
func outboxOf(st *state) (sent, queued int) {
	st.mu.Lock()
	defer st.mu.Unlock()
	return st.sent, st.queue.len()
}

// waitFor yields until cond holds, failing the test if it never does. It
// bounds a wait for goroutines to reach a state the test can observe.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); runtime.Gosched() {
		if time.Now().After(deadline) {
			t.Fatalf("never: %s", what)
		}
	}
}

// While batches are in flight, the messages that arrive gather into the
// next one: a hundred messages cost a handful of deliveries.
func TestBatching(t *testing.T) {
	l := &gateLink{gate: make(chan struct{})}
	resolve, st := oneTargetState(0)
	p := NewPublisher(Config{Link: l, Resolve: resolve})
	var wg sync.WaitGroup
	const n = 100
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := p.Publish(context.Background(), "t", &broker.Message{}, nil); err != nil {
				t.Error(err)
			}
		}()
	}
	// The senders hold their batches at the gate; the rest queue behind.
	waitFor(t, "every message in flight or queued", func() bool {
		sent, queued := outboxOf(st)
		return sent+queued == n && l.batches.Load() == maxSenders
	})
	close(l.gate)
	wg.Wait()
	if b := l.batches.Load(); b > maxSenders+3 {
		t.Errorf("%d messages took %d deliveries", n, b)
	}
	if s := p.Stats(); s.Delivered != n {
		t.Errorf("delivered %d, want %d", s.Delivered, n)
	}
}

// A target's window bounds what a publisher has in flight to it; the rest
// waits in the outbox, or fails at once with FailFast.
func TestWindow(t *testing.T) {
	l := &gateLink{gate: make(chan struct{})}
	resolve, st := oneTargetState(2)
	p := NewPublisher(Config{Link: l, Resolve: resolve})
	errs := make(chan error, 3)
	for range 3 {
		go func() { errs <- p.Publish(context.Background(), "t", &broker.Message{}, nil) }()
	}
	waitFor(t, "two messages in flight and one queued", func() bool {
		sent, queued := outboxOf(st)
		return sent == 2 && queued == 1
	})
	if b := l.largest.Load(); b > 2 {
		t.Errorf("a batch of %d went to a target with a window of 2", b)
	}
	err := p.Publish(context.Background(), "t", &broker.Message{}, []broker.PublishOption{broker.WithFailFast()})
	if !errors.Is(err, broker.ErrBusy) {
		t.Errorf("FailFast with the window full: %v, want ErrBusy", err)
	}
	close(l.gate)
	for range 3 {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
}

func group(n int) *Group {
	var infos []TargetInfo
	for i := range n {
		infos = append(infos, TargetInfo{ID: fmt.Sprintf("m%d", i), Group: "g"})
	}
	return NewTargets(infos, nil).group("g")
}

func TestPick(t *testing.T) {
	g := group(3)
	rr := &Publisher{cfg: Config{Strategy: selector.RoundRobin}}
	seen := map[string]int{}
	for range 30 {
		seen[rr.pick(g, nil, "", "").ID]++
	}
	for _, m := range g.Members {
		if seen[m.ID] != 10 {
			t.Errorf("round robin gave %s %d of 30", m.ID, seen[m.ID])
		}
	}

	p := &Publisher{cfg: Config{Strategy: selector.LeastRequest}}
	if got := p.pick(g, []string{"m0", "m1"}, "", ""); got == nil || got.ID != "m2" {
		t.Errorf("with m0 and m1 tried, picked %v", got)
	}
	if got := p.pick(g, []string{"m0", "m1", "m2"}, "", ""); got != nil {
		t.Errorf("with every member tried, picked %s", got.ID)
	}
	for range 20 {
		if got := p.pick(g, nil, "m1", ""); got.ID == "m1" {
			t.Fatal("picked the member to avoid while others were left")
		}
	}
	if got := p.pick(g, []string{"m0", "m2"}, "m1", ""); got == nil || got.ID != "m1" {
		t.Errorf("the member to avoid is still better than none: picked %v", got)
	}
	g.Members[0].st.inflight.Store(5)
	g.Members[1].st.inflight.Store(5)
	low := 0
	for range 300 {
		if p.pick(g, nil, "", "").ID == "m2" {
			low++
		}
	}
	if low < 150 { // expect 2/3: it wins whenever it is one of the two drawn
		t.Errorf("the least loaded member got %d of 300", low)
	}

	// Keys stick to one member, and only a leaving member's keys move.
	first := map[string]string{}
	for i := range 50 {
		k := fmt.Sprint("order-", i)
		first[k] = p.pick(g, nil, "", k).ID
		if again := p.pick(g, nil, "", k).ID; again != first[k] {
			t.Fatalf("key %s went to %s, then %s", k, first[k], again)
		}
	}
	smaller := NewTargets([]TargetInfo{{ID: "m0", Group: "g"}, {ID: "m2", Group: "g"}}, nil).group("g")
	for k, id := range first {
		if id != "m1" && p.pick(smaller, nil, "", k).ID != id {
			t.Errorf("key %s moved from %s although its member stayed", k, id)
		}
	}
}

// An unreachable member is passed over while another is left.
func TestEjection(t *testing.T) {
	g := group(2)
	p := &Publisher{cfg: Config{Strategy: selector.Random}}
	p.eject(g.Members[0])
	for range 20 {
		if p.pick(g, nil, "", "").ID == "m0" {
			t.Fatal("picked the ejected member")
		}
	}
	if got := p.pick(g, []string{"m1"}, "", ""); got == nil || got.ID != "m0" {
		t.Errorf("an ejected member is better than none: picked %v", got)
	}
	p.recovered(g.Members[0])
	if p.ejected.Load() != 0 {
		t.Error("recovery left the member ejected")
	}
}

// A Targets rebuilt after a change keeps what was learnt of the
// subscriptions that stayed.
func TestTargetsCarryState(t *testing.T) {
	old := NewTargets([]TargetInfo{{ID: "a"}, {ID: "b", Group: "g"}}, nil)
	old.All[0].st.inflight.Store(3)
	next := NewTargets([]TargetInfo{{ID: "a"}, {ID: "c", Group: "g"}}, old)
	if next.All[0].st != old.All[0].st {
		t.Error("a's state was not carried over")
	}
	if next.Len() != 2 || next.group("g").Members[0].ID != "c" {
		t.Errorf("targets %+v", next)
	}
}

func TestNewID(t *testing.T) {
	seen := map[string]bool{}
	for range 1000 {
		id := NewID()
		if seen[id] {
			t.Fatalf("duplicate ID %s", id)
		}
		seen[id] = true
	}
}

// A subscription admits up to MaxInFlight deliveries, refuses the rest in
// order, turns handler errors and panics into refusals, and refuses
// everything once closed.
func TestSubscriptionDeliver(t *testing.T) {
	s := NewSubscription(slog.Default(), "s", "t", func(ctx context.Context, m *broker.Message) error {
		switch string(m.Body) {
		case "fail":
			return errors.New("boom")
		case "panic":
			panic("kaboom")
		}
		return nil
	}, brokerkit.NewSubscribeOptions(broker.WithMaxInFlight(3)))
	in := make([]Inbound, 4)
	for i, body := range []string{"ok", "fail", "panic", "ok"} {
		in[i].Msg = broker.Message{Body: []byte(body)}
	}
	s.Deliver(context.Background(), in)
	var nack *NackError
	if in[0].Err != nil || !errors.As(in[1].Err, &nack) || !strings.Contains(fmt.Sprint(in[2].Err), "kaboom") || !errors.Is(in[3].Err, broker.ErrBusy) {
		t.Errorf("outcomes %v, %v, %v, %v; want nil, a nack, a nack for the panic, busy", in[0].Err, in[1].Err, in[2].Err, in[3].Err)
	}
	s.Close()
	in = in[:1]
	s.Deliver(context.Background(), in)
	if !errors.Is(in[0].Err, ErrGone) {
		t.Errorf("after Close: %v, want ErrGone", in[0].Err)
	}
}

// Asynchronous slots bound memory as well as messages: a body holds one
// slot per AsyncSlotBytes started, a body larger than all of them takes
// all and still goes, and Close stops a publisher waiting for slots.
func TestAsyncSlotsWeighBodies(t *testing.T) {
	l := &gateLink{gate: make(chan struct{})}
	p := NewPublisher(Config{Link: l, Resolve: oneTarget(0), MaxAsync: 4})
	ctx := context.Background()
	async := []broker.PublishOption{broker.WithAsync(func(err error) { t.Error(err) })}
	failFast := append([]broker.PublishOption{broker.WithFailFast()}, async...)
	publish := func(size int, opts []broker.PublishOption) error {
		return p.Publish(ctx, "t", &broker.Message{Body: make([]byte, size)}, opts)
	}
	for size, want := range map[int]int{0: 1, 1: 1, AsyncSlotBytes: 1, AsyncSlotBytes + 1: 2, 3 * AsyncSlotBytes: 3, 100 * AsyncSlotBytes: 4} {
		if got := p.asyncSlots(size); got != want {
			t.Errorf("a body of %d bytes holds %d slots, want %d", size, got, want)
		}
	}
	// 2.5 slots' worth holds 3 of the 4, leaving one for a small message.
	if err := publish(2*AsyncSlotBytes+AsyncSlotBytes/2, failFast); err != nil {
		t.Fatal(err)
	}
	if err := publish(16, failFast); err != nil {
		t.Fatalf("the fourth slot: %v", err)
	}
	if err := publish(16, failFast); !errors.Is(err, broker.ErrBusy) {
		t.Fatalf("with all slots held: %v, want ErrBusy", err)
	}
	if got := len(p.async); got != 4 {
		t.Fatalf("%d slots held after a refused publication, want 4", got)
	}
	// A body larger than every slot waits for all of them, then goes.
	big := make(chan error, 1)
	go func() { big <- publish(100*AsyncSlotBytes, async) }()
	// It holds the right to take several slots, waiting for them.
	waitFor(t, "the large publication waiting for slots", func() bool { return len(p.multi) == 1 })
	select {
	case err := <-big:
		t.Fatalf("the large publication did not wait for slots: %v", err)
	default:
	}
	close(l.gate)
	if err := <-big; err != nil {
		t.Fatal(err)
	}
	p.Close()
	if s := p.Stats(); s.Delivered != 3 {
		t.Errorf("delivered %d, want 3", s.Delivered)
	}
}

func TestCloseStopsWaitingForSlots(t *testing.T) {
	l := &gateLink{gate: make(chan struct{})}
	p := NewPublisher(Config{Link: l, Resolve: oneTarget(0), MaxAsync: 2})
	async := []broker.PublishOption{broker.WithAsync(func(error) {})}
	for _, size := range []int{1, AsyncSlotBytes} {
		if err := p.Publish(context.Background(), "t", &broker.Message{Body: make([]byte, size)}, async); err != nil {
			t.Fatal(err)
		}
	}
	waiting := make(chan error, 2)
	for _, size := range []int{1, 2 * AsyncSlotBytes} {
		go func() {
			waiting <- p.Publish(context.Background(), "t", &broker.Message{Body: make([]byte, size)}, async)
		}()
	}
	// The large one holds the right to take several slots while it waits;
	// the small one may still be on its way, and is refused either way.
	waitFor(t, "the large publication waiting for slots", func() bool { return len(p.multi) == 1 })
	closed := make(chan struct{})
	go func() { p.Close(); close(closed) }()
	for range 2 {
		select {
		case err := <-waiting:
			if !errors.Is(err, broker.ErrDisconnected) {
				t.Errorf("a publication waiting for slots when the publisher closed: %v, want ErrDisconnected", err)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("Close left a publication waiting for slots")
		}
	}
	close(l.gate) // the two in flight finish; Close returns
	select {
	case <-closed:
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not return")
	}
}

// monoNow agrees with time.Now, and its times compare and subtract with
// time.Now's by the monotonic clock.
func TestMonoNow(t *testing.T) {
	before := time.Now()
	m := monoNow()
	after := time.Now()
	if m.Before(before) || m.After(after) {
		t.Fatalf("monoNow %v is not between %v and %v", m, before, after)
	}
	if d := m.Sub(before); d < 0 || d > after.Sub(before) {
		t.Fatalf("monoNow - before = %v, outside [0, %v]", d, after.Sub(before))
	}
	if m.Round(0) == m {
		t.Fatal("monoNow has no monotonic reading")
	}
}
