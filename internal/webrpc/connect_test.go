package webrpc_test

import (
	"bytes"
	"compress/gzip"
	"encoding/base64"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/protoc-gen-micro/micro/examples/greeter/greeterpb"
	"github.com/protoc-gen-micro/micro/internal/webrpc"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

const sayHello = "/greeter.v1.Greeter/SayHello"

func TestConnectUnaryJSON(t *testing.T) {
	for _, p := range start(t, &testGreeter{}, webrpc.Config{}) {
		t.Run(p.name, func(t *testing.T) {
			rsp, b := do(t, p, "POST", sayHello, "application/json", []byte(`{"name":"World"}`), "Connect-Protocol-Version", "1")
			if rsp.StatusCode != 200 || rsp.Header.Get("Content-Type") != "application/json" {
				t.Fatalf("got %d %q: %s", rsp.StatusCode, rsp.Header.Get("Content-Type"), b)
			}
			var out greeterpb.HelloReply
			decodeJSON(t, b, &struct{ Message *string }{&out.Message})
			if out.Message != "Hello World" {
				t.Fatalf("message %q", out.Message)
			}
			if p.h2 != (rsp.ProtoMajor == 2) {
				t.Fatalf("answered over HTTP/%d", rsp.ProtoMajor)
			}
		})
	}
}

func TestConnectUnaryProto(t *testing.T) {
	for _, p := range start(t, &testGreeter{}, webrpc.Config{}) {
		t.Run(p.name, func(t *testing.T) {
			req, _ := proto.Marshal(&greeterpb.HelloRequest{Name: "Proto"})
			rsp, b := do(t, p, "POST", sayHello, "application/proto", req)
			if rsp.StatusCode != 200 || rsp.Header.Get("Content-Type") != "application/proto" {
				t.Fatalf("got %d %q: %s", rsp.StatusCode, rsp.Header.Get("Content-Type"), b)
			}
			var out greeterpb.HelloReply
			if err := proto.Unmarshal(b, &out); err != nil || out.Message != "Hello Proto" {
				t.Fatalf("reply %v, %v", &out, err)
			}
		})
	}
}

func TestConnectGet(t *testing.T) {
	for _, p := range start(t, &testGreeter{}, webrpc.Config{}) {
		t.Run(p.name, func(t *testing.T) {
			q := url.Values{"encoding": {"json"}, "message": {`{"name":"Get"}`}, "connect": {"v1"}}
			rsp, b := do(t, p, "GET", sayHello+"?"+q.Encode(), "", nil)
			if rsp.StatusCode != 200 || !strings.Contains(string(b), "Hello Get") {
				t.Fatalf("json GET: %d %s", rsp.StatusCode, b)
			}
			req, _ := proto.Marshal(&greeterpb.HelloRequest{Name: "Binary"})
			q = url.Values{"encoding": {"proto"}, "message": {base64.RawURLEncoding.EncodeToString(req)}, "base64": {"1"}}
			rsp, b = do(t, p, "GET", sayHello+"?"+q.Encode(), "", nil)
			var out greeterpb.HelloReply
			if rsp.StatusCode != 200 || proto.Unmarshal(b, &out) != nil || out.Message != "Hello Binary" {
				t.Fatalf("proto GET: %d %q", rsp.StatusCode, b)
			}
			// Compressed, as connect-go sends a large GET.
			var zb bytes.Buffer
			zw := gzip.NewWriter(&zb)
			zw.Write(req)
			zw.Close()
			q = url.Values{"encoding": {"proto"}, "message": {base64.URLEncoding.EncodeToString(zb.Bytes())}, "base64": {"1"}, "compression": {"gzip"}}
			rsp, b = do(t, p, "GET", sayHello+"?"+q.Encode(), "", nil)
			if rsp.StatusCode != 200 || proto.Unmarshal(b, &out) != nil || out.Message != "Hello Binary" {
				t.Fatalf("gzip GET: %d %q", rsp.StatusCode, b)
			}
			// Only methods without side effects take GET.
			rsp, _ = do(t, p, "GET", "/greeter.v1.Greeter/LotsOfReplies?"+q.Encode(), "", nil)
			if rsp.StatusCode != http.StatusMethodNotAllowed || rsp.Header.Get("Allow") != "POST" {
				t.Fatalf("GET of a streaming method: %d, Allow %q", rsp.StatusCode, rsp.Header.Get("Allow"))
			}
			rsp, b = do(t, p, "GET", sayHello+"?encoding=json", "", nil)
			var ce connectError
			decodeJSON(t, b, &ce)
			if rsp.StatusCode != 400 || ce.Code != "invalid_argument" {
				t.Fatalf("GET without message: %d %s", rsp.StatusCode, b)
			}
		})
	}
}

func gz(t *testing.T, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	w := gzip.NewWriter(&buf)
	if _, err := w.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func gunzip(t *testing.T, b []byte) []byte {
	t.Helper()
	r, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("response is not gzip: %v", err)
	}
	out, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestConnectGzip(t *testing.T) {
	for _, p := range start(t, &testGreeter{}, webrpc.Config{SendCompression: "gzip"}) {
		t.Run(p.name, func(t *testing.T) {
			// A gzipped request is answered gzipped if the client
			// accepts it, plainly otherwise.
			rsp, b := do(t, p, "POST", sayHello, "application/json", gz(t, []byte(`{"name":"Zip"}`)), "Content-Encoding", "gzip", "Accept-Encoding", "gzip")
			if rsp.StatusCode != 200 || rsp.Header.Get("Content-Encoding") != "gzip" {
				t.Fatalf("got %d, Content-Encoding %q: %q", rsp.StatusCode, rsp.Header.Get("Content-Encoding"), b)
			}
			if got := string(gunzip(t, b)); !strings.Contains(got, "Hello Zip") {
				t.Fatalf("body %s", got)
			}
			rsp, b = do(t, p, "POST", sayHello, "application/json", gz(t, []byte(`{"name":"Zip"}`)), "Content-Encoding", "gzip")
			if rsp.StatusCode != 200 || rsp.Header.Get("Content-Encoding") != "" || !strings.Contains(string(b), "Hello Zip") {
				t.Fatalf("not accepting gzip: %d, Content-Encoding %q: %q", rsp.StatusCode, rsp.Header.Get("Content-Encoding"), b)
			}
			// A plain request from a client accepting gzip is answered
			// with the server's preference, one that does not is not.
			rsp, b = do(t, p, "POST", sayHello, "application/json", []byte(`{"name":"A"}`), "Accept-Encoding", "br, gzip;q=0.5")
			if rsp.Header.Get("Content-Encoding") != "gzip" || !strings.Contains(string(gunzip(t, b)), "Hello A") {
				t.Fatalf("accepting gzip: %q %q", rsp.Header.Get("Content-Encoding"), b)
			}
			rsp, b = do(t, p, "POST", sayHello, "application/json", []byte(`{"name":"B"}`))
			if rsp.Header.Get("Content-Encoding") != "" || !strings.Contains(string(b), "Hello B") {
				t.Fatalf("not accepting gzip: %q %q", rsp.Header.Get("Content-Encoding"), b)
			}
			// An unknown encoding is unimplemented.
			rsp, b = do(t, p, "POST", sayHello, "application/json", []byte(`{}`), "Content-Encoding", "zstd-nope")
			var ce connectError
			decodeJSON(t, b, &ce)
			if rsp.StatusCode != 501 || ce.Code != "unimplemented" {
				t.Fatalf("unknown encoding: %d %s", rsp.StatusCode, b)
			}
		})
	}
}

func TestConnectErrors(t *testing.T) {
	for _, p := range start(t, &testGreeter{}, webrpc.Config{}) {
		t.Run(p.name, func(t *testing.T) {
			rsp, b := do(t, p, "POST", sayHello, "application/json", []byte(`{"name":"details"}`))
			var ce connectError
			decodeJSON(t, b, &ce)
			if rsp.StatusCode != 404 || rsp.Header.Get("Content-Type") != "application/json" || ce.Code != "not_found" || ce.Message != "no such person" {
				t.Fatalf("got %d %q: %s", rsp.StatusCode, rsp.Header.Get("Content-Type"), b)
			}
			if len(ce.Details) != 1 || ce.Details[0].Type != "google.protobuf.StringValue" {
				t.Fatalf("details %s", b)
			}
			raw, err := base64.RawStdEncoding.DecodeString(ce.Details[0].Value)
			var sv wrapperspb.StringValue
			if err != nil || proto.Unmarshal(raw, &sv) != nil || sv.Value != "why" {
				t.Fatalf("detail value %q: %v", ce.Details[0].Value, err)
			}
			if string(ce.Details[0].Debug) != `"why"` {
				t.Fatalf("detail debug %s", ce.Details[0].Debug)
			}
			rsp, b = do(t, p, "POST", sayHello, "application/json", []byte(`{"name":""}`))
			decodeJSON(t, b, &ce)
			if rsp.StatusCode != 400 || ce.Code != "invalid_argument" {
				t.Fatalf("empty name: %d %s", rsp.StatusCode, b)
			}
			rsp, b = do(t, p, "POST", sayHello, "application/json", []byte(`{"name":`))
			decodeJSON(t, b, &ce)
			if rsp.StatusCode != 400 || ce.Code != "invalid_argument" {
				t.Fatalf("bad JSON: %d %s", rsp.StatusCode, b)
			}
			rsp, b = do(t, p, "POST", "/greeter.v1.Greeter/Nope", "application/json", []byte(`{}`))
			decodeJSON(t, b, &ce)
			if rsp.StatusCode != 404 || ce.Code != "unimplemented" {
				t.Fatalf("unknown method: %d %s", rsp.StatusCode, b)
			}
			rsp, _ = do(t, p, "POST", sayHello, "text/plain", []byte(`hi`))
			if rsp.StatusCode != 415 || !strings.Contains(rsp.Header.Get("Accept-Post"), "application/json") {
				t.Fatalf("text/plain: %d, Accept-Post %q", rsp.StatusCode, rsp.Header.Get("Accept-Post"))
			}
			rsp, _ = do(t, p, "POST", sayHello, "application/connect+json", []byte(`{}`))
			if rsp.StatusCode != 415 {
				t.Fatalf("streaming content type on a unary method: %d", rsp.StatusCode)
			}
			rsp, _ = do(t, p, "PUT", sayHello, "application/json", []byte(`{}`))
			if rsp.StatusCode != 405 {
				t.Fatalf("PUT: %d", rsp.StatusCode)
			}
			rsp, b = do(t, p, "POST", sayHello, "application/json", []byte(`{}`), "Connect-Protocol-Version", "2")
			decodeJSON(t, b, &ce)
			if rsp.StatusCode != 400 || ce.Code != "invalid_argument" {
				t.Fatalf("protocol version 2: %d %s", rsp.StatusCode, b)
			}
		})
	}
}

func TestConnectMetadata(t *testing.T) {
	for _, p := range start(t, &testGreeter{}, webrpc.Config{}) {
		t.Run(p.name, func(t *testing.T) {
			rsp, b := do(t, p, "POST", sayHello, "application/json", []byte(`{"name":"meta"}`),
				"X-Echo", "hello", "X-Data-Bin", base64.StdEncoding.EncodeToString([]byte{0, 1, 2}), "Connect-Timeout-Ms", "60000")
			if rsp.StatusCode != 200 {
				t.Fatalf("got %d: %s", rsp.StatusCode, b)
			}
			if rsp.Header.Get("X-Echo") != "hello" || rsp.Header.Get("Trailer-X-Trailer") != "t" {
				t.Fatalf("headers %v", rsp.Header)
			}
			if bin, err := base64.RawStdEncoding.DecodeString(rsp.Header.Get("X-Data-Bin")); err != nil || !bytes.Equal(bin, []byte{0, 1, 2}) {
				t.Fatalf("x-data-bin %q", rsp.Header.Get("X-Data-Bin"))
			}
			var out struct{ Message string }
			decodeJSON(t, b, &out)
			host, _, err := net.SplitHostPort(out.Message)
			if err != nil || host != "127.0.0.1" {
				t.Fatalf("peer %q", out.Message)
			}
		})
	}
}
