package codec_test

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/protoc-gen-micro/micro/runtime/codec"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/structpb"
)

func testMessage(t *testing.T) proto.Message {
	s, err := structpb.NewStruct(map[string]any{
		"name":   "héllo 🙂",
		"count":  42.0,
		"nested": map[string]any{"ok": true, "list": []any{"a", 1.5}},
	})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestRoundTrip(t *testing.T) {
	for _, c := range []codec.Codec{codec.Proto, codec.JSON} {
		t.Run(c.Name(), func(t *testing.T) {
			in := testMessage(t)
			prefix := []byte("prefix")
			b, err := c.MarshalAppend(append([]byte(nil), prefix...), in)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.HasPrefix(b, prefix) {
				t.Fatalf("MarshalAppend did not append: %q", b)
			}
			out := &structpb.Struct{}
			if err := c.Unmarshal(b[len(prefix):], out); err != nil {
				t.Fatal(err)
			}
			if !proto.Equal(in, out) {
				t.Fatalf("round trip: got %v, want %v", out, in)
			}
			// Not a proto.Message: an error, not a panic.
			if _, err := c.MarshalAppend(nil, struct{}{}); err == nil {
				t.Error("MarshalAppend of a non-message succeeded")
			}
			if err := c.Unmarshal(b, new(int)); err == nil {
				t.Error("Unmarshal into a non-message succeeded")
			}
		})
	}
}

func TestJSONWireForm(t *testing.T) {
	b, err := codec.JSON.MarshalAppend(nil, durationpb.New(1500*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	if s := strings.ReplaceAll(string(b), " ", ""); s != `"1.500s"` {
		t.Fatalf("JSON duration = %s", b)
	}
	// Unknown fields are discarded rather than failing the call.
	var s structpb.Value
	if err := codec.JSON.Unmarshal([]byte(`{"a":1}`), &s); err != nil {
		t.Fatal(err)
	}
	var d durationpb.Duration
	if err := codec.JSON.Unmarshal([]byte(`"2s"`), &d); err != nil || d.AsDuration() != 2*time.Second {
		t.Fatalf("JSON duration decode: %v %v", d.AsDuration(), err)
	}
	if err := codec.JSON.Unmarshal([]byte(`{not json`), &s); err == nil {
		t.Fatal("bad JSON decoded")
	}
}

func TestGetAndContentType(t *testing.T) {
	for _, tc := range []struct {
		sub  string
		want codec.Codec
		ok   bool
	}{
		{"", codec.Proto, true},
		{"proto", codec.Proto, true},
		{"json", codec.JSON, true},
		{"xml", nil, false},
	} {
		got, ok := codec.Get(tc.sub)
		if ok != tc.ok || got != tc.want {
			t.Errorf("Get(%q) = %v, %v", tc.sub, got, ok)
		}
	}
	for name, want := range map[string]string{
		"":      "application/grpc",
		"proto": "application/grpc",
		"json":  "application/grpc+json",
		"cbor":  "application/grpc+cbor",
	} {
		if got := codec.ContentType(name); got != want {
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
		sub, ok := codec.Subtype(tc.ct)
		if sub != tc.sub || ok != tc.ok {
			t.Errorf("Subtype(%q) = %q, %v; want %q, %v", tc.ct, sub, ok, tc.sub, tc.ok)
		}
	}
}

type upperCodec struct{ codec.Codec }

func (upperCodec) Name() string { return "TestUpper" }

func TestRegister(t *testing.T) {
	codec.Register(upperCodec{codec.Proto})
	c, ok := codec.Get("testupper")
	if !ok || c.Name() != "TestUpper" {
		t.Fatalf("registered codec not found under its lower-cased name: %v %v", c, ok)
	}
	// Content types are parsed case-insensitively, so the lookup after
	// Subtype finds it too.
	sub, _ := codec.Subtype("application/grpc+TestUpper")
	if _, ok := codec.Get(sub); !ok {
		t.Fatalf("Get(%q) after Subtype failed", sub)
	}
}
