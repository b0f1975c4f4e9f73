package engine

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"sync"
	"time"

	"github.com/protoc-gen-micro/micro/internal/brokerkit"
	"github.com/protoc-gen-micro/micro/internal/mdctx"
	"github.com/protoc-gen-micro/micro/runtime/broker"
	"github.com/protoc-gen-micro/micro/runtime/metadata"
)

// Subscription is the subscribing half of a broker for one subscription:
// it admits deliveries up to MaxInFlight, runs at most Concurrency handler
// calls at once and settles each message.
type Subscription struct {
	ID, Topic string
	Opts      brokerkit.SubscribeOptions
	handler   broker.Handler
	log       *slog.Logger
	slots     chan struct{} // one token per running handler call

	mu       sync.Mutex
	inflight int           // admitted, not yet settled
	closed   bool          // refuses deliveries
	idle     chan struct{} // closed when inflight reaches 0 after close
}

// Subscribe validates a subscription request, as every broker must, and
// returns the subscription with a new ID.
func Subscribe(log *slog.Logger, topic string, h broker.Handler, opts []broker.SubscribeOption) (*Subscription, error) {
	o, err := brokerkit.CheckSubscribe(topic, h == nil, opts...)
	if err != nil {
		return nil, err
	}
	return NewSubscription(log, NewID(), topic, h, o), nil
}

// NewSubscription returns a subscription of h to topic.
func NewSubscription(log *slog.Logger, id, topic string, h broker.Handler, o brokerkit.SubscribeOptions) *Subscription {
	return &Subscription{ID: id, Topic: topic, Opts: o, handler: h, log: log, slots: make(chan struct{}, o.Concurrency)}
}

// Inbound is a delivered message with what travelled with it, and its
// outcome once delivered. A batch's Inbounds are one allocation.
type Inbound struct {
	// Msg is the subscription's own copy; the handler gets its address.
	Msg broker.Message
	// MD is the publisher's outgoing metadata, nil when it had none.
	MD metadata.MD
	// Deadline is the publisher's; zero for none.
	Deadline time.Time
	// Err is set by Deliver: nil once acknowledged, a *NackError,
	// broker.ErrBusy or ErrGone.
	Err error

	ctx msgContext // the handler's context
}

// Deliver hands in to the handler, in order, and sets each one's Err: nil
// once acknowledged, a *NackError, broker.ErrBusy for a message beyond
// MaxInFlight (and every one after it, so that order holds), or ErrGone
// once the subscription is closed. base is the context of the whole
// batch; each handler's context adds its message's deadline and metadata.
func (s *Subscription) Deliver(base context.Context, in []Inbound) {
	k, refused := s.admit(len(in))
	for i := k; i < len(in); i++ {
		in[i].Err = refused
	}
	if k == 0 {
		return
	}
	in = in[:k]
	if s.Opts.ManualAck {
		s.deliverManual(base, in)
		return
	}
	if s.Opts.Concurrency == 1 || k == 1 {
		s.deliverInTurn(base, in)
		return
	}
	var wg sync.WaitGroup
	for i := range in {
		m := &in[i]
		if err := s.acquire(base); err != nil {
			m.Err = err
			s.release()
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := m.ctx.init(base, m)
			m.Err = s.call(ctx, &m.Msg)
			cancel()
			<-s.slots
			s.release()
		}()
	}
	wg.Wait()
}

// deliverInTurn runs the handler for each message in order, holding one
// handler slot for the batch: other batches wait for a whole batch rather
// than interleave, which costs them nothing with one slot and saves two
// channel operations per message. A message whose deadline had passed
// when the batch began is refused unhandled; one reached later still
// gets its turn, with its deadline in its context.
func (s *Subscription) deliverInTurn(base context.Context, in []Inbound) {
	if err := s.acquire(base); err != nil {
		for i := range in {
			in[i].Err = err
		}
		s.releaseN(len(in))
		return
	}
	now := time.Now()
	for i := range in {
		m := &in[i]
		if !m.Deadline.IsZero() && !now.Before(m.Deadline) {
			m.Err = &NackError{Err: context.DeadlineExceeded}
			continue
		}
		ctx, cancel := m.ctx.init(base, m)
		m.Err = s.call(ctx, &m.Msg)
		cancel()
	}
	<-s.slots
	s.releaseN(len(in))
}

// deliverManual runs the handlers in order and then waits for each message
// to be acknowledged: a handler may return before it acks, letting the
// next message in while the delivery keeps its place in MaxInFlight.
func (s *Subscription) deliverManual(base context.Context, in []Inbound) {
	type pending struct {
		ctx    context.Context
		cancel context.CancelFunc
		ack    *acker
	}
	ps := make([]pending, len(in))
	var wg sync.WaitGroup
	for i := range in {
		p, m := &ps[i], &in[i]
		if err := s.acquire(base); err != nil {
			m.Err = err
			continue
		}
		p.ctx, p.cancel = m.ctx.init(base, m)
		p.ack = &acker{done: make(chan struct{})}
		brokerkit.SetAcknowledger(&m.Msg, p.ack)
		run := func() {
			if err := s.call(p.ctx, &m.Msg); err != nil {
				p.ack.Nack(err)
			}
			<-s.slots
		}
		if s.Opts.Concurrency == 1 {
			run()
			continue
		}
		wg.Add(1)
		go func() { defer wg.Done(); run() }()
	}
	wg.Wait()
	for i := range ps {
		if p := &ps[i]; p.ack != nil {
			in[i].Err = p.ack.wait(p.ctx)
			p.cancel()
		}
		s.release()
	}
}

// call runs the handler, turning an error or a panic into a *NackError.
func (s *Subscription) call(ctx context.Context, msg *broker.Message) (err error) {
	defer func() {
		if r := recover(); r != nil {
			s.log.Error("broker: handler panicked", "topic", s.Topic, "id", msg.ID, "panic", r, "stack", string(debug.Stack()))
			err = &NackError{Err: fmt.Errorf("panic: %v", r)}
		}
	}()
	if err := s.handler(ctx, msg); err != nil {
		return &NackError{Err: err}
	}
	return nil
}

// admit reserves room for up to n deliveries and returns how many were
// admitted and why the rest were refused.
func (s *Subscription) admit(n int) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return 0, ErrGone
	}
	k := min(n, s.Opts.MaxInFlight-s.inflight)
	s.inflight += k
	if k < n {
		return k, broker.ErrBusy
	}
	return k, nil
}

func (s *Subscription) release() { s.releaseN(1) }

// releaseN gives back the room of n settled deliveries.
func (s *Subscription) releaseN(n int) {
	s.mu.Lock()
	s.inflight -= n
	if s.closed && s.inflight == 0 && s.idle != nil {
		close(s.idle)
		s.idle = nil
	}
	s.mu.Unlock()
}

// acquire waits for a handler slot.
func (s *Subscription) acquire(base context.Context) error {
	select {
	case s.slots <- struct{}{}:
		return nil
	default:
	}
	select {
	case s.slots <- struct{}{}:
		return nil
	case <-base.Done():
		return &NackError{Err: base.Err()}
	}
}

// Close refuses further deliveries and waits for those admitted to settle.
func (s *Subscription) Close() {
	s.mu.Lock()
	s.closed = true
	if s.inflight == 0 {
		s.mu.Unlock()
		return
	}
	if s.idle == nil {
		s.idle = make(chan struct{})
	}
	idle := s.idle
	s.mu.Unlock()
	<-idle
}

// acker settles one message of a ManualAck subscription.
type acker struct {
	mu      sync.Mutex
	done    chan struct{}
	settled bool
	err     error
}

func (a *acker) Ack() error { return a.settle(nil) }

func (a *acker) Nack(reason error) error {
	if reason == nil {
		reason = errors.New("message refused (Nack)")
	}
	return a.settle(&NackError{Err: reason})
}

func (a *acker) settle(err error) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.settled {
		return broker.ErrSettled
	}
	a.settled, a.err = true, err
	close(a.done)
	return nil
}

// wait returns the message's outcome once settled, or a refusal when ctx
// ends first; a later Ack then returns ErrSettled.
func (a *acker) wait(ctx context.Context) error {
	select {
	case <-a.done:
	case <-ctx.Done():
		a.settle(&NackError{Err: fmt.Errorf("not acknowledged: %w", ctx.Err())})
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.err
}

// deadlineSlack is how much later than its own deadline a message's
// handler context may end: a batch's context ends at the latest deadline
// of its messages, and a message whose deadline is sooner by less than
// this shares it rather than paying for a timer of its own. Deadline
// reports the message's own deadline either way.
const deadlineSlack = 100 * time.Millisecond

var noCancel context.CancelFunc = func() {}

// msgContext is a handler's context: the batch's, with the message's
// deadline and with the publisher's metadata in place of whatever incoming
// metadata the batch's context had.
type msgContext struct {
	context.Context
	md       metadata.MD
	deadline time.Time // reported by Deadline when sooner than the batch's
}

// init sets c up for in over base and returns it.
func (c *msgContext) init(base context.Context, in *Inbound) (*msgContext, context.CancelFunc) {
	c.Context, c.md, c.deadline = base, in.MD, time.Time{}
	cancel := noCancel
	if !in.Deadline.IsZero() {
		d, ok := base.Deadline()
		switch {
		case !ok || d.Sub(in.Deadline) > deadlineSlack:
			c.Context, cancel = context.WithDeadline(base, in.Deadline)
		case in.Deadline.Before(d):
			c.deadline = in.Deadline
		}
	}
	return c, cancel
}

func (c *msgContext) Deadline() (time.Time, bool) {
	if !c.deadline.IsZero() {
		return c.deadline, true
	}
	return c.Context.Deadline()
}

func (c *msgContext) Value(key any) any {
	if key == (mdctx.IncomingKey{}) {
		if c.md == nil {
			return nil
		}
		return c.md
	}
	return c.Context.Value(key)
}
