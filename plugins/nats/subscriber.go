package nats

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"strings"
	"sync"
	"time"

	natsgo "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/protoc-gen-micro/micro/internal/brokerkit"
	"github.com/protoc-gen-micro/micro/runtime/broker"
	"github.com/protoc-gen-micro/micro/runtime/metadata"
)

// Subscribe subscribes h to topic: a NATS subscription, or a JetStream
// consumer for a topic under a WithJetStream prefix. Before Connect the
// subscription is recorded and starts with Connect.
func (b *natsBroker) Subscribe(topic string, h broker.Handler, opts ...broker.SubscribeOption) (broker.Subscriber, error) {
	o, err := brokerkit.CheckSubscribe(topic, h == nil, opts...)
	if err != nil {
		return nil, err
	}
	s := &subscriber{b: b, topic: topic, h: h, o: o, slots: make(chan struct{}, o.Concurrency)}
	s.prefix, s.js = b.jsPrefix(topic)
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.state == disconnected {
		return nil, broker.ErrDisconnected
	}
	if s.js && o.Queue == "" && b.o.name != "" {
		// Two would share one durable consumer, as a queue group does.
		for other := range b.subs {
			if other.js && other.o.Queue == "" && other.topic == topic {
				return nil, fmt.Errorf("broker/nats: subscribe to %q: broker %q has a durable subscription to it already; use a queue group, or another broker name", topic, b.o.name)
			}
		}
	}
	if b.state == connected {
		if err := s.start(); err != nil {
			return nil, err
		}
	}
	b.subs[s] = struct{}{}
	return s, nil
}

// subscriber is one subscription. NATS calls it back one message at a
// time; with a concurrency above 1 the callback hands messages to handler
// goroutines, blocking while all are busy, so that what waits stays in the
// NATS subscription's bounded pending queue.
type subscriber struct {
	b      *natsBroker
	topic  string
	h      broker.Handler
	o      brokerkit.SubscribeOptions
	js     bool
	prefix string
	slots  chan struct{} // one per running handler call

	mu      sync.Mutex
	stopped bool
	calls   sync.WaitGroup // handler calls running or waiting for a slot
	nsub    *natsgo.Subscription
	cc      jetstream.ConsumeContext
}

func (s *subscriber) Topic() string { return s.topic }

// start subscribes on the server; b.mu is held.
func (s *subscriber) start() error {
	nc, err := s.b.connLocked()
	if err != nil {
		return err
	}
	if s.js {
		return s.startJetStream()
	}
	var sub *natsgo.Subscription
	if s.o.Queue != "" {
		sub, err = nc.QueueSubscribe(s.topic, s.o.Queue, s.onCore)
	} else {
		sub, err = nc.Subscribe(s.topic, s.onCore)
	}
	if err != nil {
		return fmt.Errorf("broker/nats: subscribe to %q: %w", s.topic, err)
	}
	// NATS counts a message pending until the callback returns. With a
	// concurrency of 1 the handler runs in the callback; above, handler
	// goroutines hold up to Concurrency messages outside the count.
	limit := s.o.MaxInFlight
	if s.o.Concurrency > 1 {
		limit = max(1, limit-s.o.Concurrency)
	}
	if err := sub.SetPendingLimits(limit, s.b.o.maxPendingBytes); err != nil {
		sub.Unsubscribe()
		return fmt.Errorf("broker/nats: subscribe to %q: %w", s.topic, err)
	}
	// The subscription is on the server once a round trip after it has
	// been answered; only then may a publisher expect it to be heard.
	if err := nc.FlushTimeout(10 * time.Second); err != nil {
		sub.Unsubscribe()
		return fmt.Errorf("broker/nats: subscribe to %q: %w", s.topic, err)
	}
	s.mu.Lock()
	s.nsub = sub
	s.mu.Unlock()
	return nil
}

// consumerName returns the durable consumer name of the subscription, or
// "" for an ephemeral one.
func (s *subscriber) consumerName() string {
	var who string
	switch {
	case s.o.Queue != "":
		who = s.o.Queue
	case s.b.o.name != "":
		who = "sub_" + s.b.o.name
	default:
		return ""
	}
	f := fnv.New32a()
	f.Write([]byte(who + "\x00" + s.topic))
	clean := func(x string) string {
		x = strings.Map(func(r rune) rune {
			if r == '.' || r == '*' || r == '>' || r == '/' || r == '\\' || r <= ' ' || r > '~' {
				return '_'
			}
			return r
		}, x)
		return x[:min(len(x), 64)]
	}
	return fmt.Sprintf("%s_%s_%08x", clean(who), clean(s.topic), f.Sum32())
}

func (s *subscriber) startJetStream() error {
	js, ctx := s.b.js, context.Background()
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	stream := streamName(s.prefix)
	// b.mu is held: ensureStream takes it, so create the stream here.
	if !s.b.streams[stream] {
		if _, err := js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{Name: stream, Subjects: []string{s.prefix, s.prefix + ".>"}, Storage: jetstream.FileStorage}); err != nil {
			return fmt.Errorf("broker/nats: stream %s: %w", stream, err)
		}
		s.b.streams[stream] = true
	}
	cfg := jetstream.ConsumerConfig{
		Durable:       s.consumerName(),
		FilterSubject: s.topic,
		AckPolicy:     jetstream.AckExplicitPolicy,
		DeliverPolicy: jetstream.DeliverNewPolicy,
		AckWait:       s.b.o.ackWait,
		MaxDeliver:    s.b.o.maxDeliver,
		MaxAckPending: s.o.MaxInFlight,
	}
	cons, err := js.CreateOrUpdateConsumer(ctx, stream, cfg)
	if err != nil {
		return fmt.Errorf("broker/nats: consumer of %q: %w", s.topic, err)
	}
	cc, err := cons.Consume(s.onJetStream, jetstream.PullMaxMessages(min(s.o.MaxInFlight, 512)))
	if err != nil {
		return fmt.Errorf("broker/nats: consuming %q: %w", s.topic, err)
	}
	s.mu.Lock()
	s.cc = cc
	s.mu.Unlock()
	return nil
}

// Unsubscribe stops the subscription and waits for its handler calls. A
// JetStream durable consumer stays on the server and keeps what is
// published until a subscriber comes back.
func (s *subscriber) Unsubscribe() error {
	s.mu.Lock()
	if s.stopped {
		s.mu.Unlock()
		return nil
	}
	s.stopped = true
	nsub, cc := s.nsub, s.cc
	s.mu.Unlock()
	var err error
	if nsub != nil {
		err = nsub.Unsubscribe()
		if errors.Is(err, natsgo.ErrConnectionClosed) || errors.Is(err, natsgo.ErrBadSubscription) {
			err = nil
		}
	}
	if cc != nil {
		cc.Stop()
		<-cc.Closed()
	}
	s.calls.Wait()
	s.b.mu.Lock()
	delete(s.b.subs, s)
	s.b.mu.Unlock()
	return err
}

// admit counts a delivery in, unless the subscription has stopped.
func (s *subscriber) admit() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopped {
		return false
	}
	s.calls.Add(1)
	return true
}

// dispatch runs call inline with a concurrency of 1 (so order is kept),
// on a handler goroutine otherwise.
func (s *subscriber) dispatch(call func()) {
	if cap(s.slots) == 1 {
		call()
		return
	}
	s.slots <- struct{}{}
	go func() {
		defer func() { <-s.slots }()
		call()
	}()
}

// handlerContext returns the context a handler runs with: the publisher's
// metadata and a deadline of its timeout from now, at most limit.
func handlerContext(w *wireMsg, limit time.Duration) (context.Context, context.CancelFunc) {
	ctx := context.Background()
	if w.md != nil {
		ctx = metadata.NewIncomingContext(ctx, w.md)
	}
	d := w.timeout
	if limit > 0 && (d == 0 || d > limit) {
		d = limit
	}
	if d == 0 {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, d)
}

// onCore handles a core NATS message: at most once, so a failure is logged.
func (s *subscriber) onCore(m *natsgo.Msg) {
	w, err := decodeHeader(m.Header)
	if err != nil {
		s.b.o.logger.Warn("broker/nats: dropped a message", "subject", m.Subject, "err", err)
		return
	}
	if !s.admit() {
		return
	}
	if m.Reply != "" && m.Header.Get(hdrAnswer) == "1" { // a publisher requiring subscribers waits for one to answer
		m.Respond(nil)
	}
	msg := &broker.Message{ID: w.id, Topic: s.topic, Header: w.header, Body: m.Data, Attempt: 1}
	a := &coreAck{log: s.b.o.logger}
	if s.o.ManualAck {
		brokerkit.SetAcknowledger(msg, a)
	}
	s.dispatch(func() {
		defer s.calls.Done()
		ctx, cancel := handlerContext(&w, 0)
		err := s.h(ctx, msg)
		cancel()
		if err == nil && s.o.ManualAck {
			return
		}
		if a.settle() && err != nil {
			s.b.o.logger.Warn("broker/nats: handler failed; core NATS does not redeliver", "topic", s.topic, "id", msg.ID, "err", err)
		}
	})
}

// coreAck settles a core NATS message once: there is nothing to tell the
// server, so Nack only logs.
type coreAck struct {
	once sync.Once
	log  *slog.Logger
}

func (a *coreAck) settle() (first bool) {
	a.once.Do(func() { first = true })
	return first
}

func (a *coreAck) Ack() error {
	if !a.settle() {
		return broker.ErrSettled
	}
	return nil
}

func (a *coreAck) Nack(reason error) error {
	if !a.settle() {
		return broker.ErrSettled
	}
	a.log.Warn("broker/nats: message refused; core NATS does not redeliver", "err", reason)
	return nil
}

// onJetStream handles a message of a JetStream consumer.
func (s *subscriber) onJetStream(jm jetstream.Msg) {
	md, err := jm.Metadata()
	if err != nil {
		s.b.o.logger.Warn("broker/nats: JetStream message without metadata", "subject", jm.Subject(), "err", err)
		jm.Term()
		return
	}
	w, err := decodeHeader(jm.Headers())
	if err != nil {
		s.b.o.logger.Warn("broker/nats: terminated a message", "subject", jm.Subject(), "err", err)
		jm.TermWithReason(err.Error())
		return
	}
	if !s.admit() {
		jm.Nak() // for another member, or this consumer's next subscriber
		return
	}
	msg := &broker.Message{ID: w.id, Topic: s.topic, Header: w.header, Body: jm.Data(), Attempt: int(md.NumDelivered)}
	a := &jsAck{s: s, jm: jm, msg: msg}
	a.ctx, a.cancel = handlerContext(&w, s.b.o.ackWait)
	if s.o.ManualAck {
		brokerkit.SetAcknowledger(msg, a)
		// The delivery ends, unacknowledged, when its deadline passes: the
		// server delivers it again after AckWait.
		context.AfterFunc(a.ctx, func() { a.settle(nil, true) })
	}
	s.dispatch(func() {
		defer s.calls.Done()
		err := s.h(a.ctx, msg)
		if err == nil && s.o.ManualAck {
			return
		}
		a.settle(err, false)
	})
}

// jsAck settles a JetStream delivery once: Ack, Nak with back-off, or
// dead-letter it on the last delivery.
type jsAck struct {
	s      *subscriber
	jm     jetstream.Msg
	msg    *broker.Message
	ctx    context.Context
	cancel context.CancelFunc
	once   sync.Once
}

func (a *jsAck) Ack() error { return a.settle(nil, false) }

func (a *jsAck) Nack(reason error) error {
	if reason == nil {
		reason = errors.New("refused")
	}
	return a.settle(reason, false)
}

// settle ends the delivery: err nil acknowledges, unless expired, which
// leaves the message to the server's AckWait.
func (a *jsAck) settle(err error, expired bool) error {
	var out error = broker.ErrSettled
	a.once.Do(func() {
		defer a.cancel()
		out = nil
		switch {
		case expired:
		case err == nil:
			out = a.jm.Ack()
		case a.msg.Attempt >= a.s.b.o.maxDeliver:
			out = a.s.deadLetter(a.jm, a.msg, err)
		default:
			bo := a.s.b.o.backOff
			out = a.jm.NakWithDelay(bo[min(a.msg.Attempt, len(bo))-1])
		}
	})
	return out
}

// deadLetter publishes a message that failed its last delivery to
// dlq.TOPIC, then terminates it.
func (s *subscriber) deadLetter(jm jetstream.Msg, msg *broker.Message, reason error) error {
	h := natsgo.Header{}
	for k, vs := range jm.Headers() {
		h[k] = vs
	}
	h.Set(hdrReason, strings.NewReplacer("\r", " ", "\n", " ").Replace(reason.Error()))
	// One dead letter per message and consumer, even if this is retried.
	h.Set(hdrMsgID, msg.ID+"/"+s.consumerName())
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.b.ensureStream(ctx, s.b.js, deadLetterStream, deadLetterPrefix+">"); err != nil {
		return err
	}
	if _, err := s.b.js.PublishMsg(ctx, &natsgo.Msg{Subject: deadLetterPrefix + s.topic, Header: h, Data: msg.Body}); err != nil {
		s.b.o.logger.Error("broker/nats: could not dead-letter a message; the server will not deliver it again", "topic", s.topic, "id", msg.ID, "err", err)
		return err
	}
	s.b.o.logger.Warn("broker/nats: message dead-lettered", "topic", s.topic, "id", msg.ID, "deliveries", msg.Attempt, "err", reason)
	return jm.TermWithReason("dead-lettered")
}
