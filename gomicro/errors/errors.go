// Package errors is go-micro's errors package (go-micro.dev/v5/errors) on
// top of runtime/status, so that code written for go-micro compiles with
// only its import path changed.
//
// An *Error a handler returns reaches the caller as a *status.Error whose
// gRPC code matches the Error's HTTP-style Code (BadRequest becomes
// InvalidArgument, NotFound NotFound, ...) and whose message is the Error's
// JSON text, so that Parse and FromError rebuild the same *Error on the
// other side, whether the caller uses go-micro's errors or status.
//
// Use runtime/status directly in new code; this package is for porting.
package errors

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/protoc-gen-micro/micro/runtime/status"
)

// Error is go-micro's error: an id naming who failed, an HTTP-style code, a
// detail and the code's status text. Unwrap returns the *status.Error it
// travels as, so errors.As finds a *status.Error in it.
type Error struct {
	Id     string `json:"id,omitempty"`
	Code   int32  `json:"code,omitempty"`
	Detail string `json:"detail,omitempty"`
	Status string `json:"status,omitempty"`

	// received is the status the Error was parsed from, if any.
	received *status.Error
}

// Error returns the error as JSON, as go-micro does.
func (e *Error) Error() string {
	b, _ := json.Marshal(e)
	return string(b)
}

// Unwrap returns the error as a *status.Error: the one received when e was
// parsed from a call's error, otherwise one made from e's code, with e's
// JSON text as message.
func (e *Error) Unwrap() error {
	if e.received != nil {
		return e.received
	}
	return status.New(GRPCCode(e.Code), e.Error())
}

// New returns an error with the id, detail and HTTP-style code.
func New(id, detail string, code int32) error {
	return &Error{Id: id, Code: code, Detail: detail, Status: http.StatusText(int(code))}
}

func newError(id string, code int32, format string, a ...any) error {
	if len(a) > 0 {
		format = fmt.Sprintf(format, a...)
	}
	return New(id, format, code)
}

// BadRequest returns a 400 error; the caller sees InvalidArgument.
func BadRequest(id, format string, a ...any) error { return newError(id, 400, format, a...) }

// Unauthorized returns a 401 error; the caller sees Unauthenticated.
func Unauthorized(id, format string, a ...any) error { return newError(id, 401, format, a...) }

// Forbidden returns a 403 error; the caller sees PermissionDenied.
func Forbidden(id, format string, a ...any) error { return newError(id, 403, format, a...) }

// NotFound returns a 404 error; the caller sees NotFound.
func NotFound(id, format string, a ...any) error { return newError(id, 404, format, a...) }

// MethodNotAllowed returns a 405 error; the caller sees Unimplemented.
func MethodNotAllowed(id, format string, a ...any) error { return newError(id, 405, format, a...) }

// Timeout returns a 408 error; the caller sees DeadlineExceeded.
func Timeout(id, format string, a ...any) error { return newError(id, 408, format, a...) }

// Conflict returns a 409 error; the caller sees AlreadyExists.
func Conflict(id, format string, a ...any) error { return newError(id, 409, format, a...) }

// InternalServerError returns a 500 error; the caller sees Internal.
func InternalServerError(id, format string, a ...any) error { return newError(id, 500, format, a...) }

// Equal reports whether both errors are *Error with the same code, or are
// the same error otherwise.
func Equal(err1, err2 error) bool {
	e1, ok1 := err1.(*Error)
	e2, ok2 := err2.(*Error)
	if ok1 != ok2 {
		return false
	}
	if !ok1 {
		return err1 == err2
	}
	return e1.Code == e2.Code
}

// As returns the *Error in err's chain, if any.
func As(err error) (*Error, bool) {
	var e *Error
	if errors.As(err, &e) {
		return e, true
	}
	return nil, false
}

// FromError returns err as an *Error: the *Error in its chain if there is
// one, one rebuilt from a *status.Error (from its JSON message, or from its
// code and message), or Parse(err.Error()). nil stays nil.
func FromError(err error) *Error {
	if err == nil {
		return nil
	}
	if e, ok := As(err); ok {
		return e
	}
	if s, ok := status.FromError(err); ok {
		return fromStatus(s)
	}
	return Parse(err.Error())
}

// Parse parses go-micro's JSON form of an error, or the text of a
// *status.Error ("rpc error: code = NotFound desc = ..."); any other text
// becomes the Detail.
func Parse(err string) *Error {
	e := new(Error)
	if json.Unmarshal([]byte(err), e) == nil {
		return e
	}
	if rest, ok := strings.CutPrefix(err, "rpc error: code = "); ok {
		name, desc, _ := strings.Cut(rest, " desc = ")
		for c := status.OK; c <= status.Unauthenticated; c++ {
			if c.String() == name {
				return fromStatus(status.New(c, desc))
			}
		}
	}
	return &Error{Detail: err}
}

// fromStatus rebuilds the *Error a status carries as JSON, or maps its code.
func fromStatus(s *status.Error) *Error {
	e := &Error{received: s}
	if json.Unmarshal([]byte(s.Message()), e) == nil && e.Code != 0 {
		return e
	}
	code := HTTPCode(s.Code())
	return &Error{Id: "", Code: code, Detail: s.Message(), Status: http.StatusText(int(code)), received: s}
}

// GRPCCode maps an HTTP-style code to the gRPC code a caller sees.
func GRPCCode(code int32) status.Code {
	switch code {
	case 400:
		return status.InvalidArgument
	case 401:
		return status.Unauthenticated
	case 403:
		return status.PermissionDenied
	case 404:
		return status.NotFound
	case 405, 501:
		return status.Unimplemented
	case 408, 504:
		return status.DeadlineExceeded
	case 409:
		return status.AlreadyExists
	case 412:
		return status.FailedPrecondition
	case 429:
		return status.ResourceExhausted
	case 499:
		return status.Canceled
	case 500:
		return status.Internal
	case 503:
		return status.Unavailable
	}
	return status.Unknown
}

// HTTPCode maps a gRPC code to the HTTP-style code go-micro would report:
// DeadlineExceeded is 408, as go-micro's client timeouts are.
func HTTPCode(c status.Code) int32 {
	switch c {
	case status.OK:
		return 200
	case status.Canceled:
		return 499
	case status.InvalidArgument, status.OutOfRange:
		return 400
	case status.Unauthenticated:
		return 401
	case status.PermissionDenied:
		return 403
	case status.NotFound:
		return 404
	case status.DeadlineExceeded:
		return 408
	case status.AlreadyExists, status.Aborted:
		return 409
	case status.FailedPrecondition:
		return 412
	case status.ResourceExhausted:
		return 429
	case status.Unimplemented:
		return 501
	case status.Unavailable:
		return 503
	}
	return 500
}
