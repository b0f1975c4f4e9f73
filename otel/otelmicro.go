package otelmicro

import (
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/propagation"
	semconv "go.opentelemetry.io/otel/semconv/v1.37.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/protoc-gen-micro/micro/runtime/broker"
	"github.com/protoc-gen-micro/micro/runtime/service"
)

// scope names the instrumentation to tracer and meter providers.
const scope = "github.com/protoc-gen-micro/micro/otel"

// Option configures the instrumentation.
type Option func(*config)

type config struct {
	tp   trace.TracerProvider
	mp   metric.MeterProvider
	prop propagation.TextMapPropagator
}

// WithTracerProvider sets the provider of the tracer that makes the spans;
// the global one by default.
func WithTracerProvider(tp trace.TracerProvider) Option { return func(c *config) { c.tp = tp } }

// WithMeterProvider sets the provider of the meter that records the
// metrics; the global one by default.
func WithMeterProvider(mp metric.MeterProvider) Option { return func(c *config) { c.mp = mp } }

// WithPropagators sets how the trace context (and baggage) travels in call
// metadata and message headers; the global propagator by default.
func WithPropagators(p propagation.TextMapPropagator) Option {
	return func(c *config) { c.prop = p }
}

func newConfig(opts []Option) config {
	var c config
	for _, o := range opts {
		o(&c)
	}
	if c.tp == nil {
		c.tp = otel.GetTracerProvider()
	}
	if c.mp == nil {
		c.mp = otel.GetMeterProvider()
	}
	if c.prop == nil {
		c.prop = otel.GetTextMapPropagator()
	}
	return c
}

func (c *config) tracer() trace.Tracer {
	return c.tp.Tracer(scope, trace.WithSchemaURL(semconv.SchemaURL))
}

func (c *config) meter() metric.Meter {
	return c.mp.Meter(scope, metric.WithSchemaURL(semconv.SchemaURL))
}

// Instrument returns a service option that traces and measures every call
// the service serves and makes, and traces every event it publishes and
// handles, through whichever broker it uses.
func Instrument(opts ...Option) service.Option {
	c := newConfig(opts)
	ic := &serviceInterceptor{client: newClientSide(&c), server: newServerSide(&c, true)}
	return join(
		service.WithInterceptors(ic),
		service.WithBrokerWrapper(func(b broker.Broker) broker.Broker { return wrapBroker(b, &c) }),
	)
}

// join returns an option applying each of opts in turn. Its type
// parameters let it build a service.Option, whose argument type is not
// exported.
func join[F ~func(P), P any](opts ...F) F {
	return func(p P) {
		for _, o := range opts {
			o(p)
		}
	}
}
