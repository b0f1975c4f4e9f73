// Package otelmicro instruments services with OpenTelemetry: a span and
// metrics for every RPC a service serves and makes, unary and streaming,
// and a span for every event it publishes and handles, with the trace
// context carried from caller to callee and from publisher to subscriber.
//
// One option installs it on a service:
//
//	svc := service.NewService(service.WithName("greeter"), otelmicro.Instrument())
//
// It uses the global TracerProvider, MeterProvider and TextMapPropagator
// unless given others (WithTracerProvider, WithMeterProvider,
// WithPropagators). The global propagator does nothing until a program
// sets one, e.g.
//
//	otel.SetTextMapPropagator(propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{}))
//
// What it records follows the OpenTelemetry semantic conventions v1.37.0
// (the semconv/v1.37.0 package of go.opentelemetry.io/otel), the last
// version with the RPC attributes and metrics otelgrpc records:
//
//   - RPC spans named "package.Service/Method", of kind client or server,
//     with rpc.system "grpc", rpc.service, rpc.method and
//     rpc.grpc.status_code; a server span also has network.peer.address
//     and network.peer.port. A client span's status is Error for every code
//     but OK; a server span's only for the codes that mean a server fault
//     (Unknown, DeadlineExceeded, Unimplemented, Internal, Unavailable,
//     DataLoss), as the conventions say.
//   - RPC metrics: rpc.{client,server}.duration (milliseconds),
//     rpc.{client,server}.request.size and response.size (bytes, one
//     record per message, protobuf-encoded size), and
//     rpc.{client,server}.requests_per_rpc and responses_per_rpc, with
//     rpc.system, rpc.service, rpc.method and rpc.grpc.status_code.
//   - Events: a producer span "publish TOPIC" around Broker.Publish, whose
//     context is injected into the message headers, and a consumer span
//     "process TOPIC" around each delivery, its child, with
//     messaging.system (the broker's name), messaging.destination.name,
//     messaging.operation.name and .type, messaging.message.id,
//     messaging.message.body.size and, for a queue group,
//     messaging.consumer.group.name.
//   - Event metrics: messaging.client.sent.messages and
//     messaging.client.operation.duration (seconds) for each Publish,
//     messaging.client.consumed.messages and messaging.process.duration
//     for each delivery, with error.type when it failed.
//
// Client and server interceptors for a client or server used without a
// service are ClientInterceptor and ServerInterceptor; a broker used without
// a service is wrapped with WrapBroker.
//
// otelmicro is instrumentation only: it configures no exporter. The
// example in example/greeter shows a program exporting traces to stdout
// and serving metrics to Prometheus.
package otelmicro
