// Package echo serves the bench.v1.Echo service on three gRPC stacks (ours,
// grpc-go and connect-go) and calls it with a client of each, so that the
// benchmarks can pair any server with any client. All of them speak the same
// wire protocol to the same /bench.v1.Echo/* paths.
//
// The handlers do the same work on every stack: Unary returns a new message
// carrying the request's payload; Bidi echoes each message until the client
// half-closes; ServerStream sends n messages of payload_size bytes, the same
// message each time. Each counts what it served in Counters, so a process
// serving load can report allocations per call.
//
// echo is benchmark scaffolding, not an example of how to use the runtime.
package echo

import (
	"context"
	"fmt"
	"sync/atomic"

	benchv1 "github.com/protoc-gen-micro/micro/bench/proto/bench/v1"
)

// Impls names the stacks, ours first.
var Impls = []string{"micro", "grpc", "connect"}

// Counters counts what a server served since it started.
type Counters struct {
	// RPCs counts calls that reached a handler.
	RPCs atomic.Uint64
	// Msgs counts response messages handlers sent: one per unary call, one
	// per echoed or streamed message.
	Msgs atomic.Uint64
}

// Server is a running Echo server.
type Server struct {
	// Addr is the host:port it listens on.
	Addr string
	// Counters are its handlers' counters.
	Counters *Counters
	stop     func() error
}

// Stop stops the server and closes its connections.
func (s *Server) Stop() error { return s.stop() }

// Serve starts an Echo server of the named stack on addr ("127.0.0.1:0" for
// a free port) in the background.
func Serve(impl, addr string) (*Server, error) {
	switch impl {
	case "micro":
		return serveMicro(addr)
	case "grpc":
		return serveGRPC(addr)
	case "connect":
		return serveConnect(addr)
	}
	return nil, fmt.Errorf("echo: unknown implementation %q; want one of %v", impl, Impls)
}

// Client calls an Echo server. Streams end with io.EOF from Recv once the
// server ended the call with OK.
type Client interface {
	Unary(ctx context.Context, in *benchv1.Msg) (*benchv1.Msg, error)
	Bidi(ctx context.Context) (BidiStream, error)
	ServerStream(ctx context.Context, in *benchv1.Count) (RecvStream, error)
	Close() error
}

// BidiStream is the client side of a Bidi call.
type BidiStream interface {
	Send(*benchv1.Msg) error
	CloseSend() error
	RecvStream
}

// RecvStream receives response messages; io.EOF at the end of the call.
type RecvStream interface {
	Recv() (*benchv1.Msg, error)
}

// Dial returns a client of the named stack for the server at addr. It may
// connect lazily, on the first call.
func Dial(impl, addr string) (Client, error) {
	switch impl {
	case "micro":
		return dialMicro(addr)
	case "grpc":
		return dialGRPC(addr)
	case "connect":
		return dialConnect(addr)
	}
	return nil, fmt.Errorf("echo: unknown implementation %q; want one of %v", impl, Impls)
}
