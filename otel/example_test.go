package otelmicro_test

import (
	"context"
	"fmt"
	"log"

	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/protoc-gen-micro/micro/examples/greeter/greeterpb"
	otelmicro "github.com/protoc-gen-micro/micro/otel"
	"github.com/protoc-gen-micro/micro/runtime/registry/memory"
	"github.com/protoc-gen-micro/micro/runtime/service"
)

// Installing the instrumentation on a service is one option; here with an
// in-memory span recorder instead of the global providers, and a client
// that is a second instrumented service.
func ExampleInstrument() {
	spans := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(spans))
	telemetry := otelmicro.Instrument(otelmicro.WithTracerProvider(tp), otelmicro.WithPropagators(propagation.TraceContext{}))

	reg := memory.NewRegistry()
	svc := service.NewService(service.WithName("greeter"), service.WithAddress("127.0.0.1:0"),
		service.WithRegistry(reg), service.WithSignal(false), telemetry)
	if err := greeterpb.RegisterGreeterHandler(svc.Server(), &testGreeter{}); err != nil {
		log.Fatal(err)
	}
	if err := svc.Start(); err != nil {
		log.Fatal(err)
	}
	defer svc.Stop()
	caller := service.NewService(service.WithName("caller"), service.WithRegistry(reg), telemetry)
	defer caller.Stop()

	g := greeterpb.NewGreeterService("greeter", caller.Client())
	if _, err := g.SayHello(context.Background(), &greeterpb.HelloRequest{Name: "ann"}); err != nil {
		log.Fatal(err)
	}
	for _, s := range spans.Ended() {
		fmt.Println(s.SpanKind(), s.Name(), "in trace", s.SpanContext().TraceID() == spans.Ended()[0].SpanContext().TraceID())
	}
	// Output:
	// server greeter.v1.Greeter/SayHello in trace true
	// client greeter.v1.Greeter/SayHello in trace true
}
