// Command greeter serves the example Greeter service, as
// examples/greeter/server does, instrumented with OpenTelemetry: it
// traces every call and event and measures every call.
//
//	go run ./example/greeter -trace-stdout -metrics-address 127.0.0.1:9464
//	curl -s 127.0.0.1:9464/metrics | grep rpc_server
//
// -trace-stdout (or OTEL_TRACES_EXPORTER=console) prints the spans as
// JSON on stdout; -metrics-address (or OTEL_METRICS_EXPORTER=prometheus,
// listening on OTEL_EXPORTER_PROMETHEUS_HOST:OTEL_EXPORTER_PROMETHEUS_PORT,
// localhost:9464 by default) serves the metrics in Prometheus text format
// on /metrics. The service's own settings (-registry, -broker, ...) are
// flags too; -help lists them. It stops gracefully on SIGINT or SIGTERM.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.opentelemetry.io/otel"
	otelprom "go.opentelemetry.io/otel/exporters/prometheus"
	"go.opentelemetry.io/otel/exporters/stdout/stdouttrace"
	"go.opentelemetry.io/otel/propagation"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.37.0"

	"github.com/protoc-gen-micro/micro/examples/greeter/greeterpb"
	"github.com/protoc-gen-micro/micro/examples/greeter/handler"
	otelmicro "github.com/protoc-gen-micro/micro/otel"
	"github.com/protoc-gen-micro/micro/runtime/broker"
	"github.com/protoc-gen-micro/micro/runtime/service"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, nil); err != nil {
		log.Fatal(err)
	}
}

// serving is where a started greeter answers.
type serving struct {
	address, metrics string // metrics is "" unless served
}

// run serves until ctx ends, then flushes the telemetry. It sends where it
// serves on started, when not nil.
func run(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer, started chan<- serving) error {
	fs := flag.NewFlagSet("greeter", flag.ContinueOnError)
	addr := fs.String("address", "127.0.0.1:0", "address to listen on")
	events := fs.Bool("events", false, "publish a \"greeter.greeted\" event for each group LotsOfGreetings greets")
	traceStdout := fs.Bool("trace-stdout", getenv("OTEL_TRACES_EXPORTER") == "console", "print spans on stdout (env OTEL_TRACES_EXPORTER=console)")
	metricsAddr := fs.String("metrics-address", prometheusAddress(getenv), "serve metrics on /metrics at this address (env OTEL_METRICS_EXPORTER=prometheus)")
	withFlags := service.WithFlags(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}

	res := resource.NewSchemaless(semconv.ServiceName("greeter"))
	tpOpts := []sdktrace.TracerProviderOption{sdktrace.WithResource(res)}
	if *traceStdout {
		exp, err := stdouttrace.New(stdouttrace.WithWriter(stdout))
		if err != nil {
			return err
		}
		tpOpts = append(tpOpts, sdktrace.WithBatcher(exp))
	}
	tp := sdktrace.NewTracerProvider(tpOpts...)
	defer tp.Shutdown(context.Background())
	mpOpts := []sdkmetric.Option{sdkmetric.WithResource(res)}
	var metrics *http.Server
	var metricsLn net.Listener
	if *metricsAddr != "" {
		reg := prometheus.NewRegistry()
		exp, err := otelprom.New(otelprom.WithRegisterer(reg))
		if err != nil {
			return err
		}
		mpOpts = append(mpOpts, sdkmetric.WithReader(exp))
		if metricsLn, err = net.Listen("tcp", *metricsAddr); err != nil {
			return fmt.Errorf("metrics: %w", err)
		}
		mux := http.NewServeMux()
		mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
		metrics = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
		go metrics.Serve(metricsLn)
		defer metrics.Close()
	}
	mp := sdkmetric.NewMeterProvider(mpOpts...)
	defer mp.Shutdown(context.Background())
	otel.SetTracerProvider(tp)
	otel.SetMeterProvider(mp)
	otel.SetTextMapPropagator(propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{}))

	svc := service.NewService(service.WithName("greeter"), service.WithAddress(*addr), withFlags,
		service.WithContext(ctx), service.WithSignal(false), otelmicro.Instrument())
	var g handler.Greeter
	if *events {
		g.Events = broker.NewPublisher[*greeterpb.HelloReply](svc.Broker(), "greeter.greeted", broker.WithRequireSubscribers())
	}
	if err := greeterpb.RegisterGreeterHandler(svc.Server(), g); err != nil {
		return err
	}
	if err := svc.Start(); err != nil {
		return err
	}
	s := serving{address: svc.Server().Address()}
	if metricsLn != nil {
		s.metrics = metricsLn.Addr().String()
		fmt.Fprintf(os.Stderr, "greeter: metrics on http://%s/metrics\n", s.metrics)
	}
	fmt.Fprintf(os.Stderr, "greeter: serving on %s\n", s.address)
	if started != nil {
		started <- s
	}
	<-ctx.Done()
	err := svc.Stop()
	// Spans and metrics still buffered go out before the program ends.
	return errors.Join(err, tp.Shutdown(context.Background()), mp.Shutdown(context.Background()))
}

// prometheusAddress is where OTEL_METRICS_EXPORTER=prometheus serves, as
// the OpenTelemetry environment variables say; "" without it.
func prometheusAddress(getenv func(string) string) string {
	if getenv("OTEL_METRICS_EXPORTER") != "prometheus" {
		return ""
	}
	host, port := getenv("OTEL_EXPORTER_PROMETHEUS_HOST"), getenv("OTEL_EXPORTER_PROMETHEUS_PORT")
	if host == "" {
		host = "localhost"
	}
	if port == "" {
		port = "9464"
	}
	return net.JoinHostPort(host, port)
}
