// Package memory is a broker.Broker within one process, for tests and
// single-process programs.
//
// It keeps the semantics of the networked broker (broker/direct) — queue
// groups, acknowledgement, redelivery, backpressure, metadata and deadlines,
// batching — and passes the shared behaviour suite (broker/brokertest); only
// the wire is missing: a message is handed to the subscriber's handler as a
// copy, within the process. Brokers on one Bus see each other's
// subscriptions, as brokers on one registry do; a broker given no bus has
// its own. Nothing here crosses a process boundary or survives a restart.
package memory

import (
	"bytes"
	"context"
	"log/slog"
	"maps"
	"sync"
	"sync/atomic"

	"github.com/protoc-gen-micro/micro/internal/brokerkit"
	"github.com/protoc-gen-micro/micro/runtime/broker"
	"github.com/protoc-gen-micro/micro/runtime/broker/internal/engine"
	"github.com/protoc-gen-micro/micro/runtime/metadata"
	"github.com/protoc-gen-micro/micro/runtime/selector"
)

// Bus connects in-memory brokers: a message published on any reaches the
// subscriptions of all. Its zero value is not usable; call NewBus.
type Bus struct {
	mu     sync.RWMutex
	topics map[string]*topic
}

type topic struct {
	subs map[string]engine.TargetInfo
	snap atomic.Pointer[engine.Targets]
}

// NewBus returns an empty bus.
func NewBus() *Bus { return &Bus{topics: map[string]*topic{}} }

func (b *Bus) targets(_ context.Context, name string) (*engine.Targets, error) {
	b.mu.RLock()
	t := b.topics[name]
	b.mu.RUnlock()
	if t == nil {
		return nil, nil
	}
	return t.snap.Load(), nil
}

func (b *Bus) add(s *engine.Subscription) {
	b.mu.Lock()
	defer b.mu.Unlock()
	t := b.topics[s.Topic]
	if t == nil {
		t = &topic{subs: map[string]engine.TargetInfo{}}
		b.topics[s.Topic] = t
	}
	t.subs[s.ID] = engine.TargetInfo{ID: s.ID, Group: s.Opts.Queue, Handle: s, Window: s.Opts.MaxInFlight}
	t.publishLocked()
}

func (b *Bus) remove(s *engine.Subscription) {
	b.mu.Lock()
	defer b.mu.Unlock()
	t := b.topics[s.Topic]
	if t == nil {
		return
	}
	delete(t.subs, s.ID)
	t.publishLocked()
	if len(t.subs) == 0 {
		delete(b.topics, s.Topic)
	}
}

func (t *topic) publishLocked() {
	infos := make([]engine.TargetInfo, 0, len(t.subs))
	for _, info := range t.subs {
		infos = append(infos, info)
	}
	t.snap.Store(engine.NewTargets(infos, t.snap.Load()))
}

// Option configures NewBroker.
type Option func(*options)

type options struct {
	bus      *Bus
	maxAsync int
}

// WithBus puts the broker on bus b, with the other brokers there.
func WithBus(b *Bus) Option { return func(o *options) { o.bus = b } }

// WithMaxAsync sets the number of asynchronous slots (8192 by default). An
// asynchronous publication in flight holds one slot per 8 KiB of body,
// at least one, so the default bounds them to 8192 small messages and to
// 64 MiB of bodies; beyond it Publish with broker.WithAsync waits, or fails
// with broker.ErrBusy under broker.WithFailFast.
func WithMaxAsync(n int) Option { return func(o *options) { o.maxAsync = n } }

// memBroker is the in-memory broker.
type memBroker struct {
	bus *Bus
	pub *engine.Publisher
	log *slog.Logger

	mu    sync.Mutex
	state state
	subs  map[*subscriber]struct{}
}

type state int

const (
	idle state = iota
	connected
	disconnected
)

// NewBroker returns an in-memory broker, on its own bus unless WithBus says
// otherwise.
func NewBroker(opts ...Option) broker.Broker {
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	if o.bus == nil {
		o.bus = NewBus()
	}
	b := &memBroker{bus: o.bus, subs: map[*subscriber]struct{}{}, log: slog.Default().With("broker", "memory")}
	b.pub = engine.NewPublisher(engine.Config{
		Name:     "memory",
		Log:      b.log,
		Link:     link{},
		Resolve:  o.bus.targets,
		Strategy: selector.LeastRequest,
		MaxAsync: o.maxAsync,
	})
	return b
}

// String returns "memory".
func (b *memBroker) String() string { return "memory" }

// Stats returns the broker's publishing counters.
func (b *memBroker) Stats() brokerkit.Stats { return b.pub.Stats() }

// Connect puts the subscriptions made so far on the bus.
func (b *memBroker) Connect() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	switch b.state {
	case connected:
		return nil
	case disconnected:
		return broker.ErrDisconnected
	}
	b.state = connected
	for s := range b.subs {
		b.bus.add(s.sub)
	}
	return nil
}

// Disconnect removes the broker's subscriptions, waiting for their handlers
// and for asynchronous publications in flight.
func (b *memBroker) Disconnect() error {
	b.mu.Lock()
	if b.state == disconnected {
		b.mu.Unlock()
		return nil
	}
	b.state = disconnected
	subs := b.subs
	b.subs = map[*subscriber]struct{}{}
	b.mu.Unlock()
	for s := range subs {
		s.stop()
	}
	b.pub.Close()
	return nil
}

// Publish implements broker.Broker.
func (b *memBroker) Publish(ctx context.Context, topic string, msg *broker.Message, opts ...broker.PublishOption) error {
	return b.pub.Publish(ctx, topic, msg, opts)
}

// Subscribe implements broker.Broker. The subscription receives messages
// once the broker is connected.
func (b *memBroker) Subscribe(topic string, h broker.Handler, opts ...broker.SubscribeOption) (broker.Subscriber, error) {
	sub, err := engine.Subscribe(b.log, topic, h, opts)
	if err != nil {
		return nil, err
	}
	s := &subscriber{b: b, sub: sub}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.state == disconnected {
		return nil, broker.ErrDisconnected
	}
	b.subs[s] = struct{}{}
	if b.state == connected {
		b.bus.add(s.sub)
	}
	return s, nil
}

type subscriber struct {
	b    *memBroker
	sub  *engine.Subscription
	once sync.Once
}

func (s *subscriber) Topic() string { return s.sub.Topic }

func (s *subscriber) Unsubscribe() error {
	s.b.mu.Lock()
	delete(s.b.subs, s)
	s.b.mu.Unlock()
	s.stop()
	return nil
}

func (s *subscriber) stop() {
	s.once.Do(func() {
		s.b.bus.remove(s.sub)
		s.sub.Close()
	})
}

// link hands each message to the subscription as its own copy, with the
// publisher's outgoing metadata as the handler's incoming metadata.
type link struct{}

func (link) Deliver(ctx context.Context, t *engine.Target, msgs []engine.Outgoing, out []error) error {
	sub := t.Handle.(*engine.Subscription)
	in := make([]engine.Inbound, len(msgs))
	for i := range msgs {
		m, d := &msgs[i], &in[i]
		d.Msg = broker.Message{
			ID:      m.Msg.ID,
			Topic:   m.Msg.Topic,
			Header:  maps.Clone(m.Msg.Header),
			Body:    bytes.Clone(m.Msg.Body),
			Attempt: m.Attempt,
		}
		d.Deadline = m.Deadline
		if md, ok := metadata.FromOutgoingContext(m.Ctx); ok && md.Len() > 0 {
			d.MD = md
		}
	}
	sub.Deliver(ctx, in)
	for i := range in {
		out[i] = in[i].Err
	}
	return nil
}
