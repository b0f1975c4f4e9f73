package transport

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/protoc-gen-micro/micro/internal/wire"
	"github.com/protoc-gen-micro/micro/runtime/status"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// connError is a connection-level protocol error: the reader sends GOAWAY
// with code and closes.
type connError struct {
	code http2.ErrCode
	msg  string
}

func (e connError) Error() string { return "transport: " + e.code.String() + ": " + e.msg }

// streamError is a stream-level protocol error: the stream is reset with
// code and the connection goes on.
type streamError struct {
	code http2.ErrCode
	msg  string
}

func (e streamError) Error() string { return "transport: stream " + e.code.String() + ": " + e.msg }

// drainPing marks the PING sent with the first GOAWAY of a graceful close;
// keepalivePing the PING that checks a silent connection is alive.
var (
	drainPing     = [8]byte{'d', 'r', 'a', 'i', 'n', 'i', 'n', 'g'}
	keepalivePing = [8]byte{'k', 'e', 'e', 'p', 'a', 'l', 'v', 'e'}
)

// Abuse limits. A peer that sends more frames doing nothing useful than
// wasteBurst at once, or than wasteRate a second over time, is told
// ENHANCE_YOUR_CALM and disconnected.
const (
	wasteBurst = 1000
	wasteRate  = 100 // a second
	// closedRing is how many closed streams are remembered, so that a
	// frame the peer sent before it saw our reset is ignored, not fatal.
	closedRing = 64
	// maxPingStrikes PINGs closer than PingMinTime are forgiven.
	maxPingStrikes = 2
)

type serverConn struct {
	srv        *Server
	cfg        *ServerConfig
	conn       net.Conn
	br         *bufio.Reader
	fr         *http2.Framer
	w          *writer
	hdec       *hpack.Decoder
	flow       *connFlow
	readerDone chan struct{}
	activity   atomic.Bool // a frame arrived since the last keepalive check

	mu        sync.Mutex
	started   bool // the preface arrived and the writer runs
	streams   map[uint32]*ServerStream
	lastID    uint32
	draining  bool
	finalSent bool // the final GOAWAY is out: streams above lastID are refused
	closed    bool
	shutOnce  sync.Once
	running   int             // handlers started and not yet returned
	queued    []*ServerStream // ready to run, waiting for a handler slot
	opened    uint64          // streams accepted so far, for the idle check
	closedIDs [closedRing]closedStream
	closedPos int
	timers    []*time.Timer
	pingOut   bool // a keepalive PING awaits its ACK

	// Owned by the reader goroutine.
	hb headerBlock
	// pending are streams ready for their handler, started once the
	// reader has handled every frame already received: a burst of frames
	// is read whole before any handler answers, so a protocol error later
	// in the burst is seen before a response goes out, and responses to a
	// burst of calls leave in one batch.
	pending       []*ServerStream
	pendingFrames int
	wasteTokens   float64
	wasteAt       time.Time
	lastPing      time.Time
	pingStrikes   int
}

// closedStream remembers how a stream ended.
type closedStream struct {
	id uint32
	// reset: we ended it while the client could still be sending, so its
	// late frames are expected and ignored. Otherwise both sides ended it
	// and a further frame is a STREAM_CLOSED error.
	reset bool
}

func newServerConn(s *Server, c net.Conn) *serverConn {
	cfg := &s.cfg
	sc := &serverConn{
		srv:         s,
		cfg:         cfg,
		conn:        c,
		br:          bufio.NewReaderSize(c, 32<<10),
		streams:     map[uint32]*ServerStream{},
		readerDone:  make(chan struct{}),
		flow:        newConnFlow(int64(cfg.InitialConnWindowSize), false),
		wasteTokens: wasteBurst,
	}
	sc.w = newWriter(c, 32<<10, cfg.WriteTimeout, func(error) { c.Close() })
	sc.fr = http2.NewFramer(nil, sc.br)
	sc.fr.SetReuseFrames()
	sc.fr.SetMaxReadFrameSize(defaultMaxFrameSize)
	sc.hdec = hpack.NewDecoder(4096, sc.onField)
	// A string past the list limit is still decoded (and the stream
	// refused) up to the block's wire bound, so the connection survives.
	sc.hdec.SetMaxStringLength(2*int(cfg.MaxHeaderListSize) + 64)
	return sc
}

func (sc *serverConn) serve() {
	defer sc.srv.removeConn(sc)
	defer close(sc.readerDone)
	// The preface and the first SETTINGS (and a TLS handshake before
	// them) must arrive in time: a connection that dribbles them in holds
	// a socket and buffers.
	sc.conn.SetDeadline(timeNow().Add(sc.cfg.HandshakeTimeout))
	if !sc.prelude() {
		return
	}
	if err := readPreface(sc.conn, sc.br); err != nil {
		sc.conn.Close()
		return
	}
	// The writer goroutine is not running yet, so the server's first
	// frames can be written directly.
	fr := sc.w.fr
	err := fr.WriteSettings(
		http2.Setting{ID: http2.SettingMaxConcurrentStreams, Val: sc.cfg.MaxConcurrentStreams},
		http2.Setting{ID: http2.SettingInitialWindowSize, Val: uint32(sc.cfg.InitialWindowSize)},
		http2.Setting{ID: http2.SettingMaxHeaderListSize, Val: sc.cfg.MaxHeaderListSize},
	)
	if err == nil && sc.cfg.InitialConnWindowSize > defaultWindowSize {
		err = fr.WriteWindowUpdate(0, uint32(sc.cfg.InitialConnWindowSize-defaultWindowSize))
	}
	if err == nil {
		err = sc.w.bw.Flush()
	}
	var first http2.Frame
	if err == nil {
		first, err = sc.fr.ReadFrame()
	}
	if err == nil {
		if sf, ok := first.(*http2.SettingsFrame); !ok || sf.IsAck() {
			err = connError{http2.ErrCodeProtocol, "client preface is not followed by SETTINGS"}
		}
	}
	sc.conn.SetDeadline(time.Time{})
	sc.mu.Lock()
	if err != nil || sc.closed {
		sc.closed = true
		sc.mu.Unlock()
		if ce, ok := err.(connError); ok {
			sc.w.fr.WriteGoAway(0, ce.code, []byte(ce.msg))
			if sc.w.bw.Flush() == nil {
				sc.discardInput()
			}
		}
		sc.conn.Close()
		return
	}
	sc.started = true
	sc.startTimers()
	sc.mu.Unlock()
	go sc.w.run()
	err = sc.onSettings(first.(*http2.SettingsFrame))
	if err == nil {
		err = sc.readLoop()
	}
	var ce connError
	if errors.As(err, &ce) {
		sc.mu.Lock()
		last := sc.lastID
		sc.mu.Unlock()
		sc.w.push(item{kind: itGoAway, n: last, code: ce.code, debug: ce.msg})
		sc.logf("closing connection", err)
		sc.closeConn(err, true)
		return
	}
	sc.close(err)
}

// Closing on a protocol error, the server reads and drops what the peer
// still sends for at most this long and this much: closing a socket with
// unread input resets the connection, and the reset can destroy the
// GOAWAY that says why before the peer reads it.
const (
	discardTime  = time.Second
	discardBytes = 256 << 10
)

// discardInput half-closes the connection and drops the peer's input
// until it closes its side, discardTime passes or discardBytes arrive.
func (sc *serverConn) discardInput() {
	if cw, ok := sc.conn.(interface{ CloseWrite() error }); ok {
		cw.CloseWrite()
	}
	sc.conn.SetReadDeadline(timeNow().Add(discardTime))
	io.CopyN(io.Discard, sc.conn, discardBytes)
}

func (sc *serverConn) logf(msg string, err error) {
	if sc.cfg.ErrorLog != nil {
		sc.cfg.ErrorLog(msg+" from "+sc.conn.RemoteAddr().String(), err)
	}
}

// close ends every stream and the connection. It flushes what the writer
// holds first, so a GOAWAY explaining a protocol error reaches the peer.
func (sc *serverConn) close(err error) { sc.closeConn(err, false) }

// closeConn is close; with discard, called by the reader, it also drops
// the peer's input for a moment once the writer has flushed (see
// discardInput).
func (sc *serverConn) closeConn(err error, discard bool) {
	sc.mu.Lock()
	if sc.closed {
		sc.mu.Unlock()
		return
	}
	sc.closed = true
	started := sc.started
	streams := sc.streams
	sc.streams = map[uint32]*ServerStream{}
	sc.queued = nil
	for _, t := range sc.timers {
		t.Stop()
	}
	sc.mu.Unlock()
	if !started {
		// No preface yet: no writer, no streams, nothing to flush.
		sc.conn.Close()
		return
	}
	cause := status.Errorf(status.Unavailable, "transport: connection closed: %v", err)
	for _, st := range streams {
		st.abort(cause)
		st.recv.release()
	}
	sc.w.close()
	select {
	case <-sc.w.done:
		if discard {
			sc.discardInput()
		}
	case <-time.After(time.Second):
	}
	sc.conn.Close()
	<-sc.w.done
}

func (sc *serverConn) readLoop() error {
	for {
		// Stop reading while the peer leaves our answers unread; give up
		// on it after the write timeout.
		if !sc.w.waitRoom(max(sc.cfg.WriteTimeout, time.Second)) {
			return connError{http2.ErrCodeEnhanceYourCalm, "peer does not read the frames it asks for"}
		}
		f, err := sc.fr.ReadFrame()
		if err != nil {
			if err := sc.frameError(err); err != nil {
				return err
			}
			continue
		}
		if !sc.activity.Load() { // a load is cheaper than a locked store
			sc.activity.Store(true)
		}
		switch f := f.(type) {
		case *http2.DataFrame:
			err = sc.onData(f)
		case *http2.HeadersFrame:
			err = sc.onHeaders(f)
		case *http2.ContinuationFrame:
			err = sc.onHeaderFragment(f.HeaderBlockFragment(), f.HeadersEnded())
		case *http2.RSTStreamFrame:
			err = sc.onRST(f)
		case *http2.SettingsFrame:
			err = sc.onSettings(f)
		case *http2.PingFrame:
			err = sc.onPing(f)
		case *http2.WindowUpdateFrame:
			err = sc.onWindowUpdate(f)
		case *http2.PriorityFrame:
			err = sc.onPriority(f)
		case *http2.GoAwayFrame:
			// The client is going away; its calls in flight go on.
		case *http2.PushPromiseFrame:
			err = connError{http2.ErrCodeProtocol, "client sent PUSH_PROMISE"}
		}
		// A type assertion, not errors.As: the target would escape and
		// cost an allocation per frame.
		if se, ok := err.(streamError); ok {
			sc.resetStream(f.Header().StreamID, se.code)
			err = nil
		}
		if err != nil {
			return err
		}
		if len(sc.pending) > 0 {
			// Start them once no whole frame is left to read, or after
			// a bounded number of frames, so that a peer that keeps the
			// buffer full cannot hold its own calls back for long.
			sc.pendingFrames++
			if sc.pendingFrames >= 1024 || !sc.frameBuffered() {
				sc.startPending()
			}
		}
	}
}

// frameBuffered reports whether a whole frame is already in the read
// buffer, so that reading it will not block.
func (sc *serverConn) frameBuffered() bool {
	n := sc.br.Buffered()
	if n < 9 {
		return false
	}
	h, _ := sc.br.Peek(9)
	return n >= 9+(int(h[0])<<16|int(h[1])<<8|int(h[2]))
}

func (sc *serverConn) startPending() {
	for i, st := range sc.pending {
		sc.start(st)
		sc.pending[i] = nil
	}
	sc.pending = sc.pending[:0]
	sc.pendingFrames = 0
}

// frameError turns an error of the framer into what the reader does: a
// stream reset (nil), or the error that ends the connection.
func (sc *serverConn) frameError(err error) error {
	id, code, err := classifyFrameError(sc.fr, err)
	if err == nil {
		sc.resetStream(id, code)
	}
	return err
}

// classifyFrameError sorts an error of x/net's framer: a stream error, to
// be answered by resetting stream id with code, or (err non-nil) the
// error that ends the connection. x/net's connection errors may come
// without detail; nothing here assumes one.
func classifyFrameError(fr *http2.Framer, err error) (id uint32, code http2.ErrCode, connErr error) {
	var se http2.StreamError
	if errors.As(err, &se) {
		if se.StreamID == 0 {
			return 0, 0, connError{se.Code, "stream error on stream 0"}
		}
		return se.StreamID, se.Code, nil
	}
	var ce http2.ConnectionError
	if errors.As(err, &ce) {
		msg := "malformed frame"
		if d := fr.ErrorDetail(); d != nil {
			msg = d.Error()
		}
		return 0, 0, connError{http2.ErrCode(ce), msg}
	}
	if errors.Is(err, http2.ErrFrameTooLarge) {
		return 0, 0, connError{http2.ErrCodeFrameSize, "frame larger than the advertised maximum"}
	}
	return 0, 0, err
}

// waste charges the peer for a frame that does nothing useful (an empty
// DATA, a stream reset before its handler ran, a refused stream, a PRIORITY,
// a SETTINGS); a peer that keeps sending them is told to calm down.
func (sc *serverConn) waste(what string) error {
	now := timeNow()
	if !sc.wasteAt.IsZero() {
		sc.wasteTokens = min(wasteBurst, sc.wasteTokens+now.Sub(sc.wasteAt).Seconds()*wasteRate)
	}
	sc.wasteAt = now
	sc.wasteTokens--
	if sc.wasteTokens < 0 {
		return connError{http2.ErrCodeEnhanceYourCalm, "too many " + what}
	}
	return nil
}

func (sc *serverConn) lookup(id uint32) *ServerStream {
	sc.mu.Lock()
	st := sc.streams[id]
	sc.mu.Unlock()
	return st
}

// resetStream ends a stream with RST_STREAM after a stream error.
func (sc *serverConn) resetStream(id uint32, code http2.ErrCode) {
	sc.mu.Lock()
	st := sc.streams[id]
	if st != nil {
		delete(sc.streams, id)
		sc.unqueueLocked(st)
	}
	sc.rememberLocked(id, true)
	sc.mu.Unlock()
	if st != nil {
		// The RST goes in the queue before the handler hears of the
		// reset: the trailers it may then write come after it and are
		// dropped, so the client learns why the stream ended.
		sc.w.push(item{kind: itRST, ws: &st.ws, code: code})
		st.abort(status.Errorf(status.Internal, "transport: stream error: %v", code))
		st.recv.release()
		sc.checkIdle()
		return
	}
	sc.w.push(item{kind: itRST, n: id, code: code})
}

// rememberLocked records a closed stream in the ring.
func (sc *serverConn) rememberLocked(id uint32, reset bool) {
	sc.closedIDs[sc.closedPos] = closedStream{id, reset}
	sc.closedPos = (sc.closedPos + 1) % closedRing
}

// closedState reports how a stream not in the table ended: known is false
// when it is too old to remember.
func (sc *serverConn) closedState(id uint32) (reset, known bool) {
	sc.mu.Lock()
	defer sc.mu.Unlock()
	for _, c := range sc.closedIDs {
		if c.id == id {
			return c.reset, true
		}
	}
	return false, false
}

// headerBlock is the state of the header block being decoded.
type headerBlock struct {
	active   bool
	id       uint32
	st       *ServerStream // the new stream the block opens
	trailers *ServerStream // or the stream it ends
	end      bool          // END_STREAM was on the HEADERS
	// ignore decodes the block only to keep HPACK's state: its stream was
	// reset.
	ignore    bool
	size      int    // decoded size so far, as HTTP/2 counts it
	wire      int    // wire bytes so far, 9 a frame included
	invalid   string // why the block is malformed, if it is
	truncated bool   // over MaxHeaderListSize
	regular   bool   // a regular field was seen: no pseudo-header may follow
	pseudo    uint8  // pseudo-headers seen
	// contentLength is the request's content-length, -1 when it has none.
	contentLength int64
	req           reqHeaders
}

const (
	seenMethod uint8 = 1 << iota
	seenScheme
	seenPath
	seenAuthority
)

func (sc *serverConn) onHeaders(f *http2.HeadersFrame) error {
	id := f.StreamID
	if id%2 == 0 {
		return connError{http2.ErrCodeProtocol, fmt.Sprintf("client opened even stream %d", id)}
	}
	sc.hb = headerBlock{active: true, id: id, end: f.StreamEnded(), contentLength: -1}
	sc.hdec.SetEmitEnabled(true)
	if f.HasPriority() && f.Priority.StreamDep == id {
		sc.hb.invalid = "stream depends on itself"
	}
	sc.mu.Lock()
	st := sc.streams[id]
	last := sc.lastID
	if st == nil && id > last {
		sc.lastID = id
	}
	sc.mu.Unlock()
	switch {
	case st != nil:
		// Trailers from the client: they end its half of the stream.
		if st.recv.peerEnded() {
			sc.hb.ignore = true
			sc.hb.invalid = "HEADERS after END_STREAM"
		} else if !f.StreamEnded() {
			sc.hb.invalid = "second HEADERS without END_STREAM"
		}
		sc.hb.trailers = st
	case id <= last:
		reset, known := sc.closedState(id)
		if !known || !reset {
			return connError{http2.ErrCodeStreamClosed, fmt.Sprintf("HEADERS on closed stream %d", id)}
		}
		// A stream we reset: the client sent this before it knew.
		sc.hb.ignore = true
		if err := sc.waste("frames on reset streams"); err != nil {
			return err
		}
	default:
		sc.hb.st = newServerStream(sc, id)
	}
	return sc.onHeaderFragment(f.HeaderBlockFragment(), f.HeadersEnded())
}

func (sc *serverConn) onHeaderFragment(frag []byte, end bool) error {
	hb := &sc.hb
	if !hb.active {
		return connError{http2.ErrCodeProtocol, "CONTINUATION without HEADERS"}
	}
	// A block's wire size is bounded too: past twice the header list
	// limit (each frame costing its 9-byte header) the peer is flooding
	// us with CONTINUATION, and the connection ends.
	hb.wire += len(frag) + 9
	if hb.wire > 2*int(sc.cfg.MaxHeaderListSize)+64 {
		return connError{http2.ErrCodeEnhanceYourCalm, "header block too large (CONTINUATION flood)"}
	}
	if len(frag) == 0 && !end {
		if err := sc.waste("empty header fragments"); err != nil {
			return err
		}
	}
	if _, err := sc.hdec.Write(frag); err != nil {
		return connError{http2.ErrCodeCompression, err.Error()}
	}
	if !end {
		return nil
	}
	if err := sc.hdec.Close(); err != nil {
		return connError{http2.ErrCodeCompression, err.Error()}
	}
	hb.active = false
	switch {
	case hb.ignore && hb.trailers != nil:
		return streamError{http2.ErrCodeStreamClosed, hb.invalid}
	case hb.ignore:
		return nil
	case hb.trailers != nil:
		st := hb.trailers
		hb.trailers = nil
		if hb.invalid != "" {
			return streamError{http2.ErrCodeProtocol, hb.invalid}
		}
		return sc.endOfRequest(st)
	}
	st := hb.st
	hb.st = nil
	if hb.invalid == "" && !hb.truncated {
		switch {
		case hb.pseudo&seenMethod == 0:
			hb.invalid = "missing :method"
		case hb.pseudo&seenScheme == 0:
			hb.invalid = "missing :scheme"
		case hb.pseudo&seenPath == 0 || st.method == "":
			hb.invalid = "missing or empty :path"
		}
	}
	if hb.invalid != "" {
		sc.mu.Lock()
		sc.rememberLocked(st.id, true)
		sc.mu.Unlock()
		return streamError{http2.ErrCodeProtocol, hb.invalid}
	}
	st.classify(&hb.req, sc.srv.cfg.Web != nil)
	if hb.truncated {
		code := 200
		if st.web != nil {
			code = 431 // Request Header Fields Too Large
		}
		st.reject(code, status.Errorf(status.ResourceExhausted, "header list larger than %d bytes", sc.cfg.MaxHeaderListSize))
	}
	st.contentLength = hb.contentLength
	if hb.end && st.contentLength > 0 {
		return streamError{http2.ErrCodeProtocol, "content-length does not match the DATA received"}
	}
	return sc.startStream(st, hb.end)
}

// onField receives each decoded header field of the block in progress and
// checks it against RFC 9113 §8.2 and §8.3 before the stream sees it.
func (sc *serverConn) onField(f hpack.HeaderField) {
	hb := &sc.hb
	if hb.ignore {
		return
	}
	if why := fieldError(f, hb); why != "" {
		hb.invalid = why
		sc.hdec.SetEmitEnabled(false)
		return
	}
	hb.size += len(f.Name) + len(f.Value) + 32
	if hb.size > int(sc.cfg.MaxHeaderListSize) {
		hb.truncated = true
		sc.hdec.SetEmitEnabled(false)
		return
	}
	if hb.st != nil {
		hb.st.onField(f, &hb.req)
	}
}

// fieldError returns why a request field is malformed, or "".
func fieldError(f hpack.HeaderField, hb *headerBlock) string {
	if f.Name == "" {
		return "empty header name"
	}
	if !wire.ValidFieldValue(f.Value) {
		return fmt.Sprintf("header %q has a value HTTP/2 forbids", f.Name)
	}
	if f.Name[0] == ':' {
		if hb.regular {
			return fmt.Sprintf("pseudo-header %s after a regular header", f.Name)
		}
		if hb.trailers != nil {
			return fmt.Sprintf("pseudo-header %s in trailers", f.Name)
		}
		var bit uint8
		switch f.Name {
		case ":method":
			bit = seenMethod
		case ":scheme":
			bit = seenScheme
		case ":path":
			bit = seenPath
		case ":authority":
			bit = seenAuthority
		default:
			return fmt.Sprintf("pseudo-header %q is not allowed in a request", f.Name)
		}
		if hb.pseudo&bit != 0 {
			return fmt.Sprintf("duplicate %s", f.Name)
		}
		hb.pseudo |= bit
		return ""
	}
	hb.regular = true
	if !wire.ValidFieldName(f.Name) {
		return fmt.Sprintf("header name %q is not a lower-case token", f.Name)
	}
	if connectionHeader(f.Name) {
		return fmt.Sprintf("connection-specific header %q", f.Name)
	}
	if f.Name == "te" && f.Value != "trailers" {
		return fmt.Sprintf("te header %q other than \"trailers\"", f.Value)
	}
	if f.Name == "content-length" && hb.trailers == nil {
		n, err := strconv.ParseInt(f.Value, 10, 64)
		if err != nil || n < 0 || hb.contentLength >= 0 {
			return fmt.Sprintf("content-length %q is not one non-negative number", f.Value)
		}
		hb.contentLength = n
	}
	return ""
}

// startStream accepts or refuses a stream whose headers have arrived.
func (sc *serverConn) startStream(st *ServerStream, end bool) error {
	sc.mu.Lock()
	refused := sc.closed || sc.finalSent ||
		uint32(len(sc.streams)) >= sc.cfg.MaxConcurrentStreams
	if !refused {
		sc.streams[st.id] = st
		sc.opened++
	} else {
		sc.rememberLocked(st.id, true)
	}
	sc.mu.Unlock()
	if refused {
		sc.w.push(item{kind: itRST, n: st.id, code: http2.ErrCodeRefusedStream})
		return sc.waste("streams over the limit")
	}
	if end {
		st.recv.deliver(nil, 0, true) // an empty END_STREAM: no error, and nobody waits yet
	}
	if st.rejectStatus == nil && st.web == nil {
		whole, reject := sc.srv.cfg.Handler.Route(st)
		if reject != nil {
			// Answered like a malformed request: in turn, with no handler.
			st.routeErr = reject
			sc.schedule(st)
			return nil
		}
		st.chooseSendCompression(sc.srv.sendComp)
		st.startTimer()
		if whole && !end {
			st.waitWhole = true
			return nil
		}
	}
	sc.schedule(st)
	return nil
}

// schedule makes a stream's handler start once the frames already
// received are handled (see pending).
func (sc *serverConn) schedule(st *ServerStream) { sc.pending = append(sc.pending, st) }

// start runs a stream's handler now if fewer than MaxConcurrentStreams
// run for this connection, or queues it. Handlers of streams the client
// reset keep their slot until they return, so resets cannot make us run
// more handlers than we advertised streams (CVE-2023-44487).
func (sc *serverConn) start(st *ServerStream) {
	sc.mu.Lock()
	if sc.streams[st.id] != st {
		sc.mu.Unlock()
		return // reset meanwhile
	}
	if st.rejectStatus != nil || st.routeErr != nil {
		// Refused by its headers or its route: a trailers-only answer,
		// and RST_STREAM after it if the client is still sending.
		st.started = true
		sc.mu.Unlock()
		if st.routeErr != nil {
			st.finish(st.routeErr, nil)
		} else {
			_, sending := st.recv.release()
			sc.w.push(item{kind: itTrailers, ws: &st.ws, rstAfter: sending})
		}
		return
	}
	if sc.running >= int(sc.cfg.MaxConcurrentStreams) {
		st.queued = true
		sc.queued = append(sc.queued, st)
		sc.mu.Unlock()
		return
	}
	sc.running++
	sc.w.streams.Store(int32(sc.running))
	st.started = true
	sc.mu.Unlock()
	sc.srv.dispatch(st)
}

// handlerDone is called when a stream's handler returns; it starts the
// next queued one.
func (sc *serverConn) handlerDone() {
	sc.mu.Lock()
	sc.running--
	var next *ServerStream
	if len(sc.queued) > 0 && sc.running < int(sc.cfg.MaxConcurrentStreams) {
		next = sc.queued[0]
		sc.queued[0] = nil
		sc.queued = sc.queued[1:]
		next.queued = false
		next.started = true
		sc.running++
	}
	sc.w.streams.Store(int32(sc.running))
	sc.mu.Unlock()
	if next != nil {
		sc.srv.dispatch(next)
	}
}

func (sc *serverConn) unqueueLocked(st *ServerStream) {
	if !st.queued {
		return
	}
	st.queued = false
	for i, q := range sc.queued {
		if q == st {
			sc.queued = append(sc.queued[:i], sc.queued[i+1:]...)
			return
		}
	}
}

// endOfRequest marks the client's half of a stream ended and starts a
// handler that was waiting for the whole request.
func (sc *serverConn) endOfRequest(st *ServerStream) error {
	if st.contentLength >= 0 && st.received != st.contentLength {
		return streamError{http2.ErrCodeProtocol, "content-length does not match the DATA received"}
	}
	ready, err := st.recv.deliver(nil, 0, true)
	if err != nil {
		return err
	}
	sc.dispatchWhole(st, ready)
	return nil
}

func (sc *serverConn) dispatchWhole(st *ServerStream, ready bool) {
	if st.waitWhole && ready {
		st.waitWhole = false
		sc.schedule(st)
	}
}

func (sc *serverConn) onData(f *http2.DataFrame) error {
	id := f.StreamID
	n := int64(f.Length)
	if _, err := sc.flow.receive(n); err != nil {
		return err
	}
	st := sc.lookup(id)
	if st == nil {
		sc.release(n)
		sc.mu.Lock()
		idle := id > sc.lastID
		sc.mu.Unlock()
		if idle {
			return connError{http2.ErrCodeProtocol, fmt.Sprintf("DATA on idle stream %d", id)}
		}
		if reset, known := sc.closedState(id); known && !reset {
			return connError{http2.ErrCodeStreamClosed, fmt.Sprintf("DATA on closed stream %d", id)}
		}
		return nil // a stream we reset: its data is dropped
	}
	if len(f.Data()) == 0 && !f.StreamEnded() {
		if err := sc.waste("empty DATA frames"); err != nil {
			return err
		}
	}
	if st.contentLength >= 0 {
		// RFC 9113 §8.1.1: a request whose DATA disagrees with its
		// content-length is malformed.
		st.received += int64(len(f.Data()))
		if st.received > st.contentLength || f.StreamEnded() && st.received != st.contentLength {
			sc.release(n)
			return streamError{http2.ErrCodeProtocol, "content-length does not match the DATA received"}
		}
	}
	ready, err := st.recv.deliver(f.Data(), n, f.StreamEnded())
	if err != nil {
		return err
	}
	sc.dispatchWhole(st, ready)
	return nil
}

// release returns window for data no stream will consume.
func (sc *serverConn) release(n int64) {
	if inc := sc.flow.adjust(n, 0, false); inc > 0 {
		sc.w.push(item{kind: itWindowUpdate, n2: inc})
	}
}

func (sc *serverConn) onRST(f *http2.RSTStreamFrame) error {
	sc.mu.Lock()
	if f.StreamID > sc.lastID {
		sc.mu.Unlock()
		return connError{http2.ErrCodeProtocol, fmt.Sprintf("RST_STREAM on idle stream %d", f.StreamID)}
	}
	st := sc.streams[f.StreamID]
	early := false
	if st != nil {
		delete(sc.streams, st.id)
		early = !st.started
		sc.unqueueLocked(st)
		// The client closed it: anything more it sends on it is an error.
		sc.rememberLocked(st.id, false)
	}
	sc.mu.Unlock()
	if st == nil {
		return nil
	}
	if f.ErrCode == http2.ErrCodeCancel && st.hasTimeout && !timeNow().Before(st.deadline) {
		// The client gave up because the deadline passed; say so, whichever
		// of its RST_STREAM and our own timer came first.
		st.expireCtx()
	} else {
		st.abort(status.Errorf(status.Canceled, "stream canceled by the client (%v)", f.ErrCode))
	}
	st.recv.release()
	sc.w.push(item{kind: itCancel, ws: &st.ws})
	sc.checkIdle()
	if early {
		// A stream reset before its handler ran did nothing but cost us
		// its headers: the rapid-reset pattern.
		return sc.waste("streams reset before their handler started (rapid reset)")
	}
	return nil
}

func (sc *serverConn) onSettings(f *http2.SettingsFrame) error {
	if f.IsAck() {
		return nil
	}
	if err := sc.waste("SETTINGS frames"); err != nil {
		return err
	}
	it, err := peerSettings(f, nil)
	if err != nil {
		return err
	}
	sc.w.pushN(it, item{kind: itSettingsAck})
	return nil
}

// peerSettings validates a peer's SETTINGS and turns the ones the writer
// applies into an itPeerSettings item; other, when set, receives
// SETTINGS_MAX_CONCURRENT_STREAMS and SETTINGS_MAX_HEADER_LIST_SIZE.
func peerSettings(f *http2.SettingsFrame, other func(http2.Setting)) (item, error) {
	it := item{kind: itPeerSettings}
	err := f.ForeachSetting(func(s http2.Setting) error {
		if err := s.Valid(); err != nil {
			return err
		}
		switch s.ID {
		case http2.SettingInitialWindowSize:
			it.end, it.n2 = true, s.Val
		case http2.SettingMaxFrameSize:
			it.n = s.Val
		case http2.SettingHeaderTableSize:
			it.off = int(s.Val) + 1
		case http2.SettingMaxConcurrentStreams, http2.SettingMaxHeaderListSize:
			if other != nil {
				other(s)
			}
		}
		return nil
	})
	if err != nil {
		var ce http2.ConnectionError
		if errors.As(err, &ce) {
			return it, connError{http2.ErrCode(ce), "bad SETTINGS: " + err.Error()}
		}
		return it, connError{http2.ErrCodeProtocol, err.Error()}
	}
	return it, nil
}

// onPing answers PINGs and enforces the keepalive policy: PINGs closer
// than PingMinTime while we have sent nothing since are strikes, and a peer
// past maxPingStrikes is told ENHANCE_YOUR_CALM (as grpc-go's servers do).
func (sc *serverConn) onPing(f *http2.PingFrame) error {
	if f.IsAck() {
		switch f.Data {
		case drainPing:
			sc.finalGoAway()
		case keepalivePing:
			sc.mu.Lock()
			sc.pingOut = false
			sc.mu.Unlock()
		}
		return nil
	}
	now := timeNow()
	if sc.w.wroteData.Swap(false) {
		sc.pingStrikes = 0
	} else {
		sc.mu.Lock()
		calls := len(sc.streams) > 0
		sc.mu.Unlock()
		if !sc.lastPing.IsZero() && (now.Sub(sc.lastPing) < sc.cfg.PingMinTime || (!calls && !sc.cfg.PermitPingWithoutCalls)) {
			sc.pingStrikes++
		}
	}
	sc.lastPing = now
	if sc.pingStrikes > maxPingStrikes {
		return connError{http2.ErrCodeEnhanceYourCalm, "too_many_pings"}
	}
	sc.w.push(item{kind: itPingAck, ping: f.Data})
	return nil
}

func (sc *serverConn) onWindowUpdate(f *http2.WindowUpdateFrame) error {
	if f.StreamID == 0 {
		sc.w.push(item{kind: itPeerWindow, n: f.Increment})
		return nil
	}
	if st := sc.lookup(f.StreamID); st != nil {
		sc.w.push(item{kind: itPeerWindow, ws: &st.ws, n: f.Increment})
		return nil
	}
	sc.mu.Lock()
	idle := f.StreamID > sc.lastID
	sc.mu.Unlock()
	if idle {
		return connError{http2.ErrCodeProtocol, fmt.Sprintf("WINDOW_UPDATE on idle stream %d", f.StreamID)}
	}
	return nil
}

func (sc *serverConn) onPriority(f *http2.PriorityFrame) error {
	if f.StreamDep == f.StreamID {
		return streamError{http2.ErrCodeProtocol, "stream depends on itself"}
	}
	return sc.waste("PRIORITY frames")
}

// startTimers arms the connection's housekeeping: the idle timeout, the
// keepalive check and the maximum age. Called with sc.mu held; a callback
// re-arms its timer under sc.mu too, and never once the connection is
// closed, so a closed connection leaves no timer holding it.
func (sc *serverConn) startTimers() {
	if d := sc.cfg.IdleTimeout; d > 0 {
		var seen uint64
		var t *time.Timer
		t = time.AfterFunc(d, func() {
			sc.mu.Lock()
			idle := len(sc.streams) == 0 && sc.running == 0 && sc.opened == seen
			seen = sc.opened
			sc.mu.Unlock()
			if idle {
				sc.logf("closing idle connection", nil)
				sc.drain()
				return
			}
			sc.rearm(&t, d)
		})
		sc.timers = append(sc.timers, t)
	}
	{
		d, timeout := sc.cfg.KeepaliveTime, sc.cfg.KeepaliveTimeout
		var t *time.Timer
		t = time.AfterFunc(d, func() {
			if sc.activity.Swap(false) {
				sc.rearm(&t, d)
				return
			}
			sc.mu.Lock()
			if sc.pingOut {
				sc.mu.Unlock()
				sc.logf("closing connection", errors.New("keepalive PING not answered"))
				sc.close(errors.New("keepalive PING not answered"))
				return
			}
			sc.pingOut = true
			sc.mu.Unlock()
			sc.w.push(item{kind: itPing, ping: keepalivePing})
			sc.rearm(&t, timeout)
		})
		sc.timers = append(sc.timers, t)
	}
	if age := sc.cfg.MaxConnectionAge; age > 0 {
		age += time.Duration((rand.Float64()*0.2 - 0.1) * float64(age))
		sc.timers = append(sc.timers, time.AfterFunc(age, func() {
			sc.drain()
			if g := sc.cfg.MaxConnectionAgeGrace; g > 0 {
				sc.mu.Lock()
				if !sc.closed {
					sc.timers = append(sc.timers, time.AfterFunc(g, func() { sc.close(errors.New("max connection age and grace passed")) }))
				}
				sc.mu.Unlock()
			}
		}))
	}
}

// rearm resets *t, read under sc.mu, which startTimers held when it set it.
func (sc *serverConn) rearm(t **time.Timer, d time.Duration) {
	sc.mu.Lock()
	if !sc.closed {
		(*t).Reset(d)
	}
	sc.mu.Unlock()
}

// drain starts a graceful close: a GOAWAY that still admits streams in
// flight, and a PING whose answer says the client has seen it; then a final
// GOAWAY naming the last stream we serve.
func (sc *serverConn) drain() {
	sc.mu.Lock()
	if sc.draining || sc.closed {
		sc.mu.Unlock()
		return
	}
	if !sc.started {
		// A connection that has not sent its preface has no calls to
		// drain; closing it ends its reader.
		sc.mu.Unlock()
		sc.close(errors.New("server shutting down before the connection preface"))
		return
	}
	sc.draining = true
	sc.timers = append(sc.timers, time.AfterFunc(time.Second, sc.finalGoAway))
	sc.mu.Unlock()
	sc.w.pushN(item{kind: itGoAway, n: 1<<31 - 1, code: http2.ErrCodeNo}, item{kind: itPing, ping: drainPing})
}

func (sc *serverConn) finalGoAway() {
	sc.mu.Lock()
	if sc.finalSent || sc.closed {
		sc.mu.Unlock()
		return
	}
	sc.finalSent = true
	last := sc.lastID
	empty := len(sc.streams) == 0
	sc.mu.Unlock()
	sc.w.push(item{kind: itGoAway, n: last, code: http2.ErrCodeNo})
	if empty {
		sc.shutdownWrite()
	}
}

// removeStream forgets a stream once its last frame is written; whatever
// it still holds goes back to the windows and the budget.
func (sc *serverConn) removeStream(st *ServerStream) {
	peerEnded, _ := st.recv.release()
	sc.mu.Lock()
	if sc.streams[st.id] == st {
		delete(sc.streams, st.id)
		sc.unqueueLocked(st)
		sc.rememberLocked(st.id, !peerEnded)
	}
	idle := sc.finalSent && len(sc.streams) == 0
	sc.mu.Unlock()
	if idle {
		sc.shutdownWrite()
	}
}

// checkIdle ends a drained connection once its last stream is gone.
func (sc *serverConn) checkIdle() {
	sc.mu.Lock()
	idle := sc.finalSent && len(sc.streams) == 0
	sc.mu.Unlock()
	if idle {
		sc.shutdownWrite()
	}
}

// shutdownWrite ends a drained connection: the writer flushes and stops,
// our side of TCP is half-closed, and the client gets a moment to close its
// side so that nothing it still sends turns our close into a reset.
func (sc *serverConn) shutdownWrite() {
	sc.shutOnce.Do(func() {
		go func() {
			sc.w.close()
			<-sc.w.done
			if cw, ok := sc.conn.(interface{ CloseWrite() error }); ok {
				cw.CloseWrite()
			}
			select {
			case <-sc.readerDone:
			case <-time.After(time.Second):
			}
			sc.conn.Close()
		}()
	})
}
