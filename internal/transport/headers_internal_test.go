package transport

import (
	"math"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/protoc-gen-micro/micro/internal/wire"
	"github.com/protoc-gen-micro/micro/runtime/metadata"
	"golang.org/x/net/http2/hpack"
)

func TestEncodeTimeout(t *testing.T) {
	for _, tc := range []struct {
		d    time.Duration
		want string
	}{
		{-time.Second, "0n"},
		{0, "0n"},
		{1, "1n"},
		{99999999, "99999999n"},
		// 9 digits of nanoseconds do not fit: microseconds, rounded up.
		{100000000, "100000u"},
		{100000001, "100001u"},
		{time.Second, "1000000u"},
		{99999999 * time.Microsecond, "99999999u"},
		{99999999*time.Microsecond + 1, "100000m"},
		{100 * time.Second, "100000m"},
		{99999999 * time.Millisecond, "99999999m"},
		{99999999*time.Millisecond + 1, "100000S"},
		{99999999 * time.Second, "99999999S"},
		{99999999*time.Second + 1, "1666667M"},
		{99999999 * time.Minute, "99999999M"},
		{99999999*time.Minute + 1, "1666667H"},
		// Near the top of the range the round-up must not overflow.
		{math.MaxInt64 - 500, "2562048H"},
		{math.MaxInt64, "2562048H"},
	} {
		got := encodeTimeout(tc.d)
		if got != tc.want {
			t.Errorf("encodeTimeout(%v) = %q, want %q", tc.d, got, tc.want)
			continue
		}
		if len(got) > 9 {
			t.Errorf("encodeTimeout(%v) = %q has more than 8 digits", tc.d, got)
		}
		// Rounding is always up: the server never sees a shorter deadline.
		back, err := decodeTimeout(got)
		if err != nil {
			t.Errorf("decodeTimeout(%q): %v", got, err)
		} else if tc.d > 0 && back < tc.d {
			t.Errorf("encodeTimeout(%v) = %q decodes to %v, shorter", tc.d, got, back)
		}
	}
}

func TestDecodeTimeout(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want time.Duration
		ok   bool
	}{
		{"1n", 1, true},
		{"0n", 0, true},
		{"7u", 7 * time.Microsecond, true},
		{"250m", 250 * time.Millisecond, true},
		{"3S", 3 * time.Second, true},
		{"2M", 2 * time.Minute, true},
		{"1H", time.Hour, true},
		{"00000001S", time.Second, true},
		{"99999999S", 99999999 * time.Second, true},
		// Overflowing values saturate.
		{"99999999H", math.MaxInt64, true},
		{"3000000H", math.MaxInt64, true},
		// 9 digits are one too many.
		{"123456789n", 0, false},
		{"", 0, false},
		{"S", 0, false},
		{"1", 0, false},
		{"1s", 0, false}, // units are case-sensitive: 's' is not one
		{"1h", 0, false},
		{"1x", 0, false},
		{"-1S", 0, false},
		{"1.5S", 0, false},
		{" 1S", 0, false},
	} {
		got, err := decodeTimeout(tc.in)
		if (err == nil) != tc.ok {
			t.Errorf("decodeTimeout(%q) error = %v, want ok %v", tc.in, err, tc.ok)
			continue
		}
		if tc.ok && got != tc.want {
			t.Errorf("decodeTimeout(%q) = %v, want %v", tc.in, got, tc.want)
		}
	}
}

func TestDecodeBin(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want string
		ok   bool
	}{
		{"", "", true},
		{"AA", "\x00", true},
		{"AA==", "\x00", true},
		{"AAE", "\x00\x01", true},
		{"AAE=", "\x00\x01", true},
		{"AAEC", "\x00\x01\x02", true},
		{"/w", "\xff", true},
		{"/w==", "\xff", true},
		{"aGVsbG8", "hello", true},
		{"aGVsbG8=", "hello", true},
		{"!!!!", "", false},
		{"A", "", false},
		{"aGVsbG8==", "", false},
		{"-_8", "", false}, // URL alphabet is not accepted
	} {
		got, err := wire.DecodeBin(tc.in)
		if (err == nil) != tc.ok || (tc.ok && got != tc.want) {
			t.Errorf("wire.DecodeBin(%q) = %q, %v; want %q ok=%v", tc.in, got, err, tc.want, tc.ok)
		}
	}
	// encodeBin is unpadded and decodeBin reverses it for every length.
	for n := 0; n < 10; n++ {
		v := strings.Repeat("\xfe", n)
		enc := wire.EncodeBin(v)
		if strings.Contains(enc, "=") {
			t.Errorf("wire.EncodeBin(%d bytes) = %q is padded", n, enc)
		}
		if got, err := wire.DecodeBin(enc); err != nil || got != v {
			t.Errorf("wire.DecodeBin(wire.EncodeBin(%d bytes)) = %q, %v", n, got, err)
		}
	}
}

func TestFieldsToMD(t *testing.T) {
	md, err := fieldsToMD([]hpack.HeaderField{
		{Name: "x-a", Value: "1"},
		{Name: "x-a", Value: "2"},
		{Name: "x-data-bin", Value: "AAEC"},
		{Name: "x-data-bin", Value: "/w=="},
		{Name: "x-plain", Value: "AAEC"}, // not -bin: left as it is
	})
	if err != nil {
		t.Fatal(err)
	}
	want := metadata.MD{
		"x-a":        {"1", "2"},
		"x-data-bin": {"\x00\x01\x02", "\xff"},
		"x-plain":    {"AAEC"},
	}
	if !reflect.DeepEqual(md, want) {
		t.Fatalf("fieldsToMD = %v, want %v", md, want)
	}
	if _, err := fieldsToMD([]hpack.HeaderField{{Name: "x-bad-bin", Value: "!!"}}); err == nil {
		t.Fatal("bad base64 in a -bin header was accepted")
	}
	md, err = fieldsToMD(nil)
	if err != nil || md == nil || len(md) != 0 {
		t.Fatalf("fieldsToMD(nil) = %v, %v", md, err)
	}
}

func TestHeaderNames(t *testing.T) {
	for _, name := range []string{":path", "content-type", "te", "grpc-timeout", "grpc-status", "grpc-message",
		"grpc-status-details-bin", "connection", "host", "content-length"} {
		if !reservedHeader(name) {
			t.Errorf("reservedHeader(%q) = false", name)
		}
	}
	for _, name := range []string{"x-custom", "authorization", "grpc-trace-bin", "user-agent"} {
		if reservedHeader(name) {
			t.Errorf("reservedHeader(%q) = true", name)
		}
	}
	for name, want := range map[string]bool{
		"x-ok": true, "a.b_c-9": true, "": false, "Upper": false, "sp ace": false, "colon:": false, "ü": false,
	} {
		if got := wire.ValidMetadataKey(name); got != want {
			t.Errorf("wire.ValidMetadataKey(%q) = %v", name, got)
		}
	}
}
