package interop_test

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"

	"connectrpc.com/connect"
	"github.com/protoc-gen-micro/micro/examples/greeter/greeterpb"
	"github.com/protoc-gen-micro/micro/internal/leakcheck"
	"github.com/protoc-gen-micro/micro/internal/testcert"
	"github.com/protoc-gen-micro/micro/runtime/interceptor"
	"github.com/protoc-gen-micro/micro/runtime/server"
	"github.com/protoc-gen-micro/micro/runtime/spec"
	"golang.org/x/net/http2"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// TestConnectGoClientOnePort calls a started server, on its one port, with
// connect-go's client in its three protocols over HTTP/1.1 and HTTP/2, in
// cleartext (h2c) and over TLS with ALPN: gRPC over HTTP/2 reaches the
// transport's fast path; the rest reach webrpc, through net/http for
// HTTP/1.1 and the transport's web streams for HTTP/2, and the server's
// method table and interceptors either way. Bidi streaming, which needs
// HTTP/2, runs full duplex on every protocol over HTTP/2.
func TestConnectGoClientOnePort(t *testing.T) {
	leakcheck.Check(t)
	ca := testcert.NewCA(t)
	for _, useTLS := range []bool{false, true} {
		name := "cleartext"
		var opts []server.Option
		if useTLS {
			name = "tls"
			opts = append(opts, server.WithTLSConfig(&tls.Config{Certificates: []tls.Certificate{ca.Issue(t, "one port").TLS}}))
		}
		t.Run(name, func(t *testing.T) {
			var intercepted atomic.Int32
			srv := server.NewServer(append(opts, server.WithAddress("127.0.0.1:0"), server.WithInterceptors(callCounter{&intercepted}))...)
			if err := greeterpb.RegisterGreeterHandler(srv, detailGreeter{}); err != nil {
				t.Fatal(err)
			}
			if err := srv.Start(); err != nil {
				t.Fatal(err)
			}
			defer srv.Stop()
			base := "http://" + srv.Address()
			tc := &tls.Config{RootCAs: ca.Pool}
			if useTLS {
				base = "https://" + srv.Address()
			}
			h1tc := tc.Clone()
			h1tc.NextProtos = []string{"http/1.1"} // ALPN chooses HTTP/1.1
			h1 := &http.Transport{TLSClientConfig: h1tc}
			h1.Protocols = new(http.Protocols)
			h1.Protocols.SetHTTP1(true)
			defer h1.CloseIdleConnections()
			h2 := &http2.Transport{TLSClientConfig: tc.Clone()}
			if !useTLS {
				h2.AllowHTTP = true
				h2.DialTLSContext = func(ctx context.Context, network, addr string, _ *tls.Config) (net.Conn, error) {
					return (&net.Dialer{}).DialContext(ctx, network, addr)
				}
			}
			defer h2.CloseIdleConnections()
			for _, pr := range []struct {
				name string
				c    *http.Client
				opts []connect.ClientOption
			}{
				{"http1/connect-json", &http.Client{Transport: h1}, []connect.ClientOption{connect.WithProtoJSON()}},
				{"http1/connect-proto-gzip", &http.Client{Transport: h1}, []connect.ClientOption{connect.WithSendGzip()}},
				{"http1/grpcweb-proto", &http.Client{Transport: h1}, []connect.ClientOption{connect.WithGRPCWeb()}},
				{"http1/grpc-proto", &http.Client{Transport: h1}, []connect.ClientOption{connect.WithGRPC()}},
				{"h2/connect-json", &http.Client{Transport: h2}, []connect.ClientOption{connect.WithProtoJSON()}},
				{"h2/connect-proto-gzip", &http.Client{Transport: h2}, []connect.ClientOption{connect.WithSendGzip()}},
				{"h2/connect-get", &http.Client{Transport: h2}, []connect.ClientOption{connect.WithHTTPGet(), connect.WithIdempotency(connect.IdempotencyNoSideEffects)}},
				{"h2/grpcweb-proto", &http.Client{Transport: h2}, []connect.ClientOption{connect.WithGRPCWeb()}},
				{"h2/grpcweb-json-gzip", &http.Client{Transport: h2}, []connect.ClientOption{connect.WithGRPCWeb(), connect.WithProtoJSON(), connect.WithSendGzip()}},
				{"h2/grpc-proto", &http.Client{Transport: h2}, []connect.ClientOption{connect.WithGRPC()}},
			} {
				t.Run(pr.name, func(t *testing.T) {
					ctx := context.Background()
					before := intercepted.Load()
					unary := connect.NewClient[greeterpb.HelloRequest, greeterpb.HelloReply](pr.c, base+greeterpb.GreeterSayHelloProcedure, pr.opts...)
					rsp, err := unary.CallUnary(ctx, connect.NewRequest(&greeterpb.HelloRequest{Name: "port"}))
					if err != nil || rsp.Msg.Message != "Hello port" {
						t.Fatalf("unary: %v, %v", rsp, err)
					}
					_, err = unary.CallUnary(ctx, connect.NewRequest(&greeterpb.HelloRequest{Name: "details"}))
					var ce *connect.Error
					if !errors.As(err, &ce) || ce.Code() != connect.CodeNotFound || len(ce.Details()) != 1 {
						t.Fatalf("error with a detail: %v", err)
					}
					if v, err := ce.Details()[0].Value(); err != nil || v.(*wrapperspb.StringValue).GetValue() != "why" {
						t.Fatalf("detail: %v %v", v, err)
					}
					ss := connect.NewClient[greeterpb.HelloRequest, greeterpb.HelloReply](pr.c, base+greeterpb.GreeterLotsOfRepliesProcedure, pr.opts...)
					stream, err := ss.CallServerStream(ctx, connect.NewRequest(&greeterpb.HelloRequest{Name: "S"}))
					if err != nil {
						t.Fatal(err)
					}
					var got []string
					for stream.Receive() {
						got = append(got, stream.Msg().Message)
					}
					if err := stream.Err(); err != nil || len(got) != 3 || got[2] != "3: Hallo S" {
						t.Fatalf("server stream: %q, %v", got, err)
					}
					stream.Close()
					cs := connect.NewClient[greeterpb.HelloRequest, greeterpb.HelloReply](pr.c, base+greeterpb.GreeterLotsOfGreetingsProcedure, pr.opts...)
					up := cs.CallClientStream(ctx)
					for _, n := range []string{"a", "b"} {
						if err := up.Send(&greeterpb.HelloRequest{Name: n}); err != nil {
							t.Fatal(err)
						}
					}
					if crsp, err := up.CloseAndReceive(); err != nil || crsp.Msg.Message != "Hello a, b" {
						t.Fatalf("client stream: %v, %v", crsp, err)
					}
					calls := int32(4)
					if strings.HasPrefix(pr.name, "h2/") {
						// Full duplex: each reply arrives before the
						// next request is sent.
						bidi := connect.NewClient[greeterpb.HelloRequest, greeterpb.HelloReply](pr.c, base+greeterpb.GreeterChatProcedure, pr.opts...).CallBidiStream(ctx)
						for _, n := range []string{"x", "y"} {
							if err := bidi.Send(&greeterpb.HelloRequest{Name: n}); err != nil {
								t.Fatal(err)
							}
							if r, err := bidi.Receive(); err != nil || r.Message != "Hello "+n {
								t.Fatalf("bidi: %v, %v", r, err)
							}
						}
						if err := bidi.CloseRequest(); err != nil {
							t.Fatal(err)
						}
						if _, err := bidi.Receive(); !errors.Is(err, io.EOF) {
							t.Fatalf("bidi end: %v", err)
						}
						bidi.CloseResponse()
						calls++
					}
					// The server's interceptors saw every call, whichever
					// protocol carried it.
					if n := intercepted.Load() - before; n != calls {
						t.Fatalf("the server's interceptor saw %d of %d calls", n, calls)
					}
				})
			}
		})
	}
}

// callCounter is a server interceptor that counts the calls it sees.
type callCounter struct{ n *atomic.Int32 }

func (c callCounter) WrapUnary(_ *spec.Method, next interceptor.UnaryFunc) interceptor.UnaryFunc {
	return func(ctx context.Context, req, rsp any) error { c.n.Add(1); return next(ctx, req, rsp) }
}

func (c callCounter) WrapStreamingClient(_ *spec.Method, next interceptor.StreamingClientFunc) interceptor.StreamingClientFunc {
	return next
}

func (c callCounter) WrapStreamingHandler(_ *spec.Method, next interceptor.StreamingHandlerFunc) interceptor.StreamingHandlerFunc {
	return func(ctx context.Context, st interceptor.ServerStream) error { c.n.Add(1); return next(ctx, st) }
}
