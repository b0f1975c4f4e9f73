package main

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/protoc-gen-micro/micro/examples/greeter/greeterpb"
	"github.com/protoc-gen-micro/micro/internal/leakcheck"
	"github.com/protoc-gen-micro/micro/runtime/client"
	"github.com/protoc-gen-micro/micro/runtime/spec"
)

// syncBuffer is stdout, written by the span exporter's goroutine.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// pinned sends every call to one address.
type pinned struct {
	client.Client
	addr string
}

func (p pinned) Call(ctx context.Context, service string, m *spec.Method, req, rsp any, opts ...client.CallOption) error {
	return p.Client.Call(ctx, service, m, req, rsp, append(opts, client.WithAddress(p.addr))...)
}

// TestGreeter runs the example on loopback with the in-memory registry,
// as configured through the OpenTelemetry environment variables, makes a
// call, and finds the call's histogram on /metrics and its span on stdout.
func TestGreeter(t *testing.T) {
	leakcheck.Check(t)
	env := map[string]string{
		"OTEL_TRACES_EXPORTER":          "console",
		"OTEL_METRICS_EXPORTER":         "prometheus",
		"OTEL_EXPORTER_PROMETHEUS_HOST": "127.0.0.1",
		"OTEL_EXPORTER_PROMETHEUS_PORT": "0",
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	runCtx, stop := context.WithCancel(ctx)
	var stdout syncBuffer
	started, done := make(chan serving, 1), make(chan error, 1)
	go func() {
		done <- run(runCtx, []string{"-registry", "memory"}, func(k string) string { return env[k] }, &stdout, started)
	}()
	var s serving
	select {
	case s = <-started:
	case err := <-done:
		t.Fatalf("greeter stopped at once: %v", err)
	case <-ctx.Done():
		t.Fatal("greeter did not start")
	}

	c := client.NewClient()
	defer c.(io.Closer).Close()
	g := greeterpb.NewGreeterService("greeter", pinned{c, s.address})
	if rsp, err := g.SayHello(ctx, &greeterpb.HelloRequest{Name: "ann"}); err != nil || rsp.Message != "Hello ann" {
		t.Fatalf("SayHello = %v, %v", rsp, err)
	}

	hc := &http.Client{Transport: &http.Transport{}, Timeout: 10 * time.Second}
	defer hc.CloseIdleConnections()
	rsp, err := hc.Get("http://" + s.metrics + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(rsp.Body)
	rsp.Body.Close()
	if err != nil || rsp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics: %v %v", rsp.Status, err)
	}
	var count string
	for _, line := range strings.Split(string(body), "\n") {
		if strings.HasPrefix(line, "rpc_server_duration_milliseconds_count{") && strings.Contains(line, `rpc_method="SayHello"`) &&
			strings.Contains(line, `rpc_grpc_status_code="0"`) {
			count = line[strings.LastIndexByte(line, ' ')+1:]
		}
	}
	if count != "1" {
		t.Fatalf("/metrics has no rpc_server_duration_milliseconds_count of one SayHello call (got %q):\n%s", count, body)
	}

	stop()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if out := stdout.String(); !strings.Contains(out, `"Name":"greeter.v1.Greeter/SayHello"`) || !strings.Contains(out, `"Key":"rpc.grpc.status_code"`) {
		t.Fatalf("stdout has no SayHello span:\n%s", out)
	}
}
