package service_test

import (
	"context"
	"crypto/tls"
	"flag"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/protoc-gen-micro/micro/examples/greeter/greeterpb"
	"github.com/protoc-gen-micro/micro/internal/brokerplugin"
	"github.com/protoc-gen-micro/micro/internal/leakcheck"
	"github.com/protoc-gen-micro/micro/internal/testcert"
	"github.com/protoc-gen-micro/micro/runtime/broker"
	brokermemory "github.com/protoc-gen-micro/micro/runtime/broker/memory"
	"github.com/protoc-gen-micro/micro/runtime/client"
	"github.com/protoc-gen-micro/micro/runtime/interceptor"
	"github.com/protoc-gen-micro/micro/runtime/registry/memory"
	"github.com/protoc-gen-micro/micro/runtime/server"
	"github.com/protoc-gen-micro/micro/runtime/service"
	"github.com/protoc-gen-micro/micro/runtime/spec"
	"github.com/protoc-gen-micro/micro/runtime/status"
)

// peerGreeter answers SayHello with the common name of the client's
// verified certificate, and Chat by echoing.
type peerGreeter struct {
	greeterpb.UnimplementedGreeterHandler
}

func (peerGreeter) SayHello(ctx context.Context, in *greeterpb.HelloRequest, out *greeterpb.HelloReply) error {
	p, ok := server.PeerFromContext(ctx)
	switch {
	case !ok:
		return status.New(status.Internal, "no peer")
	case p.Addr == nil:
		return status.New(status.Internal, "no peer address")
	case p.TLS == nil || len(p.TLS.VerifiedChains) == 0:
		out.Message = "anonymous"
	default:
		out.Message = p.TLS.VerifiedChains[0][0].Subject.CommonName
	}
	return nil
}

func (peerGreeter) Chat(ctx context.Context, s greeterpb.Greeter_ChatHandlerStream) error {
	for {
		in, err := s.Recv()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		if err := s.Send(&greeterpb.HelloReply{Message: "Hello " + in.Name}); err != nil {
			return err
		}
	}
}

// startGreeter starts a service named greeter serving peerGreeter.
func startGreeter(t *testing.T, opts ...service.Option) service.Service {
	t.Helper()
	svc := service.NewService(append([]service.Option{
		service.WithName("greeter"), service.WithAddress("127.0.0.1:0"), service.WithSignal(false),
	}, opts...)...)
	if err := greeterpb.RegisterGreeterHandler(svc.Server(), peerGreeter{}); err != nil {
		t.Fatal(err)
	}
	if err := svc.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { svc.Stop() })
	return svc
}

// startCaller starts a service that only calls.
func startCaller(t *testing.T, opts ...service.Option) service.Service {
	t.Helper()
	svc := service.NewService(append([]service.Option{
		service.WithName("caller"), service.WithAddress("127.0.0.1:0"), service.WithSignal(false),
	}, opts...)...)
	if err := svc.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { svc.Stop() })
	return svc
}

func callCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// TestMutualTLS: two services with certificates from one CA call each other
// over mutual TLS, and the handler sees the caller's verified certificate;
// a client without a certificate, or without TLS, is refused.
func TestMutualTLS(t *testing.T) {
	leakcheck.Check(t)
	ca := testcert.NewCA(t)
	reg := memory.NewRegistry()
	g := startGreeter(t, service.WithRegistry(reg), service.WithTLSConfig(ca.MutualConfig(ca.Issue(t, "greeter"))))
	caller := startCaller(t, service.WithRegistry(reg), service.WithTLSConfig(ca.MutualConfig(ca.Issue(t, "caller"))))
	ctx := callCtx(t)

	rsp, err := greeterpb.NewGreeterService("greeter", caller.Client()).SayHello(ctx, &greeterpb.HelloRequest{})
	if err != nil || rsp.Message != "caller" {
		t.Fatalf("mutual TLS call: %v %v, want the caller's common name", rsp, err)
	}

	addr := g.Server().Address()
	for name, opts := range map[string][]client.Option{
		"no client certificate": {client.WithTLSConfig(&tls.Config{RootCAs: ca.Pool})},
		"cleartext":             nil,
	} {
		c := client.NewClient(append(opts, client.WithDialTimeout(5*time.Second))...)
		_, err := greeterpb.NewGreeterService("greeter", c).SayHello(ctx, &greeterpb.HelloRequest{}, client.WithAddress(addr), client.WithRetries(0))
		c.Close()
		if status.CodeOf(err) != status.Unavailable {
			t.Errorf("%s: %v, want Unavailable", name, err)
		}
	}
}

// TestTLSFromEnvironment: MICRO_TLS_CERT, MICRO_TLS_KEY and MICRO_TLS_CA give
// the service mutual TLS.
func TestTLSFromEnvironment(t *testing.T) {
	leakcheck.Check(t)
	ca := testcert.NewCA(t)
	certFile, keyFile, caFile := ca.WriteFiles(t, ca.Issue(t, "from-env"))
	t.Setenv("MICRO_TLS_CERT", certFile)
	t.Setenv("MICRO_TLS_KEY", keyFile)
	t.Setenv("MICRO_TLS_CA", caFile)
	reg := memory.NewRegistry()
	startGreeter(t, service.WithRegistry(reg))
	caller := startCaller(t, service.WithRegistry(reg))
	rsp, err := greeterpb.NewGreeterService("greeter", caller.Client()).SayHello(callCtx(t), &greeterpb.HelloRequest{})
	if err != nil || rsp.Message != "from-env" {
		t.Fatalf("call with TLS from the environment: %v %v", rsp, err)
	}
}

// TestConfigPrecedence: the environment fills what the code leaves open,
// a flag wins over the environment, and code wins over both.
func TestConfigPrecedence(t *testing.T) {
	t.Setenv("MICRO_SERVER_NAME", "env-name")
	t.Setenv("MICRO_SERVER_VERSION", "v-env")
	t.Setenv("MICRO_REGISTRY", "memory")
	if got := service.NewService().Name(); got != "env-name" {
		t.Errorf("from the environment: name %q", got)
	}
	if got := service.NewService(service.WithName("code")).Name(); got != "code" {
		t.Errorf("code and environment: name %q, want code's", got)
	}
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	svc := service.NewService(service.WithFlags(fs))
	if err := fs.Parse([]string{"-server_name=flag-name", "-server_address=127.0.0.1:0"}); err != nil {
		t.Fatal(err)
	}
	if got := svc.Name(); got != "flag-name" {
		t.Errorf("flag and environment: name %q, want the flag's", got)
	}
	if got := svc.Registry().String(); got != "memory" {
		t.Errorf("MICRO_REGISTRY=memory gave registry %q", got)
	}
	svc.Init(service.WithSignal(false))
	if err := svc.Start(); err != nil {
		t.Fatal(err)
	}
	defer svc.Stop()
	if addr := svc.Server().Address(); !strings.HasPrefix(addr, "127.0.0.1:") {
		t.Errorf("-server_address=127.0.0.1:0: server listens on %q", addr)
	}
	got, err := svc.Registry().GetService(context.Background(), "flag-name")
	if err != nil || got[0].Version != "v-env" {
		t.Fatalf("registered %v, %v; want version v-env", got, err)
	}
}

// TestConfigRefusesWhatItDoesNotKnow: an unknown MICRO_ variable, or a value
// a setting does not take, fails Start with an error naming it.
func TestConfigRefusesWhatItDoesNotKnow(t *testing.T) {
	for _, tc := range []struct {
		env, value string
		want       []string
	}{
		{"MICRO_SERVER_ADDRES", ":1", []string{"MICRO_SERVER_ADDRES", "MICRO_SERVER_ADDRESS"}},
		{"MICRO_LOG_LEVEL", "loud", []string{"MICRO_LOG_LEVEL", "loud"}},
		{"MICRO_BROKER", "nats", []string{`MICRO_BROKER="nats"`, "direct, memory"}},
		{"MICRO_REGISTRY_ADDRESS", "127.0.0.1:2379", []string{"MICRO_REGISTRY_ADDRESS", "mdns registry takes no address"}},
		{"MICRO_TLS_CERT", "cert.pem", []string{"MICRO_TLS_CERT and MICRO_TLS_KEY"}},
		{"MICRO_REGISTRY", "etdc", []string{`"etdc"`, "memory"}},
	} {
		t.Run(tc.env, func(t *testing.T) {
			t.Setenv(tc.env, tc.value)
			svc := service.NewService(service.WithName("a"), service.WithAddress("127.0.0.1:0"), service.WithSignal(false))
			err := svc.Start()
			if err == nil {
				svc.Stop()
				t.Fatalf("%s=%s: Start succeeded", tc.env, tc.value)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("%s=%s: %v; want it to say %q", tc.env, tc.value, err, w)
				}
			}
		})
	}
}

func TestConfigBrokerAndLogLevel(t *testing.T) {
	t.Setenv("MICRO_REGISTRY", "memory")
	t.Setenv("MICRO_BROKER", "memory")
	t.Setenv("MICRO_LOG_LEVEL", "debug")
	t.Cleanup(func() { slog.SetLogLoggerLevel(slog.LevelInfo) })
	svc := service.NewService(service.WithName("a"))
	if got := svc.Broker().String(); got != "memory" {
		t.Errorf("MICRO_BROKER=memory gave broker %q", got)
	}
	if !slog.Default().Enabled(context.Background(), slog.LevelDebug) {
		t.Error("MICRO_LOG_LEVEL=debug did not enable debug logging")
	}
}

// TestConfigBrokerPlugin: MICRO_BROKER names a plug-in once its package
// registered it, and MICRO_BROKER_ADDRESS reaches its factory.
func TestConfigBrokerPlugin(t *testing.T) {
	var gotAddr string
	brokerplugin.Register("plugtest", func(addr string, _ *slog.Logger) (broker.Broker, error) {
		gotAddr = addr
		return brokermemory.NewBroker(), nil
	})
	t.Setenv("MICRO_REGISTRY", "memory")
	t.Setenv("MICRO_BROKER", "plugtest")
	t.Setenv("MICRO_BROKER_ADDRESS", "nats://127.0.0.1:4222")
	svc := service.NewService(service.WithName("a"), service.WithAddress("127.0.0.1:0"), service.WithSignal(false))
	if got := svc.Broker().String(); got != "memory" || gotAddr != "nats://127.0.0.1:4222" {
		t.Fatalf("MICRO_BROKER=plugtest gave broker %q, its factory address %q", got, gotAddr)
	}
	t.Setenv("MICRO_BROKER", "natz")
	err := service.NewService(service.WithName("b"), service.WithSignal(false)).Start()
	if err == nil || !strings.Contains(err.Error(), "known: direct, memory, plugtest") {
		t.Fatalf("MICRO_BROKER=natz: %v, want the known brokers with the plug-in", err)
	}
}

// recorder is an interceptor that records what it wraps, per side.
type recorder struct {
	mu   sync.Mutex
	seen []string
}

func (r *recorder) add(s string) {
	r.mu.Lock()
	r.seen = append(r.seen, s)
	r.mu.Unlock()
}

func (r *recorder) take() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := r.seen
	r.seen = nil
	slices.Sort(out)
	return slices.Compact(out)
}

func (r *recorder) WrapUnary(m *spec.Method, next interceptor.UnaryFunc) interceptor.UnaryFunc {
	return func(ctx context.Context, req, rsp any) error {
		r.add("unary " + m.Procedure)
		return next(ctx, req, rsp)
	}
}

func (r *recorder) WrapStreamingClient(m *spec.Method, next interceptor.StreamingClientFunc) interceptor.StreamingClientFunc {
	return func(ctx context.Context) (interceptor.ClientStream, error) {
		r.add("client stream " + m.Procedure)
		return next(ctx)
	}
}

func (r *recorder) WrapStreamingHandler(m *spec.Method, next interceptor.StreamingHandlerFunc) interceptor.StreamingHandlerFunc {
	return func(ctx context.Context, s interceptor.ServerStream) error {
		r.add("handler stream " + m.Procedure)
		return next(ctx, s)
	}
}

// TestServiceInterceptorsCoverEveryCall: a service's interceptors see its
// unary calls and its streams, on the client and the server side, and not
// the built-in broker's deliveries.
func TestServiceInterceptorsCoverEveryCall(t *testing.T) {
	leakcheck.Check(t)
	reg := memory.NewRegistry()
	var onServer, onCaller recorder
	g := service.NewService(service.WithName("greeter"), service.WithAddress("127.0.0.1:0"), service.WithSignal(false),
		service.WithRegistry(reg), service.WithInterceptors(&onServer))
	if err := greeterpb.RegisterGreeterHandler(g.Server(), peerGreeter{}); err != nil {
		t.Fatal(err)
	}
	delivered := make(chan string, 1)
	_, err := broker.Subscribe(g.Broker(), "greetings", func(ctx context.Context, m *wrapperspb.StringValue) error {
		delivered <- m.Value
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := g.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { g.Stop() })
	caller := service.NewService(service.WithName("caller"), service.WithAddress("127.0.0.1:0"), service.WithSignal(false),
		service.WithRegistry(reg), service.WithInterceptors(&onCaller))
	pub := broker.NewPublisher[*wrapperspb.StringValue](caller.Broker(), "greetings", broker.WithRequireSubscribers())
	if err := caller.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { caller.Stop() })
	ctx := callCtx(t)

	gs := greeterpb.NewGreeterService("greeter", caller.Client())
	if _, err := gs.SayHello(ctx, &greeterpb.HelloRequest{}); err != nil {
		t.Fatal(err)
	}
	chat, err := gs.Chat(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := chat.Send(&greeterpb.HelloRequest{Name: "x"}); err != nil {
		t.Fatal(err)
	}
	if _, err := chat.Recv(); err != nil {
		t.Fatal(err)
	}
	chat.CloseSend()
	if _, err := chat.Recv(); err != io.EOF {
		t.Fatalf("chat end: %v", err)
	}
	if err := pub.Publish(ctx, wrapperspb.String("hi")); err != nil {
		t.Fatal(err)
	}
	if got := <-delivered; got != "hi" {
		t.Fatalf("delivered %q", got)
	}
	wantCaller := []string{"client stream " + greeterpb.GreeterChatProcedure, "unary " + greeterpb.GreeterSayHelloProcedure}
	if got := onCaller.take(); !slices.Equal(got, wantCaller) {
		t.Errorf("caller's interceptor saw\n %q\nwant\n %q", got, wantCaller)
	}
	wantServer := []string{"handler stream " + greeterpb.GreeterChatProcedure, "unary " + greeterpb.GreeterSayHelloProcedure}
	if got := onServer.take(); !slices.Equal(got, wantServer) {
		t.Errorf("server's interceptor saw\n %q\nwant\n %q", got, wantServer)
	}
}

// TestClientClose: a closed client's calls fail, and Close releases its
// connections (leakcheck).
func TestClientClose(t *testing.T) {
	leakcheck.Check(t)
	reg := memory.NewRegistry()
	g := startGreeter(t, service.WithRegistry(reg))
	c := client.NewClient(client.WithRegistry(reg))
	gs := greeterpb.NewGreeterService("greeter", c)
	if _, err := gs.SayHello(callCtx(t), &greeterpb.HelloRequest{}); err != nil {
		t.Fatal(err)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	_, err := gs.SayHello(callCtx(t), &greeterpb.HelloRequest{}, client.WithAddress(g.Server().Address()))
	if status.CodeOf(err) != status.Canceled || !strings.Contains(err.Error(), "client is closed") {
		t.Fatalf("a call after Close: %v, want Canceled saying the client is closed", err)
	}
	if _, err := gs.Chat(callCtx(t)); status.CodeOf(err) != status.Canceled {
		t.Fatalf("a stream after Close: %v, want Canceled", err)
	}
	if err := c.Close(); err != nil {
		t.Fatalf("a second Close: %v", err)
	}
}

// TestStopWithoutStart: a program that only calls never starts its service;
// Stop still closes the client the service made (leakcheck).
func TestStopWithoutStart(t *testing.T) {
	leakcheck.Check(t)
	reg := memory.NewRegistry()
	startGreeter(t, service.WithRegistry(reg))
	caller := service.NewService(service.WithName("caller"), service.WithRegistry(reg))
	gs := greeterpb.NewGreeterService("greeter", caller.Client())
	if _, err := gs.SayHello(callCtx(t), &greeterpb.HelloRequest{}); err != nil {
		t.Fatal(err)
	}
	if err := caller.Stop(); err != nil {
		t.Fatal(err)
	}
	if _, err := gs.SayHello(callCtx(t), &greeterpb.HelloRequest{}); status.CodeOf(err) != status.Canceled {
		t.Fatalf("a call after Stop: %v, want Canceled", err)
	}
	if err := caller.Start(); err == nil {
		t.Fatal("Start after Stop succeeded")
	}
}
