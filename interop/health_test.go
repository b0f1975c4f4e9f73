package interop_test

import (
	"context"
	"errors"
	"net"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/protoc-gen-micro/micro/examples/greeter/greeterpb"
	"github.com/protoc-gen-micro/micro/internal/leakcheck"
	"github.com/protoc-gen-micro/micro/runtime/health"
	"github.com/protoc-gen-micro/micro/runtime/registry/memory"
	"github.com/protoc-gen-micro/micro/runtime/service"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	grpcstatus "google.golang.org/grpc/status"
)

// heldGreeter holds SayHello until release is closed, to keep a graceful
// stop's drain open.
type heldGreeter struct {
	greeterpb.UnimplementedGreeterHandler
	entered chan struct{}
	release chan struct{}
}

func (g *heldGreeter) SayHello(_ context.Context, _ *greeterpb.HelloRequest, out *greeterpb.HelloReply) error {
	close(g.entered)
	<-g.release
	out.Message = "held"
	return nil
}

// stopping is a service whose Stop the test walks through: Stop waits in a
// stop hook until leaveHook is closed (health is NOT_SERVING by then, the
// node still registered and the server not yet draining), then drains
// while a held SayHello runs.
type stopping struct {
	svc       service.Service
	g         *heldGreeter
	inHook    chan struct{}
	leaveHook chan struct{}
}

func startStopping(t *testing.T, addr string) *stopping {
	t.Helper()
	s := &stopping{
		g:         &heldGreeter{entered: make(chan struct{}), release: make(chan struct{})},
		inHook:    make(chan struct{}),
		leaveHook: make(chan struct{}),
	}
	s.svc = service.NewService(service.WithName("greeter"), service.WithAddress(addr),
		service.WithSignal(false), service.WithRegistry(memory.NewRegistry()),
		service.WithBeforeStop(func() error { close(s.inHook); <-s.leaveHook; return nil }))
	if err := greeterpb.RegisterGreeterHandler(s.svc.Server(), s.g); err != nil {
		t.Fatal(err)
	}
	if err := s.svc.Start(); err != nil {
		t.Fatal(err)
	}
	return s
}

func dial(t *testing.T, addr string) *grpc.ClientConn {
	t.Helper()
	cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	return cc
}

// TestGrpcGoHealthClient calls our health service with grpc-go's client:
// Check, List and Watch, which hears NOT_SERVING when Stop begins, while
// the connection is still up, before any GOAWAY; its call then ends, and
// the graceful stop waits only for the real call it drains.
func TestGrpcGoHealthClient(t *testing.T) {
	leakcheck.Check(t)
	s := startStopping(t, "127.0.0.1:0")
	cc := dial(t, s.svc.Server().Address())
	hc := healthpb.NewHealthClient(cc)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	for _, name := range []string{"", "greeter.v1.Greeter"} {
		rsp, err := hc.Check(ctx, &healthpb.HealthCheckRequest{Service: name})
		if err != nil || rsp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
			t.Fatalf("Check(%q) = %v, %v", name, rsp, err)
		}
	}
	if _, err := hc.Check(ctx, &healthpb.HealthCheckRequest{Service: "no.Such"}); grpcstatus.Code(err) != codes.NotFound {
		t.Fatalf("Check of an unknown service: %v", err)
	}
	s.svc.Health().SetServingStatus("custom", health.NotServing)
	list, err := hc.List(ctx, &healthpb.HealthListRequest{})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]healthpb.HealthCheckResponse_ServingStatus{}
	for k, v := range list.GetStatuses() {
		got[k] = v.GetStatus()
	}
	if len(got) != 3 || got[""] != healthpb.HealthCheckResponse_SERVING ||
		got["greeter.v1.Greeter"] != healthpb.HealthCheckResponse_SERVING || got["custom"] != healthpb.HealthCheckResponse_NOT_SERVING {
		t.Fatalf("List = %v", got)
	}

	watch, err := hc.Watch(ctx, &healthpb.HealthCheckRequest{Service: "greeter.v1.Greeter"})
	if err != nil {
		t.Fatal(err)
	}
	if rsp, err := watch.Recv(); err != nil || rsp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("Watch: %v, %v", rsp, err)
	}
	unknown, err := hc.Watch(ctx, &healthpb.HealthCheckRequest{Service: "no.Such"})
	if err != nil {
		t.Fatal(err)
	}
	if rsp, err := unknown.Recv(); err != nil || rsp.GetStatus() != healthpb.HealthCheckResponse_SERVICE_UNKNOWN {
		t.Fatalf("Watch of an unknown service: %v, %v", rsp, err)
	}

	// A call for the drain to wait for.
	called := make(chan error, 1)
	go func() {
		called <- cc.Invoke(ctx, "/greeter.v1.Greeter/SayHello", &greeterpb.HelloRequest{}, &greeterpb.HelloReply{})
	}()
	<-s.g.entered

	stopped := make(chan error, 1)
	go func() { stopped <- s.svc.Stop() }()
	<-s.inHook
	if rsp, err := watch.Recv(); err != nil || rsp.GetStatus() != healthpb.HealthCheckResponse_NOT_SERVING {
		t.Fatalf("Watch when Stop began: %v, %v; want NOT_SERVING", rsp, err)
	}
	if state := cc.GetState(); state != connectivity.Ready {
		t.Fatalf("connection %v when NOT_SERVING was heard; want it still READY, before GOAWAY", state)
	}
	if _, err := watch.Recv(); grpcstatus.Code(err) != codes.Unavailable {
		t.Fatalf("Watch after NOT_SERVING: %v, want Unavailable", err)
	}
	close(s.leaveHook)
	// GOAWAY: the connection leaves READY while the held call runs.
	for state := cc.GetState(); state == connectivity.Ready; state = cc.GetState() {
		if !cc.WaitForStateChange(ctx, state) {
			t.Fatal("the connection was never told to go away")
		}
	}
	close(s.g.release)
	if err := <-called; err != nil {
		t.Fatalf("the call drained: %v", err)
	}
	if err := <-stopped; err != nil {
		t.Fatalf("Stop: %v (an open Watch held the drain?)", err)
	}
}

// probe runs grpc-health-probe with args and returns its exit code and
// what it printed (to stderr, where its log goes).
func probe(t *testing.T, bin string, args ...string) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	switch {
	case err == nil:
		return 0, string(out)
	case errors.As(err, &exit):
		return exit.ExitCode(), string(out)
	}
	t.Fatalf("grpc-health-probe %q: %v\n%s", args, err, out)
	return 0, ""
}

// TestHealthProbe runs grpc-health-probe against a service through its
// life: before it starts, while serving, with a status set by hand, for an
// unknown service, and while it stops.
func TestHealthProbe(t *testing.T) {
	leakcheck.Check(t)
	bin := buildTool(t, "github.com/grpc-ecosystem/grpc-health-probe")
	// A free port, for the service to take after the first probe.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()

	check := func(name string, wantCode int, wantOut string, args ...string) {
		t.Helper()
		code, out := probe(t, bin, append([]string{"-addr", addr}, args...)...)
		t.Logf("%s: grpc-health-probe -addr ADDR %s → exit %d:\n%s", name, strings.Join(args, " "), code, out)
		if code != wantCode || !strings.Contains(out, wantOut) {
			t.Errorf("%s: exit %d, printed %q; want exit %d and %q", name, code, out, wantCode, wantOut)
		}
	}

	check("before start", 2, "failed to connect service")

	s := startStopping(t, addr)
	check("serving", 0, "status: SERVING")
	check("serving", 0, "status: SERVING", "-service", "greeter.v1.Greeter")
	check("unknown service", 3, "NotFound", "-service", "no.Such")
	s.svc.Health().SetServingStatus("greeter.v1.Greeter", health.NotServing)
	check("set by hand", 4, `service unhealthy (responded with "NOT_SERVING")`, "-service", "greeter.v1.Greeter")
	s.svc.Health().SetServingStatus("greeter.v1.Greeter", health.Serving)
	check("set back by hand", 0, "status: SERVING", "-service", "greeter.v1.Greeter")

	// A call for the drain to wait for, from a connection that sees the
	// GOAWAY.
	cc := dial(t, addr)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	called := make(chan error, 1)
	go func() {
		called <- cc.Invoke(ctx, "/greeter.v1.Greeter/SayHello", &greeterpb.HelloRequest{}, &greeterpb.HelloReply{})
	}()
	<-s.g.entered
	stopped := make(chan error, 1)
	go func() { stopped <- s.svc.Stop() }()
	<-s.inHook
	check("stop begun, before deregistering and draining", 4, `service unhealthy (responded with "NOT_SERVING")`)
	close(s.leaveHook)
	for state := cc.GetState(); state == connectivity.Ready; state = cc.GetState() {
		if !cc.WaitForStateChange(ctx, state) {
			t.Fatal("the connection was never told to go away")
		}
	}
	check("draining", 2, "failed to connect service")
	close(s.g.release)
	if err := <-called; err != nil {
		t.Fatalf("the call drained: %v", err)
	}
	if err := <-stopped; err != nil {
		t.Fatalf("Stop: %v", err)
	}
	check("stopped", 2, "failed to connect service")
}
