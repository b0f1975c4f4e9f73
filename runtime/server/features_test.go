package server_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/protoc-gen-micro/micro/internal/wire"

	"github.com/protoc-gen-micro/micro/examples/greeter/greeterpb"
	"github.com/protoc-gen-micro/micro/internal/leakcheck"
	"github.com/protoc-gen-micro/micro/runtime/client"
	"github.com/protoc-gen-micro/micro/runtime/interceptor"
	"github.com/protoc-gen-micro/micro/runtime/server"
	"github.com/protoc-gen-micro/micro/runtime/spec"
	"github.com/protoc-gen-micro/micro/runtime/status"
	"golang.org/x/net/http2"
)

// gateGreeter's SayHello blocks on names starting with "block" until
// release is closed, ignoring its context; other names are answered at
// once. The 5 s fallback only keeps a failed test from leaking the
// handler; unreleased counts the handlers that reached it.
type gateGreeter struct {
	greeterpb.GreeterHandler
	entered    chan struct{}
	release    chan struct{}
	unreleased atomic.Int32
}

func (g *gateGreeter) SayHello(ctx context.Context, in *greeterpb.HelloRequest, out *greeterpb.HelloReply) error {
	if strings.HasPrefix(in.Name, "block") {
		g.entered <- struct{}{}
		select {
		case <-g.release:
		case <-time.After(5 * time.Second):
			g.unreleased.Add(1)
			return status.New(status.Internal, "never released")
		}
	}
	out.Message = "Hello " + in.Name
	return nil
}

func startGate(t *testing.T, g *gateGreeter, opts ...server.Option) (server.Server, greeterpb.GreeterService) {
	t.Helper()
	srv := server.NewServer(append([]server.Option{server.WithAddress("127.0.0.1:0")}, opts...)...)
	if err := greeterpb.RegisterGreeterHandler(srv, g); err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Stop() })
	c := client.NewClient()
	t.Cleanup(func() { c.Close() })
	return srv, greeterpb.NewGreeterService("greeter", addrClient{c, srv.Address()})
}

// addrClient sends every call to one address.
type addrClient struct {
	client.Client
	addr string
}

func (a addrClient) Call(ctx context.Context, service string, m *spec.Method, req, rsp any, opts ...client.CallOption) error {
	return a.Client.Call(ctx, service, m, req, rsp, append(opts, client.WithAddress(a.addr))...)
}

func (a addrClient) Stream(ctx context.Context, service string, m *spec.Method, opts ...client.CallOption) (client.Stream, error) {
	return a.Client.Stream(ctx, service, m, append(opts, client.WithAddress(a.addr))...)
}

func TestAddressResolvedAfterStart(t *testing.T) {
	leakcheck.Check(t)
	srv := server.NewServer()
	if err := greeterpb.RegisterGreeterHandler(srv, hello{}); err != nil {
		t.Fatal(err)
	}
	if got := srv.Address(); got != ":0" {
		t.Fatalf("Address before Start = %q, want the default \":0\"", got)
	}
	if err := srv.Stop(); err != nil {
		t.Fatalf("Stop before Start: %v", err)
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Stop() })
	if err := srv.Start(); err == nil {
		t.Fatal("second Start succeeded")
	}
	_, port, err := net.SplitHostPort(srv.Address())
	if err != nil || port == "" || port == "0" {
		t.Fatalf("Address after Start = %q (%v), want a real port", srv.Address(), err)
	}
	c := client.NewClient()
	t.Cleanup(func() { c.Close() })
	g := greeterpb.NewGreeterService("greeter", addrClient{c, net.JoinHostPort("127.0.0.1", port)})
	if rsp, err := g.SayHello(context.Background(), &greeterpb.HelloRequest{Name: "port"}); err != nil || rsp.Message != "Hello port" {
		t.Fatalf("call to the resolved port: %v %v", rsp, err)
	}
}

// TestStopCutsOffAfterGrace: a handler that ignores its context cannot
// hold Stop beyond the grace period, and Stop says calls were cut off.
// Nothing here reads a clock: "cut off" can only come from the grace
// period's deadline, and "not held" means Stop returned while the handler
// was still blocked, before the test released it (had Stop waited for the
// handler, the gate's 5 s fallback would have freed it first).
func TestStopCutsOffAfterGrace(t *testing.T) {
	leakcheck.Check(t)
	g := &gateGreeter{entered: make(chan struct{}, 1), release: make(chan struct{})}
	defer close(g.release)
	srv, svc := startGate(t, g, server.WithGracePeriod(200*time.Millisecond))

	callErr := make(chan error, 1)
	go func() {
		_, err := svc.SayHello(context.Background(), &greeterpb.HelloRequest{Name: "block"})
		callErr <- err
	}()
	<-g.entered
	err := stopWithin(t, srv)
	if err == nil || !strings.Contains(err.Error(), "cut off") {
		t.Fatalf("Stop = %v, want an error saying calls were cut off", err)
	}
	if g.unreleased.Load() != 0 {
		t.Fatal("Stop returned only after the handler gave up waiting: it waited for the handler instead of cutting it off")
	}
	select {
	case err := <-callErr:
		if status.CodeOf(err) != status.Unavailable {
			t.Fatalf("cut-off call got %v, want Unavailable", err)
		}
	case <-time.After(10 * time.Second): // a watchdog only
		t.Fatal("the cut-off call did not return")
	}
}

// stopWithin returns srv.Stop's result. Its watchdog only turns a hang
// into a failure; it is far beyond any grace period the tests set.
func stopWithin(t *testing.T, srv server.Server) error {
	t.Helper()
	stopped := make(chan error, 1)
	go func() { stopped <- srv.Stop() }()
	select {
	case err := <-stopped:
		return err
	case <-time.After(30 * time.Second):
		t.Fatal("Stop still blocked after 30 s")
		return nil
	}
}

// TestStopWaitsForCallWithinGrace: a call that finishes within the grace
// period completes, and Stop reports no error.
func TestStopWaitsForCallWithinGrace(t *testing.T) {
	leakcheck.Check(t)
	g := &gateGreeter{entered: make(chan struct{}, 1), release: make(chan struct{})}
	srv, svc := startGate(t, g, server.WithGracePeriod(10*time.Second))
	callErr := make(chan error, 1)
	go func() {
		rsp, err := svc.SayHello(context.Background(), &greeterpb.HelloRequest{Name: "block"})
		if err == nil && rsp.Message != "Hello block" {
			err = fmt.Errorf("got %q", rsp.Message)
		}
		callErr <- err
	}()
	<-g.entered
	var released, early atomic.Bool
	stopped := make(chan error, 1)
	go func() {
		err := srv.Stop()
		early.Store(!released.Load())
		stopped <- err
	}()
	// Stop has begun once new calls are refused; it must still wait.
	for deadline := time.Now().Add(10 * time.Second); ; {
		if _, err := svc.SayHello(context.Background(), &greeterpb.HelloRequest{Name: "new"}); err != nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("new calls still succeed long after Stop began")
		}
	}
	released.Store(true)
	close(g.release)
	if err := <-stopped; err != nil {
		t.Fatalf("Stop: %v", err)
	}
	if early.Load() {
		t.Fatal("Stop returned before the call in flight could finish")
	}
	if err := <-callErr; err != nil {
		t.Fatalf("call during Stop: %v", err)
	}
}

// TestStopIdleConnection: an idle client connection does not hold Stop up.
// The grace period is the bound, measured by the server: had Stop waited
// it out, it would report calls cut off.
func TestStopIdleConnection(t *testing.T) {
	leakcheck.Check(t)
	srv, svc := startGate(t, &gateGreeter{}, server.WithGracePeriod(5*time.Second))
	if _, err := svc.SayHello(context.Background(), &greeterpb.HelloRequest{Name: "x"}); err != nil {
		t.Fatal(err)
	}
	if err := stopWithin(t, srv); err != nil {
		t.Fatalf("Stop with an idle connection: %v", err)
	}
}

type interceptLog struct {
	mu    sync.Mutex
	lines []string
}

func (l *interceptLog) add(s string) {
	l.mu.Lock()
	l.lines = append(l.lines, s)
	l.mu.Unlock()
}

func (l *interceptLog) take() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := l.lines
	l.lines = nil
	return out
}

// logGreeter logs its handlers' runs.
type logGreeter struct {
	greeterpb.GreeterHandler
	log *interceptLog
}

func (g logGreeter) SayHello(ctx context.Context, in *greeterpb.HelloRequest, out *greeterpb.HelloReply) error {
	g.log.add("handler")
	out.Message = "Hello " + in.Name
	return nil
}

func (g logGreeter) LotsOfReplies(ctx context.Context, in *greeterpb.HelloRequest, s greeterpb.Greeter_LotsOfRepliesHandlerStream) error {
	g.log.add("handler " + in.Name)
	return s.Send(&greeterpb.HelloReply{Message: "Hello " + in.Name})
}

func (g logGreeter) Chat(ctx context.Context, s greeterpb.Greeter_ChatHandlerStream) error {
	g.log.add("handler")
	for {
		in, err := s.Recv()
		if err != nil {
			if err == io.EOF {
				return nil
			}
			return err
		}
		if err := s.Send(&greeterpb.HelloReply{Message: "Hello " + in.Name}); err != nil {
			return err
		}
	}
}

// countingStream logs the messages a stream interceptor sees pass, and
// refuses a request named "deny-<name>".
type countingStream struct {
	server.Stream
	log  *interceptLog
	name string
}

func (c countingStream) SendMsg(m any) error {
	c.log.add(c.name + " send")
	return c.Stream.SendMsg(m)
}

func (c countingStream) RecvMsg(m any) error {
	if err := c.Stream.RecvMsg(m); err != nil {
		return err
	}
	r := m.(*greeterpb.HelloRequest).Name
	c.log.add(c.name + " recv " + r)
	if r == "deny-"+c.name {
		return status.Errorf(status.PermissionDenied, "denied by %s", c.name)
	}
	return nil
}

// logInterceptor logs the unary calls or the streams it wraps.
type logInterceptor struct {
	t      *testing.T
	name   string
	stream bool // wraps streams, not unary calls
	log    *interceptLog
	wraps  *int
}

func (li logInterceptor) WrapUnary(m *spec.Method, next interceptor.UnaryFunc) interceptor.UnaryFunc {
	if li.stream {
		return next
	}
	*li.wraps++
	if m.StreamType != spec.Unary || m.Service != greeterpb.GreeterName {
		li.t.Errorf("unary interceptor %s wrapped %+v", li.name, m)
	}
	return func(ctx context.Context, req, rsp any) error {
		li.log.add(li.name + ">" + m.Name)
		if req.(*greeterpb.HelloRequest).Name == "deny-"+li.name {
			return status.Errorf(status.PermissionDenied, "denied by %s", li.name)
		}
		err := next(ctx, req, rsp)
		li.log.add("<" + li.name)
		return err
	}
}

func (li logInterceptor) WrapStreamingClient(m *spec.Method, next interceptor.StreamingClientFunc) interceptor.StreamingClientFunc {
	li.t.Errorf("a server called WrapStreamingClient of %s", li.name)
	return next
}

func (li logInterceptor) WrapStreamingHandler(m *spec.Method, next interceptor.StreamingHandlerFunc) interceptor.StreamingHandlerFunc {
	if !li.stream {
		return next
	}
	*li.wraps++
	return func(ctx context.Context, s interceptor.ServerStream) error {
		li.log.add(li.name + ">" + m.Name)
		err := next(ctx, countingStream{s, li.log, li.name})
		li.log.add("<" + li.name)
		return err
	}
}

func TestServerInterceptors(t *testing.T) {
	leakcheck.Check(t)
	var log interceptLog
	wraps := 0
	unary := func(name string) interceptor.Interceptor {
		return logInterceptor{t: t, name: name, log: &log, wraps: &wraps}
	}
	stream := func(name string) interceptor.Interceptor {
		return logInterceptor{t: t, name: name, stream: true, log: &log, wraps: &wraps}
	}
	srv := server.NewServer(server.WithAddress("127.0.0.1:0"),
		server.WithInterceptors(unary("A"), unary("B")),
		server.WithInterceptors(stream("SA")),
	)
	err := greeterpb.RegisterGreeterHandler(srv, logGreeter{log: &log},
		server.WithInterceptors(unary("H")),
		server.WithInterceptors(stream("SH")),
	)
	if err != nil {
		t.Fatal(err)
	}
	// Interceptors wrap each method once, at registration: 1 unary method
	// times 3, and 3 streaming methods times 2.
	if wraps != 9 {
		t.Fatalf("interceptors were called %d times at registration, want 9", wraps)
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Stop() })
	c := client.NewClient()
	t.Cleanup(func() { c.Close() })
	g := greeterpb.NewGreeterService("greeter", addrClient{c, srv.Address()})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	if rsp, err := g.SayHello(ctx, &greeterpb.HelloRequest{Name: "x"}); err != nil || rsp.Message != "Hello x" {
		t.Fatalf("call: %v %v", rsp, err)
	}
	want := []string{"A>SayHello", "B>SayHello", "H>SayHello", "handler", "<H", "<B", "<A"}
	if got := log.take(); !reflect.DeepEqual(got, want) {
		t.Fatalf("unary order:\n got %q\nwant %q", got, want)
	}
	_, err = g.SayHello(ctx, &greeterpb.HelloRequest{Name: "deny-B"})
	if se, ok := status.FromError(err); !ok || se.Code() != status.PermissionDenied || se.Message() != "denied by B" {
		t.Fatalf("rejected call: %v", err)
	}
	if got := log.take(); !reflect.DeepEqual(got, []string{"A>SayHello", "B>SayHello", "<A"}) {
		t.Fatalf("after a rejection: %q", got)
	}

	rs, err := g.LotsOfReplies(ctx, &greeterpb.HelloRequest{Name: "r"})
	if err != nil {
		t.Fatal(err)
	}
	if m, err := rs.Recv(); err != nil || m.Message != "Hello r" {
		t.Fatalf("server stream: %v %v", m, err)
	}
	if _, err := rs.Recv(); err != io.EOF {
		t.Fatalf("server stream end: %v", err)
	}
	// The request of a server-streaming call is read through the
	// interceptors' streams, innermost first, before the handler runs.
	want = []string{"SA>LotsOfReplies", "SH>LotsOfReplies", "SA recv r", "SH recv r", "handler r", "SH send", "SA send", "<SH", "<SA"}
	if got := log.take(); !reflect.DeepEqual(got, want) {
		t.Fatalf("stream order:\n got %q\nwant %q", got, want)
	}

	rs, err = g.LotsOfReplies(ctx, &greeterpb.HelloRequest{Name: "deny-SH"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := rs.Recv(); status.CodeOf(err) != status.PermissionDenied {
		t.Fatalf("stream rejected by interceptor: %v", err)
	}
	log.take()

	bs, err := g.Chat(ctx)
	if err != nil {
		t.Fatal(err)
	}
	bs.Send(&greeterpb.HelloRequest{Name: "b"})
	if m, err := bs.Recv(); err != nil || m.Message != "Hello b" {
		t.Fatalf("bidi: %v %v", m, err)
	}
	bs.CloseSend()
	if _, err := bs.Recv(); err != io.EOF {
		t.Fatalf("bidi end: %v", err)
	}
	if got := log.take(); len(got) < 2 || got[0] != "SA>Chat" || got[1] != "SH>Chat" {
		t.Fatalf("bidi interceptors: %q", got)
	}
}

// h2cRoundTrip makes one gRPC call with x/net's HTTP/2 client, which lets
// the test see the response's content type and trailers as sent.
func h2cRoundTrip(t *testing.T, addr, path, contentType string, payload []byte) (*http.Response, []byte) {
	t.Helper()
	tr := &http2.Transport{
		AllowHTTP: true,
		DialTLSContext: func(ctx context.Context, network, addr string, _ *tls.Config) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, network, addr)
		},
	}
	t.Cleanup(tr.CloseIdleConnections)
	body := make([]byte, 5+len(payload))
	binary.BigEndian.PutUint32(body[1:], uint32(len(payload)))
	copy(body[5:], payload)
	req, err := http.NewRequest("POST", "http://"+addr+path, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("content-type", contentType)
	req.Header.Set("te", "trailers")
	resp, err := tr.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	data, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	return resp, data
}

func TestJSONResponseContentType(t *testing.T) {
	leakcheck.Check(t)
	srv := startServer(t)
	for _, tc := range []struct{ reqCT, respCT string }{
		{"application/grpc+json", "application/grpc+json"},
		{"application/grpc+json; charset=utf-8", "application/grpc+json"},
		{"application/grpc+JSON", "application/grpc+json"},
	} {
		resp, data := h2cRoundTrip(t, srv.Address(), greeterpb.GreeterSayHelloProcedure, tc.reqCT, []byte(`{"name":"json"}`))
		if resp.StatusCode != 200 || resp.Header.Get("content-type") != tc.respCT {
			t.Fatalf("request %q: status %d content-type %q, want %q", tc.reqCT, resp.StatusCode, resp.Header.Get("content-type"), tc.respCT)
		}
		if got := resp.Trailer.Get("grpc-status"); got != "0" {
			t.Fatalf("request %q: grpc-status %q (%q)", tc.reqCT, got, resp.Trailer.Get("grpc-message"))
		}
		if len(data) < 5 || int(binary.BigEndian.Uint32(data[1:5])) != len(data)-5 {
			t.Fatalf("request %q: malformed response body %q", tc.reqCT, data)
		}
		var reply struct{ Message string }
		if err := json.Unmarshal(data[5:], &reply); err != nil || reply.Message != "Hello json" {
			t.Fatalf("request %q: response %q is not the JSON reply (%v)", tc.reqCT, data[5:], err)
		}
	}
	// The proto content types are answered in kind.
	for _, ct := range []string{"application/grpc", "application/grpc+proto"} {
		resp, _ := h2cRoundTrip(t, srv.Address(), greeterpb.GreeterSayHelloProcedure, ct, helloBytes(t, "p"))
		if resp.Header.Get("content-type") != ct || resp.Trailer.Get("grpc-status") != "0" {
			t.Fatalf("request %q: content-type %q grpc-status %q", ct, resp.Header.Get("content-type"), resp.Trailer.Get("grpc-status"))
		}
	}
	// Malformed JSON is a clean error, not a dropped connection. A
	// trailers-only response carries its status in the headers.
	resp, _ := h2cRoundTrip(t, srv.Address(), greeterpb.GreeterSayHelloProcedure, "application/grpc+json", []byte(`{"name":`))
	got := resp.Trailer.Get("grpc-status") + resp.Header.Get("grpc-status")
	if got != wire.CodeString(status.Internal) {
		t.Fatalf("malformed JSON: grpc-status %q, want Internal", got)
	}
}

// TestStopWithSilentConnection: a connection that has not sent its preface
// yet (a slow client, or a TLS handshake in progress) must not hold Stop
// beyond the grace period, nor leave goroutines behind. The handshake
// timeout is far off, so only Stop can end those connections; had it
// waited for them, it would report calls cut off when the grace period
// ran out.
func TestStopWithSilentConnection(t *testing.T) {
	leakcheck.Check(t)
	srv, svc := startGate(t, &gateGreeter{}, server.WithGracePeriod(5*time.Second),
		server.WithLimits(server.Limits{HandshakeTimeout: time.Hour}))
	if _, err := svc.SayHello(context.Background(), &greeterpb.HelloRequest{Name: "x"}); err != nil {
		t.Fatal(err)
	}
	for _, partial := range []string{"", "PRI * HTTP/2.0\r\n"} {
		c, err := net.Dial("tcp", srv.Address())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		io.WriteString(c, partial)
	}
	// The server accepts connections in the order they were made: once
	// it answers a later one's preface, it holds both silent ones.
	rc := dialRaw(t, srv.Address())
	rc.c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := rc.fr.ReadFrame(); err != nil {
		t.Fatalf("no SETTINGS from the server: %v", err)
	}
	rc.c.Close()
	if err := stopWithin(t, srv); err != nil {
		t.Fatalf("Stop with two connections that never sent a preface: %v", err)
	}
}
