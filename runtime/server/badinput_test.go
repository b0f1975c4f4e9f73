package server_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/protoc-gen-micro/micro/examples/greeter/greeterpb"
	"github.com/protoc-gen-micro/micro/internal/leakcheck"
	"github.com/protoc-gen-micro/micro/runtime/server"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
	"google.golang.org/protobuf/proto"
)

type hello struct{ greeterpb.GreeterHandler }

func (hello) SayHello(ctx context.Context, in *greeterpb.HelloRequest, out *greeterpb.HelloReply) error {
	out.Message = "Hello " + in.Name
	return nil
}

func startServer(t *testing.T, opts ...server.Option) server.Server {
	t.Helper()
	return startGreeter(t, hello{}, opts...)
}

// startGreeter starts a server on loopback serving impl as the greeter,
// and stops it when the test ends (a test may stop it itself first).
func startGreeter(t *testing.T, impl greeterpb.GreeterHandler, opts ...server.Option) server.Server {
	t.Helper()
	srv := server.NewServer(append([]server.Option{server.WithAddress("127.0.0.1:0")}, opts...)...)
	if err := greeterpb.RegisterGreeterHandler(srv, impl); err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := srv.Stop(); err != nil {
			t.Errorf("Stop: %v", err)
		}
	})
	return srv
}

func helloBytes(t *testing.T, name string) []byte {
	b, err := proto.Marshal(&greeterpb.HelloRequest{Name: name})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestBadInput sends one malformed call after another on a single
// connection; each gets its precise status and the next call on the same
// connection still works.
func TestBadInput(t *testing.T) {
	leakcheck.Check(t)
	srv := startServer(t, server.WithMaxRecvMsgSize(1024))
	rc := dialRaw(t, srv.Address())
	const path = greeterpb.GreeterSayHelloProcedure
	type tc struct {
		name       string
		send       func(id uint32)
		httpStatus string
		grpcStatus string
		msgPart    string
	}
	cases := []tc{
		{"unknown service", func(id uint32) {
			rc.headers(id, false, grpcHeaders("/nope.Service/SayHello"))
			rc.data(id, true, envelope(0, nil))
		}, "200", "12", "unknown service nope.Service"},
		{"unknown method", func(id uint32) {
			rc.headers(id, false, grpcHeaders("/greeter.v1.Greeter/Nope"))
			rc.data(id, true, envelope(0, nil))
		}, "200", "12", "unknown method Nope"},
		{"no request message", func(id uint32) {
			rc.headers(id, true, grpcHeaders(path))
		}, "200", "12", "no request message"},
		{"two request messages", func(id uint32) {
			rc.headers(id, false, grpcHeaders(path))
			rc.data(id, false, envelope(0, helloBytes(t, "a")))
			rc.data(id, true, envelope(0, helloBytes(t, "b")))
		}, "200", "12", "more than one request message"},
		{"oversized envelope", func(id uint32) {
			rc.headers(id, false, grpcHeaders(path))
			rc.data(id, false, envelope(0, make([]byte, 2048))[:5])
		}, "200", "8", "larger than max (2048 vs. 1024)"},
		{"truncated envelope", func(id uint32) {
			rc.headers(id, false, grpcHeaders(path))
			rc.data(id, true, envelope(0, helloBytes(t, "abc"))[:6])
		}, "200", "13", "ended in the middle of a message"},
		{"short envelope prefix", func(id uint32) {
			rc.headers(id, false, grpcHeaders(path))
			rc.data(id, true, []byte{0, 0})
		}, "200", "13", "ended in the middle of a message"},
		{"bad grpc-timeout unit", func(id uint32) {
			rc.headers(id, false, grpcHeaders(path, "grpc-timeout", "10x"))
			rc.data(id, true, envelope(0, helloBytes(t, "a")))
		}, "400", "13", "malformed grpc-timeout"},
		{"grpc-timeout with 9 digits", func(id uint32) {
			rc.headers(id, false, grpcHeaders(path, "grpc-timeout", "123456789S"))
			rc.data(id, true, envelope(0, helloBytes(t, "a")))
		}, "400", "13", "more than 8 digits"},
		{"undecodable protobuf", func(id uint32) {
			rc.headers(id, false, grpcHeaders(path))
			rc.data(id, true, envelope(0, []byte{0x0a, 0x05, 'a'}))
		}, "200", "13", "unmarshal"},
		{"undecodable json", func(id uint32) {
			rc.headers(id, false, grpcHeaders(path, "content-type", "application/grpc+json"))
			rc.data(id, true, envelope(0, []byte(`{"name": 12`)))
		}, "200", "13", "unmarshal"},
		{"unknown codec", func(id uint32) {
			rc.headers(id, false, grpcHeaders(path, "content-type", "application/grpc+yaml"))
			rc.data(id, true, envelope(0, nil))
		}, "415", "13", "yaml"},
		{"compressed without encoding", func(id uint32) {
			rc.headers(id, false, grpcHeaders(path))
			rc.data(id, true, envelope(1, helloBytes(t, "a")))
		}, "200", "13", "compressed"},
		{"unsupported grpc-encoding", func(id uint32) {
			rc.headers(id, false, grpcHeaders(path, "grpc-encoding", "br"))
			rc.data(id, true, envelope(1, helloBytes(t, "a")))
		}, "200", "12", "br"},
		{"corrupt gzip", func(id uint32) {
			rc.headers(id, false, grpcHeaders(path, "grpc-encoding", "gzip"))
			rc.data(id, true, envelope(1, helloBytes(t, "not gzip")))
		}, "200", "13", "decompress"},
	}
	id := uint32(1)
	good := func() {
		t.Helper()
		rc.headers(id, false, grpcHeaders(path))
		rc.data(id, true, envelope(0, helloBytes(t, "ok")))
		r := rc.read(id)
		r.expectStatus(t, "0", "")
		var out greeterpb.HelloReply
		if len(r.data) < 5 || proto.Unmarshal(r.data[5:], &out) != nil || out.Message != "Hello ok" {
			t.Fatalf("good call after bad one: data %x", r.data)
		}
		id += 2
	}
	good()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			c.send(id)
			r := rc.read(id)
			if got := r.headers[":status"]; got != c.httpStatus {
				t.Errorf(":status = %q, want %s", got, c.httpStatus)
			}
			r.expectStatus(t, c.grpcStatus, c.msgPart)
			id += 2
			good()
		})
	}
}

// TestMalformedFrames checks that a stream-level protocol error resets only
// that stream, and a connection-level one ends the connection with GOAWAY
// while the server goes on serving others.
func TestMalformedFrames(t *testing.T) {
	leakcheck.Check(t)
	srv := startServer(t)
	const path = greeterpb.GreeterSayHelloProcedure

	rc := dialRaw(t, srv.Address())
	// Stream 1 stays open while stream 3 breaks the rules.
	rc.headers(1, false, grpcHeaders(path))
	rc.headers(3, false, grpcHeaders(path))
	// A zero WINDOW_UPDATE increment is a stream error. x/net refuses to
	// write one, so the frame is built by hand.
	if _, err := rc.c.Write([]byte{0, 0, 4, byte(http2.FrameWindowUpdate), 0, 0, 0, 0, 3, 0, 0, 0, 0}); err != nil {
		t.Fatal(err)
	}
	if r := rc.read(3); r.rst == nil || *r.rst != http2.ErrCodeProtocol {
		t.Fatalf("stream 3: want RST_STREAM(PROTOCOL_ERROR), got %+v", r)
	}
	rc.data(1, true, envelope(0, helloBytes(t, "still here")))
	rc.read(1).expectStatus(t, "0", "")

	// DATA on stream 0 is a connection error.
	if _, err := rc.c.Write([]byte{0, 0, 1, byte(http2.FrameData), 0, 0, 0, 0, 0, 'x'}); err != nil {
		t.Fatal(err)
	}
	if g := rc.readGoAway(); g.ErrCode != http2.ErrCodeProtocol {
		t.Fatalf("GOAWAY code %v", g.ErrCode)
	}
	// Headers that are not valid HPACK: a compression error.
	rc2 := dialRaw(t, srv.Address())
	if err := rc2.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: []byte{0xff, 0xff, 0xff, 0xff}, EndHeaders: true}); err != nil {
		t.Fatal(err)
	}
	if g := rc2.readGoAway(); g.ErrCode != http2.ErrCodeCompression {
		t.Fatalf("GOAWAY code %v", g.ErrCode)
	}
	// An even stream id is a protocol error.
	rc3 := dialRaw(t, srv.Address())
	rc3.headers(2, true, grpcHeaders(path))
	if g := rc3.readGoAway(); g.ErrCode != http2.ErrCodeProtocol {
		t.Fatalf("GOAWAY code %v", g.ErrCode)
	}
	// The server still serves new connections.
	rc4 := dialRaw(t, srv.Address())
	rc4.headers(1, false, grpcHeaders(path))
	rc4.data(1, true, envelope(0, helloBytes(t, "new")))
	rc4.read(1).expectStatus(t, "0", "")
}

// TestHTTP1 checks that a gRPC request over HTTP/1.1 reaches the
// HTTP/1.1 side and is served there, its status in chunked trailers.
func TestHTTP1(t *testing.T) {
	leakcheck.Check(t)
	srv := startServer(t)
	c, err := net.Dial("tcp", srv.Address())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	body := envelope(0, helloBytes(t, "h1"))
	fmt.Fprintf(c, "POST /greeter.v1.Greeter/SayHello HTTP/1.1\r\nHost: x\r\nContent-Type: application/grpc\r\nTE: trailers\r\nContent-Length: %d\r\n\r\n%s", len(body), body)
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	rsp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(rsp.Body)
	if err != nil {
		t.Fatal(err)
	}
	var out greeterpb.HelloReply
	if rsp.StatusCode != 200 || rsp.Trailer.Get("Grpc-Status") != "0" || len(b) < 5 || proto.Unmarshal(b[5:], &out) != nil || out.Message != "Hello h1" {
		t.Fatalf("got %d %v %x", rsp.StatusCode, rsp.Trailer, b)
	}
}

// TestHeaderContinuation sends a request whose header block is split over
// HEADERS and CONTINUATION frames.
func TestHeaderContinuation(t *testing.T) {
	leakcheck.Check(t)
	srv := startServer(t)
	rc := dialRaw(t, srv.Address())
	rc.hbuf.Reset()
	for _, f := range grpcHeaders(greeterpb.GreeterSayHelloProcedure, "x-big", strings.Repeat("v", 40000)) {
		rc.henc.WriteField(f)
	}
	block := rc.hbuf.Bytes()
	if err := rc.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: block[:10000]}); err != nil {
		t.Fatal(err)
	}
	for off := 10000; off < len(block); off += 10000 {
		end := min(off+10000, len(block))
		if err := rc.fr.WriteContinuation(1, end == len(block), block[off:end]); err != nil {
			t.Fatal(err)
		}
	}
	rc.data(1, true, envelope(0, helloBytes(t, "cont")))
	rc.read(1).expectStatus(t, "0", "")
}

var _ = hpack.HeaderField{}
