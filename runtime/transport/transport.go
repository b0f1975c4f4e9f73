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
	"math/bits"
	"sync"
	"time"

	"github.com/protoc-gen-micro/micro/runtime/status"
)

const (
	clientPreface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

	// defaultMaxRecvMsgSize is the receive limit gRPC implementations share.
	defaultMaxRecvMsgSize = 4 << 20
	// initialWindowSize is what we advertise per stream. Larger than
	// HTTP/2's 64 KiB default so a 1 MiB message needs no round trip.
	initialWindowSize = 1 << 20
	// initialConnWindowSize is the connection-level receive window.
	initialConnWindowSize = 16 << 20
	// defaultWindowSize is HTTP/2's initial window before SETTINGS.
	defaultWindowSize = 65535
	// maxHeaderListSize bounds a decoded header block.
	maxHeaderListSize = 1 << 20
	// defaultMaxFrameSize is HTTP/2's minimum and default frame size.
	defaultMaxFrameSize = 16384
	// sendQuota bounds the bytes a stream may have queued for the writer
	// before SendMsg blocks, so a peer that stops reading cannot make us
	// buffer without limit.
	sendQuota = 1 << 20
	// headerSize is the length of a gRPC message envelope prefix.
	headerSize = 5
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

func unprocessed(msg string) *status.Error {
	return status.Errorf(status.Unavailable, "%s: %w", msg, ErrUnprocessed)
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
