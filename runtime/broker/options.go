package broker

import (
	"sync"
	"time"
)

// Publish defaults.
const (
	defaultAttempts   = 3
	defaultBackoff    = 100 * time.Millisecond
	defaultMaxBackoff = 2 * time.Second
	defaultTimeout    = 30 * time.Second
)

// Subscribe defaults.
const (
	defaultConcurrency = 1
	defaultMaxInFlight = 2048
)

// PublishOptions configures one publication. Broker implementations build
// it with NewPublishOptions.
type PublishOptions struct {
	// Async returns from Publish once the message is accepted; OnError
	// then receives what is undelivered (slog when nil).
	Async   bool
	OnError func(error)
	// FailFast fails a delivery at once with ErrBusy when its target is at
	// capacity, instead of waiting for room.
	FailFast bool
	// RequireSubscribers fails a publication to a topic without
	// subscribers with ErrNoSubscribers.
	RequireSubscribers bool
	// Attempts bounds the deliveries of the message to one target when its
	// handler fails; 3 by default.
	Attempts int
	// Backoff is the wait before the first redelivery, doubled for each
	// next one up to MaxBackoff.
	Backoff, MaxBackoff time.Duration
	// Timeout is the deadline of a publication whose context has none.
	Timeout time.Duration
	// ContentType names the codec the typed Publisher encodes with; Publish
	// records it in the header of a message that has none.
	ContentType string
	// Key routes messages with the same key to the same member of each
	// queue group while the group's members stay the same.
	Key string
	// Header is added to the headers of messages sent by the typed
	// Publisher.
	Header map[string]string
}

// PublishOption sets a publish option.
type PublishOption func(*PublishOptions)

// publishOptions recycles the PublishOptions that NewPublishOptions fills:
// handing one to option functions makes it escape to the heap, and this
// runs on every Publish.
var publishOptions = sync.Pool{New: func() any { return new(PublishOptions) }}

var defaultPublishOptions = PublishOptions{Attempts: defaultAttempts, Backoff: defaultBackoff, MaxBackoff: defaultMaxBackoff, Timeout: defaultTimeout}

// NewPublishOptions returns the options opts set, defaults filled in.
func NewPublishOptions(opts ...PublishOption) PublishOptions {
	if len(opts) == 0 {
		return defaultPublishOptions
	}
	p := publishOptions.Get().(*PublishOptions)
	*p = defaultPublishOptions
	for _, opt := range opts {
		opt(p)
	}
	o := *p
	publishOptions.Put(p) // not cleared: the next use overwrites it whole
	if o.Attempts < 1 {
		o.Attempts = 1
	}
	if o.MaxBackoff < o.Backoff {
		o.MaxBackoff = o.Backoff
	}
	if o.Timeout <= 0 {
		o.Timeout = defaultTimeout
	}
	return o
}

// Async makes Publish return once the message is accepted instead of once
// it is acknowledged. onError, when not nil, receives the *PublishError of
// a publication that some target did not acknowledge, or the error that
// stopped it; it runs on the broker's goroutine and must not block.
// Without it such errors are logged with slog.
func WithAsync(onError func(error)) PublishOption {
	return func(o *PublishOptions) { o.Async, o.OnError = true, onError }
}

// FailFast makes a delivery fail at once with ErrBusy when its target is at
// capacity (after trying the other members of a queue group) instead of
// waiting for room until the deadline.
func WithFailFast() PublishOption { return func(o *PublishOptions) { o.FailFast = true } }

// RequireSubscribers makes publishing to a topic without subscribers fail
// with ErrNoSubscribers.
func WithRequireSubscribers() PublishOption {
	return func(o *PublishOptions) { o.RequireSubscribers = true }
}

// Attempts bounds how many times the message is delivered to one target
// whose handler fails (n ≥ 1; 1 means no redelivery).
func WithAttempts(n int) PublishOption { return func(o *PublishOptions) { o.Attempts = n } }

// Backoff sets the wait before the first redelivery and its cap; each
// redelivery waits twice as long as the one before.
func WithBackoff(initial, max time.Duration) PublishOption {
	return func(o *PublishOptions) { o.Backoff, o.MaxBackoff = initial, max }
}

// Timeout sets the deadline of a publication whose context has none.
func WithTimeout(d time.Duration) PublishOption { return func(o *PublishOptions) { o.Timeout = d } }

// ContentType sets the codec by name ("proto", the default, or "json"):
// the typed Publisher encodes with it, and Publish records it in the
// header of a message without a content type.
func WithContentType(name string) PublishOption {
	return func(o *PublishOptions) { o.ContentType = name }
}

// Key routes messages with the same key to the same member of each queue
// group while the group's members stay the same (rendezvous hashing), e.g.
// all events of one order to one worker.
func WithKey(k string) PublishOption { return func(o *PublishOptions) { o.Key = k } }

// WithHeader adds a header to the messages the typed Publisher sends.
func WithHeader(key, value string) PublishOption {
	return func(o *PublishOptions) {
		h := make(map[string]string, len(o.Header)+1)
		for k, v := range o.Header {
			h[k] = v
		}
		h[key] = value
		o.Header = h
	}
}

// SubscribeOptions configures a subscription. Broker implementations build
// it with NewSubscribeOptions.
type SubscribeOptions struct {
	// Queue is the queue group; "" for none.
	Queue string
	// Concurrency bounds the handler calls running at once;
	// 1 by default.
	Concurrency int
	// MaxInFlight bounds the deliveries accepted at once, running or
	// waiting for a handler; beyond it publishers are told to back off.
	// 2048 by default, and never below Concurrency.
	MaxInFlight int
	// ManualAck leaves acknowledging to the handler (Message.Ack).
	ManualAck bool
}

// SubscribeOption sets a subscribe option.
type SubscribeOption func(*SubscribeOptions)

// NewSubscribeOptions returns the options opts set, defaults filled in.
func NewSubscribeOptions(opts ...SubscribeOption) SubscribeOptions {
	o := SubscribeOptions{Concurrency: defaultConcurrency, MaxInFlight: defaultMaxInFlight}
	for _, opt := range opts {
		opt(&o)
	}
	if o.Concurrency < 1 {
		o.Concurrency = 1
	}
	if o.MaxInFlight < o.Concurrency {
		o.MaxInFlight = o.Concurrency
	}
	return o
}

// Queue joins the subscription to a queue group: each message goes to one
// member of the group.
func WithQueue(group string) SubscribeOption { return func(o *SubscribeOptions) { o.Queue = group } }

// Concurrency sets how many handler calls may run at once (n ≥ 1). Order
// is kept only with 1, the default.
func WithConcurrency(n int) SubscribeOption {
	return func(o *SubscribeOptions) { o.Concurrency = n }
}

// MaxInFlight bounds the deliveries accepted at once, running or waiting for
// a handler; a subscription beyond it refuses more and publishers back off
// (or fail with ErrBusy under FailFast).
func WithMaxInFlight(n int) SubscribeOption {
	return func(o *SubscribeOptions) { o.MaxInFlight = n }
}

// ManualAck leaves acknowledging to the handler: a message counts as
// processed once the handler calls msg.Ack, and is redelivered after
// msg.Nack, a handler error, or when its deadline passes unacknowledged.
// Ack may be called after the handler returns, from another goroutine; the
// delivery holds its place in MaxInFlight until then.
func WithManualAck() SubscribeOption { return func(o *SubscribeOptions) { o.ManualAck = true } }
