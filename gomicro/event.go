package gomicro

import (
	"context"
	"fmt"
	"reflect"

	"github.com/protoc-gen-micro/micro/gomicro/client"
	"github.com/protoc-gen-micro/micro/gomicro/server"
	"github.com/protoc-gen-micro/micro/internal/brokerkit"
	"github.com/protoc-gen-micro/micro/runtime/broker"
	"google.golang.org/protobuf/proto"
)

// Event publishes messages to one topic.
type Event interface {
	// Publish encodes msg (protobuf) and publishes it with the client's
	// broker; by default it returns once every subscriber has handled it
	// (see runtime/broker).
	Publish(ctx context.Context, msg any, opts ...client.PublishOption) error
}

// Publisher is the older name of Event.
type Publisher = Event

// NewEvent returns an Event of topic publishing through c, or through
// client.DefaultClient when c is nil.
func NewEvent(topic string, c client.Client) Event { return &event{c: c, topic: topic} }

type event struct {
	c     client.Client
	topic string
}

func (e *event) Publish(ctx context.Context, msg any, opts ...client.PublishOption) error {
	if e.c == nil {
		return client.Publish(ctx, client.NewMessage(e.topic, msg), opts...)
	}
	return e.c.Publish(ctx, e.c.NewMessage(e.topic, msg), opts...)
}

var (
	contextType = reflect.TypeFor[context.Context]()
	errorType   = reflect.TypeFor[error]()
	protoType   = reflect.TypeFor[proto.Message]()
)

// RegisterSubscriber subscribes h to topic with the broker of s (a
// gomicro service's Server). h is a func(context.Context, *T) error where
// *T is a protobuf message, or a value whose exported methods of that
// shape are each subscribed. The message arrives decoded with the codec
// its publisher used; h's context carries the publisher's metadata.
func RegisterSubscriber(topic string, s server.Server, h any, opts ...server.SubscriberOption) error {
	v := reflect.ValueOf(h)
	if v.Kind() == reflect.Func {
		return subscribe(topic, s.Broker(), v, fmt.Sprintf("%T", h), opts)
	}
	n := 0
	for i := 0; i < v.NumMethod(); i++ {
		if !isSubscriber(v.Method(i).Type()) {
			continue
		}
		if err := subscribe(topic, s.Broker(), v.Method(i), v.Type().Method(i).Name, opts); err != nil {
			return err
		}
		n++
	}
	if n == 0 {
		return fmt.Errorf("gomicro: subscriber %T has no method func(context.Context, *Message) error", h)
	}
	return nil
}

func isSubscriber(t reflect.Type) bool {
	return t.Kind() == reflect.Func && t.NumIn() == 2 && t.NumOut() == 1 &&
		t.In(0) == contextType && t.In(1).Kind() == reflect.Pointer &&
		t.In(1).Implements(protoType) && t.Out(0) == errorType
}

func subscribe(topic string, b broker.Broker, fn reflect.Value, name string, opts []server.SubscriberOption) error {
	if !isSubscriber(fn.Type()) {
		return fmt.Errorf("gomicro: subscriber %s is not a func(context.Context, *Message) error", name)
	}
	msgType := fn.Type().In(1).Elem()
	_, err := b.Subscribe(topic, func(ctx context.Context, msg *broker.Message) error {
		m := reflect.New(msgType)
		cd, err := brokerkit.CodecOf(msg.Header[brokerkit.HeaderContentType])
		if err != nil {
			return err
		}
		if err := cd.Unmarshal(msg.Body, m.Interface()); err != nil {
			return fmt.Errorf("gomicro: message %s on %q: decoding %s: %w", msg.ID, msg.Topic, msgType, err)
		}
		out := fn.Call([]reflect.Value{reflect.ValueOf(ctx), m})
		err, _ = out[0].Interface().(error)
		return err
	}, opts...)
	return err
}
