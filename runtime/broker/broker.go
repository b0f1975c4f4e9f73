// Package broker is publish/subscribe between services: a service publishes
// a message to a topic and every interested service hears it, or exactly one
// worker of a pool does.
//
// Broker is the seam. Two implementations come with the runtime and behave
// the same way, checked by one shared suite (package brokertest):
//
//   - broker/direct, the default: no infrastructure. Subscribers register in
//     the service registry under their topic and publishers deliver straight
//     to them over the RPC transport.
//   - broker/memory: within one process, for tests and single-process use.
//
// The module github.com/protoc-gen-micro/micro/plugins/nats adds a broker
// over NATS (core and JetStream), selected with MICRO_BROKER=nats; it runs
// the same suite, skipping by name what its engines do not promise (its
// Publish returns once the server, or the stream, has the message).
//
// Typed helpers sit on top so that user code never handles bytes:
//
//	pub := broker.NewPublisher[*orderpb.OrderCreated](b, "orders.created")
//	err := pub.Publish(ctx, &orderpb.OrderCreated{Id: "42"})
//
//	_, err = broker.Subscribe(b, "orders.created",
//		func(ctx context.Context, m *orderpb.OrderCreated) error { return bill(ctx, m) },
//		broker.WithQueue("billing"))
//
// # Semantics
//
// Who receives a message: a subscription without a queue group receives
// every message published to its topic; the subscriptions that share a queue
// group (WithQueue) receive each message once between them, at one member
// chosen by the publisher's strategy (by default the member with fewer
// deliveries in flight of two picked at random). Every group and every
// group-less subscription is one target of a publication. A publication's
// targets are the subscriptions its publisher knows of when it publishes:
// a new subscription becomes known as the registry reports it (at once
// within a process; after the registry's propagation, such as an mDNS
// announcement, across hosts) and receives only what is published after.
//
// When Publish returns: by default once every target has acknowledged the
// message (its handler returned nil, or called Ack under WithManualAck) or has
// definitively failed, within ctx's deadline (30 s when ctx has none; see
// WithTimeout). The error is nil when every target acknowledged, and otherwise a
// *PublishError naming the topic, the message ID and each target that did
// not acknowledge, with why. Nothing undelivered is dropped silently.
//
// Retries: a handler error (or a Nack) means "not processed": the message is
// delivered again, up to 3 times in all (WithAttempts) with a doubling wait
// between attempts (100 ms, then 200 ms, up to 2 s; WithBackoff). For a
// queue group the next attempt prefers another member. A member that cannot
// be reached, has left, or is at capacity is skipped for another member
// without counting an attempt; a group-less subscription that cannot be
// reached spends its attempts like a failing handler, then is reported. A
// delivery whose outcome is unknown (the connection broke after it was
// sent) counts as an attempt and is sent again: delivery is at least once,
// and a handler that must not act twice deduplicates by Message.ID.
//
// Asynchronous publishing (WithAsync) returns once the message is accepted:
// its targets are known and one of the broker's bounded asynchronous slots
// is held. Delivery then proceeds exactly as above, bounded by the same
// deadline but not cancelled with ctx; whatever is undelivered in the end is
// passed to WithAsync's callback (logged with slog when it is nil) instead of
// returned. Nothing is written to disk: an async message still in flight
// when the publishing process dies is lost. Disconnect waits for async
// deliveries in flight.
//
// Ordering: messages published synchronously, one after the other, by one
// goroutine to a subscription without a queue group whose concurrency (WithConcurrency) is 1
// reach its handler in publish order; a redelivered message is delivered
// again before the next one is published. Nothing else is ordered: not
// messages from different publishers, not asynchronous publications, and
// not messages to a queue group, whose members run in parallel.
//
// No subscribers: publishing to a topic nobody subscribes to succeeds and
// is logged (broker/direct logs the first per topic at INFO);
// WithRequireSubscribers makes it fail with ErrNoSubscribers.
//
// Backpressure: a subscription runs at most its concurrency (WithConcurrency) in handlers at once
// (1 by default) and accepts at most WithMaxInFlight deliveries, running or
// waiting for a handler (2048 by default); it refuses more. A publisher keeps
// no more than a subscription's WithMaxInFlight messages in flight to it and
// holds the rest back. A publisher that meets a full subscription tries
// another member of a queue group, then waits for room until its deadline;
// with WithFailFast it fails at once with ErrBusy instead. Asynchronous
// publications in flight are bounded per broker too (by default 8192
// messages and 64 MiB of bodies: a message holds one slot per 8 KiB), and
// WithAsync publishing waits, or fails fast, beyond them. So every queue on the
// path is bounded: per subscription by WithMaxInFlight, per publisher by the
// goroutines publishing synchronously plus the asynchronous slots.
//
// Metadata and deadlines: the outgoing metadata of the publisher's context
// (package metadata) and its deadline travel with the message; the handler's
// context carries them as incoming metadata and as its deadline, as for an
// RPC. (A message that travelled in a batch with later deadlines reports
// its own deadline exactly, but its context may be cancelled up to 100 ms
// after it.) Cancelling the publisher's context stops Publish waiting; it
// does not recall a message already sent.
//
// broker is the contract and the typed helpers; it neither finds subscribers
// nor moves bytes. Encoding is package codec's: protobuf by default, JSON on
// request, named in the message's content-type header.
package broker

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/protoc-gen-micro/micro/internal/brokerkit"
)

// Broker publishes messages to topics and delivers them to subscriptions.
type Broker interface {
	// Connect makes the broker's subscriptions reachable; subscriptions made
	// before Connect start receiving then. Publish needs no Connect.
	Connect() error
	// Disconnect removes the broker's subscriptions, lets the deliveries in
	// flight (including asynchronous publications) finish within their
	// deadlines, and releases the broker's resources. A broker cannot be
	// connected again.
	Disconnect() error
	// Publish delivers msg to every subscription of topic, as the package
	// documentation describes. It sets msg.ID when empty and msg.Topic;
	// the broker owns msg until delivery ends, so do not modify it.
	Publish(ctx context.Context, topic string, msg *Message, opts ...PublishOption) error
	// Subscribe calls h with every message published to topic, or with its
	// share of them when the subscription joins a queue group.
	Subscribe(topic string, h Handler, opts ...SubscribeOption) (Subscriber, error)
	// String names the implementation, e.g. "direct" or "memory".
	String() string
}

// Handler handles one delivered message. Returning nil acknowledges it
// (unless the subscription uses WithManualAck); an error means "not processed"
// and the message is delivered again, up to the publisher's WithAttempts.
// ctx carries the publisher's metadata and deadline.
type Handler func(ctx context.Context, msg *Message) error

// Subscriber is a subscription.
type Subscriber interface {
	// Topic returns the subscribed topic.
	Topic() string
	// Unsubscribe stops the subscription: publishers stop choosing it,
	// deliveries that still reach it are refused (a queue group's go to
	// another member), and it returns once no handler call of it is
	// running.
	Unsubscribe() error
}

// Message is what a topic carries.
type Message struct {
	// ID identifies the message; Publish sets it when empty. Redeliveries
	// of a message keep its ID.
	ID string
	// Topic is set by Publish.
	Topic string
	// Header holds application headers; keys are case-sensitive. Publish
	// does not modify it. The "content-type" header names the codec of
	// the body, as "application/" + codec name ("application/json"); a
	// message without it is protobuf.
	Header map[string]string
	// Body is the encoded payload.
	Body []byte
	// Attempt is 1 on a message's first delivery to a target, 2 on its
	// first redelivery, and so on. Brokers set it on delivery.
	Attempt int

	ack brokerkit.Acknowledger
}

// Ack acknowledges a message delivered to a WithManualAck subscription. It
// returns ErrSettled if the message was already acknowledged or refused, or
// its delivery has ended (its deadline passed). On any other message it
// does nothing and returns nil: there the handler's return value decides.
func (m *Message) Ack() error {
	if m.ack == nil {
		return nil
	}
	return m.ack.Ack()
}

// Nack refuses a message delivered to a WithManualAck subscription: it is
// delivered again, as after a handler error. reason is reported to the
// publisher if no later attempt succeeds. Like Ack, it does nothing on other
// messages.
func (m *Message) Nack(reason error) error {
	if m.ack == nil {
		return nil
	}
	return m.ack.Nack(reason)
}

func init() {
	brokerkit.SetAcknowledger = func(m any, a brokerkit.Acknowledger) { m.(*Message).ack = a }
	brokerkit.NewPublishError = func(topic, id string, targets int, failed map[string]error) error {
		return &PublishError{Topic: topic, ID: id, Failed: failed, targets: targets}
	}
}

var (
	// ErrNoSubscribers is returned, wrapped, by a Publish with
	// WithRequireSubscribers to a topic that has none.
	ErrNoSubscribers = errors.New("broker: no subscribers")
	// ErrBusy is the cause of a delivery refused by a subscription at
	// capacity (WithMaxInFlight); a publisher sees it with WithFailFast, or when its
	// deadline passes while it waits.
	ErrBusy = errors.New("broker: subscriber at capacity")
	// ErrSettled is returned by Ack and Nack on a message already settled.
	ErrSettled = errors.New("broker: message already settled or its delivery ended")
	// ErrDisconnected is returned by a broker after Disconnect.
	ErrDisconnected = errors.New("broker: disconnected")
)

// PublishError reports a publication that some targets did not
// acknowledge. errors.Is and errors.As see each target's error.
type PublishError struct {
	// Topic and ID identify the message.
	Topic, ID string
	// Failed holds the last error of each target that did not acknowledge,
	// keyed by a description of the target: `subscriber "ID" at ADDRESS`
	// or `queue group "NAME"`.
	Failed map[string]error

	targets int // how many targets the publication had
}

func (e *PublishError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "broker: publish %s to %q: %d of %d targets did not acknowledge: ", e.ID, e.Topic, len(e.Failed), max(e.targets, len(e.Failed)))
	for i, t := range slices.Sorted(maps.Keys(e.Failed)) {
		if i > 0 {
			b.WriteString("; ")
		}
		fmt.Fprintf(&b, "%s: %v", t, e.Failed[t])
	}
	return b.String()
}

// Unwrap returns each target's error, ordered by target.
func (e *PublishError) Unwrap() []error {
	out := make([]error, 0, len(e.Failed))
	for _, t := range slices.Sorted(maps.Keys(e.Failed)) {
		out = append(out, e.Failed[t])
	}
	return out
}
