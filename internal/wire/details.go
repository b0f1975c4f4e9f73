package wire

import (
	"fmt"

	"github.com/protoc-gen-micro/micro/runtime/status"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
)

// MarshalStatus encodes e as a google.rpc.Status message, the payload of the
// grpc-status-details-bin trailer. It writes the fields by hand so the runtime
// need not depend on the googleapis Go module.
func MarshalStatus(e *status.Error) []byte {
	var b []byte
	if c := e.Code(); c != status.OK {
		b = protowire.AppendTag(b, 1, protowire.VarintType)
		b = protowire.AppendVarint(b, uint64(c))
	}
	if m := e.Message(); m != "" {
		b = protowire.AppendTag(b, 2, protowire.BytesType)
		b = protowire.AppendString(b, m)
	}
	for _, d := range e.Details() {
		raw, err := proto.Marshal(d)
		if err != nil {
			continue
		}
		b = protowire.AppendTag(b, 3, protowire.BytesType)
		b = protowire.AppendBytes(b, raw)
	}
	return b
}

// UnmarshalStatus decodes a google.rpc.Status message into an *Error.
func UnmarshalStatus(b []byte) (*status.Error, error) {
	var (
		code    status.Code
		message string
		details []proto.Message
	)
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return nil, fmt.Errorf("status: bad google.rpc.Status: %w", protowire.ParseError(n))
		}
		b = b[n:]
		switch {
		case num == 1 && typ == protowire.VarintType:
			v, n := protowire.ConsumeVarint(b)
			if n < 0 {
				return nil, fmt.Errorf("status: bad code: %w", protowire.ParseError(n))
			}
			code, b = status.Code(v), b[n:]
		case num == 2 && typ == protowire.BytesType:
			v, n := protowire.ConsumeString(b)
			if n < 0 {
				return nil, fmt.Errorf("status: bad message: %w", protowire.ParseError(n))
			}
			message, b = v, b[n:]
		case num == 3 && typ == protowire.BytesType:
			v, n := protowire.ConsumeBytes(b)
			if n < 0 {
				return nil, fmt.Errorf("status: bad detail: %w", protowire.ParseError(n))
			}
			a := &anypb.Any{}
			if err := proto.Unmarshal(v, a); err != nil {
				return nil, fmt.Errorf("status: bad detail: %w", err)
			}
			details, b = append(details, a), b[n:]
		default:
			n := protowire.ConsumeFieldValue(num, typ, b)
			if n < 0 {
				return nil, fmt.Errorf("status: bad google.rpc.Status: %w", protowire.ParseError(n))
			}
			b = b[n:]
		}
	}
	e := status.New(code, message)
	if len(details) == 0 {
		return e, nil
	}
	// An Any is attached as it is, so this cannot fail.
	return e.WithDetails(details...)
}
