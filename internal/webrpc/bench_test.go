package webrpc_test

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/protoc-gen-micro/micro/examples/greeter/greeterpb"
	"github.com/protoc-gen-micro/micro/internal/webrpc"
	"google.golang.org/protobuf/proto"
)

// BenchmarkHandler measures the handler alone on a unary call, without
// sockets: what webrpc itself costs per call.
func BenchmarkHandler(b *testing.B) {
	h := webrpc.NewHandler(webrpc.Config{Lookup: lookup(&testGreeter{})})
	m, _ := proto.Marshal(&greeterpb.HelloRequest{Name: "bench"})
	for _, tc := range []struct {
		name, ct string
		body     []byte
	}{
		{"connect-json", "application/json", []byte(`{"name":"bench"}`)},
		{"connect-proto", "application/proto", m},
		{"grpc-web-proto", "application/grpc-web+proto", envelope(0, m)},
	} {
		b.Run(tc.name, func(b *testing.B) {
			body := bytes.NewReader(tc.body)
			req := httptest.NewRequest("POST", sayHello, io.NopCloser(body))
			req.Header.Set("Content-Type", tc.ct)
			b.ReportAllocs()
			for b.Loop() {
				body.Reset(tc.body)
				w := httptest.NewRecorder()
				h.ServeHTTP(w, req)
				if w.Code != http.StatusOK {
					b.Fatalf("%d %s", w.Code, w.Body)
				}
			}
		})
	}
}
