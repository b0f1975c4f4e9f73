package otelmicro

import (
	"context"
	"maps"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/propagation"
	semconv "go.opentelemetry.io/otel/semconv/v1.37.0"
	"go.opentelemetry.io/otel/semconv/v1.37.0/messagingconv"
	"go.opentelemetry.io/otel/trace"

	"github.com/protoc-gen-micro/micro/internal/brokerkit"
	"github.com/protoc-gen-micro/micro/runtime/broker"
)

// WrapBroker returns b with a producer span around each Publish, whose
// context travels in the message's headers, and a consumer span around
// each delivery to a subscription made through it, the child of the
// publisher's span.
func WrapBroker(b broker.Broker, opts ...Option) broker.Broker {
	c := newConfig(opts)
	return wrapBroker(b, &c)
}

// A failed instrument is a no-op; the meter provider reports why.
func wrapBroker(b broker.Broker, c *config) broker.Broker {
	m := c.meter()
	sent, _ := messagingconv.NewClientSentMessages(m)
	opDur, _ := messagingconv.NewClientOperationDuration(m)
	consumed, _ := messagingconv.NewClientConsumedMessages(m)
	procDur, _ := messagingconv.NewProcessDuration(m)
	return &tracedBroker{Broker: b, tracer: c.tracer(), prop: c.prop, system: semconv.MessagingSystemKey.String(b.String()),
		sent: sent.Inst(), opDur: opDur.Inst(), consumed: consumed.Inst(), procDur: procDur.Inst()}
}

type tracedBroker struct {
	broker.Broker
	tracer trace.Tracer
	prop   propagation.TextMapPropagator
	system attribute.KeyValue

	sent, consumed metric.Int64Counter
	opDur, procDur metric.Float64Histogram
}

// measure records one message sent or processed with attrs, taking d.
func measure(ctx context.Context, n metric.Int64Counter, h metric.Float64Histogram, d time.Duration, attrs []attribute.KeyValue, err error) {
	// A copy: NewSet sorts what it is given, and attrs is shared by a
	// subscription's concurrent deliveries.
	kv := append(make([]attribute.KeyValue, 0, len(attrs)+1), attrs...)
	if err != nil {
		kv = append(kv, semconv.ErrorType(err))
	}
	opt := metric.WithAttributeSet(attribute.NewSet(kv...))
	n.Add(ctx, 1, opt)
	h.Record(ctx, d.Seconds(), opt)
}

// Publish publishes msg with a copy of its headers that carries the span's
// context: a typed Publisher shares one header map between its messages.
func (b *tracedBroker) Publish(ctx context.Context, topic string, msg *broker.Message, opts ...broker.PublishOption) error {
	start := time.Now()
	attrs := []attribute.KeyValue{b.system, semconv.MessagingDestinationName(topic),
		semconv.MessagingOperationName("publish"), semconv.MessagingOperationTypeSend}
	ctx, span := b.tracer.Start(ctx, "publish "+topic, trace.WithSpanKind(trace.SpanKindProducer),
		trace.WithAttributes(attrs...), trace.WithAttributes(semconv.MessagingMessageBodySize(len(msg.Body))))
	defer span.End()
	h := make(propagation.MapCarrier, len(msg.Header)+2)
	maps.Copy(h, msg.Header)
	b.prop.Inject(ctx, h)
	msg.Header = h
	err := b.Broker.Publish(ctx, topic, msg, opts...)
	// Publish has set the ID by the time it returns, even with an error
	// once the message was accepted.
	if msg.ID != "" {
		span.SetAttributes(semconv.MessagingMessageID(msg.ID))
	}
	if err != nil {
		span.SetAttributes(semconv.ErrorType(err))
		span.SetStatus(codes.Error, err.Error())
	}
	measure(ctx, b.sent, b.opDur, time.Since(start), attrs, err)
	return err
}

func (b *tracedBroker) Subscribe(topic string, h broker.Handler, opts ...broker.SubscribeOption) (broker.Subscriber, error) {
	name := "process " + topic
	attrs := []attribute.KeyValue{b.system, semconv.MessagingDestinationName(topic),
		semconv.MessagingOperationName("process"), semconv.MessagingOperationTypeProcess}
	// Read as every broker reads them, to name the queue group.
	if q := brokerkit.NewSubscribeOptions(opts...).Queue; q != "" {
		attrs = append(attrs, semconv.MessagingConsumerGroupName(q))
	}
	return b.Broker.Subscribe(topic, func(ctx context.Context, msg *broker.Message) error {
		start := time.Now()
		ctx = b.prop.Extract(ctx, propagation.MapCarrier(msg.Header))
		ctx, span := b.tracer.Start(ctx, name, trace.WithSpanKind(trace.SpanKindConsumer), trace.WithAttributes(attrs...))
		defer span.End()
		span.SetAttributes(semconv.MessagingMessageID(msg.ID), semconv.MessagingMessageBodySize(len(msg.Body)))
		// Calls the handler makes are a client's, not served calls.
		err := h(context.WithValue(ctx, serving{}, true), msg)
		if err != nil {
			span.SetAttributes(semconv.ErrorType(err))
			span.SetStatus(codes.Error, err.Error())
		}
		measure(ctx, b.consumed, b.procDur, time.Since(start), attrs, err)
		return err
	}, opts...)
}
