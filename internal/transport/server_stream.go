package transport

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/protoc-gen-micro/micro/internal/callctx"
	"github.com/protoc-gen-micro/micro/internal/mdctx"
	"github.com/protoc-gen-micro/micro/internal/wire"

	"github.com/protoc-gen-micro/micro/runtime/codec"
	"github.com/protoc-gen-micro/micro/runtime/compress"
	"github.com/protoc-gen-micro/micro/runtime/metadata"
	"github.com/protoc-gen-micro/micro/runtime/status"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// ServerStream is the server side of one call. It is also the call's
// context.Context, so a handler's context costs no allocation beyond the
// stream itself: it answers Deadline, Done, Err and Value directly.
type ServerStream struct {
	ws   wstate
	recv recvBuffer
	conn *serverConn
	id   uint32

	// Route is set by Handler.Route to what it found for the method.
	Route any

	// Set while the headers are decoded, read-only afterwards.
	method       string
	contentType  string // of the response
	codec        codec.Codec
	fields       []hpack.HeaderField
	inline       [4]hpack.HeaderField
	timeout      time.Duration
	hasTimeout   bool
	deadline     time.Time
	web          *webState // not gRPC: served by ServerConfig.Web
	rejectHTTP   int
	rejectStatus *status.Error
	routeErr     *status.Error       // the handler's Route refused the stream
	recvComp     compress.Compressor // the request's grpc-encoding
	sendComp     compress.Compressor // the response's, nil for identity
	acceptEnc    string              // the request's grpc-accept-encoding
	waitWhole    bool                // owned by the reader: dispatch at END_STREAM

	// contentLength is the request's content-length (-1: none) and
	// received the DATA bytes counted against it; owned by the reader.
	contentLength int64
	received      int64

	// Guarded by the connection's mutex.
	queued  bool // waiting for a handler slot
	started bool // its handler has been dispatched

	mu           sync.Mutex
	done         chan struct{}
	err          error
	afterFuncs   map[*afterFunc]struct{}
	timer        *time.Timer
	headerSent   bool
	trailersOnly bool
	finished     bool
	header       metadata.MD
	trailer      metadata.MD
	final        *status.Error
	md           metadata.MD
}

type afterFunc struct{ f func() }

func newServerStream(sc *serverConn, id uint32) *ServerStream {
	st := &ServerStream{conn: sc, id: id}
	st.ws.id = id
	st.ws.src = st
	st.ws.delta = 0
	st.fields = st.inline[:0]
	st.recv.init(sc.flow, sc.srv.budget, sc.w, int64(sc.cfg.InitialWindowSize), sc.cfg.MaxRecvMsgSize)
	st.recv.id = id
	return st
}

// reqHeaders are the request fields a gRPC request gives meaning to, kept
// as sent until classify reads them once the block has ended: the content
// type that says whether the request is gRPC at all may come after them.
// They live in the connection's header block, not the stream, which a
// gRPC call would otherwise carry for nothing.
type reqHeaders struct {
	method, authority              string // pseudo-headers (:path is the stream's)
	contentType, timeout, encoding string // content-type, grpc-timeout, grpc-encoding
}

// onField records one request header field.
func (st *ServerStream) onField(f hpack.HeaderField, req *reqHeaders) {
	switch f.Name {
	case ":method":
		req.method = f.Value
	case ":path":
		st.method = f.Value
	case ":authority":
		req.authority = f.Value
	case "content-type":
		req.contentType = f.Value
	case "grpc-timeout":
		req.timeout = f.Value
	case "grpc-encoding":
		req.encoding = f.Value
	case "grpc-accept-encoding":
		st.acceptEnc = f.Value
	case ":scheme", "te", "grpc-message-type":
	default:
		if !reservedHeader(f.Name) {
			st.fields = append(st.fields, f)
		}
	}
}

// classify reads the request's headers once they have all arrived: a
// request that is not gRPC goes to the server's web handler when it has
// one (see ServerConfig.Web); a gRPC one has its content type, deadline
// and compression checked here, and is refused on the first fault.
func (st *ServerStream) classify(req *reqHeaders, web bool) {
	sub, grpc := wire.Subtype(req.contentType)
	if req.contentType == "" && req.method == "POST" {
		grpc = true // as grpc-go: the content type defaults to application/grpc
	}
	if web && !grpc {
		st.web = &webState{req: *req}
		st.recv.raw = true
		return
	}
	if req.method != "POST" {
		st.reject(405, status.Errorf(status.Internal, "grpc: %s method not allowed, use POST", req.method))
		return
	}
	if req.contentType != "" {
		if !grpc {
			st.reject(415, status.Errorf(status.Internal, "invalid gRPC request content-type %q", req.contentType))
			return
		}
		c, ok := codec.Get(sub)
		if !ok {
			st.reject(415, status.Errorf(status.Internal, "grpc: no codec registered for content-subtype %q", sub))
			return
		}
		st.codec = c
		switch sub {
		case "":
			st.contentType = "application/grpc"
		case "proto":
			st.contentType = "application/grpc+proto"
		case "json":
			st.contentType = "application/grpc+json"
		default:
			st.contentType = "application/grpc+" + sub
		}
	}
	if req.timeout != "" {
		d, err := decodeTimeout(req.timeout)
		if err != nil {
			st.reject(400, status.Errorf(status.Internal, "malformed grpc-timeout: %v", err))
			return
		}
		st.timeout, st.hasTimeout = d, true
	}
	if req.encoding != "" && req.encoding != wire.IdentityEncoding {
		c, ok := compress.Get(req.encoding)
		if !ok {
			st.reject(200, status.Errorf(status.Unimplemented, "grpc: Decompressor is not installed for grpc-encoding %q", req.encoding))
			return
		}
		st.recvComp = c
	}
}

// reject records the first reason to refuse the stream with a
// trailers-only response.
func (st *ServerStream) reject(httpStatus int, s *status.Error) {
	if st.rejectStatus == nil {
		st.rejectHTTP, st.rejectStatus = httpStatus, s
		st.final = s
		st.trailersOnly = true
		st.finished = true
	}
}

// chooseSendCompression picks the responses' compression: the request's,
// as grpc-go does, or the server's preference when the client accepts it.
func (st *ServerStream) chooseSendCompression(pref compress.Compressor) {
	switch {
	case st.recvComp != nil:
		st.sendComp = st.recvComp
	case pref != nil && acceptsEncoding(st.acceptEnc, pref.Name()):
		st.sendComp = pref
	}
}

// acceptsEncoding reports whether a grpc-accept-encoding list names name.
func acceptsEncoding(list, name string) bool {
	for list != "" {
		var item string
		item, list, _ = strings.Cut(list, ",")
		if strings.TrimSpace(item) == name {
			return true
		}
	}
	return false
}

func (st *ServerStream) startTimer() {
	if st.codec == nil {
		st.codec = codec.Proto
		st.contentType = "application/grpc"
	}
	if !st.hasTimeout {
		return
	}
	st.deadline = timeNow().Add(st.timeout)
	st.mu.Lock()
	st.timer = time.AfterFunc(st.timeout, st.expire)
	st.mu.Unlock()
}

// expire enforces the client's grpc-timeout: a call that has sent nothing
// ends with DEADLINE_EXCEEDED trailers, one that has is reset with CANCEL,
// as grpc-go does; the handler's context is done and whatever it sends or
// returns later is discarded.
func (st *ServerStream) expire() {
	s := status.New(status.DeadlineExceeded, "deadline exceeded")
	st.mu.Lock()
	switch {
	case st.finished:
		st.mu.Unlock()
	case !st.headerSent:
		st.mu.Unlock()
		st.finish(s, nil)
	default:
		st.finished, st.final = true, s
		st.mu.Unlock()
		st.conn.w.push(item{kind: itRST, ws: &st.ws, code: http2.ErrCodeCancel})
		st.recv.release()
	}
	st.abort(s)
}

// expireCtx ends the handler's context with DeadlineExceeded without
// answering: the client already reset the stream.
func (st *ServerStream) expireCtx() {
	st.abort(status.New(status.DeadlineExceeded, "deadline exceeded"))
}

// Method returns the request path, e.g. "/greeter.v1.Greeter/SayHello".
func (st *ServerStream) Method() string { return st.method }

// Codec returns the codec chosen by the request's content type.
func (st *ServerStream) Codec() codec.Codec { return st.codec }

// RemoteAddr returns the client's address.
func (st *ServerStream) RemoteAddr() net.Addr { return st.conn.conn.RemoteAddr() }

// TLSState returns the state of the call's TLS connection, nil for
// cleartext.
func (st *ServerStream) TLSState() *tls.ConnectionState {
	c, ok := st.conn.conn.(*tls.Conn)
	if !ok {
		return nil
	}
	cs := c.ConnectionState()
	return &cs
}

// IncomingMetadata returns the request's custom metadata, decoded on first
// use. It implements mdctx.Source.
func (st *ServerStream) IncomingMetadata() map[string][]string {
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.md == nil {
		st.md, _ = fieldsToMD(st.fields)
	}
	return st.md
}

type serverStreamKey struct{}

// ServerStreamFromContext returns the stream of a handler's context.
func ServerStreamFromContext(ctx context.Context) (*ServerStream, bool) {
	st, ok := ctx.Value(serverStreamKey{}).(*ServerStream)
	return st, ok
}

// Deadline returns the deadline the client set with grpc-timeout.
func (st *ServerStream) Deadline() (time.Time, bool) {
	if st.hasTimeout {
		return st.deadline, true
	}
	return st.conn.srv.cfg.BaseContext.Deadline()
}

var closedChan = func() chan struct{} { c := make(chan struct{}); close(c); return c }()

// Done returns a channel closed when the call is canceled, times out or
// ends. It is made on first use: handlers that never ask cost nothing.
func (st *ServerStream) Done() <-chan struct{} {
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.done == nil {
		if st.err != nil {
			st.done = closedChan
		} else {
			st.done = make(chan struct{})
		}
	}
	return st.done
}

// Err returns context.Canceled or context.DeadlineExceeded once Done is
// closed.
func (st *ServerStream) Err() error {
	st.mu.Lock()
	defer st.mu.Unlock()
	return st.err
}

// Value answers the stream's own keys and defers to the server's base
// context for the rest.
func (st *ServerStream) Value(key any) any {
	if st.web != nil {
		// A web handler's request context: the gRPC call is not there.
		return st.conn.srv.cfg.BaseContext.Value(key)
	}
	switch key {
	case serverStreamKey{}:
		return st
	case callctx.Key{}:
		return callctx.Call(st)
	case mdctx.IncomingKey{}:
		return mdctx.Source(st)
	}
	return st.conn.srv.cfg.BaseContext.Value(key)
}

// AfterFunc arranges for f to run in its own goroutine once the stream's
// context is done. context.WithCancel and context.AfterFunc use it, so
// deriving a context from a handler's starts no goroutine.
func (st *ServerStream) AfterFunc(f func()) (stop func() bool) {
	st.mu.Lock()
	if st.err != nil {
		st.mu.Unlock()
		go f()
		return func() bool { return false }
	}
	a := &afterFunc{f: f}
	if st.afterFuncs == nil {
		st.afterFuncs = map[*afterFunc]struct{}{}
	}
	st.afterFuncs[a] = struct{}{}
	st.mu.Unlock()
	return func() bool {
		st.mu.Lock()
		defer st.mu.Unlock()
		_, ok := st.afterFuncs[a]
		delete(st.afterFuncs, a)
		return ok
	}
}

// abort ends the stream's context and receive side with cause.
func (st *ServerStream) abort(cause *status.Error) {
	st.recv.fail(cause)
	ctxErr := context.Canceled
	if cause.Code() == status.DeadlineExceeded {
		ctxErr = context.DeadlineExceeded
	}
	st.cancel(ctxErr)
}

func (st *ServerStream) cancel(err error) {
	st.mu.Lock()
	if st.err != nil {
		st.mu.Unlock()
		return
	}
	st.err = err
	if st.done != nil {
		close(st.done)
	}
	fns := st.afterFuncs
	st.afterFuncs = nil
	if st.timer != nil {
		st.timer.Stop()
	}
	st.mu.Unlock()
	for a := range fns {
		go a.f()
	}
}

func (st *ServerStream) ctxStatus() *status.Error {
	st.mu.Lock()
	err := st.err
	st.mu.Unlock()
	switch err {
	case nil:
		return nil
	case context.DeadlineExceeded:
		return status.New(status.DeadlineExceeded, "deadline exceeded")
	}
	st.recv.mu.Lock()
	cause := st.recv.err
	st.recv.mu.Unlock()
	if s, ok := cause.(*status.Error); ok {
		return s
	}
	return status.New(status.Canceled, "stream canceled")
}

// RecvMsg decodes the next request message into m. It returns io.EOF once
// the client has half-closed.
func (st *ServerStream) RecvMsg(m any) error {
	msg, err := st.recv.next(nil, nil)
	if err != nil {
		return err
	}
	s := decodeMsg(st.codec, st.recvComp, msg, st.recv.maxMsg, m)
	st.recv.consume(msg)
	if s != nil {
		return s
	}
	return nil
}

// MoreData reports whether the client sent bytes beyond the messages
// received so far; the server uses it to reject a second request message on
// a unary call.
func (st *ServerStream) MoreData() bool { return st.recv.pending() }

// SendMsg sends a response message, with the response headers first if
// they have not been sent.
func (st *ServerStream) SendMsg(m any) error {
	if s := st.ctxStatus(); s != nil {
		return s
	}
	bp, err := encode(st.codec, m, st.sendComp)
	if err != nil {
		return err
	}
	if !st.ws.acquire(len(*bp), st.Done()) {
		putBuf(bp)
		if s := st.ctxStatus(); s != nil {
			return s
		}
		return status.New(status.Unavailable, "transport: stream closed")
	}
	st.mu.Lock()
	if st.finished {
		st.mu.Unlock()
		st.ws.release(len(*bp), false)
		putBuf(bp)
		return status.New(status.Internal, "transport: SendMsg after the call ended")
	}
	first := !st.headerSent
	st.headerSent = true
	st.mu.Unlock()
	data := item{kind: itData, ws: &st.ws, buf: bp}
	if first {
		st.conn.w.pushN(item{kind: itHeaders, ws: &st.ws}, data)
	} else {
		st.conn.w.push(data)
	}
	return nil
}

// SetHeader merges md into the response headers.
func (st *ServerStream) SetHeader(md metadata.MD) error {
	if err := wire.CheckMD(md, reservedHeader); err != nil {
		return err
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.headerSent || st.finished {
		return status.New(status.Internal, "transport: SetHeader after headers were sent")
	}
	st.header = wire.MergeMD(st.header, md)
	return nil
}

// SendHeader merges md into the response headers and sends them now.
func (st *ServerStream) SendHeader(md metadata.MD) error {
	if err := wire.CheckMD(md, reservedHeader); err != nil {
		return err
	}
	st.mu.Lock()
	if st.headerSent || st.finished {
		st.mu.Unlock()
		return status.New(status.Internal, "transport: SendHeader called twice or after the call ended")
	}
	st.header = wire.MergeMD(st.header, md)
	st.headerSent = true
	st.mu.Unlock()
	st.conn.w.push(item{kind: itHeaders, ws: &st.ws})
	return nil
}

// SetTrailer merges md into the trailers sent with the status.
// Metadata HTTP/2 cannot carry is left out and reported to the server's
// ErrorLog (the method has no error to return).
func (st *ServerStream) SetTrailer(md metadata.MD) {
	if err := wire.CheckMD(md, reservedHeader); err != nil {
		if log := st.conn.cfg.ErrorLog; log != nil {
			log("SetTrailer for "+st.method, err)
		}
		return
	}
	st.mu.Lock()
	if !st.finished {
		st.trailer = wire.MergeMD(st.trailer, md)
	}
	st.mu.Unlock()
}

// Context returns the stream itself.
func (st *ServerStream) Context() context.Context { return st }

// Finish ends the call with err's status (OK for nil).
func (st *ServerStream) Finish(err error) { st.finish(status.Convert(err), nil) }

// FinishWithMessage sends m as the only response and ends the call with OK:
// headers, message and trailers go to the writer as one batch.
func (st *ServerStream) FinishWithMessage(m any) error {
	bp, err := encode(st.codec, m, st.sendComp)
	if err != nil {
		st.finish(status.Convert(err), nil)
		return err
	}
	st.finish(nil, bp)
	return nil
}

func (st *ServerStream) finish(s *status.Error, bp *[]byte) {
	st.mu.Lock()
	if st.finished {
		st.mu.Unlock()
		if bp != nil {
			putBuf(bp)
		}
		return
	}
	st.finished = true
	st.final = s
	first := !st.headerSent
	st.headerSent = true
	// Headers the handler set go out in their own frame, as grpc-go sends
	// them, so clients see them as headers even when the call fails.
	separateHeaders := first && bp == nil && len(st.header) > 0
	st.trailersOnly = first && bp == nil && !separateHeaders
	st.mu.Unlock()
	// What the request still holds goes back now; a client still sending
	// is told to stop with RST_STREAM(NO_ERROR) after the trailers.
	_, rstAfter := st.recv.release()
	w := st.conn.w
	if bp != nil {
		st.ws.add(len(*bp))
	}
	trailers := item{kind: itTrailers, ws: &st.ws, rstAfter: rstAfter}
	switch {
	case bp != nil && first:
		w.pushN(item{kind: itHeaders, ws: &st.ws}, item{kind: itData, ws: &st.ws, buf: bp}, trailers)
	case bp != nil:
		w.pushN(item{kind: itData, ws: &st.ws, buf: bp}, trailers)
	case separateHeaders:
		w.pushN(item{kind: itHeaders, ws: &st.ws}, trailers)
	default:
		w.push(trailers)
	}
	ctxErr := context.Canceled
	if s.Code() == status.DeadlineExceeded && st.hasTimeout && !timeNow().Before(st.deadline) {
		ctxErr = context.DeadlineExceeded
	}
	st.cancel(ctxErr)
}

// sent is part of headerSource: the writer has written the stream's last
// frame (or dropped it on a reset), so the connection can forget it.
func (st *ServerStream) sent() { st.conn.removeStream(st) }

// flowError is part of headerSource.
func (st *ServerStream) flowError() {
	st.abort(status.New(status.Internal, "transport: client overflowed the stream's flow-control window"))
	st.recv.release()
}

// opened is part of headerSource; server streams are opened by the client.
func (st *ServerStream) opened(uint32) bool { return true }

// writeHeaderFields encodes the response headers or the trailers. The
// writer calls it after the stream's senders have published, under the
// queue's lock, every field it reads.
func (st *ServerStream) writeHeaderFields(enc *hpack.Encoder, kind itemKind) bool {
	if st.web != nil {
		return st.writeWebFields(enc, kind)
	}
	if kind == itHeaders || st.trailersOnly {
		code := "200"
		if st.rejectHTTP != 0 && st.rejectHTTP != 200 {
			code = fmt.Sprint(st.rejectHTTP)
		}
		enc.WriteField(hpack.HeaderField{Name: ":status", Value: code})
		ct := st.contentType
		if ct == "" {
			ct = "application/grpc"
		}
		enc.WriteField(hpack.HeaderField{Name: "content-type", Value: ct})
		if st.sendComp != nil && kind == itHeaders {
			enc.WriteField(hpack.HeaderField{Name: "grpc-encoding", Value: st.sendComp.Name()})
		}
		enc.WriteField(hpack.HeaderField{Name: "grpc-accept-encoding", Value: wire.AcceptEncoding()})
		writeMD(enc, st.header)
		if kind == itHeaders {
			return false
		}
	}
	s := st.final
	enc.WriteField(hpack.HeaderField{Name: "grpc-status", Value: wire.CodeString(s.Code())})
	if msg := s.Message(); msg != "" {
		enc.WriteField(hpack.HeaderField{Name: "grpc-message", Value: wire.EncodeMessage(msg)})
	}
	if len(s.Details()) > 0 {
		enc.WriteField(hpack.HeaderField{Name: "grpc-status-details-bin", Value: wire.EncodeBin(string(wire.MarshalStatus(s)))})
	}
	writeMD(enc, st.trailer)
	return true
}
