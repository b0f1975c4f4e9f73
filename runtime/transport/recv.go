package transport

import (
	"encoding/binary"
	"io"
	"sync"

	"github.com/protoc-gen-micro/micro/runtime/status"
)

// recvBuffer holds the DATA a stream has received but not yet decoded. The
// connection's reader appends to it; the stream's consumer takes whole
// messages out. It also decides when to return receive window to the peer:
// at once while little is buffered, and only as the consumer reads once a
// slow consumer has let it fill, so a stream never buffers much more than
// one window plus the message being assembled.
type recvBuffer struct {
	mu      sync.Mutex
	buf     *[]byte
	eof     bool  // END_STREAM seen
	err     error // the stream ended abnormally
	closed  bool  // the stream is gone; drop further data
	sig     chan struct{}
	unacked uint32
	maxMsg  int
}

// windowThreshold is how much consumed data accumulates before a stream
// WINDOW_UPDATE is sent; small calls end before they reach it.
const windowThreshold = initialWindowSize / 4

// deliver appends received data. It returns the stream window increment to
// send now (0 for none).
func (r *recvBuffer) deliver(data []byte, flowLen uint32, end bool) uint32 {
	r.mu.Lock()
	if r.closed || r.err != nil {
		r.mu.Unlock()
		return 0
	}
	if len(data) > 0 {
		r.grow(len(data), data)
		*r.buf = append(*r.buf, data...)
	}
	if end {
		r.eof = true
	}
	r.unacked += flowLen
	inc := r.windowUpdateLocked()
	r.signalLocked()
	r.mu.Unlock()
	return inc
}

// grow makes room for n more bytes. When the buffered bytes (or the data
// arriving) start with a message's envelope, it sizes the buffer for the
// whole message at once rather than doubling its way up.
func (r *recvBuffer) grow(n int, data []byte) {
	have := 0
	if r.buf != nil {
		have = len(*r.buf)
		if have+n <= cap(*r.buf) {
			return
		}
	}
	want := have + n
	var prefix []byte
	switch {
	case have >= headerSize:
		prefix = (*r.buf)[:headerSize]
	case have == 0 && len(data) >= headerSize:
		prefix = data[:headerSize]
	}
	if prefix != nil {
		if m := int(binary.BigEndian.Uint32(prefix[1:5])); m <= r.maxMsg && headerSize+m > want {
			want = headerSize + m
		}
	}
	nb := getBuf(want)
	if r.buf != nil {
		*nb = append(*nb, *r.buf...)
		putBuf(r.buf)
	}
	r.buf = nb
}

// windowUpdateLocked returns the increment to grant if the buffered data is
// within bounds: one window, or the whole of the message being assembled.
func (r *recvBuffer) windowUpdateLocked() uint32 {
	if r.eof || r.unacked < windowThreshold {
		return 0
	}
	limit := initialWindowSize
	if r.buf != nil && len(*r.buf) >= headerSize {
		if n := int(binary.BigEndian.Uint32((*r.buf)[1:5])) + headerSize; n > limit && n-headerSize <= r.maxMsg {
			limit = n
		}
	}
	if r.buf != nil && len(*r.buf) > limit {
		return 0
	}
	inc := r.unacked
	r.unacked = 0
	return inc
}

func (r *recvBuffer) signalLocked() {
	if r.sig != nil {
		select {
		case r.sig <- struct{}{}:
		default:
		}
	}
}

// fail ends the stream's receive side with err; a waiting consumer returns.
func (r *recvBuffer) fail(err error) {
	r.mu.Lock()
	if r.err == nil {
		r.err = err
	}
	r.signalLocked()
	r.mu.Unlock()
}

// release drops buffered data once the stream is gone.
func (r *recvBuffer) release() {
	r.mu.Lock()
	r.closed = true
	if r.buf != nil {
		putBuf(r.buf)
		r.buf = nil
	}
	r.mu.Unlock()
}

// next waits for a whole message and returns it with the buffer that holds
// it; the caller decodes msg and then calls consume(hold, ...). done aborts
// the wait. At a clean end of stream it returns io.EOF.
func (r *recvBuffer) next(done <-chan struct{}, doneErr func() error) (msg []byte, hold *[]byte, err error) {
	r.mu.Lock()
	for {
		if r.err != nil && (r.buf == nil || len(*r.buf) == 0 || r.closed) {
			err := r.err
			r.mu.Unlock()
			return nil, nil, err
		}
		if r.buf != nil && len(*r.buf) >= headerSize {
			b := *r.buf
			if b[0] > 1 {
				r.mu.Unlock()
				return nil, nil, status.Errorf(status.Internal, "grpc: received message with invalid compressed flag %d", b[0])
			}
			if b[0] == 1 {
				r.mu.Unlock()
				return nil, nil, status.New(status.Internal, "grpc: received a compressed message, but no grpc-encoding was negotiated")
			}
			n := int(binary.BigEndian.Uint32(b[1:5]))
			if n > r.maxMsg {
				r.mu.Unlock()
				return nil, nil, status.Errorf(status.ResourceExhausted, "grpc: received message larger than max (%d vs. %d)", n, r.maxMsg)
			}
			if len(b) >= headerSize+n {
				hold = r.buf
				r.buf = nil
				r.mu.Unlock()
				return b[headerSize : headerSize+n], hold, nil
			}
		}
		if r.err != nil {
			err := r.err
			r.mu.Unlock()
			return nil, nil, err
		}
		if r.eof {
			var err error = io.EOF
			if r.buf != nil && len(*r.buf) > 0 {
				err = status.New(status.Internal, "grpc: stream ended in the middle of a message")
			}
			r.mu.Unlock()
			return nil, nil, err
		}
		if r.sig == nil {
			r.sig = make(chan struct{}, 1)
		}
		sig := r.sig
		r.mu.Unlock()
		select {
		case <-sig:
		case <-done:
			return nil, nil, doneErr()
		}
		r.mu.Lock()
	}
}

// consume returns hold, minus the used bytes, to the buffer and reports the
// stream window increment to send now.
func (r *recvBuffer) consume(hold *[]byte, used int) uint32 {
	r.mu.Lock()
	rest := (*hold)[used:]
	switch {
	case r.closed:
		putBuf(hold)
	case len(rest) == 0:
		putBuf(hold)
	default:
		n := copy(*hold, rest)
		b := (*hold)[:n]
		if r.buf != nil {
			b = append(b, *r.buf...)
			putBuf(r.buf)
		}
		*hold = b
		r.buf = hold
	}
	inc := r.windowUpdateLocked()
	r.mu.Unlock()
	return inc
}

// pending reports whether bytes beyond the consumed messages are buffered.
func (r *recvBuffer) pending() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.buf != nil && len(*r.buf) > 0
}

// badEarly reports, for a call that waits for its whole request, that the
// buffered data already proves the request wrong (a first message over the
// limit, or a second message), so the handler can reject it without waiting
// for END_STREAM.
func (r *recvBuffer) badEarly() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.buf == nil || len(*r.buf) < headerSize {
		return false
	}
	b := *r.buf
	n := int(binary.BigEndian.Uint32(b[1:5]))
	return n > r.maxMsg || len(b) > headerSize+n
}
