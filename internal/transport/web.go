package transport

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"github.com/protoc-gen-micro/micro/internal/wire"
	"github.com/protoc-gen-micro/micro/runtime/status"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// An HTTP/2 stream that is not gRPC (Connect, gRPC-Web, a CORS preflight,
// curl) is served by ServerConfig.Web, an http.Handler, on the same
// connection as the gRPC streams. Such a stream keeps everything a gRPC one
// has: the connection's concurrency bound and handler accounting, flow
// control tied to what the handler reads (its body is the stream's receive
// buffer in raw mode, so a peer can make us hold at most a stream window of
// it), the writer's batching and write timeout, and the drain on GOAWAY.
// What the handler writes becomes HEADERS, DATA and, if it sets any, HTTP
// trailers.

// webState is what a stream served by ServerConfig.Web keeps beyond a
// gRPC one's.
type webState struct {
	req reqHeaders
	// Set before the stream's headers or trailers are queued, read by the
	// writer.
	status  int
	header  http.Header
	trailer http.Header
	// timer ends the body's reads at the call's deadline (SetCallDeadline).
	timer *time.Timer
}

// webFlushSize is how much response body is gathered before it is queued
// as DATA: a handler's small writes (an envelope's prefix, then its
// message) go out as one frame, and a unary response goes out with its
// headers in one batch.
const webFlushSize = 16 << 10

// errWebStreamClosed is what a web handler's writes return once the
// client has reset the stream or the connection is gone.
var errWebStreamClosed = errors.New("transport: HTTP/2 stream closed")

// serveWeb runs a non-gRPC stream's handler on a worker and ends the stream
// when it returns: with END_STREAM, or RST_STREAM(INTERNAL_ERROR) if it
// panicked, as x/net/http2 does.
func (s *Server) serveWeb(st *ServerStream) {
	w := &webResponse{st: st, header: make(http.Header)}
	defer func() {
		if r := recover(); r != nil {
			if r != http.ErrAbortHandler {
				s.logf("web handler for "+st.method+" panicked", fmt.Errorf("%v\n%s", r, debug.Stack()))
			}
			w.reset()
			return
		}
		w.finish()
	}()
	r, err := st.webRequest()
	if err != nil {
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	s.cfg.Web.ServeHTTP(w, r)
}

// webRequest builds the http.Request of a web stream from its headers.
func (st *ServerStream) webRequest() (*http.Request, error) {
	u, err := url.ParseRequestURI(st.method)
	if err != nil {
		return nil, err
	}
	h := make(http.Header, len(st.fields)+4)
	for _, f := range st.fields {
		k := http.CanonicalHeaderKey(f.Name)
		if k == "Cookie" && len(h[k]) > 0 {
			// RFC 9113 §8.2.3: split cookies are joined again.
			h[k][0] += "; " + f.Value
			continue
		}
		h[k] = append(h[k], f.Value)
	}
	for _, kv := range [...]struct{ k, v string }{
		{"Content-Type", st.web.req.contentType}, {"Grpc-Timeout", st.web.req.timeout},
		{"Grpc-Encoding", st.web.req.encoding}, {"Grpc-Accept-Encoding", st.acceptEnc},
	} {
		if kv.v != "" {
			h[kv.k] = []string{kv.v}
		}
	}
	r := &http.Request{
		Method:        st.web.req.method,
		URL:           u,
		Proto:         "HTTP/2.0",
		ProtoMajor:    2,
		Header:        h,
		Host:          st.web.req.authority,
		RemoteAddr:    st.RemoteAddr().String(),
		RequestURI:    st.method,
		TLS:           st.TLSState(),
		ContentLength: st.contentLength,
		Body:          &webBody{st: st},
	}
	if st.recv.peerEnded() && !st.recv.pending() {
		r.Body, r.ContentLength = http.NoBody, 0
	}
	return r.WithContext(st), nil
}

// webBody is a web stream's request body: it reads the stream's receive
// buffer, granting the window back as it goes.
type webBody struct {
	st     *ServerStream
	closed bool
}

func (b *webBody) Read(p []byte) (int, error) {
	if b.closed {
		return 0, errBodyClosed
	}
	st := b.st
	return st.recv.readRaw(p, st.Done(), func() error { return st.ctxStatus() })
}

// Close ends the body's reads. What it still holds is returned to the
// windows when the stream ends.
func (b *webBody) Close() error {
	b.closed = true
	return nil
}

var errBodyClosed = errors.New("transport: read on closed request body")

// SetCallDeadline implements webrpc.CallDeadliner: a read still waiting at
// t fails with DEADLINE_EXCEEDED.
func (b *webBody) SetCallDeadline(t time.Time) {
	st := b.st
	if st.web.timer != nil {
		st.web.timer.Stop()
	}
	st.web.timer = time.AfterFunc(time.Until(t), func() {
		st.recv.fail(status.New(status.DeadlineExceeded, "deadline exceeded"))
	})
}

// webResponse is the http.ResponseWriter of a web stream. It belongs to
// the handler's goroutine, as net/http's does.
type webResponse struct {
	st     *ServerStream
	header http.Header
	wrote  bool    // WriteHeader was called
	buf    *[]byte // body written and not yet queued
	err    error
}

func (w *webResponse) Header() http.Header { return w.header }

// WriteHeader records the status and a copy of the header; they are
// queued with the first body bytes, at Flush, or at the end.
func (w *webResponse) WriteHeader(code int) {
	if w.wrote || code >= 100 && code < 200 {
		return // informational responses are not sent
	}
	if code < 100 || code > 999 {
		panic("transport: invalid WriteHeader code " + strconv.Itoa(code))
	}
	w.wrote = true
	w.st.web.status = code
	w.st.web.header = w.header.Clone()
}

func (w *webResponse) Write(p []byte) (int, error) {
	if !w.wrote {
		w.WriteHeader(http.StatusOK)
	}
	if w.err != nil {
		return 0, w.err
	}
	if w.buf == nil {
		w.buf = getBuf(min(len(p), webFlushSize))
	}
	*w.buf = append(*w.buf, p...)
	if len(*w.buf) >= webFlushSize {
		if err := w.queue(); err != nil {
			return 0, err
		}
	}
	return len(p), nil
}

// Flush queues the headers and what was written; the connection's
// writer sends them with its next batch.
func (w *webResponse) Flush() { _ = w.FlushError() }

// FlushError is Flush for http.ResponseController.
func (w *webResponse) FlushError() error {
	if !w.wrote {
		w.WriteHeader(http.StatusOK)
	}
	if w.err != nil {
		return w.err
	}
	return w.queue()
}

// queue hands the headers, if not yet sent, and the gathered body to the
// writer, waiting while the stream has too much queued already.
func (w *webResponse) queue() error {
	st := w.st
	bp := w.buf
	w.buf = nil
	n := 0
	if bp != nil {
		n = len(*bp)
		if !st.ws.acquire(n, st.Done()) {
			putBuf(bp)
			w.err = errWebStreamClosed
			return w.err
		}
	}
	st.mu.Lock()
	if st.finished || st.err != nil {
		st.mu.Unlock()
		if bp != nil {
			st.ws.release(n, false)
			putBuf(bp)
		}
		w.err = errWebStreamClosed
		return w.err
	}
	first := !st.headerSent
	st.headerSent = true
	st.mu.Unlock()
	switch {
	case first && bp != nil:
		st.conn.w.pushN(item{kind: itHeaders, ws: &st.ws}, item{kind: itData, ws: &st.ws, buf: bp})
	case first:
		st.conn.w.push(item{kind: itHeaders, ws: &st.ws})
	case bp != nil:
		st.conn.w.push(item{kind: itData, ws: &st.ws, buf: bp})
	}
	return nil
}

// finish ends the stream once the handler has returned: what is left of
// the body, then END_STREAM on it or on the trailers.
func (w *webResponse) finish() {
	if !w.wrote {
		w.WriteHeader(http.StatusOK)
	}
	st := w.st
	w.stopTimer()
	trailer := w.trailers()
	bp := w.buf
	w.buf = nil
	st.mu.Lock()
	if st.finished || st.err != nil {
		st.mu.Unlock()
		if bp != nil {
			putBuf(bp)
		}
		st.cancel(context.Canceled)
		return
	}
	st.finished = true
	first := !st.headerSent
	st.headerSent = true
	st.web.trailer = trailer
	st.trailersOnly = first && bp == nil && trailer == nil
	st.mu.Unlock()
	// As x/net/http2: a client still sending is told to stop with
	// RST_STREAM(NO_ERROR) once the response has ended.
	_, rstAfter := st.recv.release()
	if bp != nil {
		st.ws.add(len(*bp))
	}
	var buf [3]item // pushN copies them into its queue: no allocation
	items := buf[:0]
	if first && !st.trailersOnly {
		items = append(items, item{kind: itHeaders, ws: &st.ws})
	}
	switch {
	case st.trailersOnly || trailer != nil:
		if bp != nil {
			items = append(items, item{kind: itData, ws: &st.ws, buf: bp})
		}
		items = append(items, item{kind: itTrailers, ws: &st.ws, rstAfter: rstAfter})
	default:
		items = append(items, item{kind: itData, ws: &st.ws, buf: bp, end: true, rstAfter: rstAfter})
	}
	st.conn.w.pushN(items...)
	st.cancel(context.Canceled)
}

// reset ends the stream of a handler that panicked with
// RST_STREAM(INTERNAL_ERROR).
func (w *webResponse) reset() {
	st := w.st
	w.stopTimer()
	if w.buf != nil {
		putBuf(w.buf)
		w.buf = nil
	}
	st.mu.Lock()
	st.finished = true
	st.mu.Unlock()
	st.conn.w.push(item{kind: itRST, ws: &st.ws, code: http2.ErrCodeInternal})
	st.recv.release()
	st.abort(status.New(status.Internal, "handler panicked"))
}

func (w *webResponse) stopTimer() {
	if t := w.st.web.timer; t != nil {
		t.Stop()
	}
}

// trailers returns the trailers the handler set, as net/http takes them:
// header keys it declared in "Trailer" before writing, and keys prefixed
// with http.TrailerPrefix.
func (w *webResponse) trailers() http.Header {
	var t http.Header
	add := func(k string, vs []string) {
		if t == nil {
			t = make(http.Header)
		}
		t[http.CanonicalHeaderKey(k)] = append(t[http.CanonicalHeaderKey(k)], vs...)
	}
	for _, decl := range w.st.web.header["Trailer"] {
		for _, k := range strings.Split(decl, ",") {
			if k = http.CanonicalHeaderKey(strings.TrimSpace(k)); k != "" {
				if vs := w.header[k]; len(vs) > 0 {
					add(k, vs)
				}
			}
		}
	}
	for k, vs := range w.header {
		if name, ok := strings.CutPrefix(k, http.TrailerPrefix); ok && len(vs) > 0 {
			add(name, vs)
		}
	}
	return t
}

// writeWebFields is writeHeaderFields for a web stream.
func (st *ServerStream) writeWebFields(enc *hpack.Encoder, kind itemKind) bool {
	if kind == itHeaders || st.trailersOnly {
		code := st.web.status
		if st.rejectStatus != nil {
			code = st.rejectHTTP
		}
		enc.WriteField(hpack.HeaderField{Name: ":status", Value: strconv.Itoa(code)})
		writeHTTPHeader(enc, st.web.header, true)
		return kind != itHeaders
	}
	writeHTTPHeader(enc, st.web.trailer, false)
	return true
}

// writeHTTPHeader hpack-encodes a handler's header or trailer, lower-casing
// the names and leaving out what HTTP/2 forbids or the handler meant for
// net/http alone.
func writeHTTPHeader(enc *hpack.Encoder, h http.Header, leading bool) {
	for k, vs := range h {
		if leading && (k == "Trailer" || strings.HasPrefix(k, http.TrailerPrefix)) {
			continue
		}
		name := strings.ToLower(k)
		if connectionHeader(name) || !wire.ValidFieldName(name) {
			continue
		}
		for _, v := range vs {
			if wire.ValidFieldValue(v) {
				enc.WriteField(hpack.HeaderField{Name: name, Value: v})
			}
		}
	}
}
