package transport

import (
	"encoding/binary"
	"io"
	"sync"

	"github.com/protoc-gen-micro/micro/runtime/status"
	"golang.org/x/net/http2"
)

// maxWindow is the largest flow-control window HTTP/2 allows.
const maxWindow = 1<<31 - 1

// Receive-side flow control.
//
// Each level (stream and connection) keeps a credit: the window the peer
// may still use plus the bytes received and not yet released. We grant
// window so that the credit comes back to a target as the application
// consumes messages, never on mere receipt, so what a peer can make us hold
// is bounded by what we advertise:
//
//   - a stream's target is its initial window, plus the size of each
//     admitted message: one too large to arrive within the window, which
//     first takes its size from the server's memory budget (memBudget);
//   - the connection's target is its initial window, at least the stream
//     window times the streams allowed, so one stream never waits for
//     another's messages to be read, plus the admitted messages' sizes.
//
// The client returns its connection window on receipt instead (onReceipt):
// it decides how many calls it makes, and its calls' windows bound it.

// connFlow is a connection's receive window, shared by its streams.
type connFlow struct {
	mu        sync.Mutex
	win       int64 // what the peer may still send
	buffered  int64 // received and not yet released
	target    int64
	base      int64
	onReceipt bool
}

func newConnFlow(initial int64, onReceipt bool) *connFlow {
	return &connFlow{win: initial, target: initial, base: initial, onReceipt: onReceipt}
}

// receive accounts for a DATA frame of n flow-controlled bytes. It fails
// when the peer overran the window.
func (f *connFlow) receive(n int64) (inc uint32, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if n > f.win {
		return 0, connError{http2.ErrCodeFlowControl, "DATA exceeds the connection's flow-control window"}
	}
	f.win -= n
	if f.onReceipt {
		return f.grantLocked(false), nil
	}
	f.buffered += n
	return 0, nil
}

// adjust releases n received bytes and moves the target by dt; urgent
// grants any deficit at once rather than waiting for a quarter window.
func (f *connFlow) adjust(n, dt int64, urgent bool) uint32 {
	if f.onReceipt {
		return 0 // receive granted it already
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.buffered -= n
	f.target += dt
	return f.grantLocked(urgent)
}

func (f *connFlow) grantLocked(urgent bool) uint32 {
	d := f.target - f.win - f.buffered
	if d <= 0 || (!urgent && d < f.base/4) {
		return 0
	}
	d = min(d, maxWindow-f.win)
	if d <= 0 {
		return 0
	}
	f.win += d
	return uint32(d)
}

// held reports the bytes received and not released (for tests).
func (f *connFlow) held() int64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.buffered
}

// rmsg is one received message: its envelope flag and body. admitted is
// the size it took from the budget and the windows' targets (0 if none).
type rmsg struct {
	buf      *[]byte // nil for an empty body
	flag     byte
	admitted int64
}

func (m rmsg) body() []byte {
	if m.buf == nil {
		return nil
	}
	return *m.buf
}

// recvBuffer holds what a stream received and its consumer has not taken
// yet. The connection's reader parses DATA into messages as it arrives,
// each into a buffer of its own (no buffer is ever regrown by copying what
// it holds more than a logarithmic number of times); the consumer takes
// whole messages out.
type recvBuffer struct {
	mu     sync.Mutex
	cf     *connFlow
	budget *memBudget
	w      *writer
	id     uint32
	w0     int64
	maxMsg int

	// Stream window, as connFlow's.
	win      int64
	buffered int64
	target   int64

	// The message being parsed.
	hdr      [headerSize]byte
	hdrN     int
	cur      *[]byte
	curLen   int   // its declared length
	curState uint8 // curPlain, curAdmitted or curWaiting
	curSize  int64 // headerSize+curLen once admitted or waiting

	q       []rmsg
	qInline [2]rmsg

	eof     bool  // END_STREAM seen
	err     error // the stream ended abnormally
	closed  bool  // the stream is gone; drop further data
	tooBig  int   // declared length of a message over maxMsg, or -1
	sig     chan struct{}
	waitSeq uint64 // numbers the messages queued in the budget
}

const (
	curPlain uint8 = iota
	curAdmitted
	curWaiting
)

func (r *recvBuffer) init(cf *connFlow, budget *memBudget, w *writer, w0 int64, maxMsg int) {
	r.cf, r.budget, r.w, r.w0, r.maxMsg = cf, budget, w, w0, maxMsg
	r.win, r.target = w0, w0
	r.q = r.qInline[:0]
	r.tooBig = -1
}

// deliver parses received data. flowLen counts padding too; the caller has
// already charged it to the connection. It returns a stream error when the
// peer overran the stream's window or sent data after END_STREAM.
func (r *recvBuffer) deliver(data []byte, flowLen int64, end bool) error {
	r.mu.Lock()
	if r.closed || r.err != nil || r.eof {
		afterEnd := r.eof && !r.closed && r.err == nil
		r.mu.Unlock()
		r.discard(flowLen)
		if afterEnd && (flowLen > 0 || end) {
			return streamError{http2.ErrCodeStreamClosed, "DATA after END_STREAM"}
		}
		return nil
	}
	if flowLen > r.win {
		r.mu.Unlock()
		r.discard(flowLen)
		return streamError{http2.ErrCodeFlowControl, "DATA exceeds the stream's flow-control window"}
	}
	r.win -= flowLen
	// Padding is released at once: nobody will consume it.
	pad := flowLen - int64(len(data))
	r.buffered += int64(len(data))
	var connInc uint32
	if pad > 0 {
		connInc = r.cf.adjust(pad, 0, false)
	}
	for len(data) > 0 && r.tooBig < 0 {
		data = r.parseLocked(data)
	}
	if len(data) > 0 {
		// Past a message over the limit: nothing more will be read.
		n := int64(len(data))
		r.buffered -= n
		connInc += r.cf.adjust(n, 0, false)
	}
	if end {
		r.eof = true
	}
	streamInc := r.admitCurLocked()
	r.signalLocked()
	r.mu.Unlock()
	r.sendWindow(streamInc, connInc)
	return nil
}

// parseLocked consumes data into the message being parsed and returns the
// rest.
func (r *recvBuffer) parseLocked(data []byte) []byte {
	if r.cur == nil && r.hdrN < headerSize {
		n := copy(r.hdr[r.hdrN:], data)
		r.hdrN += n
		data = data[n:]
		if r.hdrN < headerSize {
			return data
		}
		l := binary.BigEndian.Uint32(r.hdr[1:5])
		if uint64(l) > uint64(r.maxMsg) {
			r.tooBig = int(min(l, 1<<31-1))
			return data
		}
		r.curLen = int(l)
		if l == 0 {
			r.finishCurLocked()
			return data
		}
		// Size the buffer for the whole message only when the window
		// bounds it; otherwise grow it as bytes arrive, so a prefix
		// alone cannot make us allocate the limit.
		r.cur = getBuf(min(r.curLen, int(r.w0)))
	}
	if r.cur == nil {
		return data
	}
	b := *r.cur
	n := min(len(data), r.curLen-len(b))
	if len(b)+n > cap(b) {
		nb := getBuf(min(r.curLen, max(2*cap(b), len(b)+n)))
		*nb = append(*nb, b...)
		putBuf(r.cur)
		r.cur = nb
		b = *nb
	}
	*r.cur = append(b, data[:n]...)
	if len(*r.cur) == r.curLen {
		r.finishCurLocked()
	}
	return data[n:]
}

// finishCurLocked moves the complete current message to the queue.
func (r *recvBuffer) finishCurLocked() {
	m := rmsg{buf: r.cur, flag: r.hdr[0]}
	switch r.curState {
	case curAdmitted:
		m.admitted = r.curSize
	case curWaiting:
		// Complete within the window after all: stop waiting. A late
		// admission carries an old sequence number and is given back.
		r.budget.cancel(r)
	}
	r.q = append(r.q, m)
	r.cur, r.hdrN, r.curLen, r.curState, r.curSize = nil, 0, 0, curPlain, 0
}

// admitCurLocked decides whether the message being parsed needs more
// window than the stream has and, if so, asks the budget for its size. Only
// a message the consumer is ready for is admitted: while complete messages
// wait unread, the next one stays within the stream's window, so a consumer
// that stops reading holds at most one admitted message and one window. It
// returns the stream window increment to send.
func (r *recvBuffer) admitCurLocked() uint32 {
	if r.eof || r.tooBig >= 0 || r.hdrN < headerSize || r.curState != curPlain || r.cur == nil || len(r.q) > 0 {
		return r.grantLocked(false)
	}
	size := int64(headerSize + r.curLen)
	toCome := int64(r.curLen - len(*r.cur))
	if toCome <= r.win {
		return r.grantLocked(false)
	}
	r.waitSeq++
	if r.budget.reserve(r, size, r.waitSeq) {
		return r.admittedLocked(size)
	}
	r.curState, r.curSize = curWaiting, size
	return r.grantLocked(false)
}

// admittedLocked raises both targets by the admitted message's size and
// returns the stream increment; the connection's is sent here too.
func (r *recvBuffer) admittedLocked(size int64) uint32 {
	r.curState, r.curSize = curAdmitted, size
	r.target += size
	if r.cur != nil && cap(*r.cur) < r.curLen {
		// The budget holds its size now: take the buffer at once.
		nb := getBuf(r.curLen)
		*nb = append(*nb, *r.cur...)
		putBuf(r.cur)
		r.cur = nb
	}
	if inc := r.cf.adjust(0, size, true); inc > 0 {
		r.w.push(item{kind: itWindowUpdate, n2: inc})
	}
	return r.grantLocked(true)
}

// admit is called by the budget once a queued message's size is reserved.
func (r *recvBuffer) admit(size int64, seq uint64) {
	r.mu.Lock()
	if seq != r.waitSeq || r.closed || r.err != nil || r.curState != curWaiting {
		r.mu.Unlock()
		r.budget.release(size)
		return
	}
	inc := r.admittedLocked(size)
	r.mu.Unlock()
	r.sendWindow(inc, 0)
}

// grantLocked returns the stream window increment due, if any.
func (r *recvBuffer) grantLocked(urgent bool) uint32 {
	if r.eof || r.closed || r.err != nil {
		return 0
	}
	d := r.target - r.win - r.buffered
	if d <= 0 || (!urgent && d < r.w0/4) {
		return 0
	}
	d = min(d, maxWindow-r.win)
	if d <= 0 {
		return 0
	}
	r.win += d
	return uint32(d)
}

func (r *recvBuffer) sendWindow(stream, conn uint32) {
	switch {
	case stream > 0 && conn > 0:
		r.w.pushN(item{kind: itWindowUpdate, n: r.id, n2: stream}, item{kind: itWindowUpdate, n2: conn})
	case stream > 0:
		r.w.push(item{kind: itWindowUpdate, n: r.id, n2: stream})
	case conn > 0:
		r.w.push(item{kind: itWindowUpdate, n2: conn})
	}
}

// discard releases bytes that will never be consumed.
func (r *recvBuffer) discard(n int64) {
	if n == 0 {
		return
	}
	if inc := r.cf.adjust(n, 0, false); inc > 0 {
		r.w.push(item{kind: itWindowUpdate, n2: inc})
	}
}

func (r *recvBuffer) signalLocked() {
	if r.sig != nil {
		select {
		case r.sig <- struct{}{}:
		default:
		}
	}
}

// fail ends the stream's receive side with err; a waiting consumer returns
// once it has taken the messages already complete.
func (r *recvBuffer) fail(err error) {
	r.mu.Lock()
	if r.err == nil {
		r.err = err
	}
	r.signalLocked()
	r.mu.Unlock()
}

// release drops everything the stream holds once it is gone, returning it
// to the windows and the budget.
func (r *recvBuffer) release() {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return
	}
	r.closed = true
	held, dt, budget := r.buffered, int64(0), int64(0)
	for _, m := range r.q {
		if m.buf != nil {
			putBuf(m.buf)
		}
		dt -= m.admitted
		budget += m.admitted
	}
	clear(r.q)
	r.q = r.q[:0]
	if r.cur != nil {
		putBuf(r.cur)
		r.cur = nil
	}
	switch r.curState {
	case curAdmitted:
		dt -= r.curSize
		budget += r.curSize
	case curWaiting:
		r.budget.cancel(r)
	}
	r.curState = curPlain
	r.buffered = 0
	r.mu.Unlock()
	r.budget.release(budget)
	if inc := r.cf.adjust(held, dt, false); inc > 0 {
		r.w.push(item{kind: itWindowUpdate, n2: inc})
	}
}

// next waits for a whole message; the caller decodes it and then calls
// consume. done aborts the wait. At a clean end of stream it returns
// io.EOF; a message over the limit is RESOURCE_EXHAUSTED.
func (r *recvBuffer) next(done <-chan struct{}, doneErr func() error) (rmsg, error) {
	r.mu.Lock()
	for {
		if len(r.q) > 0 && !r.closed {
			m := r.q[0]
			r.q[0] = rmsg{}
			r.q = r.q[1:]
			if len(r.q) == 0 {
				r.q = r.qInline[:0]
			}
			r.mu.Unlock()
			return m, nil
		}
		if r.err != nil {
			err := r.err
			r.mu.Unlock()
			return rmsg{}, err
		}
		if r.tooBig >= 0 {
			n := r.tooBig
			r.mu.Unlock()
			return rmsg{}, status.Errorf(status.ResourceExhausted, "grpc: received message larger than max (%d vs. %d)", n, r.maxMsg)
		}
		if r.eof {
			var err error = io.EOF
			if r.hdrN > 0 {
				err = status.New(status.Internal, "grpc: stream ended in the middle of a message")
			}
			r.mu.Unlock()
			return rmsg{}, err
		}
		if r.sig == nil {
			r.sig = make(chan struct{}, 1)
		}
		sig := r.sig
		r.mu.Unlock()
		select {
		case <-sig:
		case <-done:
			return rmsg{}, doneErr()
		}
		r.mu.Lock()
	}
}

// consume releases a message taken by next once it has been decoded, and
// grants the window it frees.
func (r *recvBuffer) consume(m rmsg) {
	n := int64(headerSize)
	if m.buf != nil {
		n += int64(len(*m.buf))
		putBuf(m.buf)
	}
	r.mu.Lock()
	if r.closed {
		// release has returned the stream's bytes, but not what this
		// message, taken before, was admitted with.
		r.mu.Unlock()
		if m.admitted > 0 {
			r.budget.release(m.admitted)
			r.sendWindow(0, r.cf.adjust(0, -m.admitted, false))
		}
		return
	}
	r.buffered -= n
	r.target -= m.admitted
	inc := r.admitCurLocked()
	r.mu.Unlock()
	r.budget.release(m.admitted)
	r.sendWindow(inc, r.cf.adjust(n, -m.admitted, false))
}

// pending reports whether bytes beyond the messages taken are buffered.
func (r *recvBuffer) pending() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.q) > 0 || r.hdrN > 0 || r.tooBig >= 0
}

// wholeReady reports, for a call that waits for its whole request, whether
// it can start: the request has ended, or it is already wrong (a message
// over the limit, or a second message).
func (r *recvBuffer) wholeReady() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.eof || r.err != nil || r.tooBig >= 0 || len(r.q) > 1 || (len(r.q) == 1 && r.hdrN > 0)
}

// peerEnded reports whether the peer sent END_STREAM.
func (r *recvBuffer) peerEnded() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.eof
}

// ended reports whether the peer has finished sending (END_STREAM) or the
// stream failed.
func (r *recvBuffer) ended() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.eof || r.err != nil
}
