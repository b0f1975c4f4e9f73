// Package nats is a broker.Broker over a NATS server: core NATS for plain
// topics, JetStream for the topics configured durable.
//
// Select it with a blank import and MICRO_BROKER=nats (the address, from
// MICRO_BROKER_ADDRESS, defaults to nats://127.0.0.1:4222):
//
//	import _ "github.com/protoc-gen-micro/micro/plugins/nats"
//
// or build one with NewBroker and hand it to service.WithBroker; JetStream
// topics need WithJetStream, which only NewBroker takes.
//
// # Subjects, headers and bodies
//
// A topic is a NATS subject; a queue group (broker.WithQueue) is a NATS
// queue group. The body is the message's bytes as the codec encoded them;
// application headers (content-type among them) travel as NATS headers of
// the same names, except that names starting with "Micro-" or "Nats-" are
// reserved. Micro-Id carries the message ID, Micro-Timeout the time the
// publisher had left (decimal nanoseconds) and Micro-Md-KEY each value of
// its outgoing metadata (package metadata): the handler's context carries
// that metadata as incoming metadata, and a deadline of the timeout from
// when the message arrived.
//
// # What acknowledgement means
//
// Core NATS, the default for every topic: Publish returns once the server
// has accepted the message, that is once a PING sent after it is answered
// (a flush); nothing waits for the subscribers. Delivery is at most once: a
// subscription that is not connected when the message passes misses it,
// and a handler error (or Nack) is logged, not redelivered. With
// broker.WithRequireSubscribers the message is sent as a request instead,
// marked with a Micro-Answer header: each subscription answers such a
// request (and no other) as it receives it, and Publish returns once
// one has, or fails with broker.ErrNoSubscribers when the server reports no
// responders. broker.WithAsync returns once the message is in the
// connection's buffer.
//
// JetStream (topics under a WithJetStream prefix): Publish returns once the
// stream has stored the message (the server's PubAck). Delivery is at
// least once: the handler returning nil (or Message.Ack under
// broker.WithManualAck) acknowledges it; an error (or Nack) negatively
// acknowledges it and the server delivers it again after WithBackOff's
// wait; a message not settled within WithAckWait is delivered again too.
// The WithMaxDeliver-th failed delivery (3 by default) is the last: the
// message is then published to the dead-letter subject and terminated. A
// durable consumer keeps its place while its subscribers are away and
// receives what was stored meanwhile when one comes back. Publication
// with broker.WithRequireSubscribers fails with broker.ErrNoSubscribers
// when the stream has no consumer for the topic. broker.WithAsync returns
// once the message is sent; a failed PubAck goes to its callback.
//
// Neither engine knows broker.WithAttempts, WithBackoff, WithFailFast or
// WithKey: they are ignored (JetStream's redelivery is set on the
// subscriber's broker with WithMaxDeliver and WithBackOff).
//
// # JetStream names
//
// The stream of prefix P is named MICRO_P (P upper-cased, '.' and '-' as
// '_') and holds subjects P and P.>; it is created, or updated, when the
// broker first uses it. A subscription in queue group G to topic T is the
// durable consumer G_T_HASH (T with '.' as '_', HASH 8 hex digits of G and
// T, so that names cannot collide); a subscription without a group is the
// durable consumer sub_NAME_T_HASH when the broker has a name (WithName),
// and an ephemeral consumer otherwise, which the server forgets soon after
// its subscriber leaves. A consumer delivers only what is stored after it
// was first created. Dead letters of topic T go to subject dlq.T, stored
// in the stream MICRO_DLQ (subjects dlq.>) with the original headers and
// Micro-Dead-Reason, the last handler error; subscribe to dlq.T to read them.
//
// # Bounds
//
//   - Per subscription: broker.WithMaxInFlight (2048 by default) bounds the
//     messages held for its handlers. On core NATS it is the pending-message
//     limit of the NATS subscription (minus its concurrency), with
//     WithMaxPendingBytes (64 MiB by default) as the byte limit; NATS drops
//     what is beyond them and logs a slow consumer. On JetStream it is the
//     consumer's MaxAckPending: the server holds the rest back.
//   - Message size: the server's max_payload (1 MiB by default), headers
//     included; Publish fails with nats.ErrMaxPayload beyond it.
//   - Reconnect buffer: while the connection is re-established, a core
//     publication is held in the connection's buffer and Publish waits for
//     the server until its deadline (the message is sent on reconnecting
//     even if Publish gave up); once the buffer holds WithReconnectBufSize
//     bytes (8 MiB by default), Publish fails at once with
//     nats.ErrReconnectBufExceeded. The broker reconnects for ever unless
//     WithMaxReconnects says otherwise, and subscribes again on reconnecting.
package nats

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	natsgo "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nuid"
	"github.com/protoc-gen-micro/micro/internal/brokerkit"
	"github.com/protoc-gen-micro/micro/internal/brokerplugin"
	"github.com/protoc-gen-micro/micro/internal/mdctx"
	"github.com/protoc-gen-micro/micro/runtime/broker"
)

func init() {
	brokerplugin.Register("nats", func(address string, log *slog.Logger) (broker.Broker, error) {
		if address == "" {
			address = DefaultURL
		}
		return NewBroker(WithURL(address), WithLogger(log)), nil
	})
}

type state int

const (
	idle state = iota
	connected
	disconnected
)

// natsBroker is the broker. Its connection is made on first use (Connect,
// Publish or Subscribe) and closed by Disconnect.
type natsBroker struct {
	o options

	mu      sync.Mutex
	state   state
	nc      *natsgo.Conn
	js      jetstream.JetStream
	streams map[string]bool // streams created or updated
	subs    map[*subscriber]struct{}
	async   sync.WaitGroup // JetStream asynchronous publications in flight
}

// NewBroker returns a broker for the NATS server WithURL names (DefaultURL
// by default). It connects on first use.
func NewBroker(opts ...Option) broker.Broker {
	o := options{
		reconnectBufSize: defaultReconnectBufSize,
		maxPendingBytes:  defaultMaxPendingBytes,
		maxDeliver:       defaultMaxDeliver,
		ackWait:          defaultAckWait,
		backOff:          defaultBackOff,
	}
	for _, opt := range opts {
		opt(&o)
	}
	if o.logger == nil {
		o.logger = slog.Default()
	}
	if len(o.urls) == 0 {
		o.urls = []string{DefaultURL}
	}
	o.maxDeliver = max(o.maxDeliver, 1)
	if o.ackWait <= 0 {
		o.ackWait = defaultAckWait
	}
	if len(o.backOff) == 0 {
		o.backOff = defaultBackOff
	}
	if o.maxPendingBytes <= 0 {
		o.maxPendingBytes = defaultMaxPendingBytes
	}
	return &natsBroker{o: o, streams: map[string]bool{}, subs: map[*subscriber]struct{}{}}
}

// String returns "nats".
func (b *natsBroker) String() string { return "nats" }

// connLocked returns the connection, making it first if need be.
func (b *natsBroker) connLocked() (*natsgo.Conn, error) {
	switch {
	case b.state == disconnected:
		return nil, broker.ErrDisconnected
	case b.nc != nil:
		return b.nc, nil
	}
	nopts := []natsgo.Option{
		natsgo.MaxReconnects(defaultMaxReconnects),
		natsgo.ReconnectBufSize(b.o.reconnectBufSize),
		natsgo.ErrorHandler(func(_ *natsgo.Conn, s *natsgo.Subscription, err error) {
			subject := ""
			if s != nil {
				subject = s.Subject
			}
			b.o.logger.Warn("broker/nats: asynchronous error", "subject", subject, "err", err)
		}),
	}
	if b.o.name != "" {
		nopts = append(nopts, natsgo.Name(b.o.name))
	}
	nopts = append(nopts, b.o.nats...)
	nc, err := natsgo.Connect(strings.Join(b.o.urls, ","), nopts...)
	if err != nil {
		return nil, fmt.Errorf("broker/nats: connecting to %s: %w", strings.Join(b.o.urls, ","), err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("broker/nats: %w", err)
	}
	b.nc, b.js = nc, js
	return nc, nil
}

func (b *natsBroker) conn() (*natsgo.Conn, jetstream.JetStream, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	nc, err := b.connLocked()
	return nc, b.js, err
}

// Connect connects to the server and starts the subscriptions made so far.
func (b *natsBroker) Connect() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if _, err := b.connLocked(); err != nil {
		return err
	}
	if b.state == connected {
		return nil
	}
	b.state = connected
	for s := range b.subs {
		if err := s.start(); err != nil {
			return err
		}
	}
	return nil
}

// Disconnect stops the subscriptions, waiting for their handler calls and
// for asynchronous JetStream publications, and closes the connection.
func (b *natsBroker) Disconnect() error {
	b.mu.Lock()
	if b.state == disconnected {
		b.mu.Unlock()
		return nil
	}
	b.state = disconnected
	subs := make([]*subscriber, 0, len(b.subs))
	for s := range b.subs {
		subs = append(subs, s)
	}
	nc := b.nc
	b.mu.Unlock()
	var errs []error
	for _, s := range subs {
		errs = append(errs, s.Unsubscribe())
	}
	b.async.Wait()
	if nc != nil {
		if err := nc.FlushTimeout(time.Second); err != nil && !errors.Is(err, natsgo.ErrConnectionClosed) {
			b.o.logger.Debug("broker/nats: flushing before closing", "err", err)
		}
		nc.Close()
	}
	return errors.Join(errs...)
}

// jsPrefix returns the JetStream prefix topic falls under, if any.
func (b *natsBroker) jsPrefix(topic string) (string, bool) {
	for _, p := range b.o.jetStream {
		if topic == p || strings.HasPrefix(topic, p+".") {
			return p, true
		}
	}
	return "", false
}

// streamName is the stream of prefix p.
func streamName(p string) string {
	return "MICRO_" + strings.NewReplacer(".", "_", "-", "_").Replace(strings.ToUpper(p))
}

// Dead letters.
const (
	deadLetterStream = "MICRO_DLQ"
	deadLetterPrefix = "dlq."
)

// ensureStream creates or updates the stream of prefix p once per broker.
func (b *natsBroker) ensureStream(ctx context.Context, js jetstream.JetStream, name string, subjects ...string) error {
	b.mu.Lock()
	done := b.streams[name]
	b.mu.Unlock()
	if done {
		return nil
	}
	_, err := js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{Name: name, Subjects: subjects, Storage: jetstream.FileStorage})
	if err != nil {
		return fmt.Errorf("broker/nats: stream %s: %w", name, err)
	}
	b.mu.Lock()
	b.streams[name] = true
	b.mu.Unlock()
	return nil
}

// Publish sends msg to topic: see the package documentation for when it
// returns.
func (b *natsBroker) Publish(ctx context.Context, topic string, msg *broker.Message, opts ...broker.PublishOption) error {
	if err := brokerkit.ValidateTopic(topic); err != nil {
		return err
	}
	if msg == nil {
		return fmt.Errorf("broker: publish to %q: nil message", topic)
	}
	nc, js, err := b.conn()
	if err != nil {
		return err
	}
	o := brokerkit.NewPublishOptions(opts...)
	if msg.ID == "" {
		msg.ID = nuid.Next()
	}
	msg.Topic = topic
	msg.Header = brokerkit.WithContentType(msg.Header, o.ContentType)
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, o.Timeout)
		defer cancel()
	}
	deadline, _ := ctx.Deadline()
	w := wireMsg{id: msg.ID, header: msg.Header, timeout: max(time.Until(deadline), 1)}
	h, err := encodeHeader(&w, func(f func(k, v string)) { mdctx.RangeOutgoing(ctx, f) })
	if err != nil {
		return fmt.Errorf("broker/nats: publish %s to %q: %w", msg.ID, topic, err)
	}
	nm := &natsgo.Msg{Subject: topic, Header: h, Data: msg.Body}
	if p, ok := b.jsPrefix(topic); ok {
		err = b.publishJetStream(ctx, js, p, nm, msg, &o)
	} else {
		err = publishCore(ctx, nc, nm, &o)
	}
	if err != nil {
		return fmt.Errorf("broker/nats: publish %s to %q: %w", msg.ID, topic, err)
	}
	return nil
}

func publishCore(ctx context.Context, nc *natsgo.Conn, nm *natsgo.Msg, o *brokerkit.PublishOptions) error {
	if o.RequireSubscribers {
		nm.Header.Set(hdrAnswer, "1")
		_, err := nc.RequestMsgWithContext(ctx, nm)
		if errors.Is(err, natsgo.ErrNoResponders) {
			return broker.ErrNoSubscribers
		}
		return err
	}
	if err := nc.PublishMsg(nm); err != nil {
		return err
	}
	if o.Async {
		return nil
	}
	return nc.FlushWithContext(ctx)
}

func (b *natsBroker) publishJetStream(ctx context.Context, js jetstream.JetStream, prefix string, nm *natsgo.Msg, msg *broker.Message, o *brokerkit.PublishOptions) error {
	stream := streamName(prefix)
	if err := b.ensureStream(ctx, js, stream, prefix, prefix+".>"); err != nil {
		return err
	}
	if o.RequireSubscribers {
		if ok, err := hasConsumer(ctx, js, stream, nm.Subject); err != nil {
			return err
		} else if !ok {
			return broker.ErrNoSubscribers
		}
	}
	nm.Header.Set(hdrMsgID, msg.ID)
	if !o.Async {
		_, err := js.PublishMsg(ctx, nm)
		return err
	}
	f, err := js.PublishMsgAsync(nm)
	if err != nil {
		return err
	}
	onError := o.OnError
	topic, id := msg.Topic, msg.ID
	deadline, _ := ctx.Deadline()
	b.async.Add(1)
	go func() {
		defer b.async.Done()
		t := time.NewTimer(time.Until(deadline))
		defer t.Stop()
		var err error
		select {
		case <-f.Ok():
			return
		case err = <-f.Err():
		case <-t.C:
			err = context.DeadlineExceeded
		}
		err = brokerkit.NewPublishError(topic, id, 1, map[string]error{"stream " + stream: err})
		if onError != nil {
			onError(err)
		} else {
			b.o.logger.Warn("broker/nats: asynchronous publication failed", "topic", topic, "id", id, "err", err)
		}
	}()
	return nil
}

// hasConsumer reports whether stream has a consumer of subject.
func hasConsumer(ctx context.Context, js jetstream.JetStream, stream, subject string) (bool, error) {
	s, err := js.Stream(ctx, stream)
	if err != nil {
		return false, err
	}
	l := s.ListConsumers(ctx)
	found := false
	for ci := range l.Info() {
		if ci.Config.FilterSubject == subject || slices.Contains(ci.Config.FilterSubjects, subject) {
			found = true
		}
	}
	if err := l.Err(); err != nil {
		return false, err
	}
	return found, nil
}
