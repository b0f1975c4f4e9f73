// Package client calls RPC methods over the gRPC HTTP/2 protocol.
//
// A call names a service; the client asks its selector for a node of that
// service (or uses an address the call names), keeps one multiplexed HTTP/2
// connection per address, and retries once on another node when a call fails
// before any server could have processed it.
//
// client does not decide which nodes exist; the registry and selector do.
package client

import (
	"context"
	"crypto/tls"
	"time"

	"github.com/protoc-gen-micro/micro/runtime/metadata"
	"github.com/protoc-gen-micro/micro/runtime/registry"
	"github.com/protoc-gen-micro/micro/runtime/selector"
	"github.com/protoc-gen-micro/micro/runtime/spec"
)

// Client makes calls. NewClient returns the HTTP/2 implementation.
type Client interface {
	// Call makes a unary call of method on service, decoding the response
	// into rsp. Errors can be inspected with status.FromError or errors.As
	// to *status.Error.
	Call(ctx context.Context, service string, method *spec.Method, req, rsp any, opts ...CallOption) error
	// Stream opens a streaming call of method on service.
	Stream(ctx context.Context, service string, method *spec.Method, opts ...CallOption) (Stream, error)
}

// Stream is the untyped client side of a streaming call. Generated code
// wraps it in a typed stream.
type Stream interface {
	// Context returns the stream's context.
	Context() context.Context
	// SendMsg sends a request message. Once the call has failed it
	// returns the call's status; io.EOF means the server ended the call
	// with OK before reading everything.
	SendMsg(m any) error
	// RecvMsg receives a response message; io.EOF when the server ended the
	// call with OK, a *status.Error otherwise.
	RecvMsg(m any) error
	// CloseSend half-closes the stream: the server sees the end of requests.
	CloseSend() error
	// Close cancels the stream if it has not ended and releases it.
	Close() error
	// Header waits for and returns the response headers.
	Header() (metadata.MD, error)
	// Trailer returns the trailers; valid once RecvMsg returned an error.
	Trailer() metadata.MD
}

// Invoker performs a unary call. opts is read-only.
type Invoker func(ctx context.Context, service string, method *spec.Method, req, rsp any, opts *CallOptions) error

// UnaryInterceptor wraps an Invoker. It is called once when the client is
// built, so an interceptor chain costs no allocation per call.
type UnaryInterceptor func(next Invoker) Invoker

// Streamer opens a streaming call. opts is read-only.
type Streamer func(ctx context.Context, service string, method *spec.Method, opts *CallOptions) (Stream, error)

// StreamInterceptor wraps a Streamer, once when the client is built.
type StreamInterceptor func(next Streamer) Streamer

// Options configures a client.
type Options struct {
	// Registry finds services when no Selector is given; an in-memory
	// registry by default.
	Registry registry.Registry
	// Selector picks nodes; a random selector over Registry by default.
	Selector selector.Selector
	// ContentType is the default codec: "proto" (the default) or "json".
	ContentType string
	// TLSConfig dials with TLS (ALPN h2); cleartext HTTP/2 when nil.
	TLSConfig *tls.Config
	// DialTimeout bounds connecting; 5 s by default.
	DialTimeout time.Duration
	// RequestTimeout is the deadline of calls whose context has none;
	// none by default.
	RequestTimeout time.Duration
	// MaxRecvMsgSize bounds a received message; 4 MiB by default.
	MaxRecvMsgSize int
	// Retries is how many times a call that never reached a server is
	// retried on another node; 1 by default.
	Retries int
	// UnaryInterceptors and StreamInterceptors wrap every call; the first is
	// outermost.
	UnaryInterceptors  []UnaryInterceptor
	StreamInterceptors []StreamInterceptor
}

// Option sets a client option.
type Option func(*Options)

// WithRegistry sets the registry.
func WithRegistry(r registry.Registry) Option { return func(o *Options) { o.Registry = r } }

// WithSelector sets the selector.
func WithSelector(s selector.Selector) Option { return func(o *Options) { o.Selector = s } }

// ContentType sets the default codec by name ("proto" or "json").
func ContentType(name string) Option { return func(o *Options) { o.ContentType = name } }

// TLSConfig dials with TLS.
func TLSConfig(c *tls.Config) Option { return func(o *Options) { o.TLSConfig = c } }

// DialTimeout bounds connecting.
func DialTimeout(d time.Duration) Option { return func(o *Options) { o.DialTimeout = d } }

// RequestTimeout sets the deadline of calls whose context has none.
func RequestTimeout(d time.Duration) Option { return func(o *Options) { o.RequestTimeout = d } }

// MaxRecvMsgSize bounds a received message.
func MaxRecvMsgSize(n int) Option { return func(o *Options) { o.MaxRecvMsgSize = n } }

// Retries sets how many times a call that never reached a server is retried.
func Retries(n int) Option { return func(o *Options) { o.Retries = n } }

// WithUnaryInterceptor appends unary interceptors.
func WithUnaryInterceptor(i ...UnaryInterceptor) Option {
	return func(o *Options) { o.UnaryInterceptors = append(o.UnaryInterceptors, i...) }
}

// WithStreamInterceptor appends stream interceptors.
func WithStreamInterceptor(i ...StreamInterceptor) Option {
	return func(o *Options) { o.StreamInterceptors = append(o.StreamInterceptors, i...) }
}

// CallOptions configures one call.
type CallOptions struct {
	// Addresses, when set, are used instead of asking the selector.
	Addresses []string
	// ContentType overrides the client's codec for this call.
	ContentType string
	// Timeout sets a deadline for this call if ctx has none sooner.
	Timeout time.Duration
	// Header and Trailer, when set, receive the response metadata.
	Header  *metadata.MD
	Trailer *metadata.MD
	// Retries overrides the client's retry count.
	Retries int
	// retriesSet tells an explicit zero from "not set".
	retriesSet bool
}

// CallOption sets a call option.
type CallOption func(*CallOptions)

// WithAddress sends the call to one of the addresses instead of a node the
// selector picks.
func WithAddress(addrs ...string) CallOption {
	return func(o *CallOptions) { o.Addresses = addrs }
}

// WithContentType encodes this call with the named codec ("proto", "json").
func WithContentType(name string) CallOption {
	return func(o *CallOptions) { o.ContentType = name }
}

// WithRequestTimeout sets this call's deadline.
func WithRequestTimeout(d time.Duration) CallOption {
	return func(o *CallOptions) { o.Timeout = d }
}

// Header stores the response headers in *md when the call ends.
func Header(md *metadata.MD) CallOption { return func(o *CallOptions) { o.Header = md } }

// Trailer stores the response trailers in *md when the call ends.
func Trailer(md *metadata.MD) CallOption { return func(o *CallOptions) { o.Trailer = md } }

// WithRetries sets how many times this call is retried on another node when
// it never reached a server.
func WithRetries(n int) CallOption {
	return func(o *CallOptions) { o.Retries, o.retriesSet = n, true }
}
