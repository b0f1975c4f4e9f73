// Package client calls RPC methods over the gRPC HTTP/2 protocol.
//
// A call names a service; the client asks its selector for a node of that
// service (or uses an address the call names), keeps one multiplexed HTTP/2
// connection per address, and retries a failed call on another node when a
// second execution cannot do harm:
//
//   - always when the call provably never reached a handler: the connection
//     was refused, the stream was refused (REFUSED_STREAM), or the server's
//     GOAWAY said it did not process it (transport.ErrUnprocessed);
//   - when the call failed with Unavailable after its request was sent (the
//     connection broke), only for methods declared idempotent
//     (idempotency_level NO_SIDE_EFFECTS or IDEMPOTENT) and for calls made
//     with WithRetryOnUnavailable;
//   - never on a deadline or a cancellation. There is no per-attempt
//     timeout: a call's deadline bounds all its attempts together, so a
//     slow handler is never run twice because it was slow.
//
// A call is retried up to Retries times (2 by default: three attempts, each
// on a node not yet tried), within its deadline, and only while the
// client's retry budget (see RetryBudget) allows: during an outage,
// retries add at most a fifth to the load by default. Opening a stream is
// retried only when it was not processed.
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
	// SendCompression names the compressor (package compress: "gzip" or
	// one registered) for every call's requests; none by default.
	// Responses are decompressed whatever their encoding.
	SendCompression string
	// TLSConfig dials with TLS (ALPN h2); cleartext HTTP/2 when nil.
	TLSConfig *tls.Config
	// DialTimeout bounds connecting; 5 s by default.
	DialTimeout time.Duration
	// RequestTimeout is the deadline of calls whose context has none;
	// none by default.
	RequestTimeout time.Duration
	// MaxRecvMsgSize bounds a received message; 4 MiB by default.
	MaxRecvMsgSize int
	// Retries is how many times a failed call may be retried on another
	// node (see the package documentation for which failures are); 2 by
	// default, so a call fails over across three nodes.
	Retries int
	// RetryRatio and RetryMinPerSecond are the client-wide retry budget:
	// retries may add RetryRatio of the calls made, plus RetryMinPerSecond
	// each second; 0.2 and 10 by default. See RetryBudget.
	RetryRatio        float64
	RetryMinPerSecond int
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

// SendCompression compresses every call's requests with the named
// compressor ("gzip", or one registered with package compress).
func SendCompression(name string) Option { return func(o *Options) { o.SendCompression = name } }

// TLSConfig dials with TLS.
func TLSConfig(c *tls.Config) Option { return func(o *Options) { o.TLSConfig = c } }

// DialTimeout bounds connecting.
func DialTimeout(d time.Duration) Option { return func(o *Options) { o.DialTimeout = d } }

// RequestTimeout sets the deadline of calls whose context has none.
func RequestTimeout(d time.Duration) Option { return func(o *Options) { o.RequestTimeout = d } }

// MaxRecvMsgSize bounds a received message.
func MaxRecvMsgSize(n int) Option { return func(o *Options) { o.MaxRecvMsgSize = n } }

// Retries sets how many times a failed call may be retried on another node.
func Retries(n int) Option { return func(o *Options) { o.Retries = n } }

// RetryBudget bounds the client's retries: every call adds ratio of a
// retry to a budget shared by all calls, every retry takes one, and
// minPerSecond retries are added each second whatever the traffic, so that
// a client making few calls can still fail over. Up to 100 unused retries
// (or minPerSecond, if more) are kept for a burst. A retry the budget does
// not allow is not made: the call fails with its last error. The default,
// RetryBudget(0.2, 10), lets an outage add at most a fifth to the load,
// plus 10 calls a second; RetryBudget(0, 0) turns retries off.
func RetryBudget(ratio float64, minPerSecond int) Option {
	return func(o *Options) { o.RetryRatio, o.RetryMinPerSecond = ratio, minPerSecond }
}

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
	// SendCompression overrides the client's request compression for this
	// call; "identity" turns it off.
	SendCompression string
	// Timeout sets a deadline for this call if ctx has none sooner.
	Timeout time.Duration
	// Header and Trailer, when set, receive the response metadata.
	Header  *metadata.MD
	Trailer *metadata.MD
	// Retries overrides the client's retry count.
	Retries int
	// retriesSet tells an explicit zero from "not set".
	retriesSet bool
	// RetryOnUnavailable retries the call on another node when it failed
	// with Unavailable after it was sent, as is done anyway for idempotent
	// methods.
	RetryOnUnavailable bool
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

// WithSendCompression compresses this call's requests with the named
// compressor ("gzip", or one registered with package compress; "identity"
// for none), as grpc-go's UseCompressor does.
func WithSendCompression(name string) CallOption {
	return func(o *CallOptions) { o.SendCompression = name }
}

// WithRequestTimeout sets this call's deadline.
func WithRequestTimeout(d time.Duration) CallOption {
	return func(o *CallOptions) { o.Timeout = d }
}

// Header stores the response headers in *md when the call ends.
func Header(md *metadata.MD) CallOption { return func(o *CallOptions) { o.Header = md } }

// Trailer stores the response trailers in *md when the call ends.
func Trailer(md *metadata.MD) CallOption { return func(o *CallOptions) { o.Trailer = md } }

// WithRetries sets how many times this call may be retried on another node.
func WithRetries(n int) CallOption {
	return func(o *CallOptions) { o.Retries, o.retriesSet = n, true }
}

// WithRetryOnUnavailable lets this call be retried on another node when it
// failed with Unavailable after its request was sent, such as when the
// connection broke mid-call, although its method is not declared
// idempotent. Use it when running the handler twice does no harm. Calls
// that never reached a handler are retried without it; calls that timed
// out are never retried.
func WithRetryOnUnavailable() CallOption {
	return func(o *CallOptions) { o.RetryOnUnavailable = true }
}
