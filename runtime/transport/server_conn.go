package transport

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

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

// drainPing marks the PING sent with the first GOAWAY of a graceful close.
var drainPing = [8]byte{'d', 'r', 'a', 'i', 'n', 'i', 'n', 'g'}

type serverConn struct {
	srv        *Server
	conn       net.Conn
	br         *bufio.Reader
	fr         *http2.Framer
	w          *writer
	hdec       *hpack.Decoder
	readerDone chan struct{}

	mu        sync.Mutex
	started   bool // the preface arrived and the writer runs
	streams   map[uint32]*ServerStream
	lastID    uint32
	draining  bool
	finalSent bool // the final GOAWAY is out: streams above lastID are refused
	closed    bool
	shutOnce  sync.Once

	// Owned by the reader goroutine.
	connUnacked uint32
	cur         *ServerStream // stream whose header block is being decoded
	curTrailers *ServerStream // stream whose trailers are being decoded
	curEnd      bool
	hdrBytes    int
}

func newServerConn(s *Server, c net.Conn) *serverConn {
	sc := &serverConn{
		srv:        s,
		conn:       c,
		br:         bufio.NewReaderSize(c, 32<<10),
		streams:    map[uint32]*ServerStream{},
		readerDone: make(chan struct{}),
	}
	sc.w = newWriter(c, 32<<10, func(error) { c.Close() })
	sc.fr = http2.NewFramer(nil, sc.br)
	sc.fr.SetReuseFrames()
	sc.hdec = hpack.NewDecoder(4096, sc.onField)
	sc.hdec.SetMaxStringLength(maxHeaderListSize)
	return sc
}

func (sc *serverConn) serve() {
	defer sc.srv.removeConn(sc)
	defer close(sc.readerDone)
	if err := readPreface(sc.conn, sc.br); err != nil {
		sc.conn.Close()
		return
	}
	// The writer goroutine is not running yet, so the server's first
	// frames can be written directly.
	fr := sc.w.fr
	err := fr.WriteSettings(
		http2.Setting{ID: http2.SettingMaxConcurrentStreams, Val: sc.srv.cfg.MaxConcurrentStreams},
		http2.Setting{ID: http2.SettingInitialWindowSize, Val: initialWindowSize},
		http2.Setting{ID: http2.SettingMaxHeaderListSize, Val: maxHeaderListSize},
	)
	if err == nil {
		err = fr.WriteWindowUpdate(0, initialConnWindowSize-defaultWindowSize)
	}
	if err == nil {
		err = sc.w.bw.Flush()
	}
	sc.mu.Lock()
	if err != nil || sc.closed {
		sc.mu.Unlock()
		sc.conn.Close()
		return
	}
	sc.started = true
	sc.mu.Unlock()
	go sc.w.run()
	err = sc.readLoop()
	var ce connError
	if errors.As(err, &ce) {
		sc.mu.Lock()
		last := sc.lastID
		sc.mu.Unlock()
		sc.w.push(item{kind: itGoAway, n: last, code: ce.code, debug: ce.msg})
		sc.logf("closing connection", err)
	}
	sc.close(err)
}

func (sc *serverConn) logf(msg string, err error) {
	if sc.srv.cfg.ErrorLog != nil {
		sc.srv.cfg.ErrorLog(msg+" from "+sc.conn.RemoteAddr().String(), err)
	}
}

// close ends every stream and the connection. It flushes what the writer
// holds first, so a GOAWAY explaining a protocol error reaches the peer.
func (sc *serverConn) close(err error) {
	sc.mu.Lock()
	if sc.closed {
		sc.mu.Unlock()
		return
	}
	sc.closed = true
	started := sc.started
	streams := sc.streams
	sc.streams = map[uint32]*ServerStream{}
	sc.mu.Unlock()
	if !started {
		// No preface yet: no writer, no streams, nothing to flush.
		sc.conn.Close()
		return
	}
	cause := status.Errorf(status.Unavailable, "transport: connection closed: %v", err)
	for _, st := range streams {
		st.abort(cause)
	}
	sc.w.close()
	select {
	case <-sc.w.done:
	case <-time.After(time.Second):
	}
	sc.conn.Close()
	<-sc.w.done
}

func (sc *serverConn) readLoop() error {
	for {
		f, err := sc.fr.ReadFrame()
		if err != nil {
			var se http2.StreamError
			if errors.As(err, &se) {
				sc.resetStream(se.StreamID, se.Code)
				continue
			}
			var ce http2.ConnectionError
			if errors.As(err, &ce) {
				return connError{http2.ErrCode(ce), sc.fr.ErrorDetail().Error()}
			}
			return err
		}
		switch f := f.(type) {
		case *http2.DataFrame:
			err = sc.onData(f)
		case *http2.HeadersFrame:
			err = sc.onHeaders(f)
		case *http2.ContinuationFrame:
			err = sc.onHeaderFragment(f.HeaderBlockFragment(), f.HeadersEnded())
		case *http2.RSTStreamFrame:
			sc.onRST(f)
		case *http2.SettingsFrame:
			err = sc.onSettings(f)
		case *http2.PingFrame:
			sc.onPing(f)
		case *http2.WindowUpdateFrame:
			err = sc.onWindowUpdate(f)
		case *http2.PushPromiseFrame:
			err = connError{http2.ErrCodeProtocol, "client sent PUSH_PROMISE"}
		}
		if err != nil {
			return err
		}
	}
}

func (sc *serverConn) lookup(id uint32) *ServerStream {
	sc.mu.Lock()
	st := sc.streams[id]
	sc.mu.Unlock()
	return st
}

func (sc *serverConn) resetStream(id uint32, code http2.ErrCode) {
	if st := sc.lookup(id); st != nil {
		st.abort(status.Errorf(status.Internal, "transport: stream error: %v", code))
		sc.removeStream(st)
	}
	sc.w.push(item{kind: itRST, n: id, code: code})
}

func (sc *serverConn) onHeaders(f *http2.HeadersFrame) error {
	id := f.StreamID
	if id%2 == 0 {
		return connError{http2.ErrCodeProtocol, fmt.Sprintf("client opened even stream %d", id)}
	}
	sc.hdrBytes = 0
	sc.curEnd = f.StreamEnded()
	if st := sc.lookup(id); st != nil {
		// Trailers from the client: they end its half of the stream.
		if !f.StreamEnded() {
			return connError{http2.ErrCodeProtocol, "second HEADERS without END_STREAM"}
		}
		sc.curTrailers = st
	} else {
		sc.mu.Lock()
		last := sc.lastID
		if id > last {
			sc.lastID = id
		}
		sc.mu.Unlock()
		if id <= last {
			return connError{http2.ErrCodeStreamClosed, fmt.Sprintf("HEADERS on closed stream %d", id)}
		}
		sc.cur = newServerStream(sc, id)
	}
	return sc.onHeaderFragment(f.HeaderBlockFragment(), f.HeadersEnded())
}

func (sc *serverConn) onHeaderFragment(frag []byte, end bool) error {
	if _, err := sc.hdec.Write(frag); err != nil {
		return connError{http2.ErrCodeCompression, err.Error()}
	}
	if !end {
		return nil
	}
	if err := sc.hdec.Close(); err != nil {
		return connError{http2.ErrCodeCompression, err.Error()}
	}
	if st := sc.curTrailers; st != nil {
		sc.curTrailers = nil
		sc.endOfRequest(st, nil, 0)
		return nil
	}
	st := sc.cur
	sc.cur = nil
	if st == nil {
		return connError{http2.ErrCodeProtocol, "CONTINUATION without HEADERS"}
	}
	sc.startStream(st)
	return nil
}

// onField receives each decoded header field of the block in progress.
func (sc *serverConn) onField(f hpack.HeaderField) {
	sc.hdrBytes += len(f.Name) + len(f.Value) + 32
	st := sc.cur
	if st == nil {
		return // client trailers carry nothing we use
	}
	if sc.hdrBytes > maxHeaderListSize {
		st.reject(431, status.New(status.ResourceExhausted, "header list too large"))
		return
	}
	st.onField(f)
}

// startStream accepts or refuses a stream whose headers have arrived.
func (sc *serverConn) startStream(st *ServerStream) {
	if st.rejectStatus == nil && st.method == "" {
		st.reject(400, status.New(status.Internal, "missing :path"))
	}
	if st.rejectStatus != nil {
		sc.w.push(item{kind: itTrailers, ws: &st.ws, rstAfter: !sc.curEnd})
		return
	}
	sc.mu.Lock()
	refused := sc.closed || sc.finalSent ||
		uint32(len(sc.streams)) >= sc.srv.cfg.MaxConcurrentStreams
	if !refused {
		sc.streams[st.id] = st
	}
	sc.mu.Unlock()
	if refused {
		sc.w.push(item{kind: itRST, n: st.id, code: http2.ErrCodeRefusedStream})
		return
	}
	whole, reject := sc.srv.cfg.Handler.Route(st)
	if reject != nil {
		st.finish(reject, nil)
		return
	}
	st.startTimer()
	if sc.curEnd {
		st.recv.deliver(nil, 0, true)
	}
	if !whole || sc.curEnd {
		sc.srv.dispatch(st)
		return
	}
	st.waitWhole = true
}

// endOfRequest delivers data (possibly none) and dispatches a stream that
// was waiting for its whole request.
func (sc *serverConn) endOfRequest(st *ServerStream, data []byte, flowLen uint32) {
	if inc := st.recv.deliver(data, flowLen, true); inc > 0 {
		sc.w.push(item{kind: itWindowUpdate, n: st.id, n2: inc})
	}
	if st.waitWhole {
		st.waitWhole = false
		sc.srv.dispatch(st)
	}
}

func (sc *serverConn) onData(f *http2.DataFrame) error {
	id := f.StreamID
	flowLen := f.Length
	if flowLen > 0 {
		sc.connUnacked += flowLen
		if sc.connUnacked >= initialConnWindowSize/4 {
			sc.w.push(item{kind: itWindowUpdate, n: 0, n2: sc.connUnacked})
			sc.connUnacked = 0
		}
	}
	st := sc.lookup(id)
	if st == nil {
		sc.mu.Lock()
		idle := id > sc.lastID
		sc.mu.Unlock()
		if idle {
			return connError{http2.ErrCodeProtocol, fmt.Sprintf("DATA on idle stream %d", id)}
		}
		return nil // a stream we already ended; its data is dropped
	}
	if f.StreamEnded() {
		sc.endOfRequest(st, f.Data(), flowLen)
		return nil
	}
	if inc := st.recv.deliver(f.Data(), flowLen, false); inc > 0 {
		sc.w.push(item{kind: itWindowUpdate, n: id, n2: inc})
	}
	if st.waitWhole && st.recv.badEarly() {
		st.waitWhole = false
		sc.srv.dispatch(st)
	}
	return nil
}

func (sc *serverConn) onRST(f *http2.RSTStreamFrame) {
	st := sc.lookup(f.StreamID)
	if st == nil {
		return
	}
	sc.removeStream(st)
	if f.ErrCode == http2.ErrCodeCancel && st.hasTimeout && !timeNow().Before(st.deadline) {
		// The client gave up because the deadline passed; say so, whichever
		// of its RST_STREAM and our own timer came first.
		st.expire()
	} else {
		st.abort(status.Errorf(status.Canceled, "stream canceled by the client (%v)", f.ErrCode))
	}
	sc.w.push(item{kind: itCancel, ws: &st.ws})
}

func (sc *serverConn) onSettings(f *http2.SettingsFrame) error {
	if f.IsAck() {
		return nil
	}
	it, err := peerSettings(f, nil)
	if err != nil {
		return err
	}
	sc.w.pushN(it, item{kind: itSettingsAck})
	return nil
}

// peerSettings validates a peer's SETTINGS and turns the ones the writer
// applies into an itPeerSettings item; maxStreams, when set, receives
// SETTINGS_MAX_CONCURRENT_STREAMS.
func peerSettings(f *http2.SettingsFrame, maxStreams func(uint32)) (item, error) {
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
		case http2.SettingMaxConcurrentStreams:
			if maxStreams != nil {
				maxStreams(s.Val)
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

func (sc *serverConn) onPing(f *http2.PingFrame) {
	if !f.IsAck() {
		sc.w.push(item{kind: itPingAck, ping: f.Data})
		return
	}
	if f.Data == drainPing {
		sc.finalGoAway()
	}
}

func (sc *serverConn) onWindowUpdate(f *http2.WindowUpdateFrame) error {
	if f.StreamID == 0 {
		sc.w.push(item{kind: itPeerWindow, n: f.Increment})
		return nil
	}
	if st := sc.lookup(f.StreamID); st != nil {
		sc.w.push(item{kind: itPeerWindow, ws: &st.ws, n: f.Increment})
	}
	return nil
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
	sc.mu.Unlock()
	sc.w.pushN(item{kind: itGoAway, n: 1<<31 - 1, code: http2.ErrCodeNo}, item{kind: itPing, ping: drainPing})
	time.AfterFunc(time.Second, sc.finalGoAway)
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

func (sc *serverConn) removeStream(st *ServerStream) {
	sc.mu.Lock()
	if sc.streams[st.id] == st {
		delete(sc.streams, st.id)
	}
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
