package service_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/protoc-gen-micro/micro/examples/greeter/greeterpb"
	"github.com/protoc-gen-micro/micro/internal/grpcapi"
	"github.com/protoc-gen-micro/micro/internal/leakcheck"
	"github.com/protoc-gen-micro/micro/runtime/client"
	"github.com/protoc-gen-micro/micro/runtime/health"
	"github.com/protoc-gen-micro/micro/runtime/registry/memory"
	"github.com/protoc-gen-micro/micro/runtime/server"
	"github.com/protoc-gen-micro/micro/runtime/service"
	"github.com/protoc-gen-micro/micro/runtime/status"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/dynamicpb"
)

// healthClient calls a health server at addr with our client and
// dynamicpb messages.
type healthClient struct {
	t    *testing.T
	cli  client.Client
	addr client.CallOption
}

func newHealthClient(t *testing.T, addr string) *healthClient {
	cli := client.NewClient()
	t.Cleanup(func() { cli.Close() })
	return &healthClient{t: t, cli: cli, addr: client.WithAddress(addr)}
}

func healthRequest(name string) *dynamicpb.Message {
	req := grpcapi.NewRequest(grpcapi.HealthCheck)
	req.Set(req.Descriptor().Fields().ByName("service"), protoreflect.ValueOfString(name))
	return req
}

func servingStatus(m *dynamicpb.Message) health.Status {
	return health.Status(m.Get(m.Descriptor().Fields().ByName("status")).Enum())
}

func (c *healthClient) check(name string) (health.Status, error) {
	rsp := grpcapi.NewResponse(grpcapi.HealthCheck)
	err := c.cli.Call(context.Background(), "greeter", grpcapi.HealthCheck, healthRequest(name), rsp, c.addr)
	return servingStatus(rsp), err
}

func (c *healthClient) watch(name string) func() (health.Status, error) {
	c.t.Helper()
	// Bounded, so that a status that never comes fails the test.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	st, err := c.cli.Stream(ctx, "greeter", grpcapi.HealthWatch, c.addr)
	if err != nil {
		c.t.Fatal(err)
	}
	c.t.Cleanup(func() { st.Close(); cancel() })
	if err := st.SendMsg(healthRequest(name)); err != nil {
		c.t.Fatal(err)
	}
	if err := st.CloseSend(); err != nil {
		c.t.Fatal(err)
	}
	return func() (health.Status, error) {
		rsp := grpcapi.NewResponse(grpcapi.HealthWatch)
		err := st.RecvMsg(rsp)
		return servingStatus(rsp), err
	}
}

// listServices asks the reflection service for the server's services.
func listServices(t *testing.T, cli client.Client, addr string) ([]string, error) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	st, err := cli.Stream(ctx, "greeter", grpcapi.ReflectionInfoV1, client.WithAddress(addr))
	if err != nil {
		return nil, err
	}
	defer st.Close()
	req := grpcapi.NewRequest(grpcapi.ReflectionInfoV1)
	req.Set(req.Descriptor().Fields().ByName("list_services"), protoreflect.ValueOfString("*"))
	if err := st.SendMsg(req); err != nil {
		return nil, err
	}
	rsp := grpcapi.NewResponse(grpcapi.ReflectionInfoV1)
	if err := st.RecvMsg(rsp); err != nil {
		return nil, err
	}
	out := rsp.Get(rsp.Descriptor().Fields().ByName("list_services_response")).Message()
	list := out.Get(out.Descriptor().Fields().ByName("service")).List()
	var names []string
	for i := 0; i < list.Len(); i++ {
		m := list.Get(i).Message()
		names = append(names, m.Get(m.Descriptor().Fields().ByName("name")).String())
	}
	return names, nil
}

// TestHealthAndReflectionByDefault: a service answers health checks and
// reflection with nothing configured, and does not advertise them.
func TestHealthAndReflectionByDefault(t *testing.T) {
	leakcheck.Check(t)
	reg := memory.NewRegistry()
	svc := startGreeter(t, service.WithRegistry(reg))
	hc := newHealthClient(t, svc.Server().Address())
	for _, name := range []string{"", "greeter.v1.Greeter"} {
		if st, err := hc.check(name); err != nil || st != health.Serving {
			t.Fatalf("Check(%q) = %v, %v; want SERVING", name, st, err)
		}
	}
	if _, err := hc.check("no.such.Service"); status.CodeOf(err) != status.NotFound {
		t.Fatalf("Check of an unknown service: %v", err)
	}
	svc.Health().SetServingStatus("greeter.v1.Greeter", health.NotServing)
	if st, err := hc.check("greeter.v1.Greeter"); err != nil || st != health.NotServing {
		t.Fatalf("after SetServingStatus: %v, %v", st, err)
	}

	got, err := listServices(t, hc.cli, svc.Server().Address())
	want := []string{"greeter.v1.Greeter", grpcapi.HealthService, grpcapi.ReflectionV1Service, grpcapi.ReflectionV1AlphaService}
	if err != nil || !slices.Equal(got, want) {
		t.Fatalf("list_services = %v, %v; want %v", got, err, want)
	}

	services, err := reg.GetService(context.Background(), "greeter")
	if err != nil || len(services) != 1 {
		t.Fatalf("registry: %v, %v", services, err)
	}
	var endpoints []string
	for _, e := range services[0].Endpoints {
		endpoints = append(endpoints, e.Name)
	}
	if len(endpoints) != 4 || !slices.Contains(endpoints, "/greeter.v1.Greeter/SayHello") {
		t.Fatalf("advertised endpoints %v, want the greeter's four only", endpoints)
	}
}

func TestHealthAndReflectionOff(t *testing.T) {
	leakcheck.Check(t)
	svc := startGreeter(t, service.WithRegistry(memory.NewRegistry()), service.WithHealth(false), service.WithReflection(false))
	hc := newHealthClient(t, svc.Server().Address())
	if _, err := hc.check(""); status.CodeOf(err) != status.Unimplemented {
		t.Fatalf("Check with WithHealth(false): %v, want Unimplemented", err)
	}
	if _, err := listServices(t, hc.cli, svc.Server().Address()); status.CodeOf(err) != status.Unimplemented {
		t.Fatalf("reflection with WithReflection(false): %v, want Unimplemented", err)
	}
	if got := len(svc.Server().Services()); got != 1 {
		t.Fatalf("%d services registered, want the greeter only", got)
	}
}

// blockingGreeter holds SayHello until release is closed, to keep a drain
// open.
type blockingGreeter struct {
	greeterpb.UnimplementedGreeterHandler
	entered chan struct{}
	release chan struct{}
}

func (g *blockingGreeter) SayHello(ctx context.Context, _ *greeterpb.HelloRequest, out *greeterpb.HelloReply) error {
	close(g.entered)
	<-g.release
	out.Message = "done"
	return nil
}

// TestHealthFollowsStop: the statuses are NOT_SERVING the moment Stop
// begins: a watcher hears it while the node is still registered, and its
// Watch then ends, so that Stop's drain waits only for the real call held
// open, not for the watcher (which would take the 10 s grace period and
// make Stop report calls cut off).
func TestHealthFollowsStop(t *testing.T) {
	leakcheck.Check(t)
	reg := memory.NewRegistry()
	inHook, leaveHook := make(chan struct{}), make(chan struct{})
	g := &blockingGreeter{entered: make(chan struct{}), release: make(chan struct{})}
	svc := service.NewService(service.WithName("greeter"), service.WithAddress("127.0.0.1:0"),
		service.WithSignal(false), service.WithRegistry(reg),
		service.WithBeforeStop(func() error { close(inHook); <-leaveHook; return nil }))
	if err := greeterpb.RegisterGreeterHandler(svc.Server(), g); err != nil {
		t.Fatal(err)
	}
	if err := svc.Start(); err != nil {
		t.Fatal(err)
	}
	addr := svc.Server().Address()
	hc := newHealthClient(t, addr)
	next := hc.watch("")
	if st, err := next(); err != nil || st != health.Serving {
		t.Fatalf("Watch after Start: %v, %v", st, err)
	}
	// A call in flight, held until the drain has begun.
	called := make(chan error, 1)
	go func() {
		_, err := greeterpb.NewGreeterService("greeter", hc.cli).SayHello(context.Background(), &greeterpb.HelloRequest{}, client.WithAddress(addr))
		called <- err
	}()
	<-g.entered

	stopped := make(chan error, 1)
	go func() { stopped <- svc.Stop() }()
	<-inHook // Stop has begun; the node is still registered
	if st, err := next(); err != nil || st != health.NotServing {
		t.Fatalf("Watch when Stop began: %v, %v; want NOT_SERVING", st, err)
	}
	if _, err := next(); status.CodeOf(err) != status.Unavailable {
		t.Fatalf("Watch after NOT_SERVING: %v, want Unavailable", err)
	}
	if st, err := hc.check("greeter.v1.Greeter"); err != nil || st != health.NotServing {
		t.Fatalf("Check when Stop began: %v, %v; want NOT_SERVING", st, err)
	}
	if services, err := reg.GetService(context.Background(), "greeter"); err != nil || len(services) != 1 {
		t.Fatalf("the node left the registry before NOT_SERVING was heard: %v, %v", services, err)
	}
	close(leaveHook)
	close(g.release) // the drain ends with the held call
	if err := <-called; err != nil {
		t.Fatalf("the call in flight: %v", err)
	}
	if err := <-stopped; err != nil {
		t.Fatalf("Stop: %v", err)
	}
	svc.Health().SetServingStatus("", health.Serving) // ignored after Stop
}

// TestHealthBeforeStart: until Start has registered the node, the server
// as a whole is NOT_SERVING; then SERVING. The service's health server is
// also served by a second server here, to be asked before Start.
func TestHealthBeforeStart(t *testing.T) {
	leakcheck.Check(t)
	svc := service.NewService(service.WithName("greeter"), service.WithAddress("127.0.0.1:0"),
		service.WithSignal(false), service.WithRegistry(memory.NewRegistry()))
	t.Cleanup(func() { svc.Stop() })
	other := server.NewServer(server.WithAddress("127.0.0.1:0"))
	if err := health.Register(other, svc.Health()); err != nil {
		t.Fatal(err)
	}
	if err := other.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { other.Stop() })
	hc := newHealthClient(t, other.Address())
	if st, err := hc.check(""); err != nil || st != health.NotServing {
		t.Fatalf("before Start: %v, %v; want NOT_SERVING", st, err)
	}
	if err := svc.Start(); err != nil {
		t.Fatal(err)
	}
	if st, err := hc.check(""); err != nil || st != health.Serving {
		t.Fatalf("after Start: %v, %v; want SERVING", st, err)
	}
}
