package broker

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/protoc-gen-micro/micro/internal/brokerkit"
	"github.com/protoc-gen-micro/micro/runtime/codec"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// Publisher publishes messages of one type to one topic, encoded with
// package codec (protobuf unless ContentType says otherwise).
type Publisher[T proto.Message] struct {
	b     Broker
	topic string
	opts  []PublishOption
	enc   encoding // from opts, computed once
}

// encoding is how a Publisher encodes: its codec and the header every
// message carries (its content type, unless protobuf). header is shared by all messages and never modified.
type encoding struct {
	codec  codec.Codec
	header map[string]string
	err    error
}

// NewPublisher returns a publisher of T to topic through b; opts apply to
// each Publish. An invalid topic or unknown codec is reported by Publish.
func NewPublisher[T proto.Message](b Broker, topic string, opts ...PublishOption) *Publisher[T] {
	return &Publisher[T]{b: b, topic: topic, opts: opts, enc: encodingOf(opts)}
}

// Publish encodes m and publishes it with Broker.Publish; opts add to those
// given to NewPublisher.
func (p *Publisher[T]) Publish(ctx context.Context, m T, opts ...PublishOption) error {
	enc, all := p.enc, p.opts
	if len(opts) > 0 {
		all = append(slices.Clip(p.opts), opts...)
		enc = encodingOf(all)
	}
	if enc.err != nil {
		return enc.err
	}
	body, err := enc.codec.MarshalAppend(nil, m)
	if err != nil {
		return fmt.Errorf("broker: publish to %q: encoding %T: %w", p.topic, m, err)
	}
	return p.b.Publish(ctx, p.topic, &Message{Header: enc.header, Body: body}, all...)
}

func encodingOf(opts []PublishOption) encoding {
	o := brokerkit.NewPublishOptions(opts...)
	cd, ok := codec.Get(strings.ToLower(o.ContentType))
	if !ok {
		return encoding{err: fmt.Errorf("broker: no codec registered for content type %q", o.ContentType)}
	}
	var header map[string]string
	if cd.Name() != codec.Proto.Name() {
		header = map[string]string{brokerkit.HeaderContentType: brokerkit.ContentTypeOf(cd.Name())}
	}
	return encoding{codec: cd, header: header}
}

// codecOf returns the codec a message's body is encoded with, from its
// content-type header (protobuf when it has none).
func codecOf(msg *Message) (codec.Codec, error) {
	c, err := brokerkit.CodecOf(msg.Header[brokerkit.HeaderContentType])
	if err != nil {
		return nil, fmt.Errorf("broker: message %s: %w", msg.ID, err)
	}
	return c, nil
}

// Subscribe subscribes h to topic on b; each message is decoded into a new
// T before h is called. A message that cannot be decoded counts as a
// handler error. h can reach the Message itself, for its headers or to
// acknowledge it, with MessageFromContext.
func Subscribe[T proto.Message](b Broker, topic string, h func(ctx context.Context, m T) error, opts ...SubscribeOption) (Subscriber, error) {
	mt, err := messageType[T]()
	if err != nil {
		return nil, err
	}
	return b.Subscribe(topic, func(ctx context.Context, msg *Message) error {
		m := mt.New().Interface().(T)
		cd, err := codecOf(msg)
		if err != nil {
			return err
		}
		if err := cd.Unmarshal(msg.Body, m); err != nil {
			return fmt.Errorf("broker: message %s on %q: decoding %T: %w", msg.ID, msg.Topic, m, err)
		}
		return h(context.WithValue(ctx, messageKey{}, msg), m)
	}, opts...)
}

func messageType[T proto.Message]() (protoreflect.MessageType, error) {
	var zero T
	if any(zero) == nil {
		return nil, fmt.Errorf("broker: Subscribe needs a concrete message type, not %T", zero)
	}
	return zero.ProtoReflect().Type(), nil
}

type messageKey struct{}

// MessageFromContext returns the message being handled, in a handler
// registered with Subscribe.
func MessageFromContext(ctx context.Context) (*Message, bool) {
	m, ok := ctx.Value(messageKey{}).(*Message)
	return m, ok
}
