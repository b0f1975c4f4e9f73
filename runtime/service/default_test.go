package service_test

import (
	"context"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/protoc-gen-micro/micro/internal/leakcheck"
	"github.com/protoc-gen-micro/micro/internal/registrytest"
	"github.com/protoc-gen-micro/micro/runtime/broker"
	"github.com/protoc-gen-micro/micro/runtime/interceptor"
	"github.com/protoc-gen-micro/micro/runtime/registry/memory"
	"github.com/protoc-gen-micro/micro/runtime/selector"
	"github.com/protoc-gen-micro/micro/runtime/server"
	"github.com/protoc-gen-micro/micro/runtime/service"
	"github.com/protoc-gen-micro/micro/runtime/spec"
)

func TestDefaultServerOnLoopback(t *testing.T) {
	leakcheck.Check(t)
	svc := service.NewService(service.WithName("greeter"), service.WithAddress("127.0.0.1:0"), service.WithSignal(false))
	srv := svc.Server()
	if svc.Server() != srv {
		t.Fatal("Server() created a second server")
	}
	if err := svc.Start(); err != nil {
		t.Fatal(err)
	}
	defer svc.Stop()
	got, err := svc.Registry().GetService(context.Background(), "greeter")
	if err != nil {
		t.Fatal(err)
	}
	addr := got[0].Nodes[0].Address
	if host, port, err := net.SplitHostPort(addr); err != nil || host != "127.0.0.1" || port == "0" || addr != srv.Address() {
		t.Fatalf("advertised %q for a server on %q", addr, srv.Address())
	}
	if err := svc.Stop(); err != nil {
		t.Fatal(err)
	}
}

func TestLateServerOptionsAreReported(t *testing.T) {
	svc := service.NewService(service.WithName("greeter"), service.WithAddress("127.0.0.1:0"))
	svc.Server()
	svc.Init(service.WithAddress("127.0.0.1:1"))
	if err := svc.Start(); err == nil || !strings.Contains(err.Error(), "set after Server, Client or Broker") {
		svc.Stop()
		t.Fatalf("Start = %v, want an error about Address set too late", err)
	}
}

func TestDefaultClient(t *testing.T) {
	svc := service.NewService(service.WithName("greeter"))
	if c := svc.Client(); c == nil || svc.Client() != c {
		t.Fatal("Client() is nil or not stable")
	}
}

var echoMethod = &spec.Method{
	Service: "echo.v1.Echo", Name: "Echo", Procedure: "/echo.v1.Echo/Echo", StreamType: spec.Unary,
}

var echoDesc = &server.ServiceDesc{
	Name: "echo.v1.Echo",
	Methods: []server.MethodDesc{{
		Method:      echoMethod,
		NewRequest:  func() any { return new(wrapperspb.StringValue) },
		NewResponse: func() any { return new(wrapperspb.StringValue) },
		Unary: func(impl any, ctx context.Context, req, rsp any) error {
			rsp.(*wrapperspb.StringValue).Value = req.(*wrapperspb.StringValue).Value
			return nil
		},
	}},
}

// A call from one service to another found through the shared registry,
// through both services' wrappers, over loopback.
func TestCallBetweenServices(t *testing.T) {
	leakcheck.Check(t)
	reg := memory.NewRegistry()
	var handled, called atomic.Int32
	echo := service.NewService(
		service.WithName("echo"), service.WithAddress("127.0.0.1:0"), service.WithRegistry(reg), service.WithSignal(false),
		service.WithInterceptors(interceptor.UnaryInterceptorFunc(func(m *spec.Method, next interceptor.UnaryFunc) interceptor.UnaryFunc {
			return func(ctx context.Context, req, rsp any) error { handled.Add(1); return next(ctx, req, rsp) }
		})),
	)
	if err := echo.Server().Handle(echoDesc, struct{}{}); err != nil {
		t.Fatal(err)
	}
	if err := echo.Start(); err != nil {
		t.Fatal(err)
	}
	defer echo.Stop()

	caller := service.NewService(
		service.WithName("caller"), service.WithAddress("127.0.0.1:0"), service.WithRegistry(reg), service.WithSignal(false),
		service.WithInterceptors(interceptor.UnaryInterceptorFunc(func(m *spec.Method, next interceptor.UnaryFunc) interceptor.UnaryFunc {
			return func(ctx context.Context, req, rsp any) error { called.Add(1); return next(ctx, req, rsp) }
		})),
	)
	if err := caller.Start(); err != nil {
		t.Fatal(err)
	}
	defer caller.Stop()

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	rsp := new(wrapperspb.StringValue)
	if err := caller.Client().Call(ctx, "echo", echoMethod, wrapperspb.String("hi"), rsp); err != nil {
		t.Fatal(err)
	}
	if rsp.Value != "hi" || handled.Load() != 1 || called.Load() != 1 {
		t.Fatalf("rsp = %q, handled %d, called %d", rsp.Value, handled.Load(), called.Load())
	}

	// Once echo has stopped, it is no longer found.
	if err := echo.Stop(); err != nil {
		t.Fatal(err)
	}
	err := caller.Client().Call(ctx, "echo", echoMethod, wrapperspb.String("hi"), rsp)
	if err == nil || !strings.Contains(err.Error(), selector.ErrNoneAvailable.Error()) {
		t.Fatalf("call after Stop = %v, want no node available", err)
	}
}

// The client and the broker a service creates find services and
// subscribers in one registry cache: one watch of the registry serves both.
func TestClientAndBrokerShareOneWatch(t *testing.T) {
	leakcheck.Check(t)
	reg := memory.NewRegistry()
	echo := service.NewService(service.WithName("echo"), service.WithAddress("127.0.0.1:0"), service.WithRegistry(reg), service.WithSignal(false))
	if err := echo.Server().Handle(echoDesc, struct{}{}); err != nil {
		t.Fatal(err)
	}
	got := make(chan string, 1)
	_, err := broker.Subscribe(echo.Broker(), "shared.events", func(_ context.Context, m *wrapperspb.StringValue) error {
		got <- m.Value
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := echo.Start(); err != nil {
		t.Fatal(err)
	}
	defer echo.Stop()

	counted := &registrytest.WatchCounter{Registry: reg}
	caller := service.NewService(service.WithName("caller"), service.WithAddress("127.0.0.1:0"), service.WithRegistry(counted), service.WithSignal(false))
	if err := caller.Start(); err != nil {
		t.Fatal(err)
	}
	defer caller.Stop()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := caller.Client().Call(ctx, "echo", echoMethod, wrapperspb.String("hi"), new(wrapperspb.StringValue)); err != nil {
		t.Fatal(err)
	}
	if err := broker.NewPublisher[*wrapperspb.StringValue](caller.Broker(), "shared.events").Publish(ctx, wrapperspb.String("event")); err != nil {
		t.Fatal(err)
	}
	if v := <-got; v != "event" {
		t.Fatalf("handled %q", v)
	}
	if n := counted.Watches(); n != 1 {
		t.Fatalf("%d registry watches for the caller's client and broker, want 1", n)
	}
}
