package webrpc

import (
	"bufio"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"io"

	"github.com/protoc-gen-micro/micro/runtime/status"
)

// Envelope flags. Connect streaming and gRPC-Web frame every message with
// one flag byte and a 4-byte big-endian length, as gRPC does.
const (
	flagCompressed = 0x01 // the message is compressed with the call's encoding
	flagEndStream  = 0x02 // Connect: the end-of-stream message, JSON
	flagTrailer    = 0x80 // gRPC-Web: the trailers, as HTTP/1 header lines
	prefixLen      = 5

	// firstChunk is the most an envelope's buffer starts with: a client
	// that claims a large message must send it before we hold its size.
	firstChunk = 32 << 10
)

// envelopeReader reads enveloped messages from a request body.
type envelopeReader struct {
	r   *bufio.Reader
	max int    // bound on a message's length as sent (compressed or not)
	buf []byte // reused from message to message
}

// next returns the next envelope's flags and body, which stays valid until
// the following call. It returns io.EOF at a clean end between envelopes, a
// *status.Error for a malformed or oversized one, and the body's read
// error, unwrapped, otherwise.
func (er *envelopeReader) next() (byte, []byte, error) {
	var p [prefixLen]byte
	n, err := io.ReadFull(er.r, p[:])
	switch {
	case err == io.EOF:
		return 0, nil, io.EOF
	case errors.Is(err, io.ErrUnexpectedEOF):
		return 0, nil, status.Errorf(status.InvalidArgument, "protocol error: incomplete envelope: %d of %d prefix bytes", n, prefixLen)
	case err != nil:
		return 0, nil, err
	}
	size := binary.BigEndian.Uint32(p[1:])
	if int64(size) > int64(er.max) {
		return 0, nil, status.Errorf(status.ResourceExhausted, "message size %d is larger than configured max %d", size, er.max)
	}
	b, err := readN(er.r, er.buf[:0], int(size))
	er.buf = b[:0]
	if errors.Is(err, io.ErrUnexpectedEOF) || err == io.EOF {
		return 0, nil, status.Errorf(status.InvalidArgument, "protocol error: promised %d bytes in enveloped message, got %d bytes", size, len(b))
	}
	if err != nil {
		return 0, nil, err
	}
	return p[0], b, nil
}

// more reports whether the body holds another byte. It blocks until the
// client sends one or ends the body.
func (er *envelopeReader) more() bool {
	_, err := er.r.Peek(1)
	return err == nil
}

// readN appends exactly n bytes of r to b[:0], growing the buffer as the
// bytes arrive rather than trusting n up front.
func readN(r io.Reader, b []byte, n int) ([]byte, error) {
	b = b[:0]
	for len(b) < n {
		if len(b) == cap(b) {
			c := min(n, max(2*cap(b), min(n, firstChunk)))
			nb := make([]byte, len(b), c)
			copy(nb, b)
			b = nb
		}
		m, err := r.Read(b[len(b):min(cap(b), n)])
		b = b[:len(b)+m]
		if err == io.EOF && len(b) < n {
			return b, io.ErrUnexpectedEOF
		}
		if err != nil && len(b) < n {
			return b, err
		}
	}
	return b, nil
}

// appendEnvelope appends an envelope of flags and body to dst.
func appendEnvelope(dst []byte, flags byte, body []byte) []byte {
	dst = append(dst, flags, 0, 0, 0, 0)
	binary.BigEndian.PutUint32(dst[len(dst)-4:], uint32(len(body)))
	return append(dst, body...)
}

// textReader decodes the base64 body of a grpc-web-text request. Clients
// may send it as concatenated padded chunks (one per message), so it
// decodes quantum by quantum rather than as one base64 string.
type textReader struct {
	r      io.Reader
	raw    [1024]byte
	rawN   int
	dec    [768]byte
	off, n int
	err    error
}

func (t *textReader) Read(p []byte) (int, error) {
	for t.off == t.n {
		if t.err != nil {
			return 0, t.err
		}
		t.fill()
	}
	n := copy(p, t.dec[t.off:t.n])
	t.off += n
	return n, nil
}

// fill reads more text and decodes every whole quantum of it.
func (t *textReader) fill() {
	t.off, t.n = 0, 0
	m, err := t.r.Read(t.raw[t.rawN:])
	t.rawN += m
	q := t.rawN / 4 * 4
	for i := 0; i < q; i += 4 {
		d, derr := base64.StdEncoding.Decode(t.dec[t.n:], t.raw[i:i+4])
		t.n += d
		if derr != nil {
			t.err = status.Errorf(status.InvalidArgument, "grpc-web-text: body is not base64: %v", derr)
			return
		}
	}
	t.rawN = copy(t.raw[:], t.raw[q:t.rawN])
	if err == nil {
		return
	}
	if err == io.EOF && t.rawN > 0 {
		// An unpadded last quantum.
		d, derr := base64.RawStdEncoding.Decode(t.dec[t.n:], t.raw[:t.rawN])
		t.n += d
		t.rawN = 0
		if derr != nil {
			err = status.Errorf(status.InvalidArgument, "grpc-web-text: body is not base64: %v", derr)
		}
	}
	t.err = err
}
