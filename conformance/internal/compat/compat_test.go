package compat

import (
	"bytes"
	"errors"
	"io"
	"slices"
	"testing"

	"github.com/protoc-gen-micro/micro/conformance/internal/conformancepb"
	"github.com/protoc-gen-micro/micro/runtime/metadata"
	"github.com/protoc-gen-micro/micro/runtime/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
)

func TestDelimited(t *testing.T) {
	msgs := []*conformancepb.ServerCompatResponse{
		{Host: "127.0.0.1", Port: 4242, PemCert: []byte("cert")},
		{}, // an empty message is a zero length, not the end
		{Host: "localhost"},
	}
	var buf bytes.Buffer
	for _, m := range msgs {
		if err := WriteDelimited(&buf, m); err != nil {
			t.Fatal(err)
		}
	}
	whole := buf.Bytes()
	for i, want := range msgs {
		got := &conformancepb.ServerCompatResponse{}
		if err := ReadDelimited(&buf, got); err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
		if !proto.Equal(got, want) {
			t.Fatalf("message %d: got %v, want %v", i, got, want)
		}
	}
	if err := ReadDelimited(&buf, &conformancepb.ServerCompatResponse{}); err != io.EOF {
		t.Fatalf("at the end: got %v, want io.EOF", err)
	}
	for _, cut := range []int{2, 6} { // inside the prefix, inside the message
		err := ReadDelimited(bytes.NewReader(whole[:cut]), &conformancepb.ServerCompatResponse{})
		if err == nil || err == io.EOF {
			t.Errorf("truncated after %d bytes: got %v, want an error other than io.EOF", cut, err)
		}
	}
	if err := ReadDelimited(bytes.NewReader([]byte{0xff, 0xff, 0xff, 0xff}), &conformancepb.ServerCompatResponse{}); err == nil {
		t.Error("a 4 GiB length was accepted")
	}
}

func TestHeaders(t *testing.T) {
	headers := []*conformancepb.Header{
		{Name: "X-Conformance-Test", Value: []string{"Value1", "Value2"}},
		{Name: "x-trace-bin", Value: []string{"AAEC"}},      // unpadded base64 of 0x00 0x01 0x02
		{Name: "x-padded-bin", Value: []string{"AAECAw=="}}, // padded base64 of 0x00..0x03
	}
	md := MD(headers)
	want := metadata.MD{
		"x-conformance-test": {"Value1", "Value2"},
		"x-trace-bin":        {"\x00\x01\x02"},
		"x-padded-bin":       {"\x00\x01\x02\x03"},
	}
	for k, v := range want {
		if got := md[k]; !slices.Equal(got, v) {
			t.Errorf("md[%q] = %q, want %q", k, got, v)
		}
	}
	back := Headers(md)
	names := []string{"x-conformance-test", "x-padded-bin", "x-trace-bin"}
	if len(back) != len(names) {
		t.Fatalf("got %d headers, want %d", len(back), len(names))
	}
	for i, h := range back {
		if h.GetName() != names[i] {
			t.Errorf("header %d is %q, want %q (sorted)", i, h.GetName(), names[i])
		}
	}
	if got := back[2].GetValue()[0]; got != "AAEC" {
		t.Errorf("x-trace-bin went back as %q, want unpadded AAEC", got)
	}
}

func TestStatus(t *testing.T) {
	detail, err := anypb.New(&conformancepb.Header{Name: "detail", Value: []string{"v"}})
	if err != nil {
		t.Fatal(err)
	}
	in := &conformancepb.Error{
		Code:    conformancepb.Code_CODE_RESOURCE_EXHAUSTED,
		Message: proto.String("too much"),
		Details: []*anypb.Any{detail},
	}
	s := Status(in)
	if s.Code() != status.ResourceExhausted || s.Message() != "too much" {
		t.Fatalf("Status = %v", s)
	}
	if len(s.Details()) != 1 || !proto.Equal(s.Details()[0], detail) {
		t.Fatalf("details = %v, want the Any as given, not wrapped again", s.Details())
	}
	if out := Error(s); !proto.Equal(out, in) {
		t.Fatalf("round trip: got %v, want %v", out, in)
	}

	if s := Status(&conformancepb.Error{Message: proto.String("no code")}); s.Code() != status.Unknown {
		t.Errorf("an error without a code became %v, want Unknown", s.Code())
	}
	if e := Error(errors.New("plain")); e.GetCode() != conformancepb.Code_CODE_UNKNOWN || e.GetMessage() != "plain" {
		t.Errorf("a plain error became %v, want Unknown with its text", e)
	}
	if Error(nil) != nil {
		t.Error("Error(nil) is not nil")
	}
}
