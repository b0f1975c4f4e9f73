package service_test

import (
	"context"
	"errors"
	"net"
	"os"
	"reflect"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/protoc-gen-micro/micro/internal/leakcheck"
	"github.com/protoc-gen-micro/micro/runtime/client"
	"github.com/protoc-gen-micro/micro/runtime/registry"
	"github.com/protoc-gen-micro/micro/runtime/registry/memory"
	"github.com/protoc-gen-micro/micro/runtime/server"
	"github.com/protoc-gen-micro/micro/runtime/service"
	"github.com/protoc-gen-micro/micro/runtime/spec"
)

// events records what happened, in order, across fakes and hooks.
type events struct {
	mu  sync.Mutex
	log []string
}

func (e *events) add(s string) {
	if e == nil {
		return
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	e.log = append(e.log, s)
}

func (e *events) get() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]string(nil), e.log...)
}

func (e *events) hook(name string) func() error {
	return func() error { e.add(name); return nil }
}

// fakeServer is a server.Server that serves nothing.
type fakeServer struct {
	addr   string
	descs  []*server.ServiceDesc
	events *events

	mu               sync.Mutex
	started, stopped int
}

func (f *fakeServer) Handle(desc *server.ServiceDesc, impl any, opts ...server.HandlerOption) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.descs = append(f.descs, desc)
	return nil
}

func (f *fakeServer) Start() error {
	f.events.add("server.Start")
	f.mu.Lock()
	defer f.mu.Unlock()
	f.started++
	return nil
}

func (f *fakeServer) Stop() error {
	f.events.add("server.Stop")
	f.mu.Lock()
	defer f.mu.Unlock()
	f.stopped++
	return nil
}

func (f *fakeServer) Address() string { return f.addr }

func (f *fakeServer) Services() []*server.ServiceDesc {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.descs
}

func (f *fakeServer) counts() (started, stopped int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.started, f.stopped
}

// recordingRegistry logs and counts registrations, and can be made to fail.
type recordingRegistry struct {
	registry.Registry
	events    *events
	registers atomic.Int32
	fail      error

	first, last  atomic.Int64 // when the first and the latest Register came, in Unix ns
	deregistered atomic.Bool
	revived      atomic.Bool // a Register came after a Deregister
}

func (r *recordingRegistry) Register(ctx context.Context, s *registry.Service, ttl time.Duration) error {
	now := time.Now().UnixNano()
	r.first.CompareAndSwap(0, now)
	r.last.Store(now)
	if r.deregistered.Load() {
		r.revived.Store(true)
	}
	r.registers.Add(1)
	if r.fail != nil {
		return r.fail
	}
	if r.registers.Load() == 1 {
		r.events.add("register")
	}
	return r.Registry.Register(ctx, s, ttl)
}

func (r *recordingRegistry) Deregister(ctx context.Context, s *registry.Service) error {
	r.deregistered.Store(true)
	r.events.add("deregister")
	return r.Registry.Deregister(ctx, s)
}

func greeterDesc() *server.ServiceDesc {
	return &server.ServiceDesc{
		Name: "greeter.v1.Greeter",
		Methods: []server.MethodDesc{
			{Method: &spec.Method{Service: "greeter.v1.Greeter", Name: "SayHello", Procedure: "/greeter.v1.Greeter/SayHello", StreamType: spec.Unary}},
			{Method: &spec.Method{Service: "greeter.v1.Greeter", Name: "Chat", Procedure: "/greeter.v1.Greeter/Chat", StreamType: spec.BidiStream}},
		},
	}
}

func newFakes(ev *events) (*fakeServer, *recordingRegistry) {
	srv := &fakeServer{addr: "127.0.0.1:4321", descs: []*server.ServiceDesc{greeterDesc()}, events: ev}
	return srv, &recordingRegistry{Registry: memory.NewRegistry(), events: ev}
}

// eventually yields until cond holds; the deadline only fails a cond that
// never does.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for end := time.Now().Add(10 * time.Second); !cond(); runtime.Gosched() {
		if time.Now().After(end) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

func TestNewServiceIsLazy(t *testing.T) {
	// server.NewServer and client.NewClient are not called until needed.
	svc := service.NewService(service.WithName("greeter"))
	svc.Init(service.WithAddress("127.0.0.1:0"))
	if r := svc.Registry(); svc.Name() != "greeter" || r == nil || r.String() != "mdns" {
		t.Fatalf("defaults: name %q, registry %v", svc.Name(), r)
	}
}

func TestStartRegistersAndStopDeregisters(t *testing.T) {
	leakcheck.Check(t)
	srv, reg := newFakes(nil)
	svc := service.NewService(
		service.WithName("greeter"), service.WithVersion("v1"),
		service.WithMetadata(map[string]string{"team": "core"}),
		service.WithRegistry(reg), service.WithServer(srv),
	)
	if err := svc.Start(); err != nil {
		t.Fatal(err)
	}
	got, err := reg.GetService(context.Background(), "greeter")
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || len(got[0].Nodes) != 1 {
		t.Fatalf("registered %+v, want one version with one node", got)
	}
	s, node := got[0], got[0].Nodes[0]
	if s.Version != "v1" || s.Metadata["team"] != "core" {
		t.Errorf("service = %+v", s)
	}
	wantEndpoints := []*registry.Endpoint{
		{Name: "/greeter.v1.Greeter/SayHello", Metadata: map[string]string{"stream": "unary"}},
		{Name: "/greeter.v1.Greeter/Chat", Metadata: map[string]string{"stream": "bidi_stream"}},
	}
	if !reflect.DeepEqual(s.Endpoints, wantEndpoints) {
		t.Errorf("endpoints = %+v", s.Endpoints)
	}
	if !strings.HasPrefix(node.ID, "greeter-") || len(node.ID) != len("greeter-")+36 {
		t.Errorf("node ID = %q, want greeter-<uuid>", node.ID)
	}
	if node.Address != "127.0.0.1:4321" {
		t.Errorf("node address = %q", node.Address)
	}
	if want := map[string]string{"protocol": "grpc", "transport": "http2"}; !reflect.DeepEqual(node.Metadata, want) {
		t.Errorf("node metadata = %v", node.Metadata)
	}
	if err := svc.Start(); err == nil {
		t.Error("second Start succeeded")
	}

	if err := svc.Stop(); err != nil {
		t.Fatal(err)
	}
	if _, err := reg.GetService(context.Background(), "greeter"); !errors.Is(err, registry.ErrNotFound) {
		t.Errorf("after Stop, GetService err = %v", err)
	}
	if started, stopped := srv.counts(); started != 1 || stopped != 1 {
		t.Errorf("server started %d, stopped %d times", started, stopped)
	}
	if err := svc.Stop(); err != nil {
		t.Errorf("second Stop = %v", err)
	}
	if err := svc.Start(); err == nil {
		t.Error("Start after Stop succeeded")
	}
}

func TestAdvertisesConcreteAddress(t *testing.T) {
	srv, reg := newFakes(nil)
	srv.addr = "[::]:4321"
	svc := service.NewService(service.WithName("greeter"), service.WithRegistry(reg), service.WithServer(srv))
	if err := svc.Start(); err != nil {
		t.Fatal(err)
	}
	defer svc.Stop()
	got, err := reg.GetService(context.Background(), "greeter")
	if err != nil {
		t.Fatal(err)
	}
	host, port, err := net.SplitHostPort(got[0].Nodes[0].Address)
	if ip := net.ParseIP(host); err != nil || ip == nil || ip.To4() == nil || ip.IsUnspecified() || port != "4321" {
		t.Fatalf("advertised %q, want a concrete IPv4 address with port 4321", got[0].Nodes[0].Address)
	}
}

func TestReregistersEveryInterval(t *testing.T) {
	srv, reg := newFakes(nil)
	// Runs after leakcheck has waited for the service's goroutines: a
	// refresher still running after Stop fails either check.
	t.Cleanup(func() {
		if reg.revived.Load() {
			t.Error("still refreshing after Stop: registered again after deregistering")
		}
	})
	leakcheck.Check(t)
	const ttl = 300 * time.Millisecond
	svc := service.NewService(
		service.WithName("greeter"), service.WithRegistry(reg), service.WithServer(srv),
		service.WithRegisterTTL(ttl), service.WithRegisterInterval(20*time.Millisecond),
	)
	if err := svc.Start(); err != nil {
		t.Fatal(err)
	}
	// The memory registry expires a registration by the clock, so the
	// refreshes must go on for longer than the TTL.
	eventually(t, "registrations spanning twice the TTL", func() bool {
		return reg.registers.Load() >= 3 && time.Duration(reg.last.Load()-reg.first.Load()) > 2*ttl
	})
	if _, err := reg.GetService(context.Background(), "greeter"); err != nil {
		t.Fatalf("registration expired despite refreshes: %v", err)
	}
	if err := svc.Stop(); err != nil {
		t.Fatal(err)
	}
}

func TestRunStopsWhenContextEnds(t *testing.T) {
	leakcheck.Check(t)
	srv, reg := newFakes(nil)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	startedc := make(chan struct{})
	svc := service.NewService(
		service.WithName("greeter"), service.WithRegistry(reg), service.WithServer(srv),
		service.WithContext(ctx), service.WithSignal(false),
		service.WithAfterStart(func() error { close(startedc); return nil }),
	)
	errc := make(chan error, 1)
	go func() { errc <- svc.Run() }()
	<-startedc
	if _, err := reg.GetService(ctx, "greeter"); err != nil {
		t.Fatalf("not registered while running: %v", err)
	}
	cancel()
	select {
	case err := <-errc:
		if err != nil {
			t.Fatalf("Run = %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return after the context ended")
	}
	if _, err := reg.GetService(context.Background(), "greeter"); !errors.Is(err, registry.ErrNotFound) {
		t.Fatalf("still registered after Run: %v", err)
	}
	if _, stopped := srv.counts(); stopped != 1 {
		t.Fatalf("server stopped %d times", stopped)
	}
}

func TestRunReturnsOnStop(t *testing.T) {
	leakcheck.Check(t)
	srv, reg := newFakes(nil)
	startedc := make(chan struct{})
	svc := service.NewService(
		service.WithName("greeter"), service.WithRegistry(reg), service.WithServer(srv), service.WithSignal(false),
		service.WithAfterStart(func() error { close(startedc); return nil }),
	)
	errc := make(chan error, 1)
	go func() { errc <- svc.Run() }()
	<-startedc
	if err := svc.Stop(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-errc:
		if err != nil {
			t.Fatalf("Run = %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return after Stop")
	}
}

func TestHookOrder(t *testing.T) {
	leakcheck.Check(t)
	ev := &events{}
	srv, reg := newFakes(ev)
	ctx, cancel := context.WithCancel(context.Background())
	svc := service.NewService(
		service.WithName("greeter"), service.WithRegistry(reg), service.WithServer(srv),
		service.WithContext(ctx), service.WithSignal(false),
		service.WithBeforeStart(ev.hook("BeforeStart 1")), service.WithBeforeStart(ev.hook("BeforeStart 2")),
		service.WithAfterStart(ev.hook("AfterStart")),
		service.WithAfterStart(func() error { cancel(); return nil }),
		service.WithBeforeStop(ev.hook("BeforeStop")),
		service.WithAfterStop(ev.hook("AfterStop")),
	)
	if err := svc.Run(); err != nil {
		t.Fatal(err)
	}
	want := []string{
		"BeforeStart 1", "BeforeStart 2", "server.Start", "register", "AfterStart",
		"BeforeStop", "deregister", "server.Stop", "AfterStop",
	}
	if got := ev.get(); !reflect.DeepEqual(got, want) {
		t.Fatalf("order:\n got %v\nwant %v", got, want)
	}
}

func TestStopRunsEveryStepAndReturnsFirstError(t *testing.T) {
	ev := &events{}
	srv, reg := newFakes(ev)
	first, second := errors.New("first"), errors.New("second")
	svc := service.NewService(
		service.WithName("greeter"), service.WithRegistry(reg), service.WithServer(srv),
		service.WithBeforeStop(func() error { return first }),
		service.WithAfterStop(func() error { return second }),
	)
	if err := svc.Start(); err != nil {
		t.Fatal(err)
	}
	if err := svc.Stop(); err != first {
		t.Fatalf("Stop = %v, want %v", err, first)
	}
	if got := ev.get(); !reflect.DeepEqual(got[len(got)-2:], []string{"deregister", "server.Stop"}) {
		t.Fatalf("a failing hook skipped shutdown steps: %v", got)
	}
}

func TestStartFailuresUndoWhatStarted(t *testing.T) {
	boom := errors.New("boom")
	for _, c := range []struct {
		name        string
		opt         service.Option
		regFail     error
		wantStarted int
	}{
		{"BeforeStart fails", service.WithBeforeStart(func() error { return boom }), nil, 0},
		{"registration fails", nil, boom, 1},
		{"AfterStart fails", service.WithAfterStart(func() error { return boom }), nil, 1},
	} {
		t.Run(c.name, func(t *testing.T) {
			leakcheck.Check(t)
			srv, reg := newFakes(nil)
			reg.fail = c.regFail
			opts := []service.Option{service.WithName("greeter"), service.WithRegistry(reg), service.WithServer(srv)}
			if c.opt != nil {
				opts = append(opts, c.opt)
			}
			svc := service.NewService(opts...)
			if err := svc.Start(); !errors.Is(err, boom) {
				t.Fatalf("Start = %v, want boom", err)
			}
			if started, stopped := srv.counts(); started != c.wantStarted || stopped != c.wantStarted {
				t.Fatalf("server started %d, stopped %d times; want %d each", started, stopped, c.wantStarted)
			}
			if _, err := reg.Registry.GetService(context.Background(), "greeter"); !errors.Is(err, registry.ErrNotFound) {
				t.Fatalf("left registered: %v", err)
			}
		})
	}
}

func TestStartRejectsBadOptions(t *testing.T) {
	for name, opts := range map[string][]service.Option{
		"no name": {},
	} {
		srv, reg := newFakes(nil)
		svc := service.NewService(append([]service.Option{service.WithRegistry(reg), service.WithServer(srv)}, opts...)...)
		if err := svc.Start(); err == nil {
			svc.Stop()
			t.Errorf("%s: Start succeeded", name)
		}
		if started, _ := srv.counts(); started != 0 {
			t.Errorf("%s: server started", name)
		}
	}
}

type fakeClient struct{ client.Client }

func TestGivenServerAndClientAreUsed(t *testing.T) {
	srv := &fakeServer{}
	cli := fakeClient{}
	svc := service.NewService(service.WithServer(srv), service.WithClient(cli))
	if svc.Server() != srv || svc.Client() != cli {
		t.Fatal("Server() or Client() is not the one given")
	}
}

// MICRO_REGISTRY names the registry; mDNS when it is unset or empty.
func TestRegistryFromEnvironment(t *testing.T) {
	for _, tc := range []struct {
		env  string
		set  bool
		want string
	}{
		{"", false, "mdns"},
		{"", true, "mdns"},
		{"mdns", true, "mdns"},
		{"memory", true, "memory"},
	} {
		t.Setenv("MICRO_REGISTRY", tc.env)
		if !tc.set {
			os.Unsetenv("MICRO_REGISTRY")
		}
		svc := service.NewService(service.WithName("a"))
		if got := svc.Registry().String(); got != tc.want {
			t.Errorf("MICRO_REGISTRY=%q (set: %v) gave %s, want %s", tc.env, tc.set, got, tc.want)
		}
		if err := svc.Stop(); err != nil { // closes the registry it made
			t.Fatal(err)
		}
	}
	t.Setenv("MICRO_REGISTRY", "bogus")
	svc := service.NewService(service.WithName("a"), service.WithAddress("127.0.0.1:0"))
	err := svc.Start()
	if err == nil || !strings.Contains(err.Error(), `"bogus"`) || !strings.Contains(err.Error(), "mdns") {
		t.Fatalf("MICRO_REGISTRY=bogus: Start = %v, want an error naming it and the known ones", err)
	}
}
