package connectclient

import (
	"context"
	"encoding/binary"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/protoc-gen-micro/micro/internal/leakcheck"
	"github.com/protoc-gen-micro/micro/runtime/codec"
	"github.com/protoc-gen-micro/micro/runtime/status"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// envelope frames body with flags as the Connect streaming protocol does.
func envelope(flags byte, body string) string {
	var p [prefixLen]byte
	p[0] = flags
	binary.BigEndian.PutUint32(p[1:], uint32(len(body)))
	return string(p[:]) + body
}

// serve answers every request with status, content type and body as
// given, after reading the request.
func serve(t *testing.T, code int, ct, body string) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", ct)
		w.WriteHeader(code)
		io.WriteString(w, body)
	}))
	t.Cleanup(srv.Close)
	return srv.Listener.Addr().String()
}

// response is what a test server answers, and the code the call must
// fail with.
type response struct {
	name string
	code int
	ct   string
	body string
	want status.Code
}

// call makes one call of the kind streaming says to addr with a receive
// limit of 64 bytes, and returns how it ended.
func call(t *testing.T, addr string, streaming bool) error {
	t.Helper()
	tr := New(Config{MaxRecvMsgSize: 64})
	defer tr.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := tr.NewStream(ctx, Call{Addr: addr, Procedure: "/greeter.v1.Greeter/SayHello", Streaming: streaming})
	if err != nil {
		return err
	}
	defer s.Cancel()
	if err := s.SendMsg(wrapperspb.String("x"), true); err != nil {
		return err
	}
	var rsp wrapperspb.StringValue
	for {
		if err := s.RecvMsg(&rsp); err != nil {
			return err
		}
	}
}

// TestHostileStreamingResponses: every malformed or oversized streaming
// response fails the call with a status, within the limit.
func TestHostileStreamingResponses(t *testing.T) {
	leakcheck.Check(t)
	const ct = "application/connect+proto"
	big := strings.Repeat("x", 100)
	for _, tc := range []response{
		{"no end-of-stream", 200, ct, "", status.Internal},
		{"cut in a prefix", 200, ct, "\x00\x00", status.Internal},
		{"cut in a message", 200, ct, envelope(0, "abc")[:6], status.Internal},
		{"message over the limit", 200, ct, envelope(0, big), status.ResourceExhausted},
		{"end-of-stream over the limit", 200, ct, envelope(flagEndStream, `{"metadata":{"k":["`+big+`"]}}`), status.ResourceExhausted},
		{"end-of-stream not JSON", 200, ct, envelope(flagEndStream, "{"), status.Internal},
		{"unknown flags", 200, ct, envelope(0x40, ""), status.Internal},
		{"compressed without an encoding", 200, ct, envelope(flagCompressed, "abc"), status.Internal},
		{"wrong codec", 200, "application/connect+json", envelope(flagEndStream, "{}"), status.Internal},
		{"not Connect", 200, "text/html", "<html>", status.Unknown},
		{"HTTP error", 503, "text/plain", "busy", status.Unavailable},
		{"error with unknown code", 200, ct, envelope(flagEndStream, `{"error":{"code":"nope","message":"m"}}`), status.Unknown},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := call(t, serve(t, tc.code, tc.ct, tc.body), true)
			if status.CodeOf(err) != tc.want {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
		})
	}
}

// TestHostileUnaryResponses: a unary response over the limit, or an error
// that is not Connect's JSON, fails with the right code.
func TestHostileUnaryResponses(t *testing.T) {
	leakcheck.Check(t)
	for _, tc := range []response{
		{"message over the limit", 200, "application/proto", strings.Repeat("x", 65), status.ResourceExhausted},
		{"wrong codec", 200, "application/json", "{}", status.Internal},
		{"error body not JSON", 404, "text/plain", "not found", status.Unimplemented},
		{"error JSON without a code", 429, "application/json", `{"message":"slow"}`, status.Unavailable},
		{"error JSON over the limit", 400, "application/json", `{"code":"not_found","message":"` + strings.Repeat("x", 100) + `"}`, status.Internal},
		{"error JSON", 400, "application/json", `{"code":"failed_precondition","message":"m"}`, status.FailedPrecondition},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := call(t, serve(t, tc.code, tc.ct, tc.body), false)
			if status.CodeOf(err) != tc.want {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
		})
	}
}

// FuzzStreamingResponse: whatever body a server streams, reading it ends
// with a status or io.EOF, never a panic or an unbounded read.
func FuzzStreamingResponse(f *testing.F) {
	f.Add(envelope(0, "\x0a\x01x") + envelope(flagEndStream, "{}"))
	f.Add(envelope(flagEndStream, `{"error":{"code":"not_found","details":[{"type":"google.protobuf.StringValue","value":"CgF4"}]},"metadata":{"a-bin":["AAE"]}}`))
	f.Add(envelope(flagCompressed|flagEndStream, "x"))
	f.Fuzz(func(t *testing.T, body string) {
		s := newStream(context.Background(), New(Config{MaxRecvMsgSize: 1 << 10}), Call{Streaming: true, Codec: codec.Proto})
		s.resp = &http.Response{Body: io.NopCloser(strings.NewReader(body))}
		close(s.respReady)
		var m wrapperspb.StringValue
		for i := 0; i <= len(body); i++ {
			if err := s.RecvMsg(&m); err != nil {
				if _, ok := err.(*status.Error); !ok && err != io.EOF {
					t.Fatalf("RecvMsg: %T %v", err, err)
				}
				return
			}
		}
		t.Fatal("more messages than bytes")
	})
}
