package status_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"testing"
	"time"

	"github.com/protoc-gen-micro/micro/runtime/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

func TestCodeStrings(t *testing.T) {
	names := []string{
		"OK", "Canceled", "Unknown", "InvalidArgument", "DeadlineExceeded", "NotFound",
		"AlreadyExists", "PermissionDenied", "ResourceExhausted", "FailedPrecondition",
		"Aborted", "OutOfRange", "Unimplemented", "Internal", "Unavailable", "DataLoss",
		"Unauthenticated",
	}
	for i, name := range names {
		c := status.Code(i)
		if got := c.String(); got != name {
			t.Errorf("Code(%d).String() = %q, want %q", i, got, name)
		}
		if got, want := c.WireString(), fmt.Sprint(i); got != want {
			t.Errorf("Code(%d).WireString() = %q, want %q", i, got, want)
		}
		if got, ok := status.ParseCode(c.WireString()); !ok || got != c {
			t.Errorf("ParseCode(%q) = %v, %v", c.WireString(), got, ok)
		}
	}
	if got := status.Code(17).String(); got != "Code(17)" {
		t.Errorf("Code(17).String() = %q", got)
	}
	if got := status.Code(1234).WireString(); got != "1234" {
		t.Errorf("Code(1234).WireString() = %q", got)
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
		got, ok := status.ParseCode(tc.in)
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
		if got := status.HTTPToCode(in); got != want {
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
		wire := status.EncodeMessage(tc.in)
		if wire != tc.wire {
			t.Errorf("EncodeMessage(%q) = %q, want %q", tc.in, wire, tc.wire)
		}
		for i := 0; i < len(wire); i++ {
			if c := wire[i]; c < ' ' || c > '~' {
				t.Errorf("EncodeMessage(%q) left byte %#x unescaped", tc.in, c)
			}
		}
		if got := status.DecodeMessage(wire); got != tc.in {
			t.Errorf("DecodeMessage(%q) = %q, want %q", wire, got, tc.in)
		}
	}
	// Every byte value survives the round trip.
	var all []byte
	for i := 0; i < 256; i++ {
		all = append(all, byte(i))
	}
	if got := status.DecodeMessage(status.EncodeMessage(string(all))); got != string(all) {
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
		if got := status.DecodeMessage(tc.in); got != tc.want {
			t.Errorf("DecodeMessage(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestDetailsRoundTrip(t *testing.T) {
	base := status.New(status.FailedPrecondition, "quota: 100% used — ünïcode")
	e, err := base.WithDetails(durationpb.New(1500*time.Millisecond), wrapperspb.String("why"))
	if err != nil {
		t.Fatal(err)
	}
	if len(base.Details()) != 0 {
		t.Fatal("WithDetails changed the receiver")
	}
	got, err := status.UnmarshalDetails(e.MarshalDetails())
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

func TestUnmarshalDetails(t *testing.T) {
	// Empty input is an OK status without a message.
	e, err := status.UnmarshalDetails(nil)
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
	e, err = status.UnmarshalDetails(b)
	if err != nil || e.Code() != status.NotFound || e.Message() != "x" || len(e.Details()) != 1 {
		t.Fatalf("with unknown fields: %v %v", e, err)
	}
	// Truncated input is an error, not a panic.
	for _, bad := range [][]byte{{0x08}, {0x12, 0x05, 'a'}, {0x1a, 0x03, 0xff}, {0xff}} {
		if _, err := status.UnmarshalDetails(bad); err == nil {
			t.Errorf("UnmarshalDetails(%x) succeeded", bad)
		}
	}
}

func TestConvertAndWrapping(t *testing.T) {
	inner := status.New(status.NotFound, "no such thing")
	wrapped := fmt.Errorf("loading: %w", fmt.Errorf("layer: %w", inner))

	if got := status.Convert(wrapped); got != inner {
		t.Fatalf("Convert through %%w returned %v, want the inner error", got)
	}
	if got := status.CodeOf(wrapped); got != status.NotFound {
		t.Fatalf("CodeOf = %v", got)
	}
	if e, ok := status.FromError(wrapped); !ok || e != inner {
		t.Fatalf("FromError = %v, %v", e, ok)
	}
	if _, ok := status.FromError(io.EOF); ok {
		t.Fatal("FromError found a status in io.EOF")
	}
	if _, ok := status.FromError(nil); ok {
		t.Fatal("FromError found a status in nil")
	}

	if status.Convert(nil) != nil || status.CodeOf(nil) != status.OK {
		t.Fatal("nil must convert to nil / OK")
	}
	plain := errors.New("disk on fire")
	if e := status.Convert(plain); e.Code() != status.Unknown || e.Message() != "disk on fire" || !errors.Is(e, plain) {
		t.Fatalf("Convert(plain) = %v", e)
	}
	ctxCanceled := fmt.Errorf("waiting: %w", context.Canceled)
	if e := status.Convert(ctxCanceled); e.Code() != status.Canceled || !errors.Is(e, context.Canceled) {
		t.Fatalf("Convert(canceled) = %v", e)
	}
	if c := status.CodeOf(fmt.Errorf("x: %w", context.DeadlineExceeded)); c != status.DeadlineExceeded {
		t.Fatalf("CodeOf(deadline) = %v", c)
	}

	// Errorf keeps a %w cause reachable.
	e := status.Errorf(status.Unavailable, "dial: %w", io.ErrUnexpectedEOF)
	if !errors.Is(e, io.ErrUnexpectedEOF) || e.Message() != "dial: unexpected EOF" || e.Code() != status.Unavailable {
		t.Fatalf("Errorf: %v", e)
	}
	var target *status.Error
	if !errors.As(fmt.Errorf("outer: %w", e), &target) || target != e {
		t.Fatal("errors.As did not find the *status.Error")
	}

	// A nil *Error behaves as OK.
	var nilErr *status.Error
	if nilErr.Code() != status.OK || nilErr.Message() != "" || nilErr.Details() != nil {
		t.Fatal("nil *Error is not OK")
	}
	if got := e.Error(); got != "rpc error: code = Unavailable desc = dial: unexpected EOF" {
		t.Fatalf("Error() = %q", got)
	}
}

func TestErrorsIs(t *testing.T) {
	err := fmt.Errorf("wrapped: %w", status.New(status.PermissionDenied, "nope"))
	for _, tc := range []struct {
		target error
		want   bool
	}{
		{status.New(status.PermissionDenied, ""), true},
		{status.New(status.PermissionDenied, "nope"), true},
		{status.New(status.PermissionDenied, "other"), false},
		{status.New(status.NotFound, ""), false},
		{errors.New("nope"), false},
	} {
		if got := errors.Is(err, tc.target); got != tc.want {
			t.Errorf("errors.Is(%v, %v) = %v, want %v", err, tc.target, got, tc.want)
		}
	}
}

// TestErrorsIsNilPointers: errors.Is must not panic on a nil *Error, as
// target or as the (typed-nil) error being tested.
func TestErrorsIsNilPointers(t *testing.T) {
	var nilErr *status.Error
	check := func(name string, f func() bool, want bool) {
		t.Helper()
		defer func() {
			if r := recover(); r != nil {
				t.Errorf("%s panicked: %v", name, r)
			}
		}()
		if got := f(); got != want {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}
	check("errors.Is(err, nil *Error)", func() bool { return errors.Is(status.New(status.NotFound, "x"), nilErr) }, false)
	check("errors.Is(nil *Error, New(NotFound))", func() bool { return errors.Is(error(nilErr), status.New(status.NotFound, "")) }, false)
}
