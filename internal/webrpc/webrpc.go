// Package webrpc serves the Connect protocol and gRPC-Web as an
// http.Handler over the server's method table, so that curl, browsers and
// anything behind an HTTP/1.1-only proxy can call the same handlers the
// HTTP/2 gRPC transport serves.
//
// One handler answers, chosen by each request's method and content type:
//   - Connect unary: POST application/json or application/proto (or
//     another registered codec's name), and GET for methods without side
//     effects;
//   - Connect streaming: POST application/connect+json or +proto, with
//     enveloped messages and the end-of-stream message;
//   - gRPC-Web: application/grpc-web(+proto|+json) and
//     application/grpc-web-text, with the trailers as the last frame.
//
// Plain gRPC needs HTTP/2 trailers; it stays on internal/transport, and a
// gRPC request that reaches this handler is refused. Bidi streaming needs
// HTTP/2 too and is refused over HTTP/1.1 on every protocol.
//
// webrpc does not listen or sniff connections: the server hands it the
// HTTP/1.1 (and, in tests, h2c) requests net/http parsed.
package webrpc

import (
	"log/slog"
	"net/http"

	"github.com/protoc-gen-micro/micro/runtime/interceptor"
	"github.com/protoc-gen-micro/micro/runtime/spec"
)

// Method is one method the handler serves, as the server's method table
// has it.
type Method struct {
	// Spec is the method's name, path, stream type and idempotency.
	Spec *spec.Method
	// NewRequest returns a new, empty request message.
	NewRequest func() any
	// NewResponse returns a new, empty response message (unary and
	// client-streaming methods).
	NewResponse func() any
	// Unary is the handler of a unary method, interceptors applied.
	Unary interceptor.UnaryFunc
	// Stream is the handler of a streaming method, interceptors applied.
	// For a server-streaming method it reads the single request from the
	// stream itself, as the server's own does; the stream's call answers
	// MoreData through callctx so it can refuse a second one.
	Stream interceptor.StreamingHandlerFunc
}

// Config configures a handler. Only Lookup is required.
type Config struct {
	// Lookup finds the method of a procedure path, e.g.
	// "/greeter.v1.Greeter/SayHello".
	Lookup func(procedure string) (*Method, bool)
	// MaxRecvMsgSize bounds a request message after decompression, and
	// before; 4 MiB when 0.
	MaxRecvMsgSize int
	// SendCompression names the compressor (package runtime/compress)
	// for responses to clients that accept it; none when "".
	SendCompression string
	// AllowedOrigins turns on CORS for these origins ("*" for any): nil
	// means no CORS handling at all.
	AllowedOrigins []string
	// Log receives handler panics and, at DEBUG, refused requests;
	// slog.Default() when nil.
	Log *slog.Logger
}

// NewHandler returns the handler serving cfg's methods.
func NewHandler(cfg Config) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "webrpc: not implemented yet", http.StatusNotImplemented)
	})
}
