package interop_test

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"os"
	"testing"
	"time"

	"github.com/protoc-gen-micro/micro/internal/leakcheck"
	"github.com/protoc-gen-micro/micro/interop/adapter"
	"github.com/protoc-gen-micro/micro/interop/testpb"
	"github.com/protoc-gen-micro/micro/interop/testserver"
	"github.com/protoc-gen-micro/micro/runtime/client"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/grpclog"
	"google.golang.org/grpc/interop"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
	grpcstatus "google.golang.org/grpc/status"
)

func TestMain(m *testing.M) {
	// grpc-go's interop cases report failure with grpclog's Fatal, which
	// exits the process; this logger panics instead so that only the case
	// fails.
	grpclog.SetLoggerV2(fatalPanics{grpclog.NewLoggerV2(io.Discard, io.Discard, os.Stderr)})
	os.Exit(m.Run())
}

// failure is the panic value of a failed interop case.
type failure string

// fatalPanics is a grpclog.LoggerV2 whose Fatal calls panic with a failure.
type fatalPanics struct{ grpclog.LoggerV2 }

func (fatalPanics) Fatal(args ...any)                 { panic(failure(fmt.Sprint(args...))) }
func (fatalPanics) Fatalln(args ...any)               { panic(failure(fmt.Sprintln(args...))) }
func (fatalPanics) Fatalf(format string, args ...any) { panic(failure(fmt.Sprintf(format, args...))) }

// fail fails the running case as grpc-go's cases do.
func fail(format string, args ...any) { panic(failure(fmt.Sprintf(format, args...))) }

// endpoint is what a case calls: the TestService, a service the server does
// not have, and a check that a method the server lacks fails.
type endpoint struct {
	test                 testgrpc.TestServiceClient
	unimplementedService testgrpc.UnimplementedServiceClient
	unimplementedMethod  func(context.Context)
}

// cases are grpc-go's interop cases that need no cloud credentials or
// load balancer, named as the interop spec names them.
var cases = []struct {
	name string
	run  func(context.Context, endpoint)
}{
	{"empty_unary", func(ctx context.Context, e endpoint) { interop.DoEmptyUnaryCall(ctx, e.test) }},
	{"large_unary", func(ctx context.Context, e endpoint) { interop.DoLargeUnaryCall(ctx, e.test) }},
	{"client_streaming", func(ctx context.Context, e endpoint) { interop.DoClientStreaming(ctx, e.test) }},
	{"server_streaming", func(ctx context.Context, e endpoint) { interop.DoServerStreaming(ctx, e.test) }},
	{"ping_pong", func(ctx context.Context, e endpoint) { interop.DoPingPong(ctx, e.test) }},
	{"empty_stream", func(ctx context.Context, e endpoint) { interop.DoEmptyStream(ctx, e.test) }},
	{"timeout_on_sleeping_server", func(ctx context.Context, e endpoint) { interop.DoTimeoutOnSleepingServer(ctx, e.test) }},
	{"cancel_after_begin", func(ctx context.Context, e endpoint) { interop.DoCancelAfterBegin(ctx, e.test) }},
	{"cancel_after_first_response", func(ctx context.Context, e endpoint) { interop.DoCancelAfterFirstResponse(ctx, e.test) }},
	{"status_code_and_message", func(ctx context.Context, e endpoint) { interop.DoStatusCodeAndMessage(ctx, e.test) }},
	{"special_status_message", func(ctx context.Context, e endpoint) { interop.DoSpecialStatusMessage(ctx, e.test) }},
	{"custom_metadata", func(ctx context.Context, e endpoint) { interop.DoCustomMetadata(ctx, e.test) }},
	{"unimplemented_method", func(ctx context.Context, e endpoint) { e.unimplementedMethod(ctx) }},
	{"unimplemented_service", func(ctx context.Context, e endpoint) { interop.DoUnimplementedService(ctx, e.unimplementedService) }},
}

// runCases runs every case against e, one subtest each.
func runCases(t *testing.T, e endpoint) {
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			defer func() {
				if r := recover(); r != nil {
					f, ok := r.(failure)
					if !ok {
						panic(r)
					}
					t.Fatalf("%s", string(f))
				}
			}()
			c.run(ctx, e)
		})
	}
}

// transports names the two ways every pairing is run.
var transports = []struct {
	name string
	tls  bool
}{{"cleartext", false}, {"tls", true}}

// TestGRPCClientMicroServer runs grpc-go's client against the micro server.
func TestGRPCClientMicroServer(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr.name, func(t *testing.T) {
			leakcheck.Check(t)
			addr := startMicroServer(t, tr.tls)
			cc := dialGRPC(t, addr, tr.tls)
			runCases(t, endpoint{
				test:                 testgrpc.NewTestServiceClient(cc),
				unimplementedService: testgrpc.NewUnimplementedServiceClient(cc),
				unimplementedMethod:  func(ctx context.Context) { interop.DoUnimplementedMethod(ctx, cc) },
			})
		})
	}
}

// TestMicroClientGRPCServer runs the micro client against grpc-go's server.
func TestMicroClientGRPCServer(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr.name, func(t *testing.T) {
			leakcheck.Check(t)
			addr := startGRPCServer(t, tr.tls, nil)
			runCases(t, microEndpoint(t, addr, tr.tls))
		})
	}
}

// TestMicroClientMicroServer runs the micro client against the micro server.
func TestMicroClientMicroServer(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr.name, func(t *testing.T) {
			leakcheck.Check(t)
			addr := startMicroServer(t, tr.tls)
			runCases(t, microEndpoint(t, addr, tr.tls))
		})
	}
}

func startMicroServer(t *testing.T, useTLS bool) string {
	t.Helper()
	var cfg *tls.Config
	if useTLS {
		cfg = serverTLS(t)
	}
	s, err := testserver.Start("127.0.0.1:0", cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Stop(); err != nil {
			t.Errorf("stopping the micro server: %v", err)
		}
	})
	return s.Address()
}

// startGRPCServer starts a grpc-go server of impl, grpc-go's interop server
// when nil.
func startGRPCServer(t *testing.T, useTLS bool, impl testgrpc.TestServiceServer) string {
	t.Helper()
	if impl == nil {
		impl = interop.NewTestServer()
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var opts []grpc.ServerOption
	if useTLS {
		opts = append(opts, grpc.Creds(credentials.NewTLS(serverTLS(t))))
	}
	s := grpc.NewServer(opts...)
	testgrpc.RegisterTestServiceServer(s, impl)
	done := make(chan error, 1)
	go func() { done <- s.Serve(ln) }()
	t.Cleanup(func() {
		s.Stop()
		if err := <-done; err != nil {
			t.Errorf("grpc-go server: %v", err)
		}
	})
	return ln.Addr().String()
}

func dialGRPC(t *testing.T, addr string, useTLS bool) *grpc.ClientConn {
	t.Helper()
	creds := insecure.NewCredentials()
	if useTLS {
		creds = credentials.NewTLS(clientTLS(t))
	}
	cc, err := grpc.NewClient("passthrough:///"+addr, grpc.WithTransportCredentials(creds))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	return cc
}

// microEndpoint is the micro client, seen through the adapter.
func microEndpoint(t *testing.T, addr string, useTLS bool) endpoint {
	t.Helper()
	var cfg *tls.Config
	if useTLS {
		cfg = clientTLS(t)
	}
	c := newMicroClient(t, cfg)
	at := client.WithAddress(addr)
	test := adapter.TestService(testpb.NewTestServiceService(testpb.TestServiceName, c), at)
	return endpoint{
		test:                 test,
		unimplementedService: adapter.UnimplementedService(testpb.NewUnimplementedServiceService(testpb.UnimplementedServiceName, c), at),
		// grpc-go's version of this case needs a *grpc.ClientConn; this is
		// the same check through the micro client.
		unimplementedMethod: func(ctx context.Context) {
			_, err := test.UnimplementedCall(ctx, &testgrpc.Empty{})
			if grpcstatus.Code(err) != codes.Unimplemented {
				fail("UnimplementedCall() = %v, want code %v", err, codes.Unimplemented)
			}
		},
	}
}

// newMicroClient returns a micro client, TLS when cfg is not nil, closed
// when the test ends.
func newMicroClient(t *testing.T, cfg *tls.Config) client.Client {
	t.Helper()
	var opts []client.Option
	if cfg != nil {
		opts = append(opts, client.WithTLSConfig(cfg))
	}
	c := client.NewClient(opts...)
	t.Cleanup(func() {
		// Client has no Close; the HTTP/2 client does, and must be closed
		// for the leak check to pass.
		if cl, ok := c.(interface{ Close() error }); ok {
			cl.Close()
		}
	})
	return c
}

func serverTLS(t *testing.T) *tls.Config {
	t.Helper()
	cfg, err := testserver.TLSConfig()
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func clientTLS(t *testing.T) *tls.Config {
	t.Helper()
	cfg, err := testserver.ClientTLSConfig()
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}
