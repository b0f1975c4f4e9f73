package webrpc

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/protoc-gen-micro/micro/internal/callctx"
	"github.com/protoc-gen-micro/micro/internal/mdctx"
	"github.com/protoc-gen-micro/micro/internal/wire"
	"github.com/protoc-gen-micro/micro/runtime/codec"
	"github.com/protoc-gen-micro/micro/runtime/compress"
	"github.com/protoc-gen-micro/micro/runtime/metadata"
	"github.com/protoc-gen-micro/micro/runtime/spec"
	"github.com/protoc-gen-micro/micro/runtime/status"
)

// protocol is how a request is framed.
type protocol uint8

const (
	protoUnknown  protocol = iota
	connectUnary           // POST application/<codec>, or GET
	connectStream          // POST application/connect+<codec>
	grpcWeb                // POST application/grpc-web[-text][+<codec>]
	grpcPlain              // POST application/grpc[+<codec>], with HTTP trailers
)

// call is one request as its handler sees it: the handler's context, its
// stream and, through callctx, what server.SetHeader and friends reach. It
// is a context.Context: the request's (with the client's deadline) that
// answers the call's own keys.
type call struct {
	ctx         context.Context
	h           *handler
	m           *Method
	w           http.ResponseWriter
	r           *http.Request
	rc          *http.ResponseController
	proto       protocol
	text        bool // grpc-web-text: base64 both ways
	codec       codec.Codec
	contentType string // of a successful response
	recvComp    compress.Compressor
	sendComp    compress.Compressor
	cors        bool // the origin is allowed: expose the response headers
	get         *getQuery
	body        io.Reader // the request body
	bodyDone    bool      // drainBodyLocked has run
	deadline    time.Time // the call's, if it has one

	// The receive side belongs to the handler's RecvMsg.
	env       envelopeReader
	unaryRead bool
	decBuf    []byte

	// wmu serialises writes to w: a handler may send from one goroutine
	// while another sets headers, and net/http's writer is not safe for
	// that.
	wmu         sync.Mutex
	wroteHeader bool
	scratch     []byte
	out         []byte

	mu         sync.Mutex
	header     metadata.MD
	trailer    metadata.MD
	headerSent bool // the headers are sealed (sent for streaming protocols)
	finished   bool
	md         metadata.MD
}

// Value answers the call's own keys and defers to the request's context.
func (c *call) Value(key any) any {
	switch key.(type) {
	case callctx.Key:
		return callctx.Call(c)
	case mdctx.IncomingKey:
		return mdctx.Source(c)
	}
	return c.ctx.Value(key)
}

// Deadline, Done and Err are the request context's.
func (c *call) Deadline() (time.Time, bool) { return c.ctx.Deadline() }
func (c *call) Done() <-chan struct{}       { return c.ctx.Done() }
func (c *call) Err() error                  { return c.ctx.Err() }

// Method implements callctx.Call.
func (c *call) Method() string { return c.m.Spec.Procedure }

// Codec implements callctx.Call.
func (c *call) Codec() codec.Codec { return c.codec }

// MoreData implements callctx.Call. The Connect unary body is read whole;
// an enveloped body is peeked, which waits for the client to send more or
// end the body.
func (c *call) MoreData() bool {
	if c.proto == connectUnary {
		return false
	}
	return c.env.more()
}

// RemoteAddr implements callctx.Call.
func (c *call) RemoteAddr() net.Addr {
	if ap, err := netip.ParseAddrPort(c.r.RemoteAddr); err == nil {
		return net.TCPAddrFromAddrPort(ap)
	}
	return stringAddr(c.r.RemoteAddr)
}

type stringAddr string

func (a stringAddr) Network() string { return "tcp" }
func (a stringAddr) String() string  { return string(a) }

// TLSState implements callctx.Call.
func (c *call) TLSState() *tls.ConnectionState { return c.r.TLS }

// IncomingMetadata implements mdctx.Source: the request's custom headers,
// made into metadata on first use.
func (c *call) IncomingMetadata() map[string][]string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.md == nil {
		c.md = wire.HTTPHeaderToMD(c.r.Header)
	}
	return c.md
}

// Context implements interceptor.ServerStream.
func (c *call) Context() context.Context { return c }

// ctxStatus is the status of the call's context once it is done.
func (c *call) ctxStatus() *status.Error {
	switch c.ctx.Err() {
	case nil:
		return nil
	case context.DeadlineExceeded:
		return status.New(status.DeadlineExceeded, "deadline exceeded")
	}
	if c.expired() {
		// The body's read deadline, which is the call's, can make
		// net/http cancel the request a moment before the call's own
		// timer fires.
		return status.New(status.DeadlineExceeded, "deadline exceeded")
	}
	return status.New(status.Canceled, "the client went away")
}

// recvErr turns an error reading the body into the call's status.
func (c *call) recvErr(err error) error {
	if s, ok := err.(*status.Error); ok {
		return s
	}
	if s := c.ctxStatus(); s != nil {
		return s
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return status.New(status.DeadlineExceeded, "deadline exceeded")
	}
	return status.Errorf(status.Canceled, "read request: %v", err)
}

// RecvMsg decodes the next request message into m; io.EOF at the end.
func (c *call) RecvMsg(m any) error {
	var (
		flags byte
		body  []byte
	)
	if c.proto == connectUnary {
		if c.unaryRead {
			return io.EOF
		}
		c.unaryRead = true
		if c.get != nil {
			body = c.get.message
		} else {
			b, err := compress.ReadLimited(c.decBuf[:0], c.body, c.h.maxMsg)
			if errors.Is(err, compress.ErrTooLarge) {
				return status.Errorf(status.ResourceExhausted, "message is larger than configured max %d", c.h.maxMsg)
			}
			if err != nil {
				return c.recvErr(err)
			}
			body = b
		}
		if c.recvComp != nil && len(body) > 0 {
			flags = flagCompressed
		}
	} else {
		var err error
		flags, body, err = c.env.next()
		if err == io.EOF {
			return io.EOF
		}
		if err != nil {
			return c.recvErr(err)
		}
		if flags&^flagCompressed != 0 {
			return status.Errorf(status.InvalidArgument, "protocol error: invalid envelope flags %#x", flags)
		}
		if flags&flagCompressed != 0 && c.recvComp == nil {
			return status.New(status.Internal, "protocol error: received a compressed message without an encoding")
		}
	}
	if flags&flagCompressed != 0 {
		// The buffer is decBuf only when body is not already in it.
		var dst []byte
		if c.proto != connectUnary || c.get != nil {
			dst = c.decBuf[:0]
		}
		out, err := c.recvComp.Decompress(dst, body, c.h.maxMsg)
		if err == nil && len(out) > c.h.maxMsg {
			err = compress.ErrTooLarge // a third-party compressor overshot
		}
		if errors.Is(err, compress.ErrTooLarge) {
			return status.Errorf(status.ResourceExhausted, "message after decompression is larger than configured max %d", c.h.maxMsg)
		}
		if err != nil {
			return status.Errorf(status.InvalidArgument, "decompress %s: %v", c.recvComp.Name(), err)
		}
		if dst != nil {
			c.decBuf = out[:0]
		}
		body = out
	} else if c.proto == connectUnary && c.get == nil {
		c.decBuf = body[:0]
	}
	if err := c.codec.Unmarshal(body, m); err != nil {
		return status.Errorf(status.InvalidArgument, "unmarshal message: %v", err)
	}
	return nil
}

// SendMsg sends a response message of a streaming protocol, with the
// headers first if they have not been sent.
func (c *call) SendMsg(m any) error {
	if s := c.ctxStatus(); s != nil {
		return s
	}
	if c.proto == connectUnary {
		return status.New(status.Internal, "webrpc: SendMsg on a unary call")
	}
	c.mu.Lock()
	if c.finished {
		c.mu.Unlock()
		return status.New(status.Internal, "webrpc: SendMsg after the call ended")
	}
	c.mu.Unlock()
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if err := c.writeMsgLocked(m); err != nil {
		return err
	}
	if t := c.m.Spec.StreamType; t == spec.ServerStream || t == spec.BidiStream {
		_ = c.rc.Flush()
	}
	return nil
}

// writeMsgLocked writes m in an envelope, after the headers.
func (c *call) writeMsgLocked(m any) error {
	raw, err := c.codec.MarshalAppend(c.scratch[:0], m)
	if err != nil {
		return status.Errorf(status.Internal, "marshal message: %v", err)
	}
	c.scratch = raw[:0]
	flags, body := byte(0), raw
	if c.sendComp != nil {
		cb, err := c.sendComp.Compress(nil, raw)
		if err != nil {
			return status.Errorf(status.Internal, "compress with %s: %v", c.sendComp.Name(), err)
		}
		flags, body = flagCompressed, cb
	}
	c.writeHeaderLocked()
	return c.writeEnvelopeLocked(flags, body)
}

func (c *call) writeEnvelopeLocked(flags byte, body []byte) error {
	c.out = appendEnvelope(c.out[:0], flags, body)
	b := c.out
	if c.text {
		b = base64.StdEncoding.AppendEncode(c.scratch[:0], c.out)
		c.scratch = b[:0]
	}
	if _, err := c.w.Write(b); err != nil {
		if s := c.ctxStatus(); s != nil {
			return s
		}
		return status.Errorf(status.Unavailable, "write response: %v", err)
	}
	return nil
}

// writeHeaderLocked sends the response headers of a streaming protocol
// once.
func (c *call) writeHeaderLocked() {
	if c.wroteHeader {
		return
	}
	c.wroteHeader = true
	c.mu.Lock()
	c.headerSent = true
	md := c.header
	c.mu.Unlock()
	h := c.w.Header()
	c.protocolHeaders(h)
	rangeMD(md, h.Add)
	c.expose(h)
	c.w.WriteHeader(http.StatusOK)
}

// protocolHeaders sets the content type and compression headers of a
// successful response.
func (c *call) protocolHeaders(h http.Header) {
	h.Set("Content-Type", c.contentType)
	switch c.proto {
	case connectUnary:
		h.Set("Accept-Encoding", wire.AcceptEncoding())
	case connectStream:
		h.Set("Connect-Accept-Encoding", wire.AcceptEncoding())
		if c.sendComp != nil {
			h.Set("Connect-Content-Encoding", c.sendComp.Name())
		}
	default:
		h.Set("Grpc-Accept-Encoding", wire.AcceptEncoding())
		if c.sendComp != nil {
			h.Set("Grpc-Encoding", c.sendComp.Name())
		}
	}
}

// expose lists the response's headers for a cross-origin script to read.
func (c *call) expose(h http.Header) {
	if c.cors {
		exposeHeaders(h)
	}
}

func exposeHeaders(h http.Header) {
	names := exposedHeaders
	for k := range h {
		switch k {
		case "Content-Type", "Content-Length", "Vary", "Access-Control-Allow-Origin", "Grpc-Status", "Grpc-Message", "Grpc-Status-Details-Bin":
			continue
		}
		names += ", " + k
	}
	h.Set("Access-Control-Expose-Headers", names)
}

// SetHeader implements interceptor.ServerStream and callctx.Call.
func (c *call) SetHeader(md metadata.MD) error {
	if err := wire.CheckMD(md, wire.ReservedHTTPHeader); err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.headerSent || c.finished {
		return status.New(status.Internal, "webrpc: SetHeader after headers were sent")
	}
	c.header = wire.MergeMD(c.header, md)
	return nil
}

// SendHeader implements interceptor.ServerStream and callctx.Call. A
// Connect unary response's headers go with its body, whose status is not
// known yet: they are sealed now and sent then.
func (c *call) SendHeader(md metadata.MD) error {
	if err := wire.CheckMD(md, wire.ReservedHTTPHeader); err != nil {
		return err
	}
	c.mu.Lock()
	if c.headerSent || c.finished {
		c.mu.Unlock()
		return status.New(status.Internal, "webrpc: SendHeader called twice or after the call ended")
	}
	c.header = wire.MergeMD(c.header, md)
	c.headerSent = true
	c.mu.Unlock()
	if c.proto == connectUnary {
		return nil
	}
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.writeHeaderLocked()
	_ = c.rc.Flush()
	return nil
}

// SetTrailer implements interceptor.ServerStream and callctx.Call.
func (c *call) SetTrailer(md metadata.MD) {
	if err := wire.CheckMD(md, wire.ReservedHTTPHeader); err != nil {
		c.h.log.Debug("webrpc: SetTrailer", "method", c.m.Spec.Procedure, "err", err)
		return
	}
	c.mu.Lock()
	if !c.finished {
		c.trailer = wire.MergeMD(c.trailer, md)
	}
	c.mu.Unlock()
}

// finish ends the call with err's status, after rsp, the response of a
// unary method, when err is nil. A call whose deadline passed ends with
// DEADLINE_EXCEEDED whatever its handler returned, as on the gRPC path.
func (c *call) finish(err error, rsp any) {
	var s *status.Error
	if err != nil {
		s = status.Convert(err)
	}
	if err := c.ctx.Err(); err == context.DeadlineExceeded || err != nil && c.expired() {
		s, rsp = status.New(status.DeadlineExceeded, "deadline exceeded"), nil
	}
	c.mu.Lock()
	if c.finished {
		c.mu.Unlock()
		return
	}
	c.finished = true
	c.headerSent = true
	trailer := c.trailer
	c.mu.Unlock()
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.proto == connectUnary {
		c.finishConnectUnary(s, rsp, trailer)
		return
	}
	if s == nil && rsp != nil {
		if err := c.writeMsgLocked(rsp); err != nil {
			s = status.Convert(err)
		}
	}
	c.drainBodyLocked()
	if c.proto == connectStream {
		c.writeHeaderLocked()
		_ = c.writeEnvelopeLocked(flagEndStream, marshalEndStream(s, trailer))
		return
	}
	c.finishGRPC(s, trailer)
}

// expired says the call had a deadline and it has passed.
func (c *call) expired() bool {
	return !c.deadline.IsZero() && !time.Now().Before(c.deadline)
}

// maxDrain bounds what drainBodyLocked reads of a request body the handler
// left, as net/http bounds its own draining.
const maxDrain = 256 << 10

// drainBodyLocked reads what is left of a streaming call's HTTP/1.1
// request body (the chunked encoding's last chunk, at least) before the
// call's end is written, so that the connection can carry the next
// request. With full duplex on, net/http does not drain the body before
// the response; a body left half read makes the next request on the
// connection unreadable (a 400 to a client that sent none). A body that
// does not end within maxDrain closes the connection instead, when the
// headers have not gone yet; otherwise net/http's own draining follows.
func (c *call) drainBodyLocked() {
	if c.r.ProtoMajor >= 2 || c.env.r == nil || c.bodyDone {
		return
	}
	c.bodyDone = true
	if c.wroteHeader {
		// What was sent may be what the client waits for before it
		// ends its body.
		_ = c.rc.Flush()
	}
	if _, err := io.CopyN(io.Discard, c.env.r, maxDrain); err != io.EOF {
		c.w.Header().Set("Connection", "close")
	}
}

func (c *call) finishConnectUnary(s *status.Error, rsp any, trailer metadata.MD) {
	h := c.w.Header()
	rangeMD(c.header, h.Add)
	rangeMD(trailer, func(k, v string) { h.Add("Trailer-"+k, v) })
	h.Set("Accept-Encoding", wire.AcceptEncoding())
	if c.get != nil {
		h.Add("Vary", "Accept-Encoding")
	}
	if s == nil {
		body, err := c.codec.MarshalAppend(c.scratch[:0], rsp)
		if err != nil {
			s = status.Errorf(status.Internal, "marshal message: %v", err)
		} else if c.sendComp != nil {
			if cb, err := c.sendComp.Compress(nil, body); err == nil {
				h.Set("Content-Encoding", c.sendComp.Name())
				body = cb
			}
		}
		if s == nil {
			h.Set("Content-Type", c.contentType)
			h.Set("Content-Length", strconv.Itoa(len(body)))
			c.expose(h)
			c.w.WriteHeader(http.StatusOK)
			_, _ = c.w.Write(body)
			return
		}
	}
	writeConnectError(c.w, s, c.cors)
}

// writeConnectError answers with s as a Connect unary error: its JSON
// with the HTTP status of its code.
func writeConnectError(w http.ResponseWriter, s *status.Error, cors bool) {
	writeConnectErrorStatus(w, s, cors, connectHTTPStatus(s.Code()))
}

func writeConnectErrorStatus(w http.ResponseWriter, s *status.Error, cors bool, httpStatus int) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Del("Content-Encoding")
	b, err := json.Marshal(newWireError(s))
	if err != nil {
		b = []byte(`{"code":"internal"}`)
	}
	h.Set("Content-Length", strconv.Itoa(len(b)))
	if cors {
		exposeHeaders(h)
	}
	w.WriteHeader(httpStatus)
	_, _ = w.Write(b)
}

// finishGRPC ends a gRPC-Web or gRPC call: with the status in the headers
// when nothing else was sent (trailers-only), otherwise in the trailer
// frame (gRPC-Web) or HTTP trailers (gRPC).
func (c *call) finishGRPC(s *status.Error, trailer metadata.MD) {
	h := c.w.Header()
	if !c.wroteHeader && len(c.header) == 0 {
		c.wroteHeader = true
		c.protocolHeaders(h)
		grpcStatus(s, trailer, h.Add)
		c.expose(h)
		c.w.WriteHeader(http.StatusOK)
		return
	}
	c.writeHeaderLocked()
	if c.proto == grpcPlain {
		grpcStatus(s, trailer, func(k, v string) { h.Add(http.TrailerPrefix+k, v) })
		return
	}
	var b strings.Builder
	grpcStatus(s, trailer, func(k, v string) {
		b.WriteString(strings.ToLower(k))
		b.WriteString(": ")
		b.WriteString(v)
		b.WriteString("\r\n")
	})
	_ = c.writeEnvelopeLocked(flagTrailer, []byte(b.String()))
}

// grpcStatus calls f with the gRPC status fields of s (OK when nil) and
// the trailers.
func grpcStatus(s *status.Error, trailer metadata.MD, f func(k, v string)) {
	if s == nil {
		f("grpc-status", "0")
	} else {
		f("grpc-status", wire.CodeString(s.Code()))
		if msg := s.Message(); msg != "" {
			f("grpc-message", wire.EncodeMessage(msg))
		}
		if len(s.Details()) > 0 {
			f("grpc-status-details-bin", base64.RawStdEncoding.EncodeToString(wire.MarshalStatus(s)))
		}
	}
	rangeMD(trailer, f)
}

// newEnvelopeReader reads a streaming protocol's request body.
func (c *call) newEnvelopeReader() {
	body := c.body
	if c.text {
		body = &textReader{r: body}
	}
	c.env = envelopeReader{r: bufio.NewReaderSize(body, 4096), max: c.h.maxMsg}
}

// CallDeadliner is a request body whose reads set the connection's read
// deadline themselves (the one-port server's, which bounds each read); the
// handler gives it the call's deadline, which no read may pass.
type CallDeadliner interface {
	SetCallDeadline(t time.Time)
}
