package interop_test

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"

	"connectrpc.com/connect"
	"github.com/protoc-gen-micro/micro/examples/greeter/greeterpb"
	"github.com/protoc-gen-micro/micro/examples/greeter/handler"
	"github.com/protoc-gen-micro/micro/internal/callctx"
	"github.com/protoc-gen-micro/micro/internal/leakcheck"
	"github.com/protoc-gen-micro/micro/internal/webrpc"
	"github.com/protoc-gen-micro/micro/runtime/interceptor"
	"github.com/protoc-gen-micro/micro/runtime/spec"
	"github.com/protoc-gen-micro/micro/runtime/status"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/h2c"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// detailGreeter answers SayHello("details") with an error carrying a
// detail, and otherwise as the example Greeter.
type detailGreeter struct{ handler.Greeter }

func (g detailGreeter) SayHello(ctx context.Context, in *greeterpb.HelloRequest, out *greeterpb.HelloReply) error {
	if in.Name == "details" {
		s, err := status.New(status.NotFound, "no such person").WithDetails(wrapperspb.String("why"))
		if err != nil {
			return err
		}
		return s
	}
	return g.Greeter.SayHello(ctx, in, out)
}

// webrpcLookup is greeterpb's method table as the server builds it.
func webrpcLookup(impl greeterpb.GreeterHandler) func(string) (*webrpc.Method, bool) {
	desc := &greeterpb.GreeterServiceDesc
	table := map[string]*webrpc.Method{}
	for i := range desc.Methods {
		md := &desc.Methods[i]
		wm := &webrpc.Method{Spec: md.Method, NewRequest: md.NewRequest, NewResponse: md.NewResponse}
		switch md.Method.StreamType {
		case spec.Unary:
			wm.Unary = func(ctx context.Context, req, rsp any) error { return md.Unary(impl, ctx, req, rsp) }
		case spec.ServerStream:
			wm.Stream = func(ctx context.Context, st interceptor.ServerStream) error {
				req := md.NewRequest()
				if err := st.RecvMsg(req); err != nil {
					return err
				}
				if c, ok := callctx.FromContext(ctx); !ok || c.MoreData() {
					return status.New(status.Unimplemented, "want exactly one request")
				}
				return md.Stream(impl, ctx, req, st)
			}
		default:
			wm.Stream = func(ctx context.Context, st interceptor.ServerStream) error { return md.Stream(impl, ctx, nil, st) }
		}
		table[md.Method.Procedure] = wm
	}
	return func(p string) (*webrpc.Method, bool) { m, ok := table[p]; return m, ok }
}

// TestConnectGoClientWebRPC calls internal/webrpc's handler with
// connect-go's own client in the Connect, gRPC-Web and (over h2c) gRPC
// protocols, JSON and proto, over HTTP/1.1 and h2c.
func TestConnectGoClientWebRPC(t *testing.T) {
	leakcheck.Check(t)
	wh := webrpc.NewHandler(webrpc.Config{Lookup: webrpcLookup(detailGreeter{}), SendCompression: "gzip"})
	var gets atomic.Int32 // proves connect-go's WithHTTPGet really sent GETs
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet {
			gets.Add(1)
		}
		wh.ServeHTTP(w, r)
	})
	s1 := httptest.NewServer(h)
	defer s1.Close()
	s2 := httptest.NewServer(h2c.NewHandler(h, &http2.Server{}))
	defer s2.Close()
	tr1 := &http.Transport{}
	defer tr1.CloseIdleConnections()
	tr2 := &http2.Transport{AllowHTTP: true, DialTLSContext: func(ctx context.Context, network, addr string, _ *tls.Config) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, network, addr)
	}}
	defer tr2.CloseIdleConnections()
	transports := []struct {
		name string
		url  string
		c    *http.Client
		h2   bool
	}{{"http1", s1.URL, &http.Client{Transport: tr1}, false}, {"h2c", s2.URL, &http.Client{Transport: tr2}, true}}
	protocols := []struct {
		name   string
		opts   []connect.ClientOption
		needH2 bool
	}{
		{"connect-proto", nil, false},
		{"connect-json", []connect.ClientOption{connect.WithProtoJSON()}, false},
		{"connect-json-gzip", []connect.ClientOption{connect.WithProtoJSON(), connect.WithSendGzip()}, false},
		{"connect-get", []connect.ClientOption{connect.WithHTTPGet(), connect.WithIdempotency(connect.IdempotencyNoSideEffects)}, false},
		{"grpcweb-proto", []connect.ClientOption{connect.WithGRPCWeb()}, false},
		{"grpcweb-json-gzip", []connect.ClientOption{connect.WithGRPCWeb(), connect.WithProtoJSON(), connect.WithSendGzip()}, false},
		{"grpc-proto", []connect.ClientOption{connect.WithGRPC()}, true},
	}
	ctx := context.Background()
	for _, tp := range transports {
		for _, pr := range protocols {
			if pr.needH2 && !tp.h2 {
				continue
			}
			t.Run(tp.name+"/"+pr.name, func(t *testing.T) {
				proc := func(p string) string { return tp.url + p }
				unary := connect.NewClient[greeterpb.HelloRequest, greeterpb.HelloReply](tp.c, proc(greeterpb.GreeterSayHelloProcedure), pr.opts...)
				rsp, err := unary.CallUnary(ctx, connect.NewRequest(&greeterpb.HelloRequest{Name: "Connect"}))
				if err != nil || rsp.Msg.Message != "Hello Connect" {
					t.Fatalf("unary: %v, %v", rsp, err)
				}
				_, err = unary.CallUnary(ctx, connect.NewRequest(&greeterpb.HelloRequest{Name: "details"}))
				var ce *connect.Error
				if !errors.As(err, &ce) || ce.Code() != connect.CodeNotFound || ce.Message() != "no such person" || len(ce.Details()) != 1 {
					t.Fatalf("error: %v", err)
				}
				if v, err := ce.Details()[0].Value(); err != nil || v.(*wrapperspb.StringValue).GetValue() != "why" {
					t.Fatalf("detail: %v %v", v, err)
				}
				if pr.name == "connect-get" {
					if gets.Swap(0) != 2 {
						t.Fatal("connect-go did not call with GET")
					}
					return // the rest is not GET's
				}

				ss := connect.NewClient[greeterpb.HelloRequest, greeterpb.HelloReply](tp.c, proc(greeterpb.GreeterLotsOfRepliesProcedure), pr.opts...)
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

				cs := connect.NewClient[greeterpb.HelloRequest, greeterpb.HelloReply](tp.c, proc(greeterpb.GreeterLotsOfGreetingsProcedure), pr.opts...)
				up := cs.CallClientStream(ctx)
				for _, n := range []string{"a", "b"} {
					if err := up.Send(&greeterpb.HelloRequest{Name: n}); err != nil {
						t.Fatal(err)
					}
				}
				crsp, err := up.CloseAndReceive()
				if err != nil || crsp.Msg.Message != "Hello a, b" {
					t.Fatalf("client stream: %v, %v", crsp, err)
				}

				bidi := connect.NewClient[greeterpb.HelloRequest, greeterpb.HelloReply](tp.c, proc(greeterpb.GreeterChatProcedure), pr.opts...)
				bs := bidi.CallBidiStream(ctx)
				sendErr := bs.Send(&greeterpb.HelloRequest{Name: "chat"})
				if !tp.h2 {
					// Refused over HTTP/1.1, as connect-go's own handler does.
					_, err := bs.Receive()
					if sendErr == nil && err == nil {
						t.Fatal("bidi over HTTP/1.1 was not refused")
					}
					bs.CloseRequest()
					bs.CloseResponse()
					return
				}
				if sendErr != nil {
					t.Fatal(sendErr)
				}
				m, err := bs.Receive()
				if err != nil || m.Message != "Hello chat" {
					t.Fatalf("bidi: %v, %v", m, err)
				}
				bs.CloseRequest()
				if _, err := bs.Receive(); !errors.Is(err, io.EOF) {
					t.Fatalf("bidi end: %v", err)
				}
				bs.CloseResponse()
			})
		}
	}
}
