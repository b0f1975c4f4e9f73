package otelmicro_test

import (
	"context"
	"fmt"
	"io"
	"strings"
	"testing"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/baggage"
	"go.opentelemetry.io/otel/propagation"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/protoc-gen-micro/micro/examples/greeter/greeterpb"
	otelmicro "github.com/protoc-gen-micro/micro/otel"
	"github.com/protoc-gen-micro/micro/runtime/registry"
	"github.com/protoc-gen-micro/micro/runtime/registry/memory"
	"github.com/protoc-gen-micro/micro/runtime/service"
	"github.com/protoc-gen-micro/micro/runtime/status"
)

// telemetry is a tracer and a meter provider recording in memory.
type telemetry struct {
	spans  *tracetest.SpanRecorder
	reader *sdkmetric.ManualReader
	opts   []otelmicro.Option
}

func newTelemetry(t testing.TB) *telemetry {
	sr := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(sr))
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	t.Cleanup(func() {
		tp.Shutdown(context.Background())
		mp.Shutdown(context.Background())
	})
	return &telemetry{spans: sr, reader: reader, opts: []otelmicro.Option{
		otelmicro.WithTracerProvider(tp), otelmicro.WithMeterProvider(mp),
		otelmicro.WithPropagators(propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{})),
	}}
}

// ended returns the ended spans named name of kind k.
func (tel *telemetry) ended(name string, k trace.SpanKind) []sdktrace.ReadOnlySpan {
	var out []sdktrace.ReadOnlySpan
	for _, s := range tel.spans.Ended() {
		if s.Name() == name && s.SpanKind() == k {
			out = append(out, s)
		}
	}
	return out
}

// one returns the one ended span named name of kind k.
func (tel *telemetry) one(t *testing.T, name string, k trace.SpanKind) sdktrace.ReadOnlySpan {
	t.Helper()
	s := tel.ended(name, k)
	if len(s) != 1 {
		t.Fatalf("%d ended %s spans %q, want 1; all: %s", len(s), k, name, tel.names())
	}
	return s[0]
}

func (tel *telemetry) names() string {
	var b strings.Builder
	for _, s := range tel.spans.Ended() {
		fmt.Fprintf(&b, "[%s %s] ", s.SpanKind(), s.Name())
	}
	return b.String()
}

// histogram returns the data point of metric name whose attributes include
// want; it fails the test when there is none.
func (tel *telemetry) histogram(t *testing.T, name string, want ...attribute.KeyValue) metricdata.HistogramDataPoint[int64] {
	t.Helper()
	var rm metricdata.ResourceMetrics
	if err := tel.reader.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if m.Name != name {
				continue
			}
			switch d := m.Data.(type) {
			case metricdata.Histogram[int64]:
				for _, dp := range d.DataPoints {
					if hasAll(dp.Attributes, want) {
						return dp
					}
				}
			case metricdata.Histogram[float64]:
				for _, dp := range d.DataPoints {
					if hasAll(dp.Attributes, want) {
						// Durations: only the count is compared.
						return metricdata.HistogramDataPoint[int64]{Attributes: dp.Attributes, Count: dp.Count}
					}
				}
			}
		}
	}
	t.Fatalf("no %s data point with %v", name, want)
	return metricdata.HistogramDataPoint[int64]{}
}

func hasAll(set attribute.Set, want []attribute.KeyValue) bool {
	for _, kv := range want {
		if v, ok := set.Value(kv.Key); !ok || v != kv.Value {
			return false
		}
	}
	return true
}

// attrs returns a span's attributes by key.
func attrs(s sdktrace.ReadOnlySpan) map[attribute.Key]attribute.Value {
	m := map[attribute.Key]attribute.Value{}
	for _, kv := range s.Attributes() {
		m[kv.Key] = kv.Value
	}
	return m
}

// checkAttrs fails the test unless s has each of want.
func checkAttrs(t *testing.T, s sdktrace.ReadOnlySpan, want ...attribute.KeyValue) {
	t.Helper()
	got := attrs(s)
	for _, kv := range want {
		if v, ok := got[kv.Key]; !ok || v != kv.Value {
			t.Errorf("%s span %q: %s = %v (present %v), want %v", s.SpanKind(), s.Name(), kv.Key, v.Emit(), ok, kv.Value.Emit())
		}
	}
}

// checkChild fails the test unless child is a child of parent.
func checkChild(t *testing.T, parent, child sdktrace.ReadOnlySpan) {
	t.Helper()
	if child.Parent().TraceID() != parent.SpanContext().TraceID() || child.Parent().SpanID() != parent.SpanContext().SpanID() {
		t.Errorf("%s span %q is not the child of %s span %q: parent %s, want %s",
			child.SpanKind(), child.Name(), parent.SpanKind(), parent.Name(), child.Parent().SpanID(), parent.SpanContext().SpanID())
	}
}

// testGreeter answers as examples/greeter/server does, and:
// SayHello fails with Internal for "boom", calls SayHello("ann") through
// relay for "relay", and adds the "tenant" baggage it received.
type testGreeter struct {
	greeterpb.UnimplementedGreeterHandler
	relay greeterpb.GreeterService
}

func (g *testGreeter) SayHello(ctx context.Context, in *greeterpb.HelloRequest, out *greeterpb.HelloReply) error {
	switch in.Name {
	case "":
		return status.New(status.InvalidArgument, "name is required")
	case "boom":
		return status.New(status.Internal, "boom")
	case "code-99":
		return status.New(99, "a code gRPC does not have")
	case "relay":
		rsp, err := g.relay.SayHello(ctx, &greeterpb.HelloRequest{Name: "ann"})
		if err != nil {
			return err
		}
		out.Message = "relayed " + rsp.Message
		return nil
	}
	out.Message = "Hello " + in.Name
	if t := baggage.FromContext(ctx).Member("tenant").Value(); t != "" {
		out.Message += " of " + t
	}
	return nil
}

func (g *testGreeter) LotsOfGreetings(ctx context.Context, stream greeterpb.Greeter_LotsOfGreetingsHandlerStream) error {
	var names []string
	for {
		in, err := stream.Recv()
		if err == io.EOF {
			return stream.SendAndClose(&greeterpb.HelloReply{Message: "Hello " + strings.Join(names, ", ")})
		}
		if err != nil {
			return err
		}
		names = append(names, in.Name)
	}
}

func (g *testGreeter) Chat(ctx context.Context, stream greeterpb.Greeter_ChatHandlerStream) error {
	for {
		in, err := stream.Recv()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		if err := stream.Send(&greeterpb.HelloReply{Message: "Hello " + in.Name}); err != nil {
			return err
		}
	}
}

// startGreeter starts an instrumented greeter service on loopback and
// returns its service and a client of it from another instrumented
// service, both found in an in-memory registry.
func startGreeter(t *testing.T, tel *telemetry) (service.Service, greeterpb.GreeterService) {
	t.Helper()
	return startGreeterIn(t, tel, memory.NewRegistry())
}

// startGreeterIn is startGreeter with the registry reg.
func startGreeterIn(t *testing.T, tel *telemetry, reg registry.Registry) (service.Service, greeterpb.GreeterService) {
	t.Helper()
	srv := service.NewService(service.WithName("greeter"), service.WithAddress("127.0.0.1:0"),
		service.WithRegistry(reg), service.WithSignal(false), otelmicro.Instrument(tel.opts...))
	g := &testGreeter{relay: greeterpb.NewGreeterService("greeter", srv.Client())}
	if err := greeterpb.RegisterGreeterHandler(srv.Server(), g); err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	caller := service.NewService(service.WithName("caller"), service.WithRegistry(reg), service.WithSignal(false),
		otelmicro.Instrument(tel.opts...))
	t.Cleanup(func() {
		caller.Stop()
		srv.Stop()
	})
	return srv, greeterpb.NewGreeterService("greeter", caller.Client())
}

// counted returns the sum of counter name, or the count of histogram name,
// over the data points whose attributes include want, and of those, the
// part whose attributes have an error.type.
func (tel *telemetry) counted(t *testing.T, name string, want ...attribute.KeyValue) (total, failed int64) {
	t.Helper()
	var rm metricdata.ResourceMetrics
	if err := tel.reader.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	add := func(set attribute.Set, n int64) {
		if hasAll(set, want) {
			total += n
			if _, ok := set.Value("error.type"); ok {
				failed += n
			}
		}
	}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if m.Name != name {
				continue
			}
			switch d := m.Data.(type) {
			case metricdata.Sum[int64]:
				for _, dp := range d.DataPoints {
					add(dp.Attributes, dp.Value)
				}
			case metricdata.Histogram[float64]:
				for _, dp := range d.DataPoints {
					add(dp.Attributes, int64(dp.Count))
				}
			}
		}
	}
	return total, failed
}
