package status_test

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/protoc-gen-micro/micro/runtime/status"
)

// A handler returns a *status.Error to give the caller a code other than
// Unknown.
func ExampleNew() {
	err := status.New(status.NotFound, "user 42 not found")
	fmt.Println(err)
	fmt.Println(err.Code(), "/", err.Message())
	// Output:
	// rpc error: code = NotFound desc = user 42 not found
	// NotFound / user 42 not found
}

// With %w, the error an *Error was made from stays reachable through
// errors.Is and errors.As; the caller of an RPC sees only the code and the
// message, never the wrapped error.
func ExampleErrorf() {
	err := status.Errorf(status.NotFound, "reading profile: %w", fs.ErrNotExist)
	fmt.Println(err.Message())
	fmt.Println(errors.Is(err, fs.ErrNotExist))
	// Output:
	// reading profile: file does not exist
	// true
}

// Convert gives every error a code, as a server does with what a handler
// returns.
func ExampleConvert() {
	for _, err := range []error{
		status.New(status.PermissionDenied, "not yours"),
		fmt.Errorf("loading: %w", status.New(status.Unavailable, "db down")),
		context.DeadlineExceeded,
		errors.New("disk full"),
	} {
		fmt.Println(status.Convert(err))
	}
	// Output:
	// rpc error: code = PermissionDenied desc = not yours
	// rpc error: code = Unavailable desc = db down
	// rpc error: code = DeadlineExceeded desc = context deadline exceeded
	// rpc error: code = Unknown desc = disk full
}

// CodeOf is the shortest way to branch on the outcome of a call.
func ExampleCodeOf() {
	for _, err := range []error{nil, status.New(status.NotFound, "no such user"), context.Canceled} {
		switch status.CodeOf(err) {
		case status.OK:
			fmt.Println("done")
		case status.NotFound:
			fmt.Println("create it")
		default:
			fmt.Println("give up:", err)
		}
	}
	// Output:
	// done
	// create it
	// give up: context canceled
}

// FromError finds the *Error in an error's chain; errors.As does the same.
func ExampleFromError() {
	err := fmt.Errorf("saying hello: %w", status.New(status.Unauthenticated, "token expired"))

	if st, ok := status.FromError(err); ok {
		fmt.Println(st.Code(), st.Message())
	}
	var st *status.Error
	if errors.As(err, &st) {
		fmt.Println(st.Code(), st.Message())
	}
	_, ok := status.FromError(errors.New("plain"))
	fmt.Println(ok)
	// Output:
	// Unauthenticated token expired
	// Unauthenticated token expired
	// false
}

// Details carry machine-readable facts with an error, as protobuf messages;
// here, how long to wait before retrying.
func ExampleError_WithDetails() {
	st, err := status.New(status.Unavailable, "overloaded").WithDetails(durationpb.New(2 * time.Second))
	if err != nil {
		log.Fatal(err)
	}

	// The caller unpacks the details it knows.
	for _, d := range st.Details() {
		wait := new(durationpb.Duration)
		if d.UnmarshalTo(wait) == nil {
			fmt.Println(st.Code(), "- retry after", wait.AsDuration())
		}
	}
	// Output: Unavailable - retry after 2s
}
