package webrpc_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/protoc-gen-micro/micro/examples/greeter/greeterpb"
	"github.com/protoc-gen-micro/micro/examples/greeter/handler"
	"github.com/protoc-gen-micro/micro/internal/callctx"
	"github.com/protoc-gen-micro/micro/internal/leakcheck"
	"github.com/protoc-gen-micro/micro/internal/transport"
	"github.com/protoc-gen-micro/micro/internal/webrpc"
	"github.com/protoc-gen-micro/micro/runtime/interceptor"
	"github.com/protoc-gen-micro/micro/runtime/metadata"
	"github.com/protoc-gen-micro/micro/runtime/server"
	"github.com/protoc-gen-micro/micro/runtime/spec"
	"github.com/protoc-gen-micro/micro/runtime/status"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/h2c"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// testGreeter is the example Greeter with SayHello names that exercise the
// call's context: "panic", "details" (an error with a detail), "wait"
// (blocks until its context ends and says so on entered) and "meta"
// (echoes metadata and answers with the peer's address).
type testGreeter struct {
	handler.Greeter
	entered chan struct{}
	exited  chan error // "wait" sends its context's error when it returns
}

func (g *testGreeter) SayHello(ctx context.Context, in *greeterpb.HelloRequest, out *greeterpb.HelloReply) error {
	switch in.Name {
	case "panic":
		panic("boom")
	case "details":
		s, err := status.New(status.NotFound, "no such person").WithDetails(wrapperspb.String("why"))
		if err != nil {
			return err
		}
		return s
	case "wait":
		if g.entered != nil {
			g.entered <- struct{}{}
		}
		<-ctx.Done()
		if g.exited != nil {
			g.exited <- ctx.Err()
		}
		return status.New(status.Internal, "the handler's context ended: "+ctx.Err().Error())
	case "meta":
		md, _ := metadata.FromIncomingContext(ctx)
		if err := server.SetHeader(ctx, metadata.Pairs("x-echo", md.Value("x-echo"), "x-data-bin", md.Value("x-data-bin"))); err != nil {
			return err
		}
		if err := server.SetTrailer(ctx, metadata.Pairs("x-trailer", "t")); err != nil {
			return err
		}
		p, ok := server.PeerFromContext(ctx)
		if !ok {
			return status.New(status.Internal, "no peer")
		}
		out.Message = p.Addr.String()
		if md.Value("content-type") != "" || md.Value("connect-timeout-ms") != "" {
			return status.New(status.Internal, "protocol headers leaked into metadata")
		}
		return nil
	}
	return g.Greeter.SayHello(ctx, in, out)
}

// lookup builds a method table from greeterpb's ServiceDesc the way the
// server builds its own: a server-streaming handler reads its one request
// itself and refuses a second through callctx.
func lookup(impl greeterpb.GreeterHandler, ics ...interceptor.Interceptor) func(string) (*webrpc.Method, bool) {
	desc := &greeterpb.GreeterServiceDesc
	table := map[string]*webrpc.Method{}
	for i := range desc.Methods {
		md := &desc.Methods[i]
		wm := &webrpc.Method{Spec: md.Method, NewRequest: md.NewRequest, NewResponse: md.NewResponse}
		switch md.Method.StreamType {
		case spec.Unary:
			wm.Unary = func(ctx context.Context, req, rsp any) error { return md.Unary(impl, ctx, req, rsp) }
			for j := len(ics) - 1; j >= 0; j-- {
				wm.Unary = ics[j].WrapUnary(md.Method, wm.Unary)
			}
		case spec.ServerStream:
			wm.Stream = func(ctx context.Context, st interceptor.ServerStream) error {
				req := md.NewRequest()
				if err := st.RecvMsg(req); err != nil {
					if err == io.EOF {
						return status.New(status.Unimplemented, "no request")
					}
					return err
				}
				c, ok := callctx.FromContext(ctx)
				if !ok {
					return status.New(status.Internal, "no call in the context")
				}
				if c.MoreData() {
					return status.New(status.Unimplemented, "more than one request")
				}
				return md.Stream(impl, ctx, req, st)
			}
		default:
			wm.Stream = func(ctx context.Context, st interceptor.ServerStream) error { return md.Stream(impl, ctx, nil, st) }
		}
		if wm.Stream != nil {
			for j := len(ics) - 1; j >= 0; j-- {
				wm.Stream = ics[j].WrapStreamingHandler(md.Method, wm.Stream)
			}
		}
		table[md.Method.Procedure] = wm
	}
	return func(p string) (*webrpc.Method, bool) {
		m, ok := table[p]
		return m, ok
	}
}

// peer is a server reached over one HTTP version.
type peer struct {
	name   string
	url    string
	client *http.Client
	h2     bool
}

// start serves cfg's handler over HTTP/1.1 and over h2c, each with a plain
// net/http client; everything is closed, and checked for leaks, when the
// test ends.
func start(t *testing.T, g *testGreeter, cfg webrpc.Config) []peer {
	t.Helper()
	leakcheck.Check(t)
	if cfg.Lookup == nil {
		cfg.Lookup = lookup(g)
	}
	h := webrpc.NewHandler(cfg)
	s1 := httptest.NewServer(h)
	t.Cleanup(s1.Close)
	s2 := httptest.NewServer(h2c.NewHandler(h, &http2.Server{}))
	t.Cleanup(s2.Close)
	tr1 := &http.Transport{DisableCompression: true}
	t.Cleanup(tr1.CloseIdleConnections)
	// The h2c client's connections are closed at the end whatever their
	// streams' state: a request the server refused before reading all of
	// its body keeps its connection from counting as idle.
	var (
		mu    sync.Mutex
		conns []net.Conn
	)
	newH2 := func() *http2.Transport {
		tr := &http2.Transport{
			AllowHTTP:          true,
			DisableCompression: true,
			DialTLSContext: func(ctx context.Context, network, addr string, _ *tls.Config) (net.Conn, error) {
				c, err := (&net.Dialer{}).DialContext(ctx, network, addr)
				if err == nil {
					mu.Lock()
					conns = append(conns, c)
					mu.Unlock()
				}
				return c, err
			},
		}
		t.Cleanup(tr.CloseIdleConnections)
		return tr
	}
	t.Cleanup(func() {
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
	// The server's own HTTP/2 transport, serving the handler on its web
	// streams, as the one-port server does.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ts := transport.NewServer(transport.ServerConfig{Handler: noGRPC{}, Web: h})
	served := make(chan struct{})
	go func() { defer close(served); ts.Serve(ln) }()
	t.Cleanup(func() {
		ts.Close()
		<-served
	})
	return []peer{
		{name: "http1", url: s1.URL, client: &http.Client{Transport: tr1}},
		{name: "h2c", url: s2.URL, client: &http.Client{Transport: newH2()}, h2: true},
		{name: "transport", url: "http://" + ln.Addr().String(), client: &http.Client{Transport: newH2()}, h2: true},
	}
}

// noGRPC is a transport handler with no gRPC methods.
type noGRPC struct{}

func (noGRPC) Route(*transport.ServerStream) (bool, *status.Error) {
	return false, status.New(status.Unimplemented, "no gRPC here")
}

func (noGRPC) Serve(st *transport.ServerStream) { st.Finish(nil) }

// do sends a request and returns the response with its body read.
func do(t *testing.T, p peer, method, path, ct string, body []byte, hdr ...string) (*http.Response, []byte) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequest(method, p.url+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if ct != "" {
		req.Header.Set("Content-Type", ct)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Add(hdr[i], hdr[i+1])
	}
	rsp, err := p.client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer rsp.Body.Close()
	b, err := io.ReadAll(rsp.Body)
	if err != nil {
		t.Fatalf("%s %s: read body: %v", method, path, err)
	}
	return rsp, b
}

func envelope(flags byte, body []byte) []byte {
	b := []byte{flags, 0, 0, 0, 0}
	binary.BigEndian.PutUint32(b[1:], uint32(len(body)))
	return append(b, body...)
}

type frame struct {
	flags byte
	body  []byte
}

// frames splits a response body into envelopes, failing on leftovers.
func frames(t *testing.T, b []byte) []frame {
	t.Helper()
	var out []frame
	for len(b) > 0 {
		if len(b) < 5 {
			t.Fatalf("truncated envelope prefix %q", b)
		}
		n := int(binary.BigEndian.Uint32(b[1:5]))
		if len(b) < 5+n {
			t.Fatalf("envelope of %d bytes has %d", n, len(b)-5)
		}
		out = append(out, frame{b[0], b[5 : 5+n]})
		b = b[5+n:]
	}
	return out
}

// connectError decodes a Connect error or end-of-stream error.
type connectError struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	Details []struct {
		Type  string          `json:"type"`
		Value string          `json:"value"`
		Debug json.RawMessage `json:"debug"`
	} `json:"details"`
}

type endStream struct {
	Error    *connectError       `json:"error"`
	Metadata map[string][]string `json:"metadata"`
}

func decodeJSON(t *testing.T, b []byte, v any) {
	t.Helper()
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("%q is not the JSON expected: %v", b, err)
	}
}

// webTrailers parses a gRPC-Web trailer frame.
func webTrailers(t *testing.T, f frame) map[string]string {
	t.Helper()
	if f.flags != 0x80 {
		t.Fatalf("last frame has flags %#x, want the trailer flag 0x80", f.flags)
	}
	out := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(f.body)), "\r\n") {
		k, v, ok := strings.Cut(line, ": ")
		if !ok {
			t.Fatalf("trailer line %q", line)
		}
		out[k] = v
	}
	return out
}

// decodeText decodes a grpc-web-text body: padded base64 chunks, one per
// frame.
func decodeText(t *testing.T, b []byte) []byte {
	t.Helper()
	var raw []byte
	for s := string(b); s != ""; {
		chunk := s
		if i := strings.IndexByte(s, '='); i >= 0 {
			j := i
			for j < len(s) && s[j] == '=' {
				j++
			}
			chunk = s[:j]
		}
		s = s[len(chunk):]
		d, err := base64.StdEncoding.DecodeString(chunk)
		if err != nil {
			t.Fatalf("chunk %q: %v", chunk, err)
		}
		raw = append(raw, d...)
	}
	return raw
}
