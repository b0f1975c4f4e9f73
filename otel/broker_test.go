package otelmicro_test

import (
	"context"
	"errors"
	"testing"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/protoc-gen-micro/micro/examples/greeter/greeterpb"
	"github.com/protoc-gen-micro/micro/internal/leakcheck"
	otelmicro "github.com/protoc-gen-micro/micro/otel"
	"github.com/protoc-gen-micro/micro/runtime/broker"
	brokermemory "github.com/protoc-gen-micro/micro/runtime/broker/memory"
	"github.com/protoc-gen-micro/micro/runtime/registry/memory"
	"github.com/protoc-gen-micro/micro/runtime/service"
)

// TestEvents: an event published by one instrumented service and handled
// by another makes a producer span and its child consumer span, through
// the built-in direct broker (over the services' servers on loopback) and
// the memory broker; a call the subscriber makes is the consumer span's
// child client span.
func TestEvents(t *testing.T) {
	for _, name := range []string{"direct", "memory"} {
		t.Run(name, func(t *testing.T) {
			leakcheck.Check(t)
			tel := newTelemetry(t)
			reg := memory.NewRegistry()
			startGreeterIn(t, tel, reg)
			opts := []service.Option{service.WithAddress("127.0.0.1:0"), service.WithRegistry(reg),
				service.WithSignal(false), otelmicro.Instrument(tel.opts...)}
			var shared broker.Broker
			if name == "memory" {
				shared = brokermemory.NewBroker()
				opts = append(opts, service.WithBroker(shared))
			}
			sub := service.NewService(append(opts, service.WithName("subscriber"))...)
			pub := service.NewService(append(opts, service.WithName("publisher"))...)
			greeter := greeterpb.NewGreeterService("greeter", sub.Client())
			got := make(chan string, 1)
			_, err := broker.Subscribe(sub.Broker(), "greeter.greeted", func(ctx context.Context, m *greeterpb.HelloReply) error {
				if m.Message == "fail" {
					return errors.New("refused")
				}
				rsp, err := greeter.SayHello(ctx, &greeterpb.HelloRequest{Name: m.Message})
				if err != nil {
					return err
				}
				got <- rsp.Message
				return nil
			}, broker.WithQueue("greeters"))
			if err != nil {
				t.Fatal(err)
			}
			for _, s := range []service.Service{sub, pub} {
				if err := s.Start(); err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { s.Stop() })
			}
			events := broker.NewPublisher[*greeterpb.HelloReply](pub.Broker(), "greeter.greeted", broker.WithRequireSubscribers(), broker.WithAttempts(1))
			ctx := testContext(t)
			if err := events.Publish(ctx, &greeterpb.HelloReply{Message: "ann"}); err != nil {
				t.Fatal(err)
			}
			if m := <-got; m != "Hello ann" {
				t.Fatalf("the subscriber's call answered %q", m)
			}
			ps := tel.one(t, "publish greeter.greeted", trace.SpanKindProducer)
			cs := tel.one(t, "process greeter.greeted", trace.SpanKindConsumer)
			checkChild(t, ps, cs)
			call := tel.one(t, sayHello, trace.SpanKindClient)
			checkChild(t, cs, call)
			checkChild(t, call, tel.one(t, sayHello, trace.SpanKindServer))
			id := attrs(cs)["messaging.message.id"].AsString()
			if id == "" {
				t.Fatal("consumer span has no messaging.message.id")
			}
			common := []attribute.KeyValue{
				attribute.String("messaging.system", name), attribute.String("messaging.destination.name", "greeter.greeted"),
				attribute.String("messaging.message.id", id),
			}
			checkAttrs(t, ps, append(common, attribute.String("messaging.operation.name", "publish"),
				attribute.String("messaging.operation.type", "send"))...)
			checkAttrs(t, cs, append(common, attribute.String("messaging.operation.name", "process"),
				attribute.String("messaging.operation.type", "process"), attribute.String("messaging.consumer.group.name", "greeters"))...)

			// A failed delivery fails both spans.
			if err := events.Publish(ctx, &greeterpb.HelloReply{Message: "fail"}); err == nil {
				t.Fatal("publishing to a failing subscriber succeeded")
			}
			var failed []string
			for _, s := range tel.spans.Ended() {
				if s.Status().Code == codes.Error {
					failed = append(failed, s.SpanKind().String()+" "+s.Name())
				}
			}
			if len(failed) != 2 || failed[0] != "consumer process greeter.greeted" || failed[1] != "producer publish greeter.greeted" {
				t.Fatalf("spans with an error status: %q, want the consumer's then the producer's", failed)
			}

			// One message sent and processed, then one that failed.
			topic := attribute.String("messaging.destination.name", "greeter.greeted")
			for _, metric := range []string{"messaging.client.sent.messages", "messaging.client.operation.duration",
				"messaging.client.consumed.messages", "messaging.process.duration"} {
				if total, failed := tel.counted(t, metric, attribute.String("messaging.system", name), topic); total != 2 || failed != 1 {
					t.Errorf("%s: %d messages, %d of them failed; want 2 and 1", metric, total, failed)
				}
			}
		})
	}
}

// TestSharedHeader: a typed Publisher encoding JSON shares one header map
// between its messages; each message still carries its own publisher's
// span, and the shared map is left as it was.
func TestSharedHeader(t *testing.T) {
	leakcheck.Check(t)
	tel := newTelemetry(t)
	b := otelmicro.WrapBroker(brokermemory.NewBroker(), tel.opts...)
	traces := make(chan trace.TraceID, 2)
	_, err := broker.Subscribe(b, "shared", func(ctx context.Context, m *greeterpb.HelloReply) error {
		msg, _ := broker.MessageFromContext(ctx)
		if msg.Header["content-type"] != "application/json" {
			t.Errorf("content-type %q", msg.Header["content-type"])
		}
		traces <- trace.SpanContextFromContext(ctx).TraceID()
		return nil
	}, broker.WithConcurrency(2))
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Connect(); err != nil {
		t.Fatal(err)
	}
	defer b.Disconnect()
	pub := broker.NewPublisher[*greeterpb.HelloReply](b, "shared", broker.WithContentType("json"))
	ctx := testContext(t)
	errs := make(chan error, 2)
	for range 2 {
		go func() { errs <- pub.Publish(ctx, &greeterpb.HelloReply{Message: "hi"}) }()
	}
	for range 2 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	producers := tel.ended("publish shared", trace.SpanKindProducer)
	if len(producers) != 2 || producers[0].SpanContext().TraceID() == producers[1].SpanContext().TraceID() {
		t.Fatalf("want two producer spans in two traces: %s", tel.names())
	}
	got := map[trace.TraceID]bool{<-traces: true, <-traces: true}
	for _, p := range producers {
		if !got[p.SpanContext().TraceID()] {
			t.Errorf("no delivery continued the trace of producer span %s: got %v", p.SpanContext().TraceID(), got)
		}
	}
	for _, c := range tel.ended("process shared", trace.SpanKindConsumer) {
		if c.Parent().SpanID() != producers[0].SpanContext().SpanID() && c.Parent().SpanID() != producers[1].SpanContext().SpanID() {
			t.Errorf("consumer span's parent %s is neither producer", c.Parent().SpanID())
		}
	}
}
