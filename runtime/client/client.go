// Package client calls RPC methods over the gRPC HTTP/2 protocol, or over
// the Connect protocol (see WithProtocol) for servers that speak only
// Connect or sit behind HTTP/1.1 proxies.
//
// A call names a service; the client asks its selector for a node of that
// service (or uses an address the call names), keeps one multiplexed HTTP/2
// connection per address (Connect: net/http's connections), and retries a failed call on another node when a
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
// A call is retried up to WithRetries times (2 by default: three attempts, each
// on a node not yet tried), within its deadline, and only while the
// client's retry budget (see WithRetryBudget) allows: during an outage,
// retries add at most a fifth to the load by default. Opening a stream is
// retried only when it was not processed.
//
// client does not decide which nodes exist; the registry and selector do.
package client

import (
	"context"
	"crypto/tls"
	"time"

	"github.com/protoc-gen-micro/micro/runtime/interceptor"
	"github.com/protoc-gen-micro/micro/runtime/metadata"
	"github.com/protoc-gen-micro/micro/runtime/registry"
	"github.com/protoc-gen-micro/micro/runtime/selector"
	"github.com/protoc-gen-micro/micro/runtime/spec"
)

// Client makes calls. NewClient returns the implementation, which speaks
// gRPC or Connect.
type Client interface {
	// Call makes a unary call of method on service, decoding the response
	// into rsp. Errors can be inspected with status.FromError or errors.As
	// to *status.Error.
	Call(ctx context.Context, service string, method *spec.Method, req, rsp any, opts ...CallOption) error
	// Stream opens a streaming call of method on service.
	Stream(ctx context.Context, service string, method *spec.Method, opts ...CallOption) (Stream, error)
	// Close closes the client's connections and its selector. Calls made
	// after Close fail.
	Close() error
}

// Stream is the untyped client side of a streaming call. Generated code
// wraps it in a typed stream. Once the call has failed, SendMsg returns the
// call's status; io.EOF from SendMsg means the server ended the call with
// OK before reading everything.
type Stream = interceptor.ClientStream

// options are the settings of a client.
type options struct {
	registry          registry.Registry
	selector          selector.Selector
	contentType       string // codec name; proto by default
	sendCompression   string // compressor name; none by default
	tlsConfig         *tls.Config
	dialTimeout       time.Duration
	requestTimeout    time.Duration // for calls whose context has no deadline
	maxRecvMsgSize    int
	retries           int
	retryRatio        float64
	retryMinPerSecond int
	interceptors      []interceptor.Interceptor
	protocol          Protocol
}

// callOptions are the settings of one call.
type callOptions struct {
	addresses          []string
	contentType        string
	sendCompression    string
	timeout            time.Duration
	header             *metadata.MD
	trailer            *metadata.MD
	retries            int
	retriesSet         bool
	retryOnUnavailable bool
}

// Option configures a client; see NewClient.
type Option interface{ applyToClient(*options) }

// CallOption configures one call.
type CallOption interface{ applyToCall(*callOptions) }

// SharedOption is an option that NewClient takes as the default of every
// call and a call takes for itself.
type SharedOption interface {
	applyToClient(*options)
	applyToCall(*callOptions)
}

type clientOption func(*options)

func (f clientOption) applyToClient(o *options) { f(o) }

type callOption func(*callOptions)

func (f callOption) applyToCall(o *callOptions) { f(o) }

type sharedOption struct {
	client clientOption
	call   callOption
}

func (s sharedOption) applyToClient(o *options)   { s.client(o) }
func (s sharedOption) applyToCall(o *callOptions) { s.call(o) }

// WithRegistry sets the registry the client finds services in; the client
// builds its selector over it unless WithSelector gives one.
func WithRegistry(r registry.Registry) Option {
	return clientOption(func(o *options) { o.registry = r })
}

// WithSelector sets the selector that picks a node for each call.
func WithSelector(s selector.Selector) Option {
	return clientOption(func(o *options) { o.selector = s })
}

// WithTLSConfig makes the client connect with TLS. For mutual TLS, give the
// config a client certificate in Certificates.
func WithTLSConfig(c *tls.Config) Option {
	return clientOption(func(o *options) { o.tlsConfig = c })
}

// WithDialTimeout bounds connecting to a node; 5 s by default.
func WithDialTimeout(d time.Duration) Option {
	return clientOption(func(o *options) { o.dialTimeout = d })
}

// WithMaxRecvMsgSize bounds a received message; 4 MiB by default.
func WithMaxRecvMsgSize(n int) Option {
	return clientOption(func(o *options) { o.maxRecvMsgSize = n })
}

// WithRetryBudget bounds the client's retries: every call adds ratio of a
// retry to a budget, which also refills by minPerSecond each second, and
// every retry takes one; a call whose retry finds the budget empty fails
// with its last error. The default, WithRetryBudget(0.2, 10), lets an
// outage add at most a fifth to the load, plus 10 calls a second;
// WithRetryBudget(0, 0) turns retries off.
func WithRetryBudget(ratio float64, minPerSecond int) Option {
	return clientOption(func(o *options) { o.retryRatio, o.retryMinPerSecond = ratio, minPerSecond })
}

// WithInterceptors adds interceptors around every call, unary and
// streaming; the first is outermost. They run once per call, outside the
// retries.
func WithInterceptors(i ...interceptor.Interceptor) Option {
	return clientOption(func(o *options) { o.interceptors = append(o.interceptors, i...) })
}

// WithContentType sets the codec of requests and responses by name
// ("proto", the default, or "json", or any registered with codec.Register).
func WithContentType(name string) SharedOption {
	return sharedOption{
		client: func(o *options) { o.contentType = name },
		call:   func(o *callOptions) { o.contentType = name },
	}
}

// WithSendCompression compresses requests with the named compressor
// ("gzip", or any registered with compress.Register); none by default.
func WithSendCompression(name string) SharedOption {
	return sharedOption{
		client: func(o *options) { o.sendCompression = name },
		call:   func(o *callOptions) { o.sendCompression = name },
	}
}

// WithRequestTimeout sets the deadline of calls whose context has none;
// given to a call, it sets that call's deadline whatever its context says.
func WithRequestTimeout(d time.Duration) SharedOption {
	return sharedOption{
		client: func(o *options) { o.requestTimeout = d },
		call:   func(o *callOptions) { o.timeout = d },
	}
}

// WithRetries sets how many times a failed call may be retried on another
// node; 2 by default.
func WithRetries(n int) SharedOption {
	return sharedOption{
		client: func(o *options) { o.retries = n },
		call:   func(o *callOptions) { o.retries, o.retriesSet = n, true },
	}
}

// WithAddress makes the call go to one of addrs instead of a node the
// selector picks.
func WithAddress(addrs ...string) CallOption {
	return callOption(func(o *callOptions) { o.addresses = addrs })
}

// WithResponseHeader stores the response headers of the call in *md once
// it ends.
func WithResponseHeader(md *metadata.MD) CallOption {
	return callOption(func(o *callOptions) { o.header = md })
}

// WithResponseTrailer stores the trailers of the call in *md once it ends.
func WithResponseTrailer(md *metadata.MD) CallOption {
	return callOption(func(o *callOptions) { o.trailer = md })
}

// WithRetryOnUnavailable lets the call be retried on another node when it
// failed with Unavailable after its request was sent, although its method
// is not declared idempotent: the caller knows a second execution is safe.
func WithRetryOnUnavailable() CallOption {
	return callOption(func(o *callOptions) { o.retryOnUnavailable = true })
}
