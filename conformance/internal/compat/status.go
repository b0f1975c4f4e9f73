package compat

import (
	"github.com/protoc-gen-micro/micro/conformance/internal/conformancepb"
	"github.com/protoc-gen-micro/micro/internal/wire"
	"github.com/protoc-gen-micro/micro/runtime/status"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
)

// Status returns the error a handler returns to send e: its code, message
// and details, the details exactly as given.
//
// status offers no constructor that takes details already packed in Any
// (WithDetails packs proto.Messages, so an Any would be wrapped in a second
// Any), so the error is built from the google.rpc.Status encoding that
// wire.UnmarshalStatus reads.
func Status(e *conformancepb.Error) *status.Error {
	var b []byte
	if code := uint64(e.GetCode()); code != 0 {
		b = protowire.AppendTag(b, 1, protowire.VarintType)
		b = protowire.AppendVarint(b, code)
	}
	if msg := e.GetMessage(); msg != "" {
		b = protowire.AppendTag(b, 2, protowire.BytesType)
		b = protowire.AppendString(b, msg)
	}
	for _, d := range e.GetDetails() {
		raw, err := proto.Marshal(d)
		if err != nil {
			return status.Errorf(status.Internal, "compat: marshaling detail %s: %v", d.GetTypeUrl(), err)
		}
		b = protowire.AppendTag(b, 3, protowire.BytesType)
		b = protowire.AppendBytes(b, raw)
	}
	s, err := wire.UnmarshalStatus(b)
	if err != nil {
		return status.Errorf(status.Internal, "compat: %v", err)
	}
	if s.Code() == status.OK {
		// An error with no code is not an error to the runtime; say so
		// rather than end the call with OK.
		return status.Errorf(status.Unknown, "compat: error definition without a code: %s", e.GetMessage())
	}
	return s
}

// Error describes the error a call ended with, as the runner records it:
// any error that carries no status is Unknown with the error's text.
func Error(err error) *conformancepb.Error {
	if err == nil {
		return nil
	}
	s := status.Convert(err)
	return &conformancepb.Error{
		Code:    conformancepb.Code(s.Code()),
		Message: proto.String(s.Message()),
		Details: s.Details(),
	}
}
