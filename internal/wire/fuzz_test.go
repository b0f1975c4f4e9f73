package wire

import (
	"testing"

	"github.com/protoc-gen-micro/micro/runtime/status"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// FuzzMessage: any grpc-message value decodes without failing, and every
// message survives EncodeMessage and DecodeMessage unchanged.
func FuzzMessage(f *testing.F) {
	for _, s := range []string{"", "plain", "%", "%4", "%41%zz", "héllo\n\x00", "100%"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		DecodeMessage(s)
		enc := EncodeMessage(s)
		for i := 0; i < len(enc); i++ {
			if enc[i] < ' ' || enc[i] > '~' {
				t.Fatalf("EncodeMessage(%q) = %q holds byte %#x", s, enc, enc[i])
			}
		}
		if got := DecodeMessage(enc); got != s {
			t.Fatalf("round trip of %q gave %q", s, got)
		}
	})
}

// FuzzUnmarshalStatus: grpc-status-details-bin decodes or fails cleanly,
// and what decodes encodes back to an equivalent status.
func FuzzUnmarshalStatus(f *testing.F) {
	withDetail, err := status.New(status.NotFound, "gone").WithDetails(wrapperspb.String("why"), durationpb.New(1))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(MarshalStatus(withDetail))
	f.Add(MarshalStatus(status.New(status.Internal, "x")))
	f.Add([]byte{0x08, 0x03, 0x12, 0x01, 'a', 0x1a, 0x00})
	f.Add([]byte{0xff, 0xff})
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := UnmarshalStatus(b)
		if err != nil {
			return
		}
		back, err := UnmarshalStatus(MarshalStatus(s))
		if err != nil {
			t.Fatalf("re-encoded status does not decode: %v", err)
		}
		if back.Code() != s.Code() || back.Message() != s.Message() || len(back.Details()) != len(s.Details()) {
			t.Fatalf("round trip changed %v into %v", s, back)
		}
		for i := range s.Details() {
			if !proto.Equal(s.Details()[i], back.Details()[i]) {
				t.Fatalf("detail %d changed", i)
			}
		}
	})
}
