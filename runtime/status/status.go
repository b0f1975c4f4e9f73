// Package status is the error model of the runtime: a gRPC status code, a
// message and optional details.
//
// Every error a client call returns, and every error a handler returns that
// the caller should see as more than Unknown, is an *Error; errors.As finds
// it through any wrapping. status knows nothing of the wire.
package status

import (
	"context"
	"errors"
	"fmt"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
)

// Error is an RPC error: a code, a human-readable message and optional
// details (protobuf messages packed in Any, as google.rpc.Status carries them).
type Error struct {
	code    Code
	message string
	details []*anypb.Any
	cause   error
}

// New returns an error with the code and message.
func New(c Code, msg string) *Error { return &Error{code: c, message: msg} }

// Errorf returns an error with the code and a formatted message. A %w verb
// keeps the wrapped error reachable through errors.Is and errors.As.
func Errorf(c Code, format string, args ...any) *Error {
	err := fmt.Errorf(format, args...)
	return &Error{code: c, message: err.Error(), cause: errors.Unwrap(err)}
}

// Code returns the status code; OK for a nil *Error.
func (e *Error) Code() Code {
	if e == nil {
		return OK
	}
	return e.code
}

// Message returns the message without the code.
func (e *Error) Message() string {
	if e == nil {
		return ""
	}
	return e.message
}

// Details returns the details attached to the error.
func (e *Error) Details() []*anypb.Any {
	if e == nil {
		return nil
	}
	return e.details
}

// Error formats the error as "rpc error: code = X desc = msg", the form
// grpc-go users grep their logs for.
func (e *Error) Error() string {
	if e == nil {
		return "rpc error: code = OK"
	}
	return "rpc error: code = " + e.code.String() + " desc = " + e.message
}

// Unwrap returns the error this one was made from, if any.
func (e *Error) Unwrap() error {
	if e == nil {
		return nil
	}
	return e.cause
}

// WithDetails returns a copy of e carrying the messages as details. Each is
// packed in an Any, except an *anypb.Any, which is attached as it is.
func (e *Error) WithDetails(msgs ...proto.Message) (*Error, error) {
	out := *e
	out.details = append([]*anypb.Any(nil), e.details...)
	for _, m := range msgs {
		if a, ok := m.(*anypb.Any); ok {
			out.details = append(out.details, a)
			continue
		}
		a, err := anypb.New(m)
		if err != nil {
			return nil, fmt.Errorf("status: packing detail %T: %w", m, err)
		}
		out.details = append(out.details, a)
	}
	return &out, nil
}

// FromError returns the *Error in err's chain, if any.
func FromError(err error) (*Error, bool) {
	var e *Error
	if errors.As(err, &e) {
		return e, true
	}
	return nil, false
}

// Convert turns any error into an *Error: an *Error in the chain is returned
// as it is, context errors become Canceled or DeadlineExceeded, anything else
// Unknown with the error's text. nil stays nil.
func Convert(err error) *Error {
	if err == nil {
		return nil
	}
	if e, ok := FromError(err); ok {
		return e
	}
	switch {
	case errors.Is(err, context.Canceled):
		return &Error{code: Canceled, message: err.Error(), cause: err}
	case errors.Is(err, context.DeadlineExceeded):
		return &Error{code: DeadlineExceeded, message: err.Error(), cause: err}
	}
	return &Error{code: Unknown, message: err.Error(), cause: err}
}

// CodeOf returns the code Convert would give err: OK for nil.
func CodeOf(err error) Code {
	if err == nil {
		return OK
	}
	return Convert(err).Code()
}
