// Package interceptor defines the one shape of middleware the runtime
// knows: an Interceptor wraps calls, unary and streaming, on a client, on a
// server and on a service, which gives it to both.
//
// A unary call has the same signature on both sides: on a client, UnaryFunc
// sends req and fills rsp; on a server, it is the handler, which reads req
// and fills rsp. A stream differs by side: a client opens it
// (StreamingClientFunc) and then uses it; a server's handler is given one
// (StreamingHandlerFunc). An interceptor that only cares about unary calls
// is a UnaryInterceptorFunc.
//
// Interceptors run in the order they are given: the first is outermost.
package interceptor

import (
	"context"

	"github.com/protoc-gen-micro/micro/runtime/metadata"
	"github.com/protoc-gen-micro/micro/runtime/spec"
)

// Interceptor wraps the calls of a client, a server or both. Each Wrap
// method is given the method it wraps, so it can decide once per method
// (on a server, when the handler is registered) rather than per call.
type Interceptor interface {
	// WrapUnary wraps a unary call of m.
	WrapUnary(m *spec.Method, next UnaryFunc) UnaryFunc
	// WrapStreamingClient wraps the opening of a client's stream of m; to
	// see its messages, return a ClientStream that wraps the one next
	// returns.
	WrapStreamingClient(m *spec.Method, next StreamingClientFunc) StreamingClientFunc
	// WrapStreamingHandler wraps a server's handler of a streaming m; to
	// see its messages, give next a ServerStream that wraps the one
	// received.
	WrapStreamingHandler(m *spec.Method, next StreamingHandlerFunc) StreamingHandlerFunc
}

// UnaryFunc is a unary call: on a client it sends req and fills rsp, on a
// server it handles req and fills rsp.
type UnaryFunc func(ctx context.Context, req, rsp any) error

// StreamingClientFunc opens a client's stream.
type StreamingClientFunc func(ctx context.Context) (ClientStream, error)

// StreamingHandlerFunc handles a streaming call on a server; the call ends
// with the error it returns.
type StreamingHandlerFunc func(ctx context.Context, stream ServerStream) error

// ClientStream is the client's side of a stream.
type ClientStream interface {
	// Context returns the stream's context.
	Context() context.Context
	// SendMsg sends a request.
	SendMsg(m any) error
	// RecvMsg receives a response into m; io.EOF when the server ended
	// the call with OK.
	RecvMsg(m any) error
	// CloseSend half-closes the stream: no more requests.
	CloseSend() error
	// Close ends the stream at once, cancelling it if it still runs.
	Close() error
	// Header waits for and returns the response headers.
	Header() (metadata.MD, error)
	// Trailer returns the trailers once RecvMsg has returned an error.
	Trailer() metadata.MD
}

// ServerStream is the server's side of a stream.
type ServerStream interface {
	// Context returns the call's context.
	Context() context.Context
	// SendMsg sends a response.
	SendMsg(m any) error
	// RecvMsg receives a request into m; io.EOF once the client has
	// half-closed.
	RecvMsg(m any) error
	// SetHeader adds headers, sent with the first response or the status.
	SetHeader(md metadata.MD) error
	// SendHeader sends the headers now, with md added.
	SendHeader(md metadata.MD) error
	// SetTrailer adds trailers, sent with the status.
	SetTrailer(md metadata.MD)
}

// UnaryInterceptorFunc is an Interceptor of unary calls; streams pass
// through it untouched.
type UnaryInterceptorFunc func(m *spec.Method, next UnaryFunc) UnaryFunc

// WrapUnary calls f.
func (f UnaryInterceptorFunc) WrapUnary(m *spec.Method, next UnaryFunc) UnaryFunc { return f(m, next) }

// WrapStreamingClient returns next.
func (f UnaryInterceptorFunc) WrapStreamingClient(_ *spec.Method, next StreamingClientFunc) StreamingClientFunc {
	return next
}

// WrapStreamingHandler returns next.
func (f UnaryInterceptorFunc) WrapStreamingHandler(_ *spec.Method, next StreamingHandlerFunc) StreamingHandlerFunc {
	return next
}
