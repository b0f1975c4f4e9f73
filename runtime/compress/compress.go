// Package compress holds the message compressors of gRPC, named by the
// grpc-encoding header: a process-wide registry with gzip built in.
//
// gRPC compresses each message on its own; the envelope's flag says whether
// a message is compressed and the grpc-encoding header names the algorithm.
// compress turns one whole message into another and bounds what a peer can
// make it inflate. It is not a stream or HTTP Content-Encoding compressor and
// knows nothing of envelopes or headers: the transport chooses an algorithm,
// sets the flag, answers an unknown grpc-encoding with UNIMPLEMENTED and a
// message over its limit with RESOURCE_EXHAUSTED. "identity", no
// compression, is the transport's to handle and never a Compressor.
//
// Decompress bounds its output, not its work: the transport must bound the
// compressed message too, as it bounds any message, before decompressing.
package compress

import (
	"errors"
	"fmt"
	"io"
	"math"
)

// Compressor compresses and decompresses whole gRPC messages. Its methods
// may be called concurrently.
type Compressor interface {
	// Name is the grpc-encoding value, e.g. "gzip". It must not change.
	Name() string
	// Compress appends the compressed form of src to dst and returns the
	// extended slice.
	Compress(dst, src []byte) ([]byte, error)
	// Decompress appends the decompressed form of src to dst and returns
	// it. It must fail with an error wrapping ErrTooLarge as soon as the
	// output would exceed limit bytes, having produced at most limit+1
	// bytes (a decompression bomb must never be inflated beyond the
	// limit). ReadLimited does this for decompressors that are readers.
	Decompress(dst, src []byte, limit int) ([]byte, error)
}

// ErrTooLarge is wrapped by the error of a Decompress whose output would
// exceed its limit.
var ErrTooLarge = errors.New("compress: decompressed message too large")

// minGrow is the least ReadLimited grows its buffer by, so that small
// messages are read in one or two calls.
const minGrow = 512

// ReadLimited appends to dst what r yields until io.EOF and returns the
// extended slice. If r yields more than limit bytes it stops, having read
// limit+1 bytes at most, and returns dst and an error wrapping ErrTooLarge.
// Any other error of r is returned as it is, with dst.
//
// The buffer grows as output arrives, never past len(dst)+limit, so it is
// safe on hostile input: no size the input claims is trusted. A negative
// limit is taken as 0.
func ReadLimited(dst []byte, r io.Reader, limit int) ([]byte, error) {
	limit = min(max(limit, 0), math.MaxInt-1-len(dst))
	end := len(dst) + limit
	b := dst
	for {
		if len(b) == cap(b) && len(b) < end {
			b = grow(b, end)
		}
		var n int
		var err error
		switch {
		case len(b) < end:
			n, err = r.Read(b[len(b):min(cap(b), end)])
			b = b[:len(b)+n]
			n = 0
		case cap(b) > end:
			// Full to the limit: one byte more, read into spare
			// capacity, or the end decides.
			n, err = r.Read(b[end : end+1])
		default:
			n, err = r.Read(make([]byte, 1))
		}
		if n > 0 {
			return dst, fmt.Errorf("%w: over %d bytes", ErrTooLarge, limit)
		}
		if err == io.EOF {
			return b, nil
		}
		if err != nil {
			return dst, err
		}
	}
}

// grow returns b with more capacity, doubling it but never past end. It
// allocates the new array itself: append's growth could overshoot end, and
// with it the limit.
func grow(b []byte, end int) []byte {
	n := min(max(len(b), minGrow), end-len(b))
	nb := make([]byte, len(b), len(b)+n)
	copy(nb, b)
	return nb
}
