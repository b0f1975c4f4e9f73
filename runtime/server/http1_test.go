package server_test

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/protoc-gen-micro/micro/examples/greeter/greeterpb"
	"github.com/protoc-gen-micro/micro/internal/leakcheck"
	"github.com/protoc-gen-micro/micro/internal/testcert"
	"github.com/protoc-gen-micro/micro/runtime/client"
	"github.com/protoc-gen-micro/micro/runtime/server"
)

// The tests in this file cover the HTTP/1.1 side of the server's one port:
// that both protocols are served on it, in cleartext and over TLS, and
// that each limit on what an HTTP/1.1 client can make the server hold is
// enforced. Handlers given with WithWebHandler stand in for webrpc's
// where a test needs one that blocks, streams or reads in its own way.

// whoAmI answers an HTTP/1.1 request with its protocol and ALPN.
var whoAmI = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	alpn := "cleartext"
	if r.TLS != nil {
		alpn = "alpn=" + r.TLS.NegotiatedProtocol
	}
	io.Copy(io.Discard, r.Body)
	fmt.Fprintf(w, "%s %s %s", r.Proto, alpn, r.URL.Path)
})

// http1Client returns a client that speaks only HTTP/1.1.
func http1Client(t *testing.T, tc *tls.Config) *http.Client {
	tr := &http.Transport{TLSClientConfig: tc, ForceAttemptHTTP2: false}
	tr.Protocols = new(http.Protocols)
	tr.Protocols.SetHTTP1(true)
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 10 * time.Second}
}

func post(t *testing.T, c *http.Client, url string) (int, string) {
	t.Helper()
	rsp, err := c.Post(url, "text/plain", strings.NewReader("hi"))
	if err != nil {
		t.Fatal(err)
	}
	defer rsp.Body.Close()
	b, err := io.ReadAll(rsp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return rsp.StatusCode, string(b)
}

// TestOnePort: an HTTP/1.1 request and a gRPC call over HTTP/2 on the same
// port, in cleartext and over TLS, where ALPN chooses.
func TestOnePort(t *testing.T) {
	leakcheck.Check(t)
	t.Run("cleartext", func(t *testing.T) {
		srv := startServer(t, server.WithWebHandler(whoAmI))
		wellBehaved(t, srv.Address())
		code, body := post(t, http1Client(t, nil), "http://"+srv.Address()+"/x")
		if code != 200 || body != "HTTP/1.1 cleartext /x" {
			t.Fatalf("HTTP/1.1: %d %q", code, body)
		}
		wellBehaved(t, srv.Address())
	})
	t.Run("tls", func(t *testing.T) {
		ca := testcert.NewCA(t)
		srv := startServer(t, server.WithWebHandler(whoAmI),
			server.WithTLSConfig(&tls.Config{Certificates: []tls.Certificate{ca.Issue(t, "one port").TLS}}))
		c := client.NewClient(client.WithTLSConfig(&tls.Config{RootCAs: ca.Pool}))
		defer c.(io.Closer).Close()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		rsp, err := greeterpb.NewGreeterService("greeter", c).SayHello(ctx, &greeterpb.HelloRequest{Name: "h2"}, client.WithAddress(srv.Address()))
		if err != nil || rsp.Message != "Hello h2" {
			t.Fatalf("gRPC over TLS: %v %v", rsp, err)
		}
		code, body := post(t, http1Client(t, &tls.Config{RootCAs: ca.Pool, NextProtos: []string{"http/1.1"}}), "https://"+srv.Address()+"/y")
		if code != 200 || body != "HTTP/1.1 alpn=http/1.1 /y" {
			t.Fatalf("HTTP/1.1 over TLS: %d %q", code, body)
		}
		// A TLS client that offers no ALPN is sniffed as in cleartext.
		tc, err := tls.Dial("tcp", srv.Address(), &tls.Config{RootCAs: ca.Pool})
		if err != nil {
			t.Fatal(err)
		}
		defer tc.Close()
		if p := tc.ConnectionState().NegotiatedProtocol; p != "" {
			t.Fatalf("negotiated %q without offering ALPN", p)
		}
		io.WriteString(tc, "GET /z HTTP/1.1\r\nHost: x\r\n\r\n")
		tc.SetReadDeadline(time.Now().Add(10 * time.Second))
		rsp1, err := http.ReadResponse(bufio.NewReader(tc), nil)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(rsp1.Body)
		// The handler sees the TLS state, though net/http got the
		// connection wrapped for the sniffed bytes' replay.
		if rsp1.StatusCode != 200 || string(b) != "HTTP/1.1 alpn= /z" {
			t.Fatalf("HTTP/1.1 over TLS without ALPN: %d %q", rsp1.StatusCode, b)
		}
	})
}

// rawHTTP1 dials the server for a hand-written HTTP/1.1 conversation.
func rawHTTP1(t *testing.T, addr string) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(10 * time.Second))
	return c
}

// expectEOF reads until the server closes c; it fails if c is still open
// when its deadline passes.
func expectEOF(t *testing.T, c net.Conn) {
	t.Helper()
	_, err := io.Copy(io.Discard, c)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatal("the server did not close the connection")
	}
}

// TestHTTP1HeaderLimit: a header block past MaxHeaderListSize (net/http
// allows 4 KiB of slack over it) gets 431 and the connection is closed; one
// under it is served.
func TestHTTP1HeaderLimit(t *testing.T) {
	leakcheck.Check(t)
	srv := startServer(t, server.WithWebHandler(whoAmI), server.WithLimits(server.Limits{MaxHeaderListSize: 1024}))
	c := rawHTTP1(t, srv.Address())
	fmt.Fprintf(c, "GET /big HTTP/1.1\r\nHost: x\r\nX-Big: %s\r\n\r\n", strings.Repeat("v", 8<<10))
	rsp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	if rsp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
		t.Fatalf("oversized header block: %s", rsp.Status)
	}
	expectEOF(t, c)
	code, _ := post(t, http1Client(t, nil), "http://"+srv.Address()+"/small")
	if code != 200 {
		t.Fatalf("a request under the limit: %d", code)
	}
}

// TestHTTP1Slowloris: connections that send a request line one byte at a
// time, or a first byte that could still begin the HTTP/2 preface and
// nothing more, are closed once the handshake timeout passes.
func TestHTTP1Slowloris(t *testing.T) {
	leakcheck.Check(t)
	srv := startServer(t, server.WithWebHandler(whoAmI), server.WithLimits(server.Limits{HandshakeTimeout: 200 * time.Millisecond}))
	var wg sync.WaitGroup
	closed := make(chan string, 20)
	for i := 0; i < 10; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := net.Dial("tcp", srv.Address())
			if err != nil {
				closed <- err.Error()
				return
			}
			defer c.Close()
			first := "GET /slow HTTP/1.1\r\nHost: x\r\n"
			if i%2 == 1 {
				first = "P" // as the preface and POST begin
			}
			end := time.Now().Add(10 * time.Second)
			buf := make([]byte, 64)
			for j := 0; time.Now().Before(end); j++ {
				if i%2 == 0 || j == 0 {
					if _, err := c.Write([]byte{first[j%len(first)]}); err != nil {
						closed <- ""
						return
					}
				}
				c.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
				if _, err := c.Read(buf); err != nil {
					var ne net.Error
					if !errors.As(err, &ne) || !ne.Timeout() {
						closed <- "" // closed by the server
						return
					}
				}
			}
			closed <- fmt.Sprintf("connection %d still open after 10 s", i)
		}()
	}
	wg.Wait()
	close(closed)
	for msg := range closed {
		if msg != "" {
			t.Error(msg)
		}
	}
	wellBehaved(t, srv.Address())
}

// TestHTTP1Garbage: first bytes that are neither the HTTP/2 preface nor
// the start of an HTTP/1.x method get the connection closed without an
// answer; a malformed request after a method gets net/http's 400, then the
// connection is closed.
func TestHTTP1Garbage(t *testing.T) {
	leakcheck.Check(t)
	srv := startServer(t, server.WithWebHandler(whoAmI))
	for _, tc := range []struct{ send, answer string }{
		{"\x16\x03\x01\x00\xff\x01\x00\x00\r\n\r\n", ""},
		{"\x00\x00\x00\x00\r\n\r\n", ""},
		{"INVALID CONNECTION PREFACE\r\n\r\n", ""},
		{"PRX garbage\r\n\r\n", ""},
		{"GET \x00\x01 garbage\r\n\r\n", "HTTP/1.1 400 "},
		{"POST / HTTP/9.9\r\n\r\n", "HTTP/1.1 "},
	} {
		c := rawHTTP1(t, srv.Address())
		io.WriteString(c, tc.send)
		b, err := io.ReadAll(c)
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			t.Fatalf("%q: the server did not close the connection", tc.send)
		}
		if tc.answer == "" && len(b) > 0 || !strings.HasPrefix(string(b), tc.answer) {
			t.Fatalf("%q: answered %q, want %q", tc.send, b, tc.answer)
		}
	}
	wellBehaved(t, srv.Address())
}

// TestHTTP1IdleTimeout: a keep-alive connection without requests is closed
// after IdleTimeout.
func TestHTTP1IdleTimeout(t *testing.T) {
	leakcheck.Check(t)
	srv := startServer(t, server.WithWebHandler(whoAmI), server.WithLimits(server.Limits{IdleTimeout: 100 * time.Millisecond}))
	c := rawHTTP1(t, srv.Address())
	io.WriteString(c, "GET /idle HTTP/1.1\r\nHost: x\r\n\r\n")
	br := bufio.NewReader(c)
	rsp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, rsp.Body)
	if rsp.StatusCode != 200 || rsp.Close {
		t.Fatalf("first request: %s, close %v", rsp.Status, rsp.Close)
	}
	// The connection stays open for a next request until the idle
	// timeout; a read until the server closes it ends before the 10 s
	// deadline only because of that timeout.
	if n, err := br.Read(make([]byte, 1)); n != 0 || err == nil {
		t.Fatalf("read %d bytes, %v", n, err)
	} else if ne := net.Error(nil); errors.As(err, &ne) && ne.Timeout() {
		t.Fatal("the idle connection was not closed")
	}
}

// TestHTTP1SlowReader: a handler streaming to a client that does not read
// fails its write after WriteTimeout, and its slot is freed; a response
// the client reads is not cut however long it lasts.
func TestHTTP1SlowReader(t *testing.T) {
	leakcheck.Check(t)
	const timeout = 200 * time.Millisecond
	writeErr := make(chan error, 1)
	tick := make(chan struct{})
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		chunk := []byte(strings.Repeat("x", 32<<10))
		if r.URL.Path == "/ticks" {
			// One small write each time the client asks for one, for as
			// long as the client goes on.
			for range tick {
				w.Write([]byte("t"))
				http.NewResponseController(w).Flush()
			}
			return
		}
		for {
			if _, err := w.Write(chunk); err != nil {
				writeErr <- err
				return
			}
			if err := http.NewResponseController(w).Flush(); err != nil {
				writeErr <- err
				return
			}
		}
	})
	srv := startServer(t, server.WithWebHandler(h), server.WithMaxConcurrentStreams(1),
		server.WithLimits(server.Limits{WriteTimeout: timeout}))

	c := rawHTTP1(t, srv.Address())
	io.WriteString(c, "GET /flood HTTP/1.1\r\nHost: x\r\n\r\n")
	select {
	case <-writeErr:
	case <-time.After(10 * time.Second):
		t.Fatal("the write to a client that does not read never failed")
	}
	expectEOF(t, c)

	// The only slot is free again: a response that moves lives past the
	// write timeout.
	c2 := rawHTTP1(t, srv.Address())
	io.WriteString(c2, "GET /ticks HTTP/1.1\r\nHost: x\r\n\r\n")
	br := bufio.NewReader(c2)
	start := time.Now()
	tick <- struct{}{}
	rsp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	one := make([]byte, 1)
	for n := 0; ; n++ {
		if _, err := io.ReadFull(rsp.Body, one); err != nil {
			t.Fatalf("after %d ticks (%v): %v", n, time.Since(start), err)
		}
		if time.Since(start) > 3*timeout {
			break
		}
		tick <- struct{}{}
	}
	close(tick)
	// The response ends cleanly: what net/http writes after the handler
	// returns has a deadline of its own, not one left from the start.
	if rest, err := io.ReadAll(rsp.Body); err != nil || len(rest) != 0 {
		t.Fatalf("end of a long response: %q, %v", rest, err)
	}
}

// TestHTTP1StalledBody: a request body the client stops sending fails the
// handler's read after WriteTimeout, so it does not hold a slot for ever.
func TestHTTP1StalledBody(t *testing.T) {
	leakcheck.Check(t)
	readErr := make(chan error, 1)
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, err := io.ReadAll(r.Body)
		if r.URL.Path == "/stall" {
			readErr <- err
			return
		}
		io.WriteString(w, "ok")
	})
	srv := startServer(t, server.WithWebHandler(h), server.WithMaxConcurrentStreams(1),
		server.WithLimits(server.Limits{WriteTimeout: 200 * time.Millisecond}))
	c := rawHTTP1(t, srv.Address())
	io.WriteString(c, "POST /stall HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n0123456789")
	select {
	case err := <-readErr:
		if err == nil {
			t.Fatal("the stalled body was read whole")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the read of a stalled body never failed")
	}
	if code, body := post(t, http1Client(t, nil), "http://"+srv.Address()+"/next"); code != 200 || body != "ok" {
		t.Fatalf("the next request: %d %q", code, body)
	}
}

// TestHTTP1HandlerBound: at most MaxConcurrentStreams HTTP/1.1 handlers
// run at once, as many more wait, and further requests get 503 with
// UNAVAILABLE at once.
func TestHTTP1HandlerBound(t *testing.T) {
	leakcheck.Check(t)
	const slots = 2
	var running, maxRunning atomic.Int32
	entered := make(chan struct{}, 2*slots)
	release := make(chan struct{})
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := running.Add(1)
		defer running.Add(-1)
		for m := maxRunning.Load(); n > m && !maxRunning.CompareAndSwap(m, n); m = maxRunning.Load() {
		}
		entered <- struct{}{}
		<-release
		io.WriteString(w, "done")
	})
	srv := startServer(t, server.WithWebHandler(h), server.WithMaxConcurrentStreams(slots))
	hc := http1Client(t, nil)
	results := make(chan int, 2*slots)
	for i := 0; i < 2*slots; i++ {
		go func() {
			rsp, err := hc.Get("http://" + srv.Address() + "/block")
			if err != nil {
				results <- -1
				return
			}
			io.Copy(io.Discard, rsp.Body)
			rsp.Body.Close()
			results <- rsp.StatusCode
		}()
		if i < slots {
			<-entered
		}
	}
	waitFor(t, func() bool { return server.HTTP1Pending(srv) == 2*slots })
	rsp, err := hc.Get("http://" + srv.Address() + "/one-too-many")
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, rsp.Body)
	rsp.Body.Close()
	if rsp.StatusCode != http.StatusServiceUnavailable || rsp.Header.Get("Grpc-Status") != "14" {
		t.Fatalf("past the bound: %s, grpc-status %q", rsp.Status, rsp.Header.Get("Grpc-Status"))
	}
	close(release)
	for i := 0; i < 2*slots; i++ {
		if code := <-results; code != 200 {
			t.Fatalf("a request within the bound: %d", code)
		}
	}
	if m := maxRunning.Load(); m != slots {
		t.Fatalf("%d handlers ran at once, want %d", m, slots)
	}
	wellBehaved(t, srv.Address())
}

// TestStopHTTP1InFlight: Stop lets an HTTP/1.1 request in flight finish,
// its response saying Connection: close, closes an idle keep-alive
// connection, and cuts off a request that outlives the grace period.
func TestStopHTTP1InFlight(t *testing.T) {
	leakcheck.Check(t)
	entered := make(chan struct{}, 1)
	release := make(chan struct{})
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/block" {
			entered <- struct{}{}
			<-release
		}
		io.WriteString(w, "done")
	})
	srv := server.NewServer(server.WithAddress("127.0.0.1:0"), server.WithWebHandler(h))
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	idle := rawHTTP1(t, srv.Address())
	io.WriteString(idle, "GET /quick HTTP/1.1\r\nHost: x\r\n\r\n")
	idleR := bufio.NewReader(idle)
	if rsp, err := http.ReadResponse(idleR, nil); err != nil || rsp.Close {
		t.Fatalf("keep-alive request: %v", err)
	} else {
		io.Copy(io.Discard, rsp.Body)
	}
	busy := rawHTTP1(t, srv.Address())
	io.WriteString(busy, "GET /block HTTP/1.1\r\nHost: x\r\n\r\n")
	<-entered
	draining := make(chan struct{})
	server.OnHTTP1Shutdown(srv, func() { close(draining) })
	stopped := make(chan error, 1)
	go func() { stopped <- srv.Stop() }()
	<-draining
	expectEOF(t, idle)
	close(release)
	rsp, err := http.ReadResponse(bufio.NewReader(busy), nil)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(rsp.Body)
	if string(b) != "done" || !rsp.Close {
		t.Fatalf("request in flight at Stop: %q, Connection: close %v", b, rsp.Close)
	}
	expectEOF(t, busy)
	if err := <-stopped; err != nil {
		t.Fatalf("Stop: %v", err)
	}

	// A request that outlives the grace period is cut off.
	stuck := make(chan struct{})
	defer close(stuck)
	h2 := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		entered <- struct{}{}
		<-stuck
	})
	srv2 := server.NewServer(server.WithAddress("127.0.0.1:0"), server.WithWebHandler(h2), server.WithGracePeriod(100*time.Millisecond))
	if err := srv2.Start(); err != nil {
		t.Fatal(err)
	}
	c := rawHTTP1(t, srv2.Address())
	io.WriteString(c, "GET /stuck HTTP/1.1\r\nHost: x\r\n\r\n")
	<-entered
	if err := srv2.Stop(); err == nil || !strings.Contains(err.Error(), "grace period") {
		t.Fatalf("Stop with a request past the grace period: %v", err)
	}
	expectEOF(t, c)
}

// TestTLSHandshakeBounded: with both protocols on the TLS port, a client
// that stalls its handshake, or finishes it without ALPN and then says
// only the first byte of the preface, is closed at HandshakeTimeout.
func TestTLSHandshakeBounded(t *testing.T) {
	leakcheck.Check(t)
	ca := testcert.NewCA(t)
	srv := startServer(t, server.WithWebHandler(whoAmI),
		server.WithTLSConfig(&tls.Config{Certificates: []tls.Certificate{ca.Issue(t, "slow").TLS}}),
		server.WithLimits(server.Limits{HandshakeTimeout: 200 * time.Millisecond}))
	stalled := rawHTTP1(t, srv.Address())
	stalled.Write([]byte{0x16, 0x03, 0x01}) // a TLS record header, cut short
	expectEOF(t, stalled)

	tc, err := tls.Dial("tcp", srv.Address(), &tls.Config{RootCAs: ca.Pool})
	if err != nil {
		t.Fatal(err)
	}
	defer tc.Close()
	tc.Write([]byte("P"))
	tc.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, err = io.Copy(io.Discard, tc)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatal("the server did not close the connection")
	}
}

// TestStopHTTP1Fresh: a connection that has sent part of a request when
// Stop starts is closed at once, rather than after net/http's 5 s for new
// connections, which would overrun a shorter grace period.
func TestStopHTTP1Fresh(t *testing.T) {
	leakcheck.Check(t)
	srv := server.NewServer(server.WithAddress("127.0.0.1:0"), server.WithWebHandler(whoAmI), server.WithGracePeriod(2*time.Second))
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	c := rawHTTP1(t, srv.Address())
	io.WriteString(c, "GET /half HTTP/1.1\r\nHost: x\r\n")
	waitFor(t, func() bool { return server.HTTP1Fresh(srv) == 1 })
	if err := srv.Stop(); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	expectEOF(t, c)
}

// slowHello's SayHello("slow"), and of an empty name, returns only when its
// call is over.
type slowHello struct{ hello }

func (g slowHello) SayHello(ctx context.Context, in *greeterpb.HelloRequest, out *greeterpb.HelloReply) error {
	if in.Name == "slow" || in.Name == "" {
		<-ctx.Done()
		return ctx.Err()
	}
	return g.hello.SayHello(ctx, in, out)
}

// TestHTTP1DeadlineKeepAlive: a Connect call that ends at its deadline,
// with a body or without, leaves its keep-alive connection fit for the
// next call.
func TestHTTP1DeadlineKeepAlive(t *testing.T) {
	leakcheck.Check(t)
	srv := startGreeter(t, slowHello{})
	c := rawHTTP1(t, srv.Address())
	br := bufio.NewReader(c)
	call := func(name string, extra string) (int, string) {
		t.Helper()
		body := `{"name":"` + name + `"}`
		fmt.Fprintf(c, "POST /greeter.v1.Greeter/SayHello HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n%sContent-Length: %d\r\n\r\n%s", extra, len(body), body)
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		rsp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(rsp.Body)
		return rsp.StatusCode, string(b)
	}
	if code, body := call("slow", "Connect-Timeout-Ms: 20\r\n"); code != 504 || !strings.Contains(body, "deadline_exceeded") {
		t.Fatalf("call past its deadline: %d %s", code, body)
	}
	// An empty request (the proto encoding of an empty message), which
	// net/http gives the handler as http.NoBody.
	fmt.Fprintf(c, "POST /greeter.v1.Greeter/SayHello HTTP/1.1\r\nHost: x\r\nContent-Type: application/proto\r\nConnect-Timeout-Ms: 20\r\nContent-Length: 0\r\n\r\n")
	rsp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(rsp.Body)
	if rsp.StatusCode != 504 || !strings.Contains(string(b), "deadline_exceeded") {
		t.Fatalf("empty call past its deadline: %d %s", rsp.StatusCode, b)
	}
	for i := 0; i < 3; i++ {
		if code, body := call("next", ""); code != 200 || body != `{"message":"Hello next"}` {
			t.Fatalf("call %d after it on the same connection: %d %s", i, code, body)
		}
	}
}
