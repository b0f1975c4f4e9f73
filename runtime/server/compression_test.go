package server_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/protoc-gen-micro/micro/examples/greeter/greeterpb"
	"github.com/protoc-gen-micro/micro/internal/leakcheck"
	"github.com/protoc-gen-micro/micro/runtime/client"
	"github.com/protoc-gen-micro/micro/runtime/server"
	"github.com/protoc-gen-micro/micro/runtime/status"
)

func gzipped(t *testing.T, b []byte) []byte {
	var out bytes.Buffer
	w := gzip.NewWriter(&out)
	w.Write(b)
	w.Close()
	return out.Bytes()
}

// TestCompressionRoundTrip: a client compressing its requests with gzip is
// understood, and answered in gzip; a server set to compress answers a
// client that accepts gzip in gzip even when the request was not
// compressed, and a client that does not, uncompressed.
func TestCompressionRoundTrip(t *testing.T) {
	leakcheck.Check(t)
	srv, _ := startVictim(t, server.WithSendCompression("gzip"))
	c := client.NewClient()
	defer c.(io.Closer).Close()
	g := greeterpb.NewGreeterService("greeter", c)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	name := strings.Repeat("gzip me ", 1000)
	for _, opts := range [][]client.CallOption{
		{client.WithAddress(srv.Address()), client.WithSendCompression("gzip")},
		{client.WithAddress(srv.Address())},
	} {
		rsp, err := g.SayHello(ctx, &greeterpb.HelloRequest{Name: name}, opts...)
		if err != nil || rsp.Message != "Hello "+name {
			t.Fatalf("call: %v", err)
		}
	}

	// On the wire: the request uncompressed, the answer in gzip.
	rc := dialRaw(t, srv.Address())
	rc.headers(1, false, grpcHeaders(greeterpb.GreeterSayHelloProcedure, "grpc-accept-encoding", "gzip"))
	rc.data(1, true, envelope(0, helloBytes(t, name)))
	r := rc.read(1)
	r.expectStatus(t, "0", "")
	if r.headers["grpc-encoding"] != "gzip" || len(r.data) < 5 || r.data[0] != 1 {
		t.Fatalf("response to a client accepting gzip: grpc-encoding %q, flag %v", r.headers["grpc-encoding"], r.data[:1])
	}
	if n := len(r.data) - 5; n > len(name)/4 {
		t.Fatalf("a %d-byte repetitive reply came back as %d bytes: not compressed", len(name), n)
	}
	// A client that accepts nothing but identity gets identity.
	rc.headers(3, false, grpcHeaders(greeterpb.GreeterSayHelloProcedure, "grpc-accept-encoding", "identity"))
	rc.data(3, true, envelope(0, helloBytes(t, "x")))
	r = rc.read(3)
	if r.headers["grpc-encoding"] != "" || r.data[0] != 0 {
		t.Fatalf("response to a client not accepting gzip was compressed (%q)", r.headers["grpc-encoding"])
	}
	// A gzip request is answered in gzip whatever the server prefers.
	rc.headers(5, false, grpcHeaders(greeterpb.GreeterSayHelloProcedure, "grpc-encoding", "gzip"))
	rc.data(5, true, envelope(1, gzipped(t, helloBytes(t, "zipped"))))
	r = rc.read(5)
	r.expectStatus(t, "0", "")
	if r.headers["grpc-encoding"] != "gzip" {
		t.Fatalf("gzip request answered with grpc-encoding %q", r.headers["grpc-encoding"])
	}
}

// TestUnknownEncoding: an encoding the server lacks is UNIMPLEMENTED, and
// the answer says what it accepts.
func TestUnknownEncoding(t *testing.T) {
	leakcheck.Check(t)
	srv, _ := startVictim(t)
	rc := dialRaw(t, srv.Address())
	rc.headers(1, false, grpcHeaders(greeterpb.GreeterSayHelloProcedure, "grpc-encoding", "zstd"))
	rc.data(1, true, envelope(1, []byte("?")))
	r := rc.read(1)
	r.expectStatus(t, "12", "zstd")
	if !strings.Contains(r.trailers["grpc-accept-encoding"], "gzip") {
		t.Fatalf("grpc-accept-encoding %q, want gzip listed", r.trailers["grpc-accept-encoding"])
	}
	// And a client asked to compress with it fails before sending.
	c := client.NewClient()
	defer c.(io.Closer).Close()
	_, err := greeterpb.NewGreeterService("greeter", c).SayHello(context.Background(), &greeterpb.HelloRequest{},
		client.WithAddress(srv.Address()), client.WithSendCompression("zstd"))
	if status.CodeOf(err) != status.Internal || !strings.Contains(err.Error(), "zstd") {
		t.Fatalf("client compressing with an unknown compressor: %v", err)
	}
}

// TestGzipBomb: a small gzip message that inflates far past the receive
// limit fails with RESOURCE_EXHAUSTED once the limit is passed, without
// the server inflating the rest.
func TestGzipBomb(t *testing.T) {
	leakcheck.Check(t)
	const limit = 1 << 20
	srv, _ := startVictim(t, server.WithMaxRecvMsgSize(limit))
	// A protobuf string field of 256 MiB of zeros, gzipped: about 256 KiB.
	var raw bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&raw, gzip.BestCompression)
	zw.Write([]byte{0x0a, 0x80, 0x80, 0x80, 0x80, 0x01}) // field 1, length 256 MiB
	zeros := make([]byte, 1<<20)
	for i := 0; i < 256; i++ {
		zw.Write(zeros)
	}
	zw.Close()
	bomb := raw.Bytes()
	if len(bomb) > limit {
		t.Fatalf("the bomb is %d bytes, over the limit itself", len(bomb))
	}
	before := heapInUse()
	rc := dialRaw(t, srv.Address())
	rc.headers(1, false, grpcHeaders(greeterpb.GreeterSayHelloProcedure, "grpc-encoding", "gzip"))
	env := envelope(1, bomb)
	for len(env) > 0 {
		n := min(len(env), 16384)
		rc.data(1, n == len(env), env[:n])
		env = env[n:] // within the window: the server admits the message at its first frame
	}
	rc.read(1).expectStatus(t, "8", "after decompression larger than max")
	checkHeap(t, before, 8<<20, "256 MiB gzip bomb")
	wellBehaved(t, srv.Address())
}
