package otelmicro_test

import (
	"context"
	"io"
	"testing"

	"go.opentelemetry.io/otel/metric"
	metricnoop "go.opentelemetry.io/otel/metric/noop"
	"go.opentelemetry.io/otel/propagation"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	tracenoop "go.opentelemetry.io/otel/trace/noop"
	"google.golang.org/protobuf/proto"

	"github.com/protoc-gen-micro/micro/examples/greeter/greeterpb"
	otelmicro "github.com/protoc-gen-micro/micro/otel"
	"github.com/protoc-gen-micro/micro/runtime/client"
	"github.com/protoc-gen-micro/micro/runtime/interceptor"
	"github.com/protoc-gen-micro/micro/runtime/server"
	"github.com/protoc-gen-micro/micro/runtime/spec"
)

// discard exports spans nowhere: the benchmark measures recording them.
type discard struct{}

func (discard) ExportSpans(context.Context, []sdktrace.ReadOnlySpan) error { return nil }
func (discard) Shutdown(context.Context) error                             { return nil }

// BenchmarkUnary measures a unary call of a 16-byte request through our
// client and server on loopback: without interceptors, with the OTel
// interceptors on no-op providers, on the SDK with sampling off, and on
// the SDK recording every span and metric.
func BenchmarkUnary(b *testing.B) {
	sdkTrace := func(s sdktrace.Sampler) trace.TracerProvider {
		return sdktrace.NewTracerProvider(sdktrace.WithSampler(s), sdktrace.WithSpanProcessor(sdktrace.NewSimpleSpanProcessor(discard{})))
	}
	sdkMetric := func() metric.MeterProvider {
		return sdkmetric.NewMeterProvider(sdkmetric.WithReader(sdkmetric.NewManualReader()))
	}
	for _, bc := range []struct {
		name string
		tp   func() trace.TracerProvider
		mp   func() metric.MeterProvider
	}{
		{name: "plain"},
		{"otel-noop", func() trace.TracerProvider { return tracenoop.NewTracerProvider() }, func() metric.MeterProvider { return metricnoop.NewMeterProvider() }},
		{"otel-sdk-unsampled", func() trace.TracerProvider { return sdkTrace(sdktrace.NeverSample()) }, sdkMetric},
		{"otel-sdk", func() trace.TracerProvider { return sdkTrace(sdktrace.AlwaysSample()) }, sdkMetric},
	} {
		b.Run(bc.name, func(b *testing.B) {
			var cics, sics []interceptor.Interceptor
			if bc.tp != nil {
				opts := []otelmicro.Option{otelmicro.WithTracerProvider(bc.tp()), otelmicro.WithMeterProvider(bc.mp()),
					otelmicro.WithPropagators(propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{}))}
				cics, sics = []interceptor.Interceptor{otelmicro.ClientInterceptor(opts...)}, []interceptor.Interceptor{otelmicro.ServerInterceptor(opts...)}
			}
			srv := server.NewServer(server.WithAddress("127.0.0.1:0"))
			if err := greeterpb.RegisterGreeterHandler(srv, &testGreeter{}, server.WithInterceptors(sics...)); err != nil {
				b.Fatal(err)
			}
			if err := srv.Start(); err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { srv.Stop() })
			c := client.NewClient(client.WithInterceptors(cics...))
			b.Cleanup(func() { c.(io.Closer).Close() })
			g := greeterpb.NewGreeterService("greeter", pinned{c, srv.Address()})
			ctx := context.Background()
			req := &greeterpb.HelloRequest{Name: "sixteen-bytes!"}
			if n := proto.Size(req); n != 16 {
				b.Fatalf("request of %d bytes, want 16", n)
			}
			b.ReportAllocs()
			for b.Loop() {
				if _, err := g.SayHello(ctx, req); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// pinned sends every call to one address.
type pinned struct {
	client.Client
	addr string
}

func (p pinned) Call(ctx context.Context, service string, m *spec.Method, req, rsp any, opts ...client.CallOption) error {
	return p.Client.Call(ctx, service, m, req, rsp, append(opts, client.WithAddress(p.addr))...)
}
