package webrpc_test

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/binary"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/protoc-gen-micro/micro/examples/greeter/greeterpb"
	"github.com/protoc-gen-micro/micro/internal/webrpc"
	"github.com/protoc-gen-micro/micro/runtime/interceptor"
	"github.com/protoc-gen-micro/micro/runtime/metadata"
	"github.com/protoc-gen-micro/micro/runtime/server"
	"github.com/protoc-gen-micro/micro/runtime/spec"
	"google.golang.org/protobuf/proto"
)

func TestConnectServerStream(t *testing.T) {
	for _, p := range start(t, &testGreeter{}, webrpc.Config{}) {
		t.Run(p.name, func(t *testing.T) {
			rsp, b := do(t, p, "POST", "/greeter.v1.Greeter/LotsOfReplies", "application/connect+json",
				envelope(0, []byte(`{"name":"S"}`)), "Connect-Protocol-Version", "1")
			if rsp.StatusCode != 200 || rsp.Header.Get("Content-Type") != "application/connect+json" {
				t.Fatalf("got %d %q", rsp.StatusCode, rsp.Header.Get("Content-Type"))
			}
			fs := frames(t, b)
			if len(fs) != 4 {
				t.Fatalf("%d frames: %q", len(fs), b)
			}
			for i, want := range []string{"1: Hello S", "2: Bonjour S", "3: Hallo S"} {
				if fs[i].flags != 0 || !strings.Contains(string(fs[i].body), want) {
					t.Fatalf("frame %d: %#x %s", i, fs[i].flags, fs[i].body)
				}
			}
			var end endStream
			decodeJSON(t, fs[3].body, &end)
			if fs[3].flags != 0x02 || end.Error != nil {
				t.Fatalf("end of stream %#x %s", fs[3].flags, fs[3].body)
			}
			// Two requests to a method that takes one.
			two := append(envelope(0, []byte(`{"name":"a"}`)), envelope(0, []byte(`{"name":"b"}`))...)
			_, b = do(t, p, "POST", "/greeter.v1.Greeter/LotsOfReplies", "application/connect+json", two)
			fs = frames(t, b)
			decodeJSON(t, fs[len(fs)-1].body, &end)
			if end.Error == nil || end.Error.Code != "unimplemented" {
				t.Fatalf("two requests: %s", b)
			}
		})
	}
}

func TestConnectClientStreamProtoGzip(t *testing.T) {
	for _, p := range start(t, &testGreeter{}, webrpc.Config{SendCompression: "gzip"}) {
		t.Run(p.name, func(t *testing.T) {
			var body []byte
			for _, n := range []string{"a", "b", "c"} {
				m, _ := proto.Marshal(&greeterpb.HelloRequest{Name: n})
				body = append(body, envelope(1, gz(t, m))...)
			}
			rsp, b := do(t, p, "POST", "/greeter.v1.Greeter/LotsOfGreetings", "application/connect+proto", body,
				"Connect-Content-Encoding", "gzip", "Connect-Accept-Encoding", "gzip")
			if rsp.StatusCode != 200 || rsp.Header.Get("Connect-Content-Encoding") != "gzip" {
				t.Fatalf("got %d %v", rsp.StatusCode, rsp.Header)
			}
			fs := frames(t, b)
			if len(fs) != 2 || fs[0].flags != 1 || fs[1].flags != 2 {
				t.Fatalf("frames %v", fs)
			}
			var out greeterpb.HelloReply
			if err := proto.Unmarshal(gunzip(t, fs[0].body), &out); err != nil || out.Message != "Hello a, b, c" {
				t.Fatalf("reply %v %v", &out, err)
			}
		})
	}
}

// TestBidi: Chat answers each message as it arrives over HTTP/2, and is
// refused over HTTP/1.1 in every protocol, as connect-go refuses it.
func TestBidi(t *testing.T) {
	for _, p := range start(t, &testGreeter{}, webrpc.Config{}) {
		t.Run(p.name, func(t *testing.T) {
			if !p.h2 {
				for _, ct := range []string{"application/connect+json", "application/grpc-web+json"} {
					rsp, _ := do(t, p, "POST", "/greeter.v1.Greeter/Chat", ct, envelope(0, []byte(`{"name":"x"}`)))
					if rsp.StatusCode != http.StatusHTTPVersionNotSupported {
						t.Fatalf("%s bidi over HTTP/1.1: %d", ct, rsp.StatusCode)
					}
				}
				return
			}
			pr, pw := io.Pipe()
			req, _ := http.NewRequest("POST", p.url+"/greeter.v1.Greeter/Chat", pr)
			req.Header.Set("Content-Type", "application/connect+json")
			rspc := make(chan *http.Response, 1)
			errc := make(chan error, 1)
			go func() {
				rsp, err := p.client.Do(req)
				if err != nil {
					errc <- err
					return
				}
				rspc <- rsp
			}()
			if _, err := pw.Write(envelope(0, []byte(`{"name":"one"}`))); err != nil {
				t.Fatal(err)
			}
			var rsp *http.Response
			select {
			case rsp = <-rspc:
			case err := <-errc:
				t.Fatal(err)
			}
			defer rsp.Body.Close()
			br := bufio.NewReader(rsp.Body)
			readFrame := func() frame {
				var pre [5]byte
				if _, err := io.ReadFull(br, pre[:]); err != nil {
					t.Fatal(err)
				}
				b := make([]byte, binary.BigEndian.Uint32(pre[1:]))
				if _, err := io.ReadFull(br, b); err != nil {
					t.Fatal(err)
				}
				return frame{pre[0], b}
			}
			// The reply to the first message arrives while the request
			// is still open: the stream is full duplex.
			if f := readFrame(); !strings.Contains(string(f.body), "Hello one") {
				t.Fatalf("first reply %s", f.body)
			}
			pw.Write(envelope(0, []byte(`{"name":"two"}`)))
			if f := readFrame(); !strings.Contains(string(f.body), "Hello two") {
				t.Fatalf("second reply %s", f.body)
			}
			pw.Close()
			if f := readFrame(); f.flags != 2 || string(f.body) != "{}" {
				t.Fatalf("end of stream %#x %s", f.flags, f.body)
			}
		})
	}
}

func TestGRPCWeb(t *testing.T) {
	for _, p := range start(t, &testGreeter{}, webrpc.Config{}) {
		t.Run(p.name, func(t *testing.T) {
			m, _ := proto.Marshal(&greeterpb.HelloRequest{Name: "Web"})
			rsp, b := do(t, p, "POST", sayHello, "application/grpc-web+proto", envelope(0, m), "X-Grpc-Web", "1")
			if rsp.StatusCode != 200 || rsp.Header.Get("Content-Type") != "application/grpc-web+proto" {
				t.Fatalf("got %d %v", rsp.StatusCode, rsp.Header)
			}
			fs := frames(t, b)
			var out greeterpb.HelloReply
			if len(fs) != 2 || proto.Unmarshal(fs[0].body, &out) != nil || out.Message != "Hello Web" {
				t.Fatalf("frames %q", b)
			}
			if tr := webTrailers(t, fs[1]); tr["grpc-status"] != "0" {
				t.Fatalf("trailers %v", tr)
			}
			// An error before anything is sent is trailers-only.
			rsp, b = do(t, p, "POST", sayHello, "application/grpc-web", envelope(0, nil))
			if rsp.StatusCode != 200 || rsp.Header.Get("Grpc-Status") != "3" || rsp.Header.Get("Grpc-Message") != "name is required" || len(b) != 0 {
				t.Fatalf("trailers-only: %d %v %q", rsp.StatusCode, rsp.Header, b)
			}
			// Details travel in grpc-status-details-bin.
			m, _ = proto.Marshal(&greeterpb.HelloRequest{Name: "details"})
			rsp, _ = do(t, p, "POST", sayHello, "application/grpc-web", envelope(0, m))
			if rsp.Header.Get("Grpc-Status") != "5" || rsp.Header.Get("Grpc-Status-Details-Bin") == "" {
				t.Fatalf("details: %v", rsp.Header)
			}
			// Metadata: headers, and trailers in the trailer frame.
			m, _ = proto.Marshal(&greeterpb.HelloRequest{Name: "meta"})
			rsp, b = do(t, p, "POST", sayHello, "application/grpc-web", envelope(0, m), "X-Echo", "web")
			fs = frames(t, b)
			if rsp.Header.Get("X-Echo") != "web" || len(fs) != 2 {
				t.Fatalf("meta: %v %q", rsp.Header, b)
			}
			if tr := webTrailers(t, fs[1]); tr["x-trailer"] != "t" || tr["grpc-status"] != "0" {
				t.Fatalf("meta trailers %v", tr)
			}
			// Server streaming in JSON.
			rsp, b = do(t, p, "POST", "/greeter.v1.Greeter/LotsOfReplies", "application/grpc-web+json", envelope(0, []byte(`{"name":"J"}`)))
			fs = frames(t, b)
			if len(fs) != 4 || !strings.Contains(string(fs[2].body), "Hallo J") || webTrailers(t, fs[3])["grpc-status"] != "0" {
				t.Fatalf("server stream %q", b)
			}
			// An unknown method is UNIMPLEMENTED in gRPC's terms.
			rsp, _ = do(t, p, "POST", "/greeter.v1.Greeter/Nope", "application/grpc-web", envelope(0, nil))
			if rsp.StatusCode != 200 || rsp.Header.Get("Grpc-Status") != "12" {
				t.Fatalf("unknown method: %d %v", rsp.StatusCode, rsp.Header)
			}
		})
	}
}

func TestGRPCWebText(t *testing.T) {
	for _, p := range start(t, &testGreeter{}, webrpc.Config{}) {
		t.Run(p.name, func(t *testing.T) {
			m, _ := proto.Marshal(&greeterpb.HelloRequest{Name: "Text"})
			body := []byte(base64.StdEncoding.EncodeToString(envelope(0, m)))
			rsp, b := do(t, p, "POST", "/greeter.v1.Greeter/LotsOfReplies", "application/grpc-web-text", body)
			if rsp.StatusCode != 200 || rsp.Header.Get("Content-Type") != "application/grpc-web-text" {
				t.Fatalf("got %d %v", rsp.StatusCode, rsp.Header)
			}
			raw := decodeText(t, b)
			fs := frames(t, raw)
			var out greeterpb.HelloReply
			if len(fs) != 4 || proto.Unmarshal(fs[1].body, &out) != nil || out.Message != "2: Bonjour Text" {
				t.Fatalf("frames %q", raw)
			}
			if webTrailers(t, fs[3])["grpc-status"] != "0" {
				t.Fatalf("trailers %q", fs[3].body)
			}
			// Requests may come as several padded chunks too.
			m2, _ := proto.Marshal(&greeterpb.HelloRequest{Name: "b"})
			body = []byte(base64.StdEncoding.EncodeToString(envelope(0, m)) + base64.StdEncoding.EncodeToString(envelope(0, m2)))
			_, b = do(t, p, "POST", "/greeter.v1.Greeter/LotsOfGreetings", "application/grpc-web-text+proto", body)
			if fs := frames(t, decodeText(t, b)); len(fs) != 2 || !strings.Contains(string(fs[0].body), "Hello Text, b") {
				t.Fatalf("chunked request: %q", b)
			}
		})
	}
}

// TestGRPCOverHTTP1 calls a unary method with plain gRPC over HTTP/1.1:
// the status comes in chunked-encoding trailers.
func TestGRPCOverHTTP1(t *testing.T) {
	p := start(t, &testGreeter{}, webrpc.Config{})[0]
	m, _ := proto.Marshal(&greeterpb.HelloRequest{Name: "a"})
	rsp, b := do(t, p, "POST", sayHello, "application/grpc", envelope(0, m))
	if rsp.StatusCode != http.StatusOK || rsp.Trailer.Get("Grpc-Status") != "0" {
		t.Fatalf("gRPC over HTTP/1.1: %d, trailers %v", rsp.StatusCode, rsp.Trailer)
	}
	fs := frames(t, b)
	var out greeterpb.HelloReply
	if len(fs) != 1 || proto.Unmarshal(fs[0].body, &out) != nil || out.Message != "Hello a" {
		t.Fatalf("gRPC over HTTP/1.1: body %x", b)
	}
}

// streamMeta is an interceptor that, around every streaming handler, sends
// a header through the context's call and sets a trailer through the
// stream, as server.SendHeader and stream.SetTrailer users do.
type streamMeta struct {
	interceptor.UnaryInterceptorFunc
}

func (streamMeta) WrapStreamingHandler(_ *spec.Method, next interceptor.StreamingHandlerFunc) interceptor.StreamingHandlerFunc {
	return func(ctx context.Context, st interceptor.ServerStream) error {
		if err := server.SendHeader(ctx, metadata.Pairs("x-early", "h")); err != nil {
			return err
		}
		err := next(ctx, st)
		st.SetTrailer(metadata.Pairs("x-done", "yes", "x-raw-bin", "\x00\xff"))
		return err
	}
}

func TestStreamMetadata(t *testing.T) {
	g := &testGreeter{}
	ics := []interceptor.Interceptor{streamMeta{func(_ *spec.Method, next interceptor.UnaryFunc) interceptor.UnaryFunc { return next }}}
	for _, p := range start(t, g, webrpc.Config{Lookup: lookup(g, ics...)}) {
		t.Run(p.name, func(t *testing.T) {
			rsp, b := do(t, p, "POST", "/greeter.v1.Greeter/LotsOfReplies", "application/connect+json", envelope(0, []byte(`{"name":"M"}`)))
			fs := frames(t, b)
			var end endStream
			decodeJSON(t, fs[len(fs)-1].body, &end)
			if rsp.Header.Get("X-Early") != "h" || len(fs) != 4 || end.Error != nil ||
				end.Metadata["x-done"][0] != "yes" || end.Metadata["x-raw-bin"][0] != base64.RawStdEncoding.EncodeToString([]byte("\x00\xff")) {
				t.Fatalf("connect: %v %s", rsp.Header, b)
			}
			rsp, b = do(t, p, "POST", "/greeter.v1.Greeter/LotsOfReplies", "application/grpc-web+json", envelope(0, []byte(`{"name":"M"}`)))
			fs = frames(t, b)
			if tr := webTrailers(t, fs[len(fs)-1]); rsp.Header.Get("X-Early") != "h" || tr["x-done"] != "yes" || tr["grpc-status"] != "0" {
				t.Fatalf("grpc-web: %v %v", rsp.Header, tr)
			}
			// An error after the headers went out is in the end of stream.
			rsp, b = do(t, p, "POST", "/greeter.v1.Greeter/LotsOfReplies", "application/connect+json", envelope(0, []byte(`{"name":`)))
			fs = frames(t, b)
			decodeJSON(t, fs[len(fs)-1].body, &end)
			if rsp.StatusCode != 200 || rsp.Header.Get("X-Early") != "h" || end.Error == nil || end.Error.Code != "invalid_argument" || end.Metadata["x-done"][0] != "yes" {
				t.Fatalf("error: %d %v %s", rsp.StatusCode, rsp.Header, b)
			}
		})
	}
}

// TestClientGoesAway: a client that cancels its request ends the
// handler's context.
func TestClientGoesAway(t *testing.T) {
	g := &testGreeter{entered: make(chan struct{}, 1), exited: make(chan error, 1)}
	for _, p := range start(t, g, webrpc.Config{}) {
		t.Run(p.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			req, _ := http.NewRequestWithContext(ctx, "POST", p.url+sayHello, strings.NewReader(`{"name":"wait"}`))
			req.Header.Set("Content-Type", "application/json")
			done := make(chan error, 1)
			go func() {
				rsp, err := p.client.Do(req)
				if err == nil {
					rsp.Body.Close()
				}
				done <- err
			}()
			<-g.entered
			cancel()
			if err := <-g.exited; err != context.Canceled {
				t.Fatalf("handler's context ended with %v", err)
			}
			if err := <-done; err == nil {
				t.Fatal("the canceled request succeeded")
			}
		})
	}
}
