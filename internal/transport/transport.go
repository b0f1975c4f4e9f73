// Package transport carries gRPC calls over HTTP/2, built directly on
// golang.org/x/net/http2's Framer and hpack rather than on net/http.
//
// Each connection has one reader goroutine, which parses frames and decodes
// headers, and one writer goroutine, which drains a queue of frames and
// flushes them once per batch, so many streams' headers, messages and
// trailers leave in one syscall. Flow control is explicit per connection and
// per stream. Streams carry length-prefixed messages encoded by a codec chosen
// from the content type.
//
// transport knows nothing of services, handlers, registries or retries: the
// server package routes streams to handlers and the client package picks
// connections.
package transport

import (
	"errors"
	"fmt"
	"math/bits"
	"sync"
	"time"

	"github.com/protoc-gen-micro/micro/runtime/status"
)

const (
	clientPreface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

	// defaultMaxRecvMsgSize is the receive limit gRPC implementations share.
	defaultMaxRecvMsgSize = 4 << 20
	// defaultMaxConcurrentStreams is advertised per server connection, as
	// x/net's server does (250); it also bounds the handlers running.
	defaultMaxConcurrentStreams = 256
	// defaultServerStreamWindow is the server's per-stream receive window,
	// HTTP/2's own default. Messages that do not fit are admitted against
	// the server's memory budget and granted their size.
	defaultServerStreamWindow = 64 << 10
	// defaultConnWindow is the connection-level receive window: at least
	// the stream window times the streams allowed, so that one stream's
	// unread data never blocks another's.
	defaultConnWindow = 16 << 20
	// clientStreamWindow is what the client grants each call: it chose
	// the server and its calls, so it gives a 1 MiB message room at once.
	clientStreamWindow = 1 << 20
	// defaultWindowSize is HTTP/2's initial window before SETTINGS.
	defaultWindowSize = 65535
	// defaultMaxHeaderListSize bounds a decoded header block (names and
	// values plus 32 bytes a field, as HTTP/2 counts).
	defaultMaxHeaderListSize = 64 << 10
	// clientMaxHeaderListSize bounds a response's header block.
	clientMaxHeaderListSize = 1 << 20
	// defaultMaxBufferedRequestBytes is the server-wide budget for
	// admitted request messages.
	defaultMaxBufferedRequestBytes = 256 << 20
	// defaultMaxFrameSize is HTTP/2's minimum and default frame size; we
	// advertise no other, so larger frames are refused.
	defaultMaxFrameSize = 16384
	// sendQuota bounds the bytes a stream may have queued for the writer
	// before SendMsg blocks (grpc-go's is the same), so a peer that stops
	// reading cannot make us buffer without limit. A larger message is let
	// through alone.
	sendQuota = 64 << 10
	// headerSize is the length of a gRPC message envelope prefix.
	headerSize = 5

	defaultHandshakeTimeout = 10 * time.Second
	defaultWriteTimeout     = 30 * time.Second
	defaultIdleTimeout      = 5 * time.Minute
	defaultKeepaliveTime    = 2 * time.Hour
	defaultKeepaliveTimeout = 20 * time.Second
	defaultPingMinTime      = 5 * time.Minute
)

// UserAgent is sent by the client in the user-agent header.
const UserAgent = "micro-go/0.1.0"

// ErrUnprocessed marks errors of calls that provably never reached a
// handler: the connection was refused, the stream was refused
// (REFUSED_STREAM), or the server's GOAWAY said it did not process it. Such
// a call is safe to retry on another node. Test with errors.Is.
var ErrUnprocessed = errors.New("transport: call was not processed by the server")

// errClosed is the cause of streams ended by a closed connection.
var errClosed = errors.New("transport: connection closed")

// unprocessed returns an Unavailable error that errors.Is finds to be
// ErrUnprocessed; its message is msg alone, without the sentinel's words.
func unprocessed(format string, args ...any) *status.Error {
	return status.Errorf(status.Unavailable, "%w", markUnprocessed{fmt.Errorf(format, args...)})
}

// markUnprocessed marks an error ErrUnprocessed without changing its text.
type markUnprocessed struct{ error }

func (m markUnprocessed) Is(target error) bool { return target == ErrUnprocessed }
func (m markUnprocessed) Unwrap() error        { return m.error }

// DialError is a failure to connect to Addr: no call reached it, so it is
// marked ErrUnprocessed. Err says what failed (the TCP dial, the TLS
// handshake, the HTTP/2 preface or SETTINGS).
type DialError struct {
	Addr string
	Err  error
}

func (e *DialError) Error() string        { return "transport: dial " + e.Addr + ": " + e.Err.Error() }
func (e *DialError) Unwrap() error        { return e.Err }
func (e *DialError) Is(target error) bool { return target == ErrUnprocessed }

// dialFailed returns the Unavailable error of a failure to connect to addr.
func dialFailed(addr string, err error) *status.Error {
	return status.Errorf(status.Unavailable, "%w", &DialError{Addr: addr, Err: err})
}

// Message buffers come from pools by size class (powers of two from 1 KiB
// to 16 MiB), so a 1 MiB message reuses a 1 MiB buffer instead of growing
// one from scratch each call. The pools hold *[]byte so that Put does not
// allocate an interface header per call.
const (
	minBufShift = 10
	numBufClass = 15
)

var bufPools [numBufClass]sync.Pool

// getBuf returns an empty buffer with room for at least n bytes.
func getBuf(n int) *[]byte {
	c := 0
	if n > 1<<minBufShift {
		c = bits.Len(uint(n-1)) - minBufShift
	}
	if c >= numBufClass {
		b := make([]byte, 0, n)
		return &b
	}
	if v := bufPools[c].Get(); v != nil {
		return v.(*[]byte)
	}
	b := make([]byte, 0, 1<<(minBufShift+c))
	return &b
}

// putBuf returns a buffer to the pool of the largest class it can serve.
func putBuf(b *[]byte) {
	c := bits.Len(uint(cap(*b))) - 1 - minBufShift
	if c < 0 || c >= numBufClass {
		return
	}
	*b = (*b)[:0]
	bufPools[c].Put(b)
}

// timeNow is a seam for tests.
var timeNow = time.Now
