// Package brokerkit holds what the broker implementations share and users
// do not need: the content-type header, topic and queue name rules, and the
// hook that attaches an acknowledger to a delivered message.
package brokerkit

import (
	"fmt"
	"maps"
	"strings"
	"sync"
	"time"

	"github.com/protoc-gen-micro/micro/runtime/codec"
)

// HeaderContentType is the header naming the codec of a message's body, as
// "application/" + codec name; a message without it is protobuf.
const HeaderContentType = "content-type"

// ContentTypeOf returns the content-type header value for a codec name:
// "application/proto", "application/json".
func ContentTypeOf(codecName string) string { return "application/" + codecName }

// WithContentType returns a message's header h recording codecName (a
// PublishOptions.ContentType) when h has no content type yet. h is the
// caller's: a header that needs the entry is copied, never modified.
func WithContentType(h map[string]string, codecName string) map[string]string {
	if codecName == "" || h[HeaderContentType] != "" {
		return h
	}
	out := make(map[string]string, len(h)+1)
	maps.Copy(out, h)
	out[HeaderContentType] = ContentTypeOf(strings.ToLower(codecName))
	return out
}

// CodecOf returns the codec of a body whose content-type header is ct:
// protobuf when ct is empty.
func CodecOf(ct string) (codec.Codec, error) {
	if ct == "" {
		return codec.Proto, nil
	}
	name, ok := strings.CutPrefix(strings.ToLower(ct), "application/")
	if name == "x-protobuf" || name == "protobuf" {
		name = "proto"
	}
	if c, found := codec.Get(name); ok && found {
		return c, nil
	}
	return nil, fmt.Errorf("no codec for content type %q", ct)
}

// An Acknowledger settles a message delivered to a ManualAck subscription;
// Message.Ack and Message.Nack call it.
type Acknowledger interface {
	Ack() error
	Nack(reason error) error
}

// SetAcknowledger attaches a to m, a *broker.Message. Package broker sets it.
var SetAcknowledger func(m any, a Acknowledger)

// NewPublishError returns a *broker.PublishError: the publication of message
// id to topic had targets targets, and those in failed (keyed by their
// description) did not acknowledge. Package broker sets it.
var NewPublishError func(topic, id string, targets int, failed map[string]error) error

// Topic and queue group names: 1 to maxNameLen bytes of ASCII letters,
// digits, '.', '-' and '_', starting and ending with a letter or digit,
// without "..". They become part of registry names, which some registries
// (DNS-SD) restrict this way.
const maxNameLen = 128

// ValidateTopic reports whether topic is a valid topic name. Topics are
// exact names; there are no wildcards.
func ValidateTopic(topic string) error { return validateName("topic", topic) }

// ValidateQueue reports whether name is a valid queue group name.
func ValidateQueue(name string) error { return validateName("queue group", name) }

func validateName(what, s string) error {
	if s == "" || len(s) > maxNameLen {
		return fmt.Errorf("broker: %s %q: must be 1 to %d bytes", what, s, maxNameLen)
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		alnum := 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9'
		switch {
		case alnum:
		case (c == '.' || c == '-' || c == '_') && i > 0 && i < len(s)-1:
			if c == '.' && s[i+1] == '.' {
				return fmt.Errorf("broker: %s %q: empty element between dots", what, s)
			}
		default:
			return fmt.Errorf("broker: %s %q: byte %d (%q) not allowed: use letters, digits, '.', '-', '_', starting and ending with a letter or digit", what, s, i, c)
		}
	}
	return nil
}

// Stats are a broker's counters since it was created. The built-in
// brokers provide them with a Stats() Stats method.
type Stats struct {
	// Published counts Publish calls that were accepted.
	Published uint64
	// NoSubscribers counts publications to a topic without subscribers.
	NoSubscribers uint64
	// Delivered counts targets that acknowledged a message.
	Delivered uint64
	// Redelivered counts deliveries sent again after a failed attempt.
	Redelivered uint64
	// Undelivered counts targets that never acknowledged a message.
	Undelivered uint64
	// Busy counts deliveries refused by a subscription at capacity.
	Busy uint64
}

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

// PublishOptions are the settings of one publication, which
// broker.PublishOption functions set. Implementations build them with
// NewPublishOptions.
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
}

// publishOptions recycles the PublishOptions that NewPublishOptions fills:
// handing one to option functions makes it escape to the heap, and this
// runs on every Publish.
var publishOptions = sync.Pool{New: func() any { return new(PublishOptions) }}

var defaultPublishOptions = PublishOptions{Attempts: defaultAttempts, Backoff: defaultBackoff, MaxBackoff: defaultMaxBackoff, Timeout: defaultTimeout}

// NewPublishOptions returns the options opts set, defaults filled in.
func NewPublishOptions[O ~func(*PublishOptions)](opts ...O) PublishOptions {
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

// SubscribeOptions are the settings of a subscription, which
// broker.SubscribeOption functions set. Implementations build them with
// NewSubscribeOptions.
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

// NewSubscribeOptions returns the options opts set, defaults filled in.
func NewSubscribeOptions[O ~func(*SubscribeOptions)](opts ...O) SubscribeOptions {
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

// CheckSubscribe validates a subscription request, as every broker must:
// its topic, its handler (nilHandler reports a nil one) and its queue
// group; it returns the subscription's options.
func CheckSubscribe[O ~func(*SubscribeOptions)](topic string, nilHandler bool, opts ...O) (SubscribeOptions, error) {
	if err := ValidateTopic(topic); err != nil {
		return SubscribeOptions{}, err
	}
	if nilHandler {
		return SubscribeOptions{}, fmt.Errorf("broker: subscribe to %q: nil handler", topic)
	}
	o := NewSubscribeOptions(opts...)
	if o.Queue != "" {
		if err := ValidateQueue(o.Queue); err != nil {
			return SubscribeOptions{}, err
		}
	}
	return o, nil
}
