package status_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"testing"

	"github.com/protoc-gen-micro/micro/runtime/status"
	"google.golang.org/protobuf/types/known/anypb"
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
	}
	if got := status.Code(17).String(); got != "Code(17)" {
		t.Errorf("Code(17).String() = %q", got)
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

func TestWithDetailsKeepsAny(t *testing.T) {
	a, err := anypb.New(wrapperspb.String("why"))
	if err != nil {
		t.Fatal(err)
	}
	e, err := status.New(status.NotFound, "gone").WithDetails(a, wrapperspb.Int32(7))
	if err != nil {
		t.Fatal(err)
	}
	d := e.Details()
	if len(d) != 2 || d[0] != a {
		t.Fatalf("an *anypb.Any was not attached as it is: %v", d)
	}
	var n wrapperspb.Int32Value
	if err := d[1].UnmarshalTo(&n); err != nil || n.Value != 7 {
		t.Fatalf("other message not packed: %v %v", n.Value, err)
	}
}
