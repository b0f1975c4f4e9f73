package transport

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/protoc-gen-micro/micro/internal/mdctx"
	"github.com/protoc-gen-micro/micro/internal/wire"

	"github.com/protoc-gen-micro/micro/runtime/codec"
	"github.com/protoc-gen-micro/micro/runtime/compress"
	"github.com/protoc-gen-micro/micro/runtime/status"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// DialConfig configures a client connection.
type DialConfig struct {
	// TLSConfig dials TLS with ALPN h2; cleartext HTTP/2 with prior
	// knowledge when nil.
	TLSConfig *tls.Config
	// MaxRecvMsgSize bounds a received message; 4 MiB when 0.
	MaxRecvMsgSize int
	// Authority is sent as :authority; the address when empty.
	Authority string
}

// ClientConn is one HTTP/2 connection to a server, multiplexing calls.
type ClientConn struct {
	addr      string
	cfg       DialConfig
	conn      net.Conn
	fr        *http2.Framer
	w         *writer
	hdec      *hpack.Decoder
	scheme    string
	authority string
	done      chan struct{}
	ready     chan struct{} // closed at the server's first SETTINGS, or on close
	readyOnce sync.Once

	flow *connFlow
	// peerMaxHeaderList is the server's SETTINGS_MAX_HEADER_LIST_SIZE;
	// unlimited until it says.
	peerMaxHeaderList atomic.Uint32

	mu         sync.Mutex
	streams    map[uint32]*ClientStream
	active     int
	maxStreams uint32
	slotSig    chan struct{}
	goAway     bool
	closed     bool
	closeErr   error

	// Owned by the reader goroutine: the header block being decoded.
	hb clientHeaderBlock
}

// clientHeaderBlock is the state of a response header block in progress.
type clientHeaderBlock struct {
	active    bool
	cs        *ClientStream // nil: the call is gone, decode for HPACK only
	trailers  bool
	end       bool
	size      int
	wire      int
	invalid   string
	truncated bool
	regular   bool
	status    bool // :status seen
}

// Dial connects to addr and starts the connection's reader and writer. A
// failure to connect is marked ErrUnprocessed: no call reached a server.
func Dial(ctx context.Context, addr string, cfg DialConfig) (*ClientConn, error) {
	if cfg.MaxRecvMsgSize <= 0 {
		cfg.MaxRecvMsgSize = defaultMaxRecvMsgSize
	}
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, dialFailed(addr, err)
	}
	scheme := "http"
	if cfg.TLSConfig != nil {
		tc := cfg.TLSConfig.Clone()
		tc.NextProtos = []string{"h2"}
		if tc.ServerName == "" {
			host, _, _ := net.SplitHostPort(addr)
			tc.ServerName = host
		}
		tlsConn := tls.Client(c, tc)
		if err := tlsConn.HandshakeContext(ctx); err != nil {
			c.Close()
			return nil, dialFailed(addr, fmt.Errorf("TLS handshake: %w", err))
		}
		if p := tlsConn.ConnectionState().NegotiatedProtocol; p != "h2" {
			c.Close()
			return nil, dialFailed(addr, fmt.Errorf("the server did not negotiate HTTP/2 (ALPN %q)", p))
		}
		c, scheme = tlsConn, "https"
	}
	if tc, ok := c.(*net.TCPConn); ok {
		tc.SetNoDelay(true)
	}
	return newClientConn(ctx, c, addr, scheme, cfg)
}

// newClientConn runs the HTTP/2 client on an established connection: it
// sends the preface and waits for the server's SETTINGS.
func newClientConn(ctx context.Context, c net.Conn, addr, scheme string, cfg DialConfig) (*ClientConn, error) {
	cc := &ClientConn{
		addr:       addr,
		cfg:        cfg,
		conn:       c,
		scheme:     scheme,
		authority:  cfg.Authority,
		done:       make(chan struct{}),
		ready:      make(chan struct{}),
		streams:    map[uint32]*ClientStream{},
		maxStreams: 1<<31 - 1,
	}
	if cc.authority == "" {
		cc.authority = addr
	}
	cc.w = newWriter(c, 32<<10, defaultWriteTimeout, func(error) { c.Close() })
	cc.fr = http2.NewFramer(nil, bufio.NewReaderSize(c, 32<<10))
	cc.fr.SetReuseFrames()
	cc.fr.SetMaxReadFrameSize(defaultMaxFrameSize)
	cc.hdec = hpack.NewDecoder(4096, cc.onField)
	cc.hdec.SetMaxStringLength(clientMaxHeaderListSize)
	cc.flow = newConnFlow(defaultConnWindow, true)

	cc.w.bw.WriteString(clientPreface)
	err := cc.w.fr.WriteSettings(
		http2.Setting{ID: http2.SettingEnablePush, Val: 0},
		http2.Setting{ID: http2.SettingInitialWindowSize, Val: clientStreamWindow},
		http2.Setting{ID: http2.SettingMaxHeaderListSize, Val: clientMaxHeaderListSize},
	)
	if err == nil {
		err = cc.w.fr.WriteWindowUpdate(0, defaultConnWindow-defaultWindowSize)
	}
	if err == nil {
		err = cc.w.bw.Flush()
	}
	if err != nil {
		c.Close()
		return nil, dialFailed(addr, fmt.Errorf("writing the HTTP/2 preface: %w", err))
	}
	go cc.w.run()
	go cc.readLoop()
	// Wait for the server's SETTINGS: until then its stream limit is
	// unknown, and a peer that is not an HTTP/2 server (a TLS port dialed
	// in cleartext, say) shows itself here rather than as a hung call.
	select {
	case <-cc.ready:
	case <-ctx.Done():
		cc.closeWith(ctx.Err())
		return nil, dialFailed(addr, fmt.Errorf("the server sent no HTTP/2 SETTINGS: %v", ctx.Err()))
	}
	cc.mu.Lock()
	closed, cerr := cc.closed, cc.closeErr
	cc.mu.Unlock()
	if closed {
		return nil, dialFailed(addr, fmt.Errorf("the server closed the connection before its SETTINGS: %v", cerr))
	}
	return cc, nil
}

func (cc *ClientConn) markReady() { cc.readyOnce.Do(func() { close(cc.ready) }) }

// Addr returns the address dialed.
func (cc *ClientConn) Addr() string { return cc.addr }

// Usable reports whether new calls may start on the connection: it is open
// and the server has not sent GOAWAY.
func (cc *ClientConn) Usable() bool {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	return !cc.closed && !cc.goAway
}

// Done is closed when the connection has closed.
func (cc *ClientConn) Done() <-chan struct{} { return cc.done }

// Close closes the connection; its calls fail with Unavailable.
func (cc *ClientConn) Close() error {
	cc.closeWith(errors.New("connection closed by the client"))
	return nil
}

func (cc *ClientConn) closeWith(err error) {
	cc.mu.Lock()
	if cc.closed {
		cc.mu.Unlock()
		return
	}
	cc.closed = true
	cc.closeErr = err
	streams := cc.streams
	cc.streams = map[uint32]*ClientStream{}
	cc.mu.Unlock()
	cause := status.Errorf(status.Unavailable, "transport: connection to %s closed: %v", cc.addr, err)
	for _, cs := range streams {
		cs.end(cause, nil)
	}
	cc.w.close()
	select {
	case <-cc.w.done:
	case <-time.After(time.Second):
	}
	cc.conn.Close()
	cc.markReady()
	close(cc.done)
}

func (cc *ClientConn) readLoop() {
	err := cc.read()
	var ce connError
	if errors.As(err, &ce) {
		cc.w.push(item{kind: itGoAway, code: ce.code, debug: ce.msg})
	}
	cc.closeWith(err)
}

func (cc *ClientConn) read() error {
	for first := true; ; first = false {
		if !cc.w.waitRoom(max(defaultWriteTimeout, time.Second)) {
			return connError{http2.ErrCodeEnhanceYourCalm, "server does not read the frames it asks for"}
		}
		f, err := cc.fr.ReadFrame()
		if err != nil {
			if err := cc.frameError(err); err != nil {
				return err
			}
			continue
		}
		if first {
			if sf, ok := f.(*http2.SettingsFrame); !ok || sf.IsAck() {
				return connError{http2.ErrCodeProtocol, "server preface is not SETTINGS"}
			}
		}
		switch f := f.(type) {
		case *http2.DataFrame:
			err = cc.onData(f)
		case *http2.HeadersFrame:
			err = cc.onHeaders(f)
		case *http2.ContinuationFrame:
			err = cc.onHeaderFragment(f.HeaderBlockFragment(), f.HeadersEnded())
		case *http2.RSTStreamFrame:
			cc.onRST(f)
		case *http2.SettingsFrame:
			err = cc.onSettings(f)
		case *http2.PingFrame:
			if !f.IsAck() {
				cc.w.push(item{kind: itPingAck, ping: f.Data})
			}
		case *http2.WindowUpdateFrame:
			if f.StreamID == 0 {
				cc.w.push(item{kind: itPeerWindow, n: f.Increment})
			} else if cs := cc.lookup(f.StreamID); cs != nil {
				cc.w.push(item{kind: itPeerWindow, ws: &cs.ws, n: f.Increment})
			}
		case *http2.GoAwayFrame:
			cc.onGoAway(f)
		case *http2.PushPromiseFrame:
			err = connError{http2.ErrCodeProtocol, "server sent PUSH_PROMISE though we disabled push"}
		}
		// A type assertion, not errors.As: the target would escape and
		// cost an allocation per frame.
		if se, ok := err.(streamError); ok {
			cc.resetStream(f.Header().StreamID, se)
			err = nil
		}
		if err != nil {
			return err
		}
	}
}

// frameError is the client's version of serverConn.frameError.
func (cc *ClientConn) frameError(err error) error {
	id, code, err := classifyFrameError(cc.fr, err)
	if err == nil {
		cc.resetStream(id, streamError{code, "malformed frame"})
	}
	return err
}

// resetStream fails a call after a stream error and resets the stream.
func (cc *ClientConn) resetStream(id uint32, se streamError) {
	if cs := cc.lookup(id); cs != nil {
		cs.end(status.Errorf(status.Internal, "transport: %s", se.msg), nil)
		cc.w.push(item{kind: itRST, ws: &cs.ws, code: se.code})
		return
	}
	cc.w.push(item{kind: itRST, n: id, code: se.code})
}

func (cc *ClientConn) lookup(id uint32) *ClientStream {
	cc.mu.Lock()
	cs := cc.streams[id]
	cc.mu.Unlock()
	return cs
}

func (cc *ClientConn) onHeaders(f *http2.HeadersFrame) error {
	if f.StreamID%2 == 0 {
		return connError{http2.ErrCodeProtocol, fmt.Sprintf("server sent HEADERS on even stream %d", f.StreamID)}
	}
	cs := cc.lookup(f.StreamID)
	cc.hb = clientHeaderBlock{active: true, cs: cs, end: f.StreamEnded()}
	cc.hdec.SetEmitEnabled(cs != nil)
	if cs != nil {
		cc.hb.trailers = cs.gotHeaders
		cs.beginHeaders()
	}
	return cc.onHeaderFragment(f.HeaderBlockFragment(), f.HeadersEnded())
}

func (cc *ClientConn) onHeaderFragment(frag []byte, end bool) error {
	hb := &cc.hb
	if !hb.active {
		return connError{http2.ErrCodeProtocol, "CONTINUATION without HEADERS"}
	}
	hb.wire += len(frag) + 9
	if hb.wire > 2*clientMaxHeaderListSize+64 {
		return connError{http2.ErrCodeEnhanceYourCalm, "header block too large (CONTINUATION flood)"}
	}
	if _, err := cc.hdec.Write(frag); err != nil {
		return connError{http2.ErrCodeCompression, err.Error()}
	}
	if !end {
		return nil
	}
	if err := cc.hdec.Close(); err != nil {
		return connError{http2.ErrCodeCompression, err.Error()}
	}
	hb.active = false
	cs := hb.cs
	hb.cs = nil
	if cs == nil {
		return nil
	}
	switch {
	case hb.invalid == "" && !hb.trailers && !hb.status:
		hb.invalid = "response without :status"
	case hb.invalid == "" && hb.truncated:
		cs.end(status.Errorf(status.Internal, "transport: response header list larger than %d bytes", clientMaxHeaderListSize), nil)
		cc.w.push(item{kind: itRST, ws: &cs.ws, code: http2.ErrCodeCancel})
		return nil
	}
	if hb.invalid != "" {
		return streamError{http2.ErrCodeProtocol, "malformed response headers: " + hb.invalid}
	}
	if hb.trailers && !hb.end {
		return streamError{http2.ErrCodeProtocol, "server sent a second HEADERS without END_STREAM"}
	}
	cs.endHeaders(hb.trailers, hb.end)
	return nil
}

// onField checks each decoded response field (RFC 9113 §8.2, §8.3.2)
// before the call sees it.
func (cc *ClientConn) onField(f hpack.HeaderField) {
	hb := &cc.hb
	if hb.cs == nil {
		return
	}
	why := ""
	switch {
	case f.Name == "":
		why = "empty header name"
	case !wire.ValidFieldValue(f.Value):
		why = fmt.Sprintf("header %q has a value HTTP/2 forbids", f.Name)
	case f.Name[0] == ':':
		switch {
		case hb.regular:
			why = "pseudo-header after a regular header"
		case hb.trailers:
			why = "pseudo-header in trailers"
		case f.Name != ":status":
			why = fmt.Sprintf("pseudo-header %q is not allowed in a response", f.Name)
		case hb.status:
			why = "duplicate :status"
		}
		hb.status = true
	default:
		hb.regular = true
		if !wire.ValidFieldName(f.Name) {
			why = fmt.Sprintf("header name %q is not a lower-case token", f.Name)
		} else if connectionHeader(f.Name) {
			why = fmt.Sprintf("connection-specific header %q", f.Name)
		}
	}
	if why != "" {
		hb.invalid = why
		cc.hdec.SetEmitEnabled(false)
		return
	}
	hb.size += len(f.Name) + len(f.Value) + 32
	if hb.size > clientMaxHeaderListSize {
		hb.truncated = true
		cc.hdec.SetEmitEnabled(false)
		return
	}
	hb.cs.onField(f)
}

func (cc *ClientConn) onData(f *http2.DataFrame) error {
	n := int64(f.Length)
	inc, err := cc.flow.receive(n)
	if err != nil {
		return err
	}
	if inc > 0 {
		cc.w.push(item{kind: itWindowUpdate, n2: inc})
	}
	cs := cc.lookup(f.StreamID)
	if cs == nil {
		return nil
	}
	if !cs.gotHeaders {
		return streamError{http2.ErrCodeProtocol, "server sent DATA before HEADERS"}
	}
	if _, err := cs.recv.deliver(f.Data(), n, false); err != nil {
		return err
	}
	if f.StreamEnded() {
		// A response must end with trailers; END_STREAM on DATA means
		// the status is missing.
		cs.end(status.New(status.Internal, "transport: server closed the stream without sending trailers"), nil)
	}
	return nil
}

// rstCodes maps RST_STREAM codes to gRPC codes, as the gRPC spec does.
func rstStatus(code http2.ErrCode) *status.Error {
	switch code {
	case http2.ErrCodeRefusedStream:
		return unprocessed("transport: stream refused by the server")
	case http2.ErrCodeCancel:
		return status.New(status.Canceled, "transport: stream canceled by the server")
	case http2.ErrCodeEnhanceYourCalm:
		return status.New(status.ResourceExhausted, "transport: server said ENHANCE_YOUR_CALM")
	case http2.ErrCodeInadequateSecurity:
		return status.New(status.PermissionDenied, "transport: server said INADEQUATE_SECURITY")
	}
	return status.Errorf(status.Internal, "transport: stream terminated by RST_STREAM with error code: %v", code)
}

func (cc *ClientConn) onRST(f *http2.RSTStreamFrame) {
	cs := cc.lookup(f.StreamID)
	if cs == nil {
		return
	}
	s := rstStatus(f.ErrCode)
	// A server resets a call whose grpc-timeout expired with CANCEL; past
	// the deadline that is DeadlineExceeded, as grpc-go reports it.
	if f.ErrCode == http2.ErrCodeCancel && cs.hasDeadline && !timeNow().Before(cs.deadline) {
		s = status.New(status.DeadlineExceeded, "context deadline exceeded")
	}
	cs.end(s, nil)
	cc.w.push(item{kind: itCancel, ws: &cs.ws})
}

func (cc *ClientConn) onSettings(f *http2.SettingsFrame) error {
	if f.IsAck() {
		return nil
	}
	it, err := peerSettings(f, func(s http2.Setting) {
		if s.ID == http2.SettingMaxHeaderListSize {
			cc.peerMaxHeaderList.Store(s.Val)
			return
		}
		cc.mu.Lock()
		cc.maxStreams = min(s.Val, 1<<31-1)
		cc.signalSlotLocked()
		cc.mu.Unlock()
	})
	if err != nil {
		return err
	}
	cc.w.pushN(it, item{kind: itSettingsAck})
	cc.markReady()
	return nil
}

func (cc *ClientConn) onGoAway(f *http2.GoAwayFrame) {
	cc.mu.Lock()
	cc.goAway = true
	var refused []*ClientStream
	for id, cs := range cc.streams {
		if id > f.LastStreamID {
			refused = append(refused, cs)
		}
	}
	// Count calls, not registered streams: a call whose headers are still
	// queued holds a slot but is not in the table yet.
	idle := cc.active == len(refused)
	cc.signalSlotLocked()
	cc.mu.Unlock()
	for _, cs := range refused {
		cs.end(unprocessed("transport: server sent GOAWAY (%v) before processing the stream", f.ErrCode), nil)
	}
	if f.ErrCode != http2.ErrCodeNo || idle {
		go cc.closeWith(fmt.Errorf("server sent GOAWAY (%v): %s", f.ErrCode, f.DebugData()))
	}
}

func (cc *ClientConn) signalSlotLocked() {
	if cc.slotSig != nil {
		select {
		case cc.slotSig <- struct{}{}:
		default:
		}
	}
}

// removeStream forgets a finished stream and frees its concurrency slot;
// a draining connection closes with its last stream.
func (cc *ClientConn) removeStream(cs *ClientStream) {
	cc.mu.Lock()
	if cs.id != 0 && cc.streams[cs.id] == cs {
		delete(cc.streams, cs.id)
		cc.w.streams.Store(int32(len(cc.streams)))
	}
	if cs.slot {
		cs.slot = false
		cc.active--
		cc.signalSlotLocked()
	}
	idle := cc.goAway && cc.active == 0 && !cc.closed
	cc.mu.Unlock()
	if idle {
		go cc.closeWith(errors.New("server is going away"))
	}
}

// acquireSlot waits for room under the server's stream limit.
func (cc *ClientConn) acquireSlot(ctx context.Context) error {
	cc.mu.Lock()
	for {
		if cc.closed {
			err := cc.closeErr
			cc.mu.Unlock()
			return unprocessed("transport: connection to %s closed: %v", cc.addr, err)
		}
		if cc.goAway {
			cc.mu.Unlock()
			return unprocessed("transport: connection to %s is going away", cc.addr)
		}
		if uint32(cc.active) < cc.maxStreams {
			cc.active++
			cc.mu.Unlock()
			return nil
		}
		if cc.slotSig == nil {
			cc.slotSig = make(chan struct{}, 1)
		}
		sig := cc.slotSig
		cc.mu.Unlock()
		select {
		case <-sig:
		case <-ctx.Done():
			return ctxStatus(ctx.Err())
		}
		cc.mu.Lock()
	}
}

// checkHeaders refuses a call whose metadata HTTP/2 cannot carry or whose
// header list exceeds what the server accepts, before anything is sent.
func (cc *ClientConn) checkHeaders(ctx context.Context, method string) error {
	// The fixed fields: pseudo-headers, content-type, user-agent, te,
	// grpc-timeout and grpc-accept-encoding, 32 bytes of overhead each.
	size := 8*32 + len(method) + len(cc.authority) + 128
	var bad error
	mdctx.RangeOutgoing(ctx, func(k, v string) {
		if bad != nil {
			return
		}
		k = lowerASCII(k)
		if reservedHeader(k) || k == "user-agent" {
			return
		}
		if !wire.ValidMetadataKey(k) {
			bad = status.Errorf(status.Internal, "transport: metadata key %q is not a valid HTTP/2 header name", k)
			return
		}
		if wire.IsBinHeader(k) {
			size += len(k) + (len(v)*4+2)/3 + 32
			return
		}
		if !wire.ValidFieldValue(v) {
			bad = status.Errorf(status.Internal, "transport: metadata value of %q contains a control character HTTP/2 forbids", k)
			return
		}
		size += len(k) + len(v) + 32
	})
	if bad != nil {
		return bad
	}
	if limit := cc.peerMaxHeaderList.Load(); limit > 0 && size > int(limit) {
		return status.Errorf(status.ResourceExhausted, "transport: request header list of about %d bytes exceeds the %d bytes %s accepts", size, limit, cc.addr)
	}
	return nil
}

func ctxStatus(err error) *status.Error {
	if errors.Is(err, context.DeadlineExceeded) {
		return status.New(status.DeadlineExceeded, "context deadline exceeded")
	}
	return status.New(status.Canceled, "context canceled")
}

// StreamConfig describes a call to open.
type StreamConfig struct {
	// Method is the path, e.g. "/greeter.v1.Greeter/SayHello".
	Method string
	// Codec encodes messages; proto when nil.
	Codec codec.Codec
	// Compressor compresses the requests; nil sends them uncompressed.
	Compressor compress.Compressor
	// WatchContext makes the stream reset itself when ctx ends even if no
	// one is waiting on it. Calls that always wait (unary) leave it off and
	// save the registration.
	WatchContext bool
}

// NewStream starts a call. Nothing is written until the first SendMsg or
// CloseSend, so a unary call's headers and message leave together.
func (cc *ClientConn) NewStream(ctx context.Context, sc StreamConfig) (*ClientStream, error) {
	if err := ctx.Err(); err != nil {
		return nil, ctxStatus(err)
	}
	if err := cc.checkHeaders(ctx, sc.Method); err != nil {
		return nil, err
	}
	if err := cc.acquireSlot(ctx); err != nil {
		return nil, err
	}
	c := sc.Codec
	if c == nil {
		c = codec.Proto
	}
	cs := &ClientStream{cc: cc, ctx: ctx, method: sc.Method, codec: c, slot: true, sendComp: sc.Compressor}
	cs.ws.src = cs
	cs.recv.init(cc.flow, nil, cc.w, clientStreamWindow, cc.cfg.MaxRecvMsgSize)
	cs.contentType = wire.ContentType(c.Name())
	if d, ok := ctx.Deadline(); ok {
		cs.deadline, cs.hasDeadline = d, true
	}
	if sc.WatchContext && ctx.Done() != nil {
		stop := context.AfterFunc(ctx, func() { cs.cancel(ctxStatus(ctx.Err())) })
		cs.mu.Lock()
		cs.stopWatch = stop
		cs.mu.Unlock()
	}
	return cs, nil
}
