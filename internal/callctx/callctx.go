// Package callctx is the seam through which the server's context functions
// (server.SetHeader, SendHeader, SetTrailer, PeerFromContext) find the call
// of a handler's context, whichever protocol carries it: the HTTP/2 gRPC
// transport's stream or internal/webrpc's Connect and gRPC-Web call.
//
// It holds an interface and a context key, nothing else, so that neither
// carrier imports the other.
package callctx

import (
	"context"
	"crypto/tls"
	"net"

	"github.com/protoc-gen-micro/micro/runtime/codec"
	"github.com/protoc-gen-micro/micro/runtime/metadata"
)

// Key is the context key of a call; its value is a Call.
type Key struct{}

// Call is the server side of one call as a handler's context sees it.
type Call interface {
	// Method returns the procedure path, e.g. "/greeter.v1.Greeter/SayHello".
	Method() string
	// Codec returns the codec of the request's content type.
	Codec() codec.Codec
	// MoreData reports whether the client sent bytes beyond the messages
	// received so far; the server uses it to refuse a second request on a
	// call that takes one.
	MoreData() bool
	// SetHeader merges md into the response headers.
	SetHeader(md metadata.MD) error
	// SendHeader merges md into the response headers and sends them.
	SendHeader(md metadata.MD) error
	// SetTrailer merges md into the trailers sent with the status.
	SetTrailer(md metadata.MD)
	// RemoteAddr returns the client's address.
	RemoteAddr() net.Addr
	// TLSState returns the state of the call's TLS connection, nil for
	// cleartext.
	TLSState() *tls.ConnectionState
}

// FromContext returns the call of a handler's context.
func FromContext(ctx context.Context) (Call, bool) {
	c, ok := ctx.Value(Key{}).(Call)
	return c, ok
}
