package transport

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"net"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// The writer is the single goroutine that writes a connection's frames.
// Readers and stream goroutines push items into its queue; it encodes them
// in order, applies flow control, and flushes one buffered write per batch.
// Owning the hpack encoder here keeps header blocks in wire order, and
// owning send windows here means flow control needs no locks.

type itemKind uint8

const (
	itHeaders      itemKind = iota // a stream's leading headers (request or response)
	itData                         // message bytes, possibly ending the stream
	itTrailers                     // a server stream's trailers, or a trailers-only response
	itRST                          // reset a stream
	itCancel                       // forget a stream's queued items without a frame
	itWindowUpdate                 // grant the peer receive window
	itPing                         // send a PING
	itPingAck                      // answer a PING
	itSettingsAck                  // acknowledge the peer's SETTINGS
	itGoAway                       // send GOAWAY
	itPeerWindow                   // the peer granted us send window
	itPeerSettings                 // the peer changed its initial window or frame size
)

type item struct {
	kind  itemKind
	end   bool
	code  http2.ErrCode
	ws    *wstate
	n     uint32 // window increment, stream id, or setting value
	n2    uint32 // second setting value
	buf   *[]byte
	off   int
	ping  [8]byte
	debug string
	// rstAfter asks for RST_STREAM(NO_ERROR) after a server's trailers,
	// telling a client that is still sending to stop.
	rstAfter bool
}

// headerSource is a stream that knows which header fields to write.
type headerSource interface {
	// writeHeaderFields encodes the header block for kind with enc and
	// reports whether it ends the stream.
	writeHeaderFields(enc *hpack.Encoder, kind itemKind) (endStream bool)
	// opened tells a client stream the id the writer assigned to it, just
	// before its HEADERS are written. It returns false if the stream was
	// already abandoned.
	opened(id uint32) bool
	// sent is called once the writer is done with the stream: its last
	// frame is written, or it was reset. A server stream stays in its
	// connection's table until then, so window updates for a response
	// still waiting on flow control reach it.
	sent()
	// flowError is called when the peer overflowed the stream's send
	// window; the writer has reset the stream with FLOW_CONTROL_ERROR.
	flowError()
}

// wstate is a stream's send-side state. Fields above the line are owned by
// the writer goroutine; the quota is shared with the stream's senders.
type wstate struct {
	id      uint32
	src     headerSource
	delta   int64 // send window relative to the peer's initial window
	pending []item
	blocked bool
	ended   bool // our END_STREAM is written: no more headers or data
	closed  bool // reset or forgotten: nothing more at all, not even RST
	told    bool // src.sent has been called

	qmu    sync.Mutex
	queued int
	qsig   chan struct{}
	qdone  bool
}

// acquire reserves n bytes of the stream's send quota, waiting while more
// than sendQuota bytes are queued. A message larger than the quota is let
// through alone.
func (ws *wstate) acquire(n int, done <-chan struct{}) bool {
	ws.qmu.Lock()
	for ws.queued > 0 && ws.queued+n > sendQuota && !ws.qdone {
		if ws.qsig == nil {
			ws.qsig = make(chan struct{}, 1)
		}
		sig := ws.qsig
		ws.qmu.Unlock()
		select {
		case <-sig:
		case <-done:
			return false
		}
		ws.qmu.Lock()
	}
	ok := !ws.qdone
	if ok {
		ws.queued += n
	}
	ws.qmu.Unlock()
	return ok
}

// add counts n bytes as queued without waiting: the last message of a
// stream is let through whatever the quota, as nothing follows it.
func (ws *wstate) add(n int) {
	ws.qmu.Lock()
	ws.queued += n
	ws.qmu.Unlock()
}

// hasQueued reports whether data the stream sent is still with the writer.
func (ws *wstate) hasQueued() bool {
	ws.qmu.Lock()
	defer ws.qmu.Unlock()
	return ws.queued > 0
}

func (ws *wstate) release(n int, done bool) {
	ws.qmu.Lock()
	ws.queued -= n
	if done {
		ws.qdone = true
	}
	if ws.qsig != nil {
		select {
		case ws.qsig <- struct{}{}:
		default:
		}
	}
	ws.qmu.Unlock()
}

// maxQueuedControl bounds the frames a peer's own frames make us queue
// (PING and SETTINGS acknowledgements, resets, window updates): past it
// the connection's reader stops reading until the writer catches up, so a
// peer that floods us and never reads our answers cannot grow the queue.
const maxQueuedControl = 1000

var errWindowOverflow = errors.New("transport: peer overflowed the connection's send window")

type writer struct {
	mu     sync.Mutex
	queue  []item
	closed bool
	wake   chan struct{}
	done   chan struct{}

	// ctrl counts queued control items; room is signalled when it drops
	// below maxQueuedControl.
	ctrl atomic.Int32
	room chan struct{}
	// wroteData is set when HEADERS or DATA go out; the keepalive policy
	// forgives a peer's PINGs after we have sent something.
	wroteData atomic.Bool
	// streams is how many calls may be queueing items (handlers running,
	// or a client's open streams), kept by the connection. With one, the
	// writer flushes without waiting for others to add to the write.
	streams atomic.Int32

	// Owned by the writer goroutine.
	spare      []item
	conn       net.Conn
	bw         *bufio.Writer
	fr         *http2.Framer
	henc       *hpack.Encoder
	hbuf       bytes.Buffer
	connWindow int64
	initWindow int64
	maxFrame   uint32
	blocked    []*wstate
	nextID     uint32
	onError    func(error)
	failed     bool
	// writeTimeout bounds each write to the connection; armedAt is when
	// the current deadline was set.
	writeTimeout time.Duration
	armedAt      time.Time
	// frameHdr is reused for every DATA frame header: a local array would
	// escape through bufio.Writer's io.Writer and cost an allocation.
	frameHdr [9]byte
}

func newWriter(conn net.Conn, bufSize int, writeTimeout time.Duration, onError func(error)) *writer {
	w := &writer{
		wake:         make(chan struct{}, 1),
		done:         make(chan struct{}),
		room:         make(chan struct{}, 1),
		writeTimeout: writeTimeout,
		conn:         conn,
		bw:           bufio.NewWriterSize(conn, bufSize),
		connWindow:   defaultWindowSize,
		initWindow:   defaultWindowSize,
		maxFrame:     defaultMaxFrameSize,
		nextID:       1,
		onError:      onError,
	}
	w.fr = http2.NewFramer(w.bw, nil)
	w.henc = hpack.NewEncoder(&w.hbuf)
	return w
}

// isControl reports whether an item is a connection-management frame,
// counted against maxQueuedControl.
func (k itemKind) isControl() bool {
	switch k {
	case itRST, itWindowUpdate, itPing, itPingAck, itSettingsAck, itGoAway:
		return true
	}
	return false
}

// push queues an item; it reports false when the writer has stopped, in
// which case the item's buffer has been released.
func (w *writer) push(it item) bool {
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		w.discard(&it)
		return false
	}
	if it.kind.isControl() {
		w.ctrl.Add(1)
	}
	w.queue = append(w.queue, it)
	w.mu.Unlock()
	select {
	case w.wake <- struct{}{}:
	default:
	}
	return true
}

// pushN queues items atomically, e.g. a response's headers, message and
// trailers, so they are written together.
func (w *writer) pushN(items ...item) bool {
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		for i := range items {
			w.discard(&items[i])
		}
		return false
	}
	for i := range items {
		if items[i].kind.isControl() {
			w.ctrl.Add(1)
		}
	}
	w.queue = append(w.queue, items...)
	w.mu.Unlock()
	select {
	case w.wake <- struct{}{}:
	default:
	}
	return true
}

// close stops the writer after it has written what is queued.
func (w *writer) close() {
	w.mu.Lock()
	w.closed = true
	w.mu.Unlock()
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// waitRoom blocks while the writer holds maxQueuedControl control items,
// for at most limit. It reports false if the writer stopped or the limit
// passed with the queue still full: the peer is not reading.
func (w *writer) waitRoom(limit time.Duration) bool {
	if w.ctrl.Load() < maxQueuedControl {
		return true
	}
	t := time.NewTimer(limit)
	defer t.Stop()
	for w.ctrl.Load() >= maxQueuedControl {
		select {
		case <-w.room:
		case <-w.done:
			return false
		case <-t.C:
			return false
		}
	}
	return true
}

// run writes the queue. After a batch, when more than one call is under
// way, it yields once, so that handlers made runnable by the reader can
// queue their responses into the same write, then flushes whatever it
// holds: at most one yield per flush, so a busy connection never keeps
// responses in its buffer. With one call (a ping-pong stream, one caller)
// there is nobody to wait for, and it flushes at once.
func (w *writer) run() {
	defer close(w.done)
	yielded := false
	for {
		w.mu.Lock()
		if len(w.queue) == 0 {
			closed := w.closed
			w.mu.Unlock()
			if w.bw.Buffered() > 0 && !w.failed {
				if !yielded && w.streams.Load() > 1 {
					yielded = true
					runtime.Gosched()
					continue
				}
				w.flush()
			}
			yielded = false
			if closed {
				w.releaseAll()
				return
			}
			<-w.wake
			continue
		}
		q := w.queue
		w.queue = w.spare[:0]
		w.mu.Unlock()
		w.arm()
		ctrl := int32(0)
		for i := range q {
			if q[i].kind.isControl() {
				ctrl++
			}
			if w.failed {
				w.discard(&q[i])
			} else {
				w.handle(&q[i])
			}
			q[i] = item{}
		}
		w.spare = q[:0]
		if ctrl > 0 && w.ctrl.Add(-ctrl) < maxQueuedControl {
			select {
			case w.room <- struct{}{}:
			default:
			}
		}
		if yielded && w.bw.Buffered() > 0 && !w.failed {
			w.flush()
			yielded = false
		}
	}
}

// arm sets the write deadline for the writes to come, renewing it only
// when an eighth of it has passed, so that most batches cost no syscall.
func (w *writer) arm() {
	if w.writeTimeout <= 0 {
		return
	}
	now := time.Now()
	if now.Sub(w.armedAt) > w.writeTimeout/8 {
		w.conn.SetWriteDeadline(now.Add(w.writeTimeout))
		w.armedAt = now
	}
}

func (w *writer) flush() {
	w.arm()
	if err := w.bw.Flush(); err != nil {
		w.fail(err)
	}
}

func (w *writer) fail(err error) {
	if w.failed {
		return
	}
	w.failed = true
	w.onError(err)
}

// discard releases what an unwritten item holds. A client stream whose
// headers are dropped is told, so its call ends instead of waiting.
func (w *writer) discard(it *item) {
	if it.kind == itHeaders && it.ws != nil && it.ws.id == 0 {
		it.ws.src.opened(0) // idempotent: ends the call once
	}
	if it.kind == itData && it.ws != nil {
		n := 0
		if it.buf != nil {
			n = len(*it.buf)
			putBuf(it.buf)
			it.buf = nil
		}
		it.ws.release(n, true)
	}
}

func (w *writer) releaseAll() {
	for _, ws := range w.blocked {
		w.dropPending(ws)
	}
	w.blocked = nil
}

func (w *writer) dropPending(ws *wstate) {
	for i := range ws.pending {
		w.discard(&ws.pending[i])
	}
	ws.pending = nil
}

func (w *writer) handle(it *item) {
	switch it.kind {
	case itHeaders, itTrailers, itData:
		ws := it.ws
		if ws.closed || ws.ended {
			w.discard(it)
			return
		}
		if len(ws.pending) > 0 {
			ws.pending = append(ws.pending, *it)
			return
		}
		if !w.writeStreamItem(it) {
			ws.pending = append(ws.pending, *it)
			w.block(ws)
		}
	case itRST:
		ws := it.ws
		if ws != nil {
			if ws.closed {
				return
			}
			w.closeStream(ws)
			if ws.id == 0 {
				ws.src.opened(0)
				return
			}
			it.n = ws.id
		}
		w.check(w.fr.WriteRSTStream(it.n, it.code))
	case itCancel:
		if !it.ws.closed {
			w.closeStream(it.ws)
		}
	case itWindowUpdate:
		w.check(w.fr.WriteWindowUpdate(it.n, it.n2))
	case itPing:
		w.check(w.fr.WritePing(false, it.ping))
	case itPingAck:
		w.check(w.fr.WritePing(true, it.ping))
	case itSettingsAck:
		w.check(w.fr.WriteSettingsAck())
	case itGoAway:
		w.check(w.fr.WriteGoAway(it.n, it.code, []byte(it.debug)))
	case itPeerWindow:
		if it.ws == nil {
			if w.connWindow+int64(it.n) > maxWindow {
				w.check(w.fr.WriteGoAway(0, http2.ErrCodeFlowControl, []byte("WINDOW_UPDATE overflows the connection window")))
				w.flush()
				w.fail(errWindowOverflow)
				return
			}
			w.connWindow += int64(it.n)
			w.drainBlocked()
		} else if !it.ws.closed {
			if w.initWindow+it.ws.delta+int64(it.n) > maxWindow {
				ws := it.ws
				w.closeStream(ws)
				w.check(w.fr.WriteRSTStream(ws.id, http2.ErrCodeFlowControl))
				ws.src.flowError()
				return
			}
			it.ws.delta += int64(it.n)
			if len(it.ws.pending) > 0 {
				w.drainStream(it.ws)
			}
		}
	case itPeerSettings:
		// n: max frame size (0: unchanged); n2 with end: initial window;
		// off: header table size + 1 (0: unchanged).
		if it.n != 0 {
			w.maxFrame = it.n
		}
		if it.off > 0 {
			w.henc.SetMaxDynamicTableSizeLimit(uint32(it.off - 1))
		}
		if it.end {
			w.initWindow = int64(it.n2)
			w.drainBlocked()
		}
	}
}

// endStream records that our END_STREAM went out and tells the stream.
func (w *writer) endStream(ws *wstate) {
	ws.ended = true
	w.tell(ws)
}

// closeStream forgets a stream: its queued items are dropped and nothing
// more is written for it.
func (w *writer) closeStream(ws *wstate) {
	ws.closed = true
	w.dropPending(ws)
	if ws.blocked {
		for i, b := range w.blocked {
			if b == ws {
				w.blocked = append(w.blocked[:i], w.blocked[i+1:]...)
				break
			}
		}
		ws.blocked = false
	}
	w.tell(ws)
}

func (w *writer) tell(ws *wstate) {
	if !ws.told {
		ws.told = true
		ws.src.sent()
	}
}

func (w *writer) check(err error) {
	if err != nil {
		w.fail(err)
	}
}

func (w *writer) block(ws *wstate) {
	if !ws.blocked {
		ws.blocked = true
		w.blocked = append(w.blocked, ws)
	}
}

// drainStream writes a stream's parked items in order until one blocks.
func (w *writer) drainStream(ws *wstate) {
	i := 0
	for ; i < len(ws.pending); i++ {
		if !w.writeStreamItem(&ws.pending[i]) {
			break
		}
		ws.pending[i] = item{}
	}
	n := copy(ws.pending, ws.pending[i:])
	ws.pending = ws.pending[:n]
	if n > 0 {
		w.block(ws)
	}
}

func (w *writer) drainBlocked() {
	list := w.blocked
	w.blocked = nil
	for _, ws := range list {
		ws.blocked = false
	}
	for _, ws := range list {
		if !ws.closed && len(ws.pending) > 0 {
			w.drainStream(ws)
		}
	}
}

// writeStreamItem writes a stream item, reporting false if flow control
// stopped it; a partly written DATA item records its progress in it.off.
func (w *writer) writeStreamItem(it *item) bool {
	ws := it.ws
	switch it.kind {
	case itHeaders, itTrailers:
		if ws.id == 0 {
			id := w.nextID
			w.nextID += 2
			if !ws.src.opened(id) {
				ws.closed = true
				w.tell(ws)
				return true
			}
			ws.id = id
		}
		w.hbuf.Reset()
		w.noteData()
		end := ws.src.writeHeaderFields(w.henc, it.kind)
		w.writeHeaderBlock(ws.id, end, w.hbuf.Bytes())
		if end {
			w.endStream(ws)
			if it.rstAfter {
				w.check(w.fr.WriteRSTStream(ws.id, http2.ErrCodeNo))
			}
		}
		return true
	}
	var data []byte
	if it.buf != nil {
		data = (*it.buf)[it.off:]
	}
	for {
		n := len(data)
		if n > int(w.maxFrame) {
			n = int(w.maxFrame)
		}
		if sw := w.initWindow + ws.delta; int64(n) > sw {
			n = int(max(sw, 0))
		}
		if int64(n) > w.connWindow {
			n = int(max(w.connWindow, 0))
		}
		if n == 0 && len(data) > 0 {
			return false
		}
		end := it.end && n == len(data)
		w.noteData()
		w.writeDataFrame(ws.id, end, data[:n])
		w.connWindow -= int64(n)
		ws.delta -= int64(n)
		data = data[n:]
		it.off += n
		if len(data) == 0 {
			break
		}
	}
	total := 0
	if it.buf != nil {
		total = len(*it.buf)
		putBuf(it.buf)
		it.buf = nil
	}
	if it.end {
		w.endStream(ws)
		if it.rstAfter {
			w.check(w.fr.WriteRSTStream(ws.id, http2.ErrCodeNo))
		}
	}
	ws.release(total, it.end)
	return true
}

func (w *writer) noteData() {
	if !w.wroteData.Load() {
		w.wroteData.Store(true)
	}
}

// writeDataFrame writes a DATA frame straight into the buffered writer,
// saving the Framer's copy of the payload.
func (w *writer) writeDataFrame(id uint32, end bool, data []byte) {
	hdr := &w.frameHdr
	hdr[0], hdr[1], hdr[2] = byte(len(data)>>16), byte(len(data)>>8), byte(len(data))
	hdr[3] = byte(http2.FrameData)
	hdr[4] = 0
	if end {
		hdr[4] = byte(http2.FlagDataEndStream)
	}
	binary.BigEndian.PutUint32(hdr[5:], id)
	if _, err := w.bw.Write(hdr[:]); err != nil {
		w.fail(err)
		return
	}
	if _, err := w.bw.Write(data); err != nil {
		w.fail(err)
	}
}

func (w *writer) writeHeaderBlock(id uint32, end bool, block []byte) {
	first := true
	for first || len(block) > 0 {
		n := len(block)
		if n > int(w.maxFrame) {
			n = int(w.maxFrame)
		}
		frag := block[:n]
		block = block[n:]
		last := len(block) == 0
		var err error
		if first {
			err = w.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: frag, EndStream: end, EndHeaders: last})
			first = false
		} else {
			err = w.fr.WriteContinuation(id, last, frag)
		}
		if err != nil {
			w.fail(err)
			return
		}
	}
}
