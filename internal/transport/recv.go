package transport

import (
	"encoding/binary"
	"io"
	"sync"
	"sync/atomic"

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
	// released collects releases too small to grant a window for, so that
	// consuming a small message takes one atomic add, not the lock.
	released atomic.Int64
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
	if dt == 0 && !urgent {
		if f.released.Add(n) < f.base/4 {
			return 0
		}
		n = 0 // folded in below
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.buffered -= n + f.released.Swap(0)
	f.target += dt
	return f.grantLocked(urgent)
}

func (f *connFlow) grantLocked(urgent bool) uint32 {
	d := grant(f.target, f.win, f.buffered, f.base, urgent)
	f.win += d
	return uint32(d)
}

// grant returns the window increment that brings a credit (win plus
// buffered) back to target: at once when urgent, else once the deficit
// reaches a quarter of base, so that small reads cost no frame; never
// taking the window past maxWindow.
func grant(target, win, buffered, base int64, urgent bool) int64 {
	d := target - win - buffered
	if d <= 0 || (!urgent && d < base/4) {
		return 0
	}
	return max(min(d, maxWindow-win), 0)
}

// held reports the bytes received and not released (for tests).
func (f *connFlow) held() int64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.buffered - f.released.Load()
}

// rmsg is one received message, lent by next until consume: its envelope
// flag and body (which points into the stream's buffer), its size on the
// wire, and what it was admitted with (0 if it was not).
type rmsg struct {
	body     []byte
	flag     byte
	size     int
	admitted int64
}

// recvBuffer holds what a stream received and its consumer has not taken
// yet: the messages' wire bytes, back to back in one buffer, so a flood of
// tiny messages costs no more memory than its bytes. The connection's
// reader appends and finds message boundaries as data arrives; the
// consumer takes whole messages from the front. The buffer grows by
// doubling, so a large message is copied a logarithmic number of times.
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

	buf      *[]byte // unread bytes are (*buf)[off:]
	off      int
	parsed   int // bytes from off that form complete messages
	complete int // how many
	// The message after the complete ones.
	curLen   int   // its declared length, once its prefix is in
	curState uint8 // curPlain, curAdmitted or curWaiting
	curSize  int64 // headerSize+curLen once admitted or waiting
	// headAdmitted is what the first complete message was admitted with:
	// a message is admitted only when none is waiting to be read, so an
	// admitted one is always at the head when it completes.
	headAdmitted int64
	// While a message is lent to the consumer, a grown buffer keeps the
	// old one (old) until consume, and release leaves it (orphan) too.
	lent   bool
	old    *[]byte
	orphan *[]byte

	// raw holds a web request's body: bytes, read by readRaw, rather
	// than messages. Set before the first data arrives.
	raw bool

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
	r.tooBig = -1
}

func (r *recvBuffer) unread() int {
	if r.buf == nil {
		return 0
	}
	return len(*r.buf) - r.off
}

// deliver parses received data. flowLen counts padding too; the caller has
// already charged it to the connection. It reports whether a call waiting
// for its whole request can start now (see wholeReadyLocked), and returns
// a stream error when the peer overran the stream's window or sent data
// after END_STREAM.
func (r *recvBuffer) deliver(data []byte, flowLen int64, end bool) (wholeReady bool, err error) {
	r.mu.Lock()
	if r.closed || r.err != nil || r.eof {
		afterEnd := r.eof && !r.closed && r.err == nil
		r.mu.Unlock()
		r.discard(flowLen)
		if afterEnd && (flowLen > 0 || end) {
			return false, streamError{http2.ErrCodeStreamClosed, "DATA after END_STREAM"}
		}
		return false, nil
	}
	if flowLen > r.win {
		r.mu.Unlock()
		r.discard(flowLen)
		return false, streamError{http2.ErrCodeFlowControl, "DATA exceeds the stream's flow-control window"}
	}
	r.win -= flowLen
	// Padding, and data past a message over the limit, are released at
	// once: nobody will consume them.
	drop := flowLen - int64(len(data))
	if r.tooBig >= 0 {
		drop += int64(len(data))
	} else if len(data) > 0 {
		r.appendLocked(data)
		var dropped int64
		if !r.raw {
			dropped = r.parseLocked()
		}
		r.buffered += int64(len(data)) - dropped
		drop += dropped
	}
	var connInc uint32
	if drop > 0 {
		connInc = r.cf.adjust(drop, 0, false)
	}
	if end {
		r.eof = true
	}
	streamInc := r.admitCurLocked()
	r.signalLocked()
	wholeReady = r.wholeReadyLocked()
	r.mu.Unlock()
	r.sendWindow(streamInc, connInc)
	return wholeReady, nil
}

// appendLocked adds data at the end of the buffer, doubling it when full.
func (r *recvBuffer) appendLocked(data []byte) {
	if r.buf == nil {
		r.buf = getBuf(len(data))
	}
	b := *r.buf
	if len(b)+len(data) > cap(b) {
		rest := b[r.off:]
		nb := getBuf(max(2*cap(b), len(rest)+len(data)))
		*nb = append(*nb, rest...)
		if r.lent && r.old == nil {
			r.old = r.buf // the lent message still points into it
		} else {
			putBuf(r.buf)
		}
		r.buf, r.off = nb, 0
		b = *nb
	}
	*r.buf = append(b, data...)
}

// parseLocked finds the messages completed by the bytes appended and the
// length of the one in progress. It returns how many bytes it dropped
// because they belong to a message over the limit.
func (r *recvBuffer) parseLocked() (dropped int64) {
	b := (*r.buf)[r.off:]
	for {
		p := b[r.parsed:]
		if len(p) < headerSize {
			return 0
		}
		n := binary.BigEndian.Uint32(p[1:5])
		if uint64(n) > uint64(r.maxMsg) {
			r.tooBig = int(min(n, 1<<31-1))
			*r.buf = (*r.buf)[:r.off+r.parsed]
			return int64(len(p))
		}
		r.curLen = int(n)
		size := headerSize + int(n)
		if len(p) < size {
			return 0
		}
		r.parsed += size
		r.complete++
		switch r.curState {
		case curAdmitted:
			r.headAdmitted = r.curSize
		case curWaiting:
			// Complete within the window after all: stop waiting. A late
			// admission carries an old sequence number and is given back.
			r.budget.cancel(r)
		}
		r.curLen, r.curState, r.curSize = 0, curPlain, 0
	}
}

// admitCurLocked decides whether the message in progress needs more
// window than the stream has and, if so, asks the budget for its size. Only
// a message the consumer is ready for is admitted: while complete messages
// wait unread, the next one stays within the stream's window, so a consumer
// that stops reading holds at most one admitted message and one window. It
// returns the stream window increment to send.
func (r *recvBuffer) admitCurLocked() uint32 {
	have := r.unread() - r.parsed
	if r.raw || r.eof || r.tooBig >= 0 || have < headerSize || r.curState != curPlain || r.complete > 0 {
		return r.grantLocked(false)
	}
	size := int64(headerSize + r.curLen)
	if size-int64(have) <= r.win {
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
// returns the stream increment; the connection's is sent here. The buffer
// still grows only as bytes arrive: a peer that is granted the window and
// never uses it holds budget, but no memory.
func (r *recvBuffer) admittedLocked(size int64) uint32 {
	r.curState, r.curSize = curAdmitted, size
	r.target += size
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
	d := grant(r.target, r.win, r.buffered, r.w0, urgent)
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
// to the windows and the budget. It reports whether the peer had ended
// its half (END_STREAM), and whether it was still sending (neither that
// nor a failure).
func (r *recvBuffer) release() (peerEnded, sending bool) {
	r.mu.Lock()
	peerEnded, sending = r.eof, !r.eof && r.err == nil
	if r.closed {
		r.mu.Unlock()
		return peerEnded, sending
	}
	r.closed = true
	held := r.buffered
	// A lent message's admission moved to the consumer, which returns it
	// in consume; headAdmitted is that of an unlent head.
	budget := r.headAdmitted
	switch r.curState {
	case curAdmitted:
		budget += r.curSize
	case curWaiting:
		r.budget.cancel(r)
	}
	if r.buf != nil {
		if r.lent {
			r.orphan = r.buf
		} else {
			putBuf(r.buf)
		}
		r.buf = nil
	}
	r.off, r.parsed, r.complete, r.curState, r.headAdmitted = 0, 0, 0, curPlain, 0
	r.buffered = 0
	r.mu.Unlock()
	if held != 0 || budget != 0 {
		r.budget.release(budget)
		if inc := r.cf.adjust(held, -budget, false); inc > 0 {
			r.w.push(item{kind: itWindowUpdate, n2: inc})
		}
	}
	return peerEnded, sending
}

// next waits for a whole message and lends it; the caller decodes it and
// then calls consume. done aborts the wait. At a clean end of stream it
// returns io.EOF; a message over the limit is RESOURCE_EXHAUSTED.
func (r *recvBuffer) next(done <-chan struct{}, doneErr func() error) (rmsg, error) {
	r.mu.Lock()
	for {
		if r.complete > 0 && !r.closed {
			b := (*r.buf)[r.off:]
			n := int(binary.BigEndian.Uint32(b[1:5]))
			m := rmsg{body: b[headerSize : headerSize+n : headerSize+n], flag: b[0], size: headerSize + n, admitted: r.headAdmitted}
			r.headAdmitted = 0
			r.lent = true
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
			if r.unread() > 0 {
				err = status.New(status.Internal, "grpc: stream ended in the middle of a message")
			}
			r.mu.Unlock()
			return rmsg{}, err
		}
		if !r.waitLocked(done) {
			return rmsg{}, doneErr()
		}
	}
}

// waitLocked releases r.mu until the connection's reader delivers more or
// done is closed; it reports whether it holds r.mu again (false: done).
func (r *recvBuffer) waitLocked(done <-chan struct{}) bool {
	if r.sig == nil {
		r.sig = make(chan struct{}, 1)
	}
	sig := r.sig
	r.mu.Unlock()
	select {
	case <-sig:
		r.mu.Lock()
		return true
	case <-done:
		return false
	}
}

// consume ends the loan of a message taken by next once it is decoded,
// frees its bytes and grants the window they free.
func (r *recvBuffer) consume(m rmsg) {
	r.mu.Lock()
	r.lent = false
	if r.old != nil {
		putBuf(r.old)
		r.old = nil
	}
	if r.closed {
		// release has returned the stream's bytes, but not the admission
		// of this message, which it could not see.
		if r.orphan != nil {
			putBuf(r.orphan)
			r.orphan = nil
		}
		r.mu.Unlock()
		if m.admitted > 0 {
			r.budget.release(m.admitted)
			r.sendWindow(0, r.cf.adjust(0, -m.admitted, false))
		}
		return
	}
	r.off += m.size
	r.parsed -= m.size
	r.complete--
	if r.off == len(*r.buf) {
		// Empty: back to the pool, so that a stream that ends or idles
		// holds nothing.
		putBuf(r.buf)
		r.buf, r.off = nil, 0
	} else if r.off > cap(*r.buf)/2 {
		n := copy(*r.buf, (*r.buf)[r.off:])
		*r.buf = (*r.buf)[:n]
		r.off = 0
	}
	n := int64(m.size)
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
	return r.complete > 0 || r.unread() > 0 || r.tooBig >= 0
}

// wholeReadyLocked reports, for a call that waits for its whole request,
// whether it can start: the request has ended, or it is already wrong (a
// message over the limit, or a second message).
func (r *recvBuffer) wholeReadyLocked() bool {
	return r.eof || r.err != nil || r.tooBig >= 0 || r.complete > 1 || (r.complete == 1 && r.unread() > r.parsed)
}

// peerEnded reports whether the peer sent END_STREAM.
func (r *recvBuffer) peerEnded() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.eof
}

// readRaw reads a raw buffer's bytes into p, waiting for some; it grants
// the window they free. done aborts the wait. At the end of the stream it
// returns io.EOF.
func (r *recvBuffer) readRaw(p []byte, done <-chan struct{}, doneErr func() error) (int, error) {
	r.mu.Lock()
	for {
		if n := r.unread(); n > 0 && !r.closed && len(p) > 0 {
			k := copy(p, (*r.buf)[r.off:])
			r.off += k
			if r.off == len(*r.buf) {
				putBuf(r.buf)
				r.buf, r.off = nil, 0
			} else if r.off > cap(*r.buf)/2 {
				m := copy(*r.buf, (*r.buf)[r.off:])
				*r.buf = (*r.buf)[:m]
				r.off = 0
			}
			r.buffered -= int64(k)
			inc := r.grantLocked(false)
			r.mu.Unlock()
			r.sendWindow(inc, r.cf.adjust(int64(k), 0, false))
			return k, nil
		}
		switch {
		case len(p) == 0:
			r.mu.Unlock()
			return 0, nil
		case r.err != nil:
			err := r.err
			r.mu.Unlock()
			return 0, err
		case r.eof:
			r.mu.Unlock()
			return 0, io.EOF
		case r.closed:
			r.mu.Unlock()
			return 0, io.ErrUnexpectedEOF
		}
		if !r.waitLocked(done) {
			return 0, doneErr()
		}
	}
}
