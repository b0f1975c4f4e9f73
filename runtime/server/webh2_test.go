package server_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/protoc-gen-micro/micro/examples/greeter/greeterpb"
	"github.com/protoc-gen-micro/micro/internal/leakcheck"
	"github.com/protoc-gen-micro/micro/runtime/server"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
	"google.golang.org/protobuf/proto"
)

// webHeaders returns the headers of a request that is not gRPC.
func webHeaders(method, path, contentType string, extra ...string) []hpack.HeaderField {
	fields := []hpack.HeaderField{
		{Name: ":method", Value: method},
		{Name: ":scheme", Value: "http"},
		{Name: ":path", Value: path},
		{Name: ":authority", Value: "test"},
	}
	if contentType != "" {
		fields = append(fields, hpack.HeaderField{Name: "content-type", Value: contentType})
	}
	for i := 0; i+1 < len(extra); i += 2 {
		fields = append(fields, hpack.HeaderField{Name: extra[i], Value: extra[i+1]})
	}
	return fields
}

// TestWebOverHTTP2 sends Connect, gRPC-Web and other non-gRPC requests on
// one HTTP/2 connection, between gRPC calls: each gets the answer the
// protocol prescribes and the connection goes on serving gRPC.
func TestWebOverHTTP2(t *testing.T) {
	leakcheck.Check(t)
	srv := startServer(t, server.WithMaxRecvMsgSize(1024), server.WithLimits(server.Limits{MaxHeaderListSize: 4096}))
	rc := dialRaw(t, srv.Address())
	const path = greeterpb.GreeterSayHelloProcedure
	id := uint32(1)
	good := func() {
		t.Helper()
		rc.headers(id, false, grpcHeaders(path))
		rc.data(id, true, envelope(0, helloBytes(t, "ok")))
		rc.read(id).expectStatus(t, "0", "")
		id += 2
	}
	for _, c := range []struct {
		name   string
		send   func(id uint32)
		status string
		check  func(t *testing.T, r *response)
	}{
		{"Connect unary JSON", func(id uint32) {
			rc.headers(id, false, webHeaders("POST", path, "application/json"))
			rc.data(id, true, []byte(`{"name":"web"}`))
		}, "200", func(t *testing.T, r *response) {
			var out struct{ Message string }
			if r.headers["content-type"] != "application/json" || json.Unmarshal(r.data, &out) != nil || out.Message != "Hello web" {
				t.Fatalf("headers %v body %q", r.headers, r.data)
			}
		}},
		{"Connect GET", func(id uint32) {
			rc.headers(id, true, webHeaders("GET", path+"?encoding=json&message=%7B%22name%22%3A%22get%22%7D&connect=v1", ""))
		}, "200", func(t *testing.T, r *response) {
			if !bytes.Contains(r.data, []byte("Hello get")) {
				t.Fatalf("body %q", r.data)
			}
		}},
		{"Connect error", func(id uint32) {
			rc.headers(id, false, webHeaders("POST", "/greeter.v1.Greeter/Nope", "application/json"))
			rc.data(id, true, []byte(`{}`))
		}, "404", func(t *testing.T, r *response) {
			if !bytes.Contains(r.data, []byte(`"code":"unimplemented"`)) {
				t.Fatalf("body %q", r.data)
			}
		}},
		{"Connect message over the limit", func(id uint32) {
			rc.headers(id, false, webHeaders("POST", path, "application/json"))
			rc.data(id, true, []byte(`{"name":"`+strings.Repeat("x", 2000)+`"}`))
		}, "429", func(t *testing.T, r *response) {
			if !bytes.Contains(r.data, []byte(`"code":"resource_exhausted"`)) {
				t.Fatalf("body %q", r.data)
			}
		}},
		{"Connect body cut short at the deadline", func(id uint32) {
			rc.headers(id, false, webHeaders("POST", path, "application/json", "connect-timeout-ms", "20"))
			rc.data(id, false, []byte(`{"name":`)) // and nothing more
		}, "504", func(t *testing.T, r *response) {
			if !bytes.Contains(r.data, []byte(`"code":"deadline_exceeded"`)) {
				t.Fatalf("body %q", r.data)
			}
		}},
		{"gRPC-Web", func(id uint32) {
			rc.headers(id, false, webHeaders("POST", path, "application/grpc-web+proto"))
			rc.data(id, true, envelope(0, helloBytes(t, "gw")))
		}, "200", func(t *testing.T, r *response) {
			var out greeterpb.HelloReply
			if len(r.data) < 5 || proto.Unmarshal(r.data[5:5+int(r.data[4])], &out) != nil || out.Message != "Hello gw" ||
				!bytes.Contains(r.data, []byte("grpc-status: 0")) {
				t.Fatalf("body %q", r.data)
			}
		}},
		{"unknown content type", func(id uint32) {
			rc.headers(id, false, webHeaders("POST", path, "text/plain"))
			rc.data(id, true, []byte("hi"))
		}, "415", nil},
		{"OPTIONS without CORS", func(id uint32) {
			rc.headers(id, true, webHeaders("OPTIONS", path, ""))
		}, "405", nil},
		{"header list over the limit", func(id uint32) {
			rc.headers(id, true, webHeaders("POST", path, "application/json", "x-big", strings.Repeat("v", 5000)))
		}, "431", nil},
		{"gRPC with a GET", func(id uint32) {
			rc.headers(id, true, grpcHeaders(path, ":method", "GET"))
		}, "405", nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			c.send(id)
			r := rc.read(id)
			if r.rst != nil {
				t.Fatalf("RST_STREAM %v", *r.rst)
			}
			if got := r.headers[":status"]; got != c.status {
				t.Fatalf(":status %s, want %s; body %q", got, c.status, r.data)
			}
			if c.check != nil {
				c.check(t, r)
			}
			id += 2
			good()
		})
	}
}

// TestWebStreamBounds checks that an HTTP/2 stream served by the web
// handler is held to the bounds of a gRPC one: its body to one stream
// window, its handlers to MaxConcurrentStreams; and that a handler's
// panic resets only its stream.
func TestWebStreamBounds(t *testing.T) {
	leakcheck.Check(t)
	release := make(chan struct{})
	entered := make(chan struct{}, 4)
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/block":
			entered <- struct{}{}
			<-release
		case "/panic":
			panic("boom")
		case "/echo":
			b, err := io.ReadAll(r.Body)
			if err != nil {
				w.WriteHeader(500)
				return
			}
			w.Header().Set(http.TrailerPrefix+"X-Length", "n")
			w.Write(bytes.ToUpper(b))
			w.Header().Set(http.TrailerPrefix+"X-Length", string(rune('0'+len(b))))
		}
	})
	const window = 65535
	srv := startServer(t, server.WithWebHandler(h), server.WithMaxConcurrentStreams(2),
		server.WithLimits(server.Limits{InitialWindowSize: window}))
	rc := dialRaw(t, srv.Address())

	// The body: the handler of stream 1 does not read; a client that
	// sends past the window it was given has its stream reset.
	rc.headers(1, false, webHeaders("POST", "/block", "text/plain"))
	<-entered
	rc.data(1, false, make([]byte, 16384))
	rc.data(1, false, make([]byte, 16384))
	rc.data(1, false, make([]byte, 16384))
	rc.data(1, false, make([]byte, window-3*16384))
	rc.data(1, false, []byte{1})
	if r := rc.read(1); r.rst == nil || *r.rst != http2.ErrCodeFlowControl {
		t.Fatalf("stream 1 past its window: %+v", r)
	}

	// Handlers: stream 1's still runs, so it keeps its slot although the
	// stream is gone (CVE-2023-44487): stream 3's runs, stream 5's waits
	// for a slot, and stream 7 is one stream too many.
	rc.headers(3, true, webHeaders("GET", "/block", ""))
	<-entered
	rc.headers(5, true, webHeaders("GET", "/block", ""))
	rc.headers(7, true, webHeaders("GET", "/block", ""))
	if r := rc.read(7); r.rst == nil || *r.rst != http2.ErrCodeRefusedStream {
		t.Fatalf("stream over the limit: %+v", r)
	}
	close(release)
	for id, r := range rc.readAll(3, 5) {
		if r.headers[":status"] != "200" {
			t.Fatalf("stream %d: %+v", id, r)
		}
	}
	<-entered // stream 5's handler ran

	// A panic resets its stream with INTERNAL_ERROR, and the connection
	// serves on.
	rc.headers(9, true, webHeaders("GET", "/panic", ""))
	if r := rc.read(9); r.rst == nil || *r.rst != http2.ErrCodeInternal {
		t.Fatalf("panicking handler: %+v", r)
	}

	// The body arrives as sent, and trailers set after the body follow it.
	rc.headers(11, false, webHeaders("POST", "/echo", "text/plain"))
	rc.data(11, false, []byte("ab"))
	rc.data(11, true, []byte("c"))
	r := rc.read(11)
	if r.headers[":status"] != "200" || string(r.data) != "ABC" || r.trailers["x-length"] != "3" {
		t.Fatalf("echo: %+v", r)
	}
}

// TestStopWebStreamInFlight: a Connect call over HTTP/2 in flight when
// Stop starts is told GOAWAY and still gets its answer.
func TestStopWebStreamInFlight(t *testing.T) {
	leakcheck.Check(t)
	g := blockingGreeter{entered: make(chan struct{}, 1), release: make(chan struct{})}
	srv := startGreeter(t, g)
	rc := dialRaw(t, srv.Address())
	rc.headers(1, false, webHeaders("POST", greeterpb.GreeterSayHelloProcedure, "application/json"))
	rc.data(1, true, []byte(`{"name":"drain"}`))
	<-g.entered
	stopped := make(chan error, 1)
	go func() { stopped <- srv.Stop() }()
	if ga := rc.readGoAway(); ga.ErrCode != http2.ErrCodeNo {
		t.Fatalf("GOAWAY %v", ga.ErrCode)
	}
	close(g.release)
	r := rc.read(1)
	if r.headers[":status"] != "200" || string(r.data) != `{"message":"Hello drain"}` {
		t.Fatalf("call in flight at Stop: %+v", r)
	}
	if err := <-stopped; err != nil {
		t.Fatalf("Stop: %v", err)
	}
}
