// Package server serves registered RPC handlers over the gRPC HTTP/2
// protocol and, on the same port, Connect and gRPC-Web over HTTP/1.1 (for
// curl, browsers and HTTP/1.1-only proxies).
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
	"log/slog"
	"net/http"
	"time"

	"github.com/protoc-gen-micro/micro/runtime/interceptor"
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
type Stream = interceptor.ServerStream

// Limits bounds the resources a client can make the server hold; zero
// fields take the defaults below. The README's "Limits" section says what a
// client gets past each.
type Limits struct {
	// MaxHeaderListSize bounds a request's header block (names, values
	// and 32 bytes a field); 64 KiB by default. Larger requests fail with
	// RESOURCE_EXHAUSTED, or over HTTP/1.1 with 431.
	MaxHeaderListSize uint32
	// InitialWindowSize is each call's receive window, returned as the
	// handler reads; 64 KiB by default. A larger message is admitted
	// against MaxBufferedRequestBytes and granted its size.
	InitialWindowSize int32
	// InitialConnWindowSize is each connection's receive window, returned
	// as handlers read; 16 MiB by default and never less than
	// InitialWindowSize times MaxConcurrentStreams, so that one call's
	// unread data never blocks another's.
	InitialConnWindowSize int32
	// MaxBufferedRequestBytes bounds, across all connections, the request
	// messages held that were larger than a call's window; 256 MiB by
	// default and never less than one message. Further ones wait, their
	// senders stalled by flow control.
	MaxBufferedRequestBytes int64
	// HandshakeTimeout bounds a new connection's TLS handshake, preface
	// and first SETTINGS, or its first bytes and then, over HTTP/1.1, each
	// request's line and headers; 10 s by default.
	HandshakeTimeout time.Duration
	// WriteTimeout disconnects a client that does not read what it is
	// sent for that long, or over HTTP/1.1 that stalls its request body;
	// 30 s by default, never when negative.
	WriteTimeout time.Duration
	// IdleTimeout closes, with GOAWAY, a connection without calls for that
	// long (an HTTP/1.1 one, between requests); 5 min by default, never
	// when negative.
	IdleTimeout time.Duration
	// MaxConnectionAge drains a connection after that long (±10%), so that
	// clients reconnect and rebalance; never by default.
	// MaxConnectionAgeGrace then bounds how long its calls may finish
	// (unbounded when 0).
	MaxConnectionAge      time.Duration
	MaxConnectionAgeGrace time.Duration
	// KeepaliveTime is how long a silent connection waits before the
	// server pings it; KeepaliveTimeout how long the answer may take
	// before the connection is closed. 2 h and 20 s by default.
	KeepaliveTime    time.Duration
	KeepaliveTimeout time.Duration
	// PingMinTime is the shortest interval between a client's PINGs
	// tolerated while the server has sent nothing (5 min by default); a
	// client that pings more often three times is disconnected with
	// GOAWAY ENHANCE_YOUR_CALM, as grpc-go's servers do. Without
	// PermitPingWithoutCalls, PINGs on a connection with no calls count as
	// too frequent.
	PingMinTime            time.Duration
	PermitPingWithoutCalls bool
}

// options are the settings of a server.
type options struct {
	address              string
	tlsConfig            *tls.Config
	maxRecvMsgSize       int
	maxConcurrentStreams uint32
	limits               Limits
	sendCompression      string
	gracePeriod          time.Duration
	interceptors         []interceptor.Interceptor
	logger               *slog.Logger
	corsOrigins          []string
	http1Handler         http.Handler // tests only: serves what is not gRPC instead of webrpc
}

// handlerOptions are the settings of one registered service.
type handlerOptions struct {
	interceptors []interceptor.Interceptor
}

// Option configures a server; see NewServer.
type Option interface{ applyToServer(*options) }

// HandlerOption configures one service registered with Handle.
type HandlerOption interface{ applyToHandler(*handlerOptions) }

// SharedOption is an option that NewServer takes for every service and
// Handle takes for one.
type SharedOption interface {
	applyToServer(*options)
	applyToHandler(*handlerOptions)
}

type serverOption func(*options)

func (f serverOption) applyToServer(o *options) { f(o) }

type handlerOption func(*handlerOptions)

func (f handlerOption) applyToHandler(o *handlerOptions) { f(o) }

type interceptorsOption []interceptor.Interceptor

func (i interceptorsOption) applyToServer(o *options) {
	o.interceptors = append(o.interceptors, i...)
}

func (i interceptorsOption) applyToHandler(o *handlerOptions) {
	o.interceptors = append(o.interceptors, i...)
}

// WithAddress sets the address to listen on; ":0" by default (a free port,
// all interfaces).
func WithAddress(addr string) Option { return serverOption(func(o *options) { o.address = addr }) }

// WithLogger sets where the server logs (a handler's panic, and at DEBUG the
// connections it closed and why); slog.Default() by default. A service
// gives its server a logger that names the service and node.
func WithLogger(l *slog.Logger) Option { return serverOption(func(o *options) { o.logger = l }) }

// WithTLSConfig serves TLS, with ALPN h2 and http/1.1, instead of
// cleartext. For mutual TLS, set ClientCAs and ClientAuth (e.g.
// tls.RequireAndVerifyClientCert); handlers find the verified certificate
// with PeerFromContext.
func WithTLSConfig(c *tls.Config) Option { return serverOption(func(o *options) { o.tlsConfig = c }) }

// WithCORS lets web pages from these origins ("*" for any, or e.g.
// "https://app.example.com") call the server with Connect and gRPC-Web: it
// answers their preflight requests and exposes the protocols' headers to
// them. Without it, browsers call only from the server's own origin.
func WithCORS(origins ...string) Option {
	return serverOption(func(o *options) { o.corsOrigins = append([]string(nil), origins...) })
}

// WithMaxRecvMsgSize bounds a received message; 4 MiB by default.
func WithMaxRecvMsgSize(n int) Option {
	return serverOption(func(o *options) { o.maxRecvMsgSize = n })
}

// WithMaxConcurrentStreams sets the limit advertised per connection, which
// also bounds the handlers running for one connection, including those of
// calls the client already reset; 256 by default. Over HTTP/1.1, where a
// connection runs one call at a time, it bounds the handlers running at
// once server-wide; as many more calls wait, and further ones get 503.
func WithMaxConcurrentStreams(n uint32) Option {
	return serverOption(func(o *options) { o.maxConcurrentStreams = n })
}

// WithLimits bounds what one client can make the server hold; see Limits.
func WithLimits(l Limits) Option { return serverOption(func(o *options) { o.limits = l }) }

// WithSendCompression names the compressor (package compress: "gzip" or one
// registered) for responses to clients that accept it. Requests in any
// registered encoding are accepted whatever it is, and a compressed request
// is answered in its own encoding.
func WithSendCompression(name string) Option {
	return serverOption(func(o *options) { o.sendCompression = name })
}

// WithGracePeriod bounds how long Stop waits for calls in flight; 10 s by
// default.
func WithGracePeriod(d time.Duration) Option {
	return serverOption(func(o *options) { o.gracePeriod = d })
}

// WithInterceptors adds interceptors around handlers, unary and streaming:
// given to NewServer, around every service's; given to Handle, around that
// service's, inside the server's. The first is outermost. They are applied
// once per method when the service is registered, so they cost nothing
// per call.
func WithInterceptors(i ...interceptor.Interceptor) SharedOption {
	return interceptorsOption(i)
}
