package otelmicro_test

import (
	"context"
	"testing"

	"go.opentelemetry.io/otel/baggage"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"github.com/protoc-gen-micro/micro/examples/greeter/greeterpb"
	otelmicro "github.com/protoc-gen-micro/micro/otel"
	"github.com/protoc-gen-micro/micro/runtime/metadata"
)

// FuzzExtract feeds a server call's trace context and baggage, which a
// peer chooses, through the server interceptor: it must not panic, the
// handler runs once, the server span continues a valid remote trace and
// starts its own otherwise, and the baggage the handler sees stays within
// the W3C limits OpenTelemetry enforces.
func FuzzExtract(f *testing.F) {
	f.Add("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", "rojo=00f067aa0ba902b7", "tenant=acme,k=v;p=1")
	f.Add("00-00000000000000000000000000000000-0000000000000000-01", "", "")
	f.Add("ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", "a=1,b=2,=3", "=,;;;,%zz=1")
	// Sampled spans with no processor: valid contexts, nothing kept.
	tp := sdktrace.NewTracerProvider()
	prop := propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{})
	ic := otelmicro.ServerInterceptor(otelmicro.WithTracerProvider(tp), otelmicro.WithPropagators(prop))
	var calls int
	var got context.Context
	handler := ic.WrapUnary(greeterpb.GreeterSayHelloMethod, func(ctx context.Context, req, rsp any) error {
		calls++
		got = ctx
		return nil
	})
	f.Fuzz(func(t *testing.T, traceparent, tracestate, bag string) {
		calls = 0
		md := metadata.Pairs("traceparent", traceparent, "tracestate", tracestate, "baggage", bag)
		remote := trace.SpanContextFromContext(prop.Extract(context.Background(), propagation.MapCarrier{"traceparent": traceparent, "tracestate": tracestate}))
		if err := handler(metadata.NewIncomingContext(context.Background(), md), &greeterpb.HelloRequest{}, &greeterpb.HelloReply{}); err != nil {
			t.Fatal(err)
		}
		if calls != 1 {
			t.Fatalf("handler ran %d times", calls)
		}
		sc := trace.SpanContextFromContext(got)
		if !sc.IsValid() {
			t.Fatal("the server span has no valid context")
		}
		if remote.IsValid() != (sc.TraceID() == remote.TraceID()) {
			t.Fatalf("remote %v valid %v, server span trace %v", remote.TraceID(), remote.IsValid(), sc.TraceID())
		}
		if b := baggage.FromContext(got); len(b.String()) > 8192 || b.Len() > 64 {
			t.Fatalf("baggage of %d members, %d bytes, beyond the W3C limits", b.Len(), len(b.String()))
		}
	})
}
