package broker

import (
	"time"

	"github.com/protoc-gen-micro/micro/internal/brokerkit"
)

// PublishOption configures a publication.
type PublishOption func(*brokerkit.PublishOptions)

// WithAsync makes Publish return once the message is accepted instead of once
// it is acknowledged. onError, when not nil, receives the *PublishError of
// a publication that some target did not acknowledge, or the error that
// stopped it; it runs on the broker's goroutine and must not block.
// Without it such errors are logged with slog.
func WithAsync(onError func(error)) PublishOption {
	return func(o *brokerkit.PublishOptions) { o.Async, o.OnError = true, onError }
}

// WithFailFast makes a delivery fail at once with ErrBusy when its target is at
// capacity (after trying the other members of a queue group) instead of
// waiting for room until the deadline.
func WithFailFast() PublishOption { return func(o *brokerkit.PublishOptions) { o.FailFast = true } }

// WithRequireSubscribers makes publishing to a topic without subscribers fail
// with ErrNoSubscribers.
func WithRequireSubscribers() PublishOption {
	return func(o *brokerkit.PublishOptions) { o.RequireSubscribers = true }
}

// WithAttempts bounds how many times the message is delivered to one target
// whose handler fails (n ≥ 1; 1 means no redelivery).
func WithAttempts(n int) PublishOption { return func(o *brokerkit.PublishOptions) { o.Attempts = n } }

// WithBackoff sets the wait before the first redelivery and its cap; each
// redelivery waits twice as long as the one before.
func WithBackoff(initial, max time.Duration) PublishOption {
	return func(o *brokerkit.PublishOptions) { o.Backoff, o.MaxBackoff = initial, max }
}

// WithTimeout sets the deadline of a publication whose context has none.
func WithTimeout(d time.Duration) PublishOption {
	return func(o *brokerkit.PublishOptions) { o.Timeout = d }
}

// WithContentType sets the codec by name ("proto", the default, or "json"):
// the typed Publisher encodes with it, and Publish records it in the
// header of a message without a content type.
func WithContentType(name string) PublishOption {
	return func(o *brokerkit.PublishOptions) { o.ContentType = name }
}

// WithKey routes messages with the same key to the same member of each queue
// group while the group's members stay the same (rendezvous hashing), e.g.
// all events of one order to one worker.
func WithKey(k string) PublishOption { return func(o *brokerkit.PublishOptions) { o.Key = k } }

// SubscribeOption configures a subscription.
type SubscribeOption func(*brokerkit.SubscribeOptions)

// WithQueue joins the subscription to a queue group: each message goes to one
// member of the group.
func WithQueue(group string) SubscribeOption {
	return func(o *brokerkit.SubscribeOptions) { o.Queue = group }
}

// WithConcurrency sets how many handler calls may run at once (n ≥ 1). Order
// is kept only with 1, the default.
func WithConcurrency(n int) SubscribeOption {
	return func(o *brokerkit.SubscribeOptions) { o.Concurrency = n }
}

// WithMaxInFlight bounds the deliveries accepted at once, running or waiting for
// a handler; a subscription beyond it refuses more and publishers back off
// (or fail with ErrBusy under WithFailFast).
func WithMaxInFlight(n int) SubscribeOption {
	return func(o *brokerkit.SubscribeOptions) { o.MaxInFlight = n }
}

// WithManualAck leaves acknowledging to the handler: a message counts as
// processed once the handler calls msg.Ack, and is redelivered after
// msg.Nack, a handler error, or when its deadline passes unacknowledged.
// Ack may be called after the handler returns, from another goroutine; the
// delivery holds its place in WithMaxInFlight until then.
func WithManualAck() SubscribeOption {
	return func(o *brokerkit.SubscribeOptions) { o.ManualAck = true }
}
