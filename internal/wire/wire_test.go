package wire_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/protoc-gen-micro/micro/internal/wire"
	"github.com/protoc-gen-micro/micro/runtime/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

func TestCodeString(t *testing.T) {
	for i := 0; i <= int(status.Unauthenticated); i++ {
		c := status.Code(i)
		if got, want := wire.CodeString(c), fmt.Sprint(i); got != want {
			t.Errorf("CodeString(%v) = %q, want %q", c, got, want)
		}
		if got, ok := wire.ParseCode(wire.CodeString(c)); !ok || got != c {
			t.Errorf("ParseCode(%q) = %v, %v", wire.CodeString(c), got, ok)
		}
	}
	if got := wire.CodeString(status.Code(1234)); got != "1234" {
		t.Errorf("CodeString(Code(1234)) = %q", got)
	}
}

func TestParseCode(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want status.Code
		ok   bool
	}{
		{"0", status.OK, true},
		{"00", status.OK, true},
		{"5", status.NotFound, true},
		{"16", status.Unauthenticated, true},
		// Well-formed but outside 0-16: Unknown, as the spec asks.
		{"17", status.Unknown, true},
		{"4294967295", status.Unknown, true},
		{"9999999999", status.Unknown, true},
		// Malformed.
		{"", status.Unknown, false},
		{"-1", status.Unknown, false},
		{"+1", status.Unknown, false},
		{" 1", status.Unknown, false},
		{"1a", status.Unknown, false},
		{"12345678901", status.Unknown, false},
	} {
		got, ok := wire.ParseCode(tc.in)
		if got != tc.want || ok != tc.ok {
			t.Errorf("ParseCode(%q) = %v, %v; want %v, %v", tc.in, got, ok, tc.want, tc.ok)
		}
	}
}

func TestHTTPToCode(t *testing.T) {
	for in, want := range map[int]status.Code{
		400: status.Internal, 401: status.Unauthenticated, 403: status.PermissionDenied,
		404: status.Unimplemented, 429: status.Unavailable, 502: status.Unavailable,
		503: status.Unavailable, 504: status.Unavailable, 500: status.Unknown, 200: status.Unknown,
	} {
		if got := wire.HTTPToCode(in); got != want {
			t.Errorf("HTTPToCode(%d) = %v, want %v", in, got, want)
		}
	}
}

func TestMessageEncoding(t *testing.T) {
	for _, tc := range []struct{ in, wire string }{
		{"", ""},
		{"plain ascii, no escapes ~!", "plain ascii, no escapes ~!"},
		{"100%", "100%25"},
		{"%%", "%25%25"},
		{"tab\tnewline\n", "tab%09newline%0A"},
		{"héllo", "h%C3%A9llo"},
		{"日本", "%E6%97%A5%E6%9C%AC"},
		{"emoji 🙂 %41", "emoji %F0%9F%99%82 %2541"},
		{"\x00\x7f\xff", "%00%7F%FF"},
	} {
		enc := wire.EncodeMessage(tc.in)
		if enc != tc.wire {
			t.Errorf("EncodeMessage(%q) = %q, want %q", tc.in, enc, tc.wire)
		}
		for i := 0; i < len(enc); i++ {
			if c := enc[i]; c < ' ' || c > '~' {
				t.Errorf("EncodeMessage(%q) left byte %#x unescaped", tc.in, c)
			}
		}
		if got := wire.DecodeMessage(enc); got != tc.in {
			t.Errorf("DecodeMessage(%q) = %q, want %q", enc, got, tc.in)
		}
	}
	// Every byte value survives the round trip.
	var all []byte
	for i := 0; i < 256; i++ {
		all = append(all, byte(i))
	}
	if got := wire.DecodeMessage(wire.EncodeMessage(string(all))); got != string(all) {
		t.Errorf("round trip of all bytes: got %q", got)
	}
}

func TestDecodeMessageLenient(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"%zz", "%zz"},
		{"abc%", "abc%"},
		{"abc%4", "abc%4"},
		{"%4g", "%4g"},
		{"%g4", "%g4"},
		{"%%41", "%A"},
		{"%41", "A"},
		{"%e2%82%ac", "€"}, // lower-case hex is accepted
		{"x%2", "x%2"},
		{"%", "%"},
		{"%%", "%%"},
	} {
		if got := wire.DecodeMessage(tc.in); got != tc.want {
			t.Errorf("DecodeMessage(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestStatusRoundTrip(t *testing.T) {
	base := status.New(status.FailedPrecondition, "quota: 100% used — ünïcode")
	e, err := base.WithDetails(durationpb.New(1500*time.Millisecond), wrapperspb.String("why"))
	if err != nil {
		t.Fatal(err)
	}
	if len(base.Details()) != 0 {
		t.Fatal("WithDetails changed the receiver")
	}
	got, err := wire.UnmarshalStatus(wire.MarshalStatus(e))
	if err != nil {
		t.Fatal(err)
	}
	if got.Code() != e.Code() || got.Message() != e.Message() {
		t.Fatalf("got %v, want %v", got, e)
	}
	if len(got.Details()) != 2 {
		t.Fatalf("got %d details", len(got.Details()))
	}
	var d durationpb.Duration
	if err := got.Details()[0].UnmarshalTo(&d); err != nil || d.AsDuration() != 1500*time.Millisecond {
		t.Fatalf("detail 0: %v %v", d.AsDuration(), err)
	}
	var s wrapperspb.StringValue
	if err := got.Details()[1].UnmarshalTo(&s); err != nil || s.Value != "why" {
		t.Fatalf("detail 1: %v %v", s.Value, err)
	}
	// A second WithDetails appends and leaves e alone.
	e2, err := e.WithDetails(wrapperspb.Int32(7))
	if err != nil || len(e2.Details()) != 3 || len(e.Details()) != 2 {
		t.Fatalf("chained WithDetails: %d, %d, %v", len(e2.Details()), len(e.Details()), err)
	}
}

func TestUnmarshalStatus(t *testing.T) {
	// Empty input is an OK status without a message.
	e, err := wire.UnmarshalStatus(nil)
	if err != nil || e.Code() != status.OK || e.Message() != "" {
		t.Fatalf("empty: %v %v", e, err)
	}
	// Unknown fields are skipped.
	a, _ := anypb.New(wrapperspb.Bool(true))
	raw, _ := proto.Marshal(a)
	b := []byte{0x08, 0x05, 0x12, 0x01, 'x'}
	b = append(b, 0x20, 0x01)           // field 4, varint: unknown
	b = append(b, 0x1a, byte(len(raw))) // field 3: detail
	b = append(b, raw...)               //
	b = append(b, 0x2a, 0x02, 'h', 'i') // field 5, bytes: unknown
	e, err = wire.UnmarshalStatus(b)
	if err != nil || e.Code() != status.NotFound || e.Message() != "x" || len(e.Details()) != 1 {
		t.Fatalf("with unknown fields: %v %v", e, err)
	}
	// Truncated input is an error, not a panic.
	for _, bad := range [][]byte{{0x08}, {0x12, 0x05, 'a'}, {0x1a, 0x03, 0xff}, {0xff}} {
		if _, err := wire.UnmarshalStatus(bad); err == nil {
			t.Errorf("UnmarshalStatus(%x) succeeded", bad)
		}
	}
}

func TestContentType(t *testing.T) {
	for name, want := range map[string]string{
		"":      "application/grpc",
		"proto": "application/grpc",
		"json":  "application/grpc+json",
		"cbor":  "application/grpc+cbor",
	} {
		if got := wire.ContentType(name); got != want {
			t.Errorf("ContentType(%q) = %q, want %q", name, got, want)
		}
	}
}

func TestSubtype(t *testing.T) {
	for _, tc := range []struct {
		ct  string
		sub string
		ok  bool
	}{
		{"application/grpc", "", true},
		{"application/grpc+proto", "proto", true},
		{"application/grpc+json", "json", true},
		{"application/grpc+json; charset=utf-8", "json", true},
		{"application/grpc+JSON", "json", true},
		{"Application/GRPC+Proto", "proto", true},
		{"application/grpc;charset=utf-8", "", true},
		{"application/grpc; charset=utf-8", "", true},
		{"application/grpcx", "", false},
		{"application/grpc-web", "", false},
		{"application/grp", "", false},
		{"application/json", "", false},
		{"text/plain", "", false},
		{"", "", false},
	} {
		sub, ok := wire.Subtype(tc.ct)
		if sub != tc.sub || ok != tc.ok {
			t.Errorf("Subtype(%q) = %q, %v; want %q, %v", tc.ct, sub, ok, tc.sub, tc.ok)
		}
	}
}
