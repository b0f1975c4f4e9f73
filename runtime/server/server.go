// Package server serves registered RPC handlers over the gRPC HTTP/2
// protocol.
//
// Generated code registers a service with a method table (ServiceDesc): for
// each method its name, stream type, idempotency, request and response
// constructors and a small function that calls the user's handler. The server
// dispatches on that table; it never uses reflection on the request path.
//
// server does not find or advertise itself; the service package joins it to a
// registry.
package server

import (
	"context"
	"crypto/tls"
	"time"

	"github.com/protoc-gen-micro/micro/internal/transport"
	"github.com/protoc-gen-micro/micro/runtime/metadata"
	"github.com/protoc-gen-micro/micro/runtime/spec"
)

// Server serves RPC handlers. NewServer returns the HTTP/2 implementation;
// tests and plug-ins may provide their own.
type Server interface {
	// Handle registers a service's method table and its implementation.
	// It fails if the service is already registered or impl is nil.
	Handle(desc *ServiceDesc, impl any, opts ...HandlerOption) error
	// Start listens and serves in the background.
	Start() error
	// Stop stops accepting calls, lets in-flight calls finish within the
	// grace period, then closes every connection.
	Stop() error
	// Address returns the address the server listens on: the resolved
	// address once started (":0" becomes a real port).
	Address() string
	// Services returns the registered method tables.
	Services() []*ServiceDesc
}

// ServiceDesc is a generated method table.
type ServiceDesc struct {
	// Name is the fully qualified service name, e.g. "greeter.v1.Greeter".
	Name string
	// Methods lists the service's methods.
	Methods []MethodDesc
	// HandlerType is a nil pointer to the handler interface, used to check
	// at registration that impl implements it.
	HandlerType any
}

// MethodDesc describes one method of a ServiceDesc.
type MethodDesc struct {
	// Method is the method's name, path, stream type and idempotency.
	Method *spec.Method
	// NewRequest returns a new, empty request message.
	NewRequest func() any
	// NewResponse returns a new, empty response message (unary methods).
	NewResponse func() any
	// Unary calls the handler of a unary method.
	Unary func(impl any, ctx context.Context, req, rsp any) error
	// Stream calls the handler of a streaming method. req is the single
	// request of a server-streaming method and nil otherwise.
	Stream func(impl any, ctx context.Context, req any, stream Stream) error
}

// Stream is the untyped server side of a streaming call. Generated code wraps
// it in a typed stream.
type Stream interface {
	// Context returns the call's context: deadline, cancellation, metadata.
	Context() context.Context
	// SendMsg sends a response message.
	SendMsg(m any) error
	// RecvMsg receives the next request message; io.EOF once the client has
	// half-closed.
	RecvMsg(m any) error
	// SetHeader merges md into the response headers, sent with the first
	// message, by SendHeader, or with the status.
	SetHeader(md metadata.MD) error
	// SendHeader sends the response headers now.
	SendHeader(md metadata.MD) error
	// SetTrailer merges md into the trailers sent with the status.
	SetTrailer(md metadata.MD)
}

// UnaryHandler handles a unary call: it fills rsp from req.
type UnaryHandler func(ctx context.Context, req, rsp any) error

// UnaryInterceptor wraps a unary handler. It is called once per method when
// the service is registered, not per call, so an interceptor chain costs no
// allocation per call.
type UnaryInterceptor func(m *spec.Method, next UnaryHandler) UnaryHandler

// StreamHandler handles a streaming call. req is the request of a
// server-streaming call and nil otherwise.
type StreamHandler func(ctx context.Context, req any, stream Stream) error

// StreamInterceptor wraps a stream handler, once per method at registration.
type StreamInterceptor func(m *spec.Method, next StreamHandler) StreamHandler

// Options configures a server.
type Options struct {
	// Address to listen on; ":0" by default (a free port, all interfaces).
	Address string
	// TLSConfig enables TLS with ALPN h2; cleartext HTTP/2 with prior
	// knowledge when nil.
	TLSConfig *tls.Config
	// MaxRecvMsgSize bounds a received message; 4 MiB by default.
	MaxRecvMsgSize int
	// MaxConcurrentStreams is advertised per connection and bounds the
	// handlers running for one connection, including those of calls the
	// client already reset; 256 by default.
	MaxConcurrentStreams uint32
	// Limits bounds what one client can make the server hold; see Limits.
	Limits Limits
	// SendCompression names the compressor (package compress: "gzip" or
	// one registered) for responses to clients that accept it. Requests
	// in any registered encoding are accepted whatever it is, and a
	// compressed request is answered in its own encoding.
	SendCompression string
	// GracePeriod bounds how long Stop waits for in-flight calls; 10 s by
	// default.
	GracePeriod time.Duration
	// UnaryInterceptors and StreamInterceptors wrap every handler; the first
	// is outermost.
	UnaryInterceptors  []UnaryInterceptor
	StreamInterceptors []StreamInterceptor
}

// Limits bounds the resources a client can make the server hold; the
// README's "Limits" section says what a client gets past each.
type Limits = transport.Limits

// Option sets a server option.
type Option func(*Options)

// Address sets the listen address.
func Address(addr string) Option { return func(o *Options) { o.Address = addr } }

// TLSConfig serves TLS with ALPN h2.
func TLSConfig(c *tls.Config) Option { return func(o *Options) { o.TLSConfig = c } }

// MaxRecvMsgSize bounds the size of a received message.
func MaxRecvMsgSize(n int) Option { return func(o *Options) { o.MaxRecvMsgSize = n } }

// MaxConcurrentStreams sets the per-connection stream limit.
func MaxConcurrentStreams(n uint32) Option { return func(o *Options) { o.MaxConcurrentStreams = n } }

// SendCompression compresses responses with the named compressor when the
// client accepts it.
func SendCompression(name string) Option { return func(o *Options) { o.SendCompression = name } }

// WithLimits sets the bounds on what a client can make the server hold.
func WithLimits(l Limits) Option { return func(o *Options) { o.Limits = l } }

// GracePeriod bounds how long Stop waits for in-flight calls.
func GracePeriod(d time.Duration) Option { return func(o *Options) { o.GracePeriod = d } }

// WithUnaryInterceptor appends unary interceptors.
func WithUnaryInterceptor(i ...UnaryInterceptor) Option {
	return func(o *Options) { o.UnaryInterceptors = append(o.UnaryInterceptors, i...) }
}

// WithStreamInterceptor appends stream interceptors.
func WithStreamInterceptor(i ...StreamInterceptor) Option {
	return func(o *Options) { o.StreamInterceptors = append(o.StreamInterceptors, i...) }
}

// HandlerOptions configures one registered service.
type HandlerOptions struct {
	// Metadata is advertised with the service's endpoints in the registry.
	Metadata map[string]string
	// UnaryInterceptors and StreamInterceptors wrap only this service's
	// handlers, inside the server-wide ones.
	UnaryInterceptors  []UnaryInterceptor
	StreamInterceptors []StreamInterceptor
}

// HandlerOption sets a handler option.
type HandlerOption func(*HandlerOptions)

// EndpointMetadata adds registry metadata for the service.
func EndpointMetadata(kv map[string]string) HandlerOption {
	return func(o *HandlerOptions) {
		if o.Metadata == nil {
			o.Metadata = map[string]string{}
		}
		for k, v := range kv {
			o.Metadata[k] = v
		}
	}
}

// HandlerUnaryInterceptor wraps this service's unary handlers.
func HandlerUnaryInterceptor(i ...UnaryInterceptor) HandlerOption {
	return func(o *HandlerOptions) { o.UnaryInterceptors = append(o.UnaryInterceptors, i...) }
}

// HandlerStreamInterceptor wraps this service's stream handlers.
func HandlerStreamInterceptor(i ...StreamInterceptor) HandlerOption {
	return func(o *HandlerOptions) { o.StreamInterceptors = append(o.StreamInterceptors, i...) }
}
