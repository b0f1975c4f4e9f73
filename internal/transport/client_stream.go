package transport

import (
	"context"
	"io"
	"strconv"
	"sync"
	"time"

	"github.com/protoc-gen-micro/micro/internal/mdctx"
	"github.com/protoc-gen-micro/micro/internal/wire"

	"github.com/protoc-gen-micro/micro/runtime/codec"
	"github.com/protoc-gen-micro/micro/runtime/compress"
	"github.com/protoc-gen-micro/micro/runtime/metadata"
	"github.com/protoc-gen-micro/micro/runtime/status"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// ClientStream is the client side of one call.
type ClientStream struct {
	ws          wstate
	recv        recvBuffer
	cc          *ClientConn
	ctx         context.Context
	method      string
	codec       codec.Codec
	contentType string
	sendComp    compress.Compressor // the requests' encoding, nil for identity
	recvComp    compress.Compressor // the responses', from their grpc-encoding
	deadline    time.Time
	hasDeadline bool
	stopWatch   func() bool
	id          uint32 // guarded by cc.mu
	slot        bool   // guarded by cc.mu

	mu            sync.Mutex
	headersQueued bool
	sentEnd       bool
	headerReady   bool
	ended         bool
	final         *status.Error // nil for OK
	header        metadata.MD
	trailer       metadata.MD
	hdrSig        chan struct{}

	// Owned by the connection's reader while a header block is decoded.
	gotHeaders    bool
	httpStatus    string
	respCT        string
	grpcStatus    string
	hasGrpcStatus bool
	grpcMessage   string
	details       string
	respEnc       string
	fields        []hpack.HeaderField
}

// Context returns the call's context.
func (cs *ClientStream) Context() context.Context { return cs.ctx }

// opened registers the stream under the id the writer gave it, unless the
// call was abandoned before its headers went out.
func (cs *ClientStream) opened(id uint32) bool {
	cc := cs.cc
	cc.mu.Lock()
	cs.mu.Lock()
	ended := cs.ended
	cs.mu.Unlock()
	if ended {
		cc.mu.Unlock()
		return false
	}
	if id == 0 || cc.closed {
		// The writer dropped the headers, or the connection closed while
		// they were queued: closeWith no longer sees this stream, so end
		// it here. Its headers never left, so it may be retried.
		cc.mu.Unlock()
		cs.end(unprocessed("transport: connection closed before the call was sent"), nil)
		return false
	}
	if id > 1<<31-1 {
		cc.goAway = true // out of stream ids: callers move to a new connection
		cc.mu.Unlock()
		cs.end(unprocessed("transport: connection ran out of stream ids"), nil)
		return false
	}
	cs.id = id
	cs.recv.id = id
	cc.streams[id] = cs
	cc.w.streams.Store(int32(len(cc.streams)))
	cc.mu.Unlock()
	return true
}

// flowError is part of headerSource.
func (cs *ClientStream) flowError() {
	cs.end(status.New(status.Internal, "transport: server overflowed the stream's flow-control window"), nil)
}

// sent is part of headerSource; a client stream leaves its connection's
// table when the call ends, not when the writer is done with it.
func (cs *ClientStream) sent() {}

// writeHeaderFields encodes the request headers.
func (cs *ClientStream) writeHeaderFields(enc *hpack.Encoder, _ itemKind) bool {
	enc.WriteField(hpack.HeaderField{Name: ":method", Value: "POST"})
	enc.WriteField(hpack.HeaderField{Name: ":scheme", Value: cs.cc.scheme})
	enc.WriteField(hpack.HeaderField{Name: ":path", Value: cs.method})
	enc.WriteField(hpack.HeaderField{Name: ":authority", Value: cs.cc.authority})
	enc.WriteField(hpack.HeaderField{Name: "content-type", Value: cs.contentType})
	enc.WriteField(hpack.HeaderField{Name: "user-agent", Value: UserAgent})
	enc.WriteField(hpack.HeaderField{Name: "te", Value: "trailers"})
	if cs.sendComp != nil {
		enc.WriteField(hpack.HeaderField{Name: "grpc-encoding", Value: cs.sendComp.Name()})
	}
	enc.WriteField(hpack.HeaderField{Name: "grpc-accept-encoding", Value: wire.AcceptEncoding()})
	if cs.hasDeadline {
		enc.WriteField(hpack.HeaderField{Name: "grpc-timeout", Value: encodeTimeout(time.Until(cs.deadline))})
	}
	mdctx.RangeOutgoing(cs.ctx, func(k, v string) {
		k = lowerASCII(k)
		if reservedHeader(k) || !wire.ValidMetadataKey(k) || k == "user-agent" {
			return
		}
		if wire.IsBinHeader(k) {
			v = wire.EncodeBin(v)
		}
		enc.WriteField(hpack.HeaderField{Name: k, Value: v})
	})
	return false
}

func lowerASCII(s string) string {
	for i := 0; i < len(s); i++ {
		if 'A' <= s[i] && s[i] <= 'Z' {
			b := []byte(s)
			for j := i; j < len(b); j++ {
				if 'A' <= b[j] && b[j] <= 'Z' {
					b[j] += 'a' - 'A'
				}
			}
			return string(b)
		}
	}
	return s
}

// SendMsg sends a request message; last half-closes the stream with it. It
// returns io.EOF if the call has already ended: RecvMsg then tells why.
func (cs *ClientStream) SendMsg(m any, last bool) error {
	if err := cs.ctx.Err(); err != nil {
		cs.cancel(ctxStatus(err))
		return io.EOF
	}
	bp, err := encode(cs.codec, m, cs.sendComp)
	if err != nil {
		return err
	}
	if last {
		cs.ws.add(len(*bp))
	} else if !cs.ws.acquire(len(*bp), cs.ctx.Done()) {
		putBuf(bp)
		if err := cs.ctx.Err(); err != nil {
			cs.cancel(ctxStatus(err))
		}
		return io.EOF
	}
	cs.mu.Lock()
	if cs.ended || cs.sentEnd {
		sentEnd := cs.sentEnd && !cs.ended
		cs.mu.Unlock()
		putBuf(bp)
		if sentEnd {
			return status.New(status.Internal, "transport: SendMsg after CloseSend")
		}
		return io.EOF
	}
	first := !cs.headersQueued
	cs.headersQueued = true
	if last {
		cs.sentEnd = true
	}
	cs.mu.Unlock()
	data := item{kind: itData, ws: &cs.ws, buf: bp, end: last}
	var ok bool
	if first {
		ok = cs.cc.w.pushN(item{kind: itHeaders, ws: &cs.ws}, data)
	} else {
		ok = cs.cc.w.push(data)
	}
	if !ok {
		if first {
			cs.end(unprocessed("transport: connection closed before the call was sent"), nil)
		}
		return io.EOF
	}
	return nil
}

// SendHeader sends the request headers now, so that the server sees the
// call before the first message; streams that the server may speak first
// on need it. Unary calls skip it to send headers and message together.
func (cs *ClientStream) SendHeader() {
	cs.mu.Lock()
	if cs.headersQueued || cs.ended {
		cs.mu.Unlock()
		return
	}
	cs.headersQueued = true
	cs.mu.Unlock()
	if !cs.cc.w.push(item{kind: itHeaders, ws: &cs.ws}) {
		cs.end(unprocessed("transport: connection closed before the call was sent"), nil)
	}
}

// CloseSend half-closes the stream. It always ends the request with an
// empty DATA frame, never with END_STREAM on the HEADERS: the gRPC protocol
// asks for that, and grpc-go servers ignore END_STREAM on request headers.
func (cs *ClientStream) CloseSend() error {
	if err := cs.ctx.Err(); err != nil {
		cs.cancel(ctxStatus(err))
		return nil
	}
	cs.mu.Lock()
	if cs.sentEnd || cs.ended {
		cs.mu.Unlock()
		return nil
	}
	cs.sentEnd = true
	first := !cs.headersQueued
	cs.headersQueued = true
	cs.mu.Unlock()
	end := item{kind: itData, ws: &cs.ws, end: true}
	if first {
		cs.cc.w.pushN(item{kind: itHeaders, ws: &cs.ws}, end)
	} else {
		cs.cc.w.push(end)
	}
	return nil
}

func (cs *ClientStream) ctxErr() error { return ctxStatus(cs.ctx.Err()) }

// RecvMsg decodes the next response message into m. It returns io.EOF when
// the server ended the call with OK and the call's status otherwise.
func (cs *ClientStream) RecvMsg(m any) error {
	msg, err := cs.recv.next(cs.ctx.Done(), cs.ctxErr)
	if err != nil {
		cs.failLocal(err)
		return err
	}
	s := decodeMsg(cs.codec, cs.recvComp, msg, cs.recv.maxMsg, m)
	cs.recv.consume(msg)
	if s != nil {
		cs.cancel(s)
		return s
	}
	return nil
}

// RecvEnd waits for the end of a call that expects no further message, as
// a unary call does after its response.
func (cs *ClientStream) RecvEnd() error {
	msg, err := cs.recv.next(cs.ctx.Done(), cs.ctxErr)
	if err == io.EOF {
		return nil
	}
	if err != nil {
		cs.failLocal(err)
		return err
	}
	cs.recv.consume(msg)
	s := status.New(status.Unimplemented, "cardinality violation: expected <EOF> for non server-streaming RPCs, but received another message")
	cs.cancel(s)
	return s
}

// failLocal resets the stream when an error arose on our side (context,
// receive limit, malformed envelope) rather than from the server.
func (cs *ClientStream) failLocal(err error) {
	if err == io.EOF {
		return
	}
	cs.mu.Lock()
	ended := cs.ended
	cs.mu.Unlock()
	if !ended {
		cs.cancel(status.Convert(err))
	}
}

// Header waits for the response headers.
func (cs *ClientStream) Header() (metadata.MD, error) {
	cs.mu.Lock()
	for !cs.headerReady && !cs.ended {
		if cs.hdrSig == nil {
			cs.hdrSig = make(chan struct{})
		}
		sig := cs.hdrSig
		cs.mu.Unlock()
		select {
		case <-sig:
		case <-cs.ctx.Done():
			s := ctxStatus(cs.ctx.Err())
			cs.cancel(s)
			return nil, s
		}
		cs.mu.Lock()
	}
	defer cs.mu.Unlock()
	if !cs.headerReady && cs.final != nil && cs.header == nil {
		return nil, cs.final
	}
	return cs.header, nil
}

// Trailer returns the trailers; complete once RecvMsg has returned an error.
func (cs *ClientStream) Trailer() metadata.MD {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	return cs.trailer
}

// Status returns the call's final status (nil for OK) and whether it has
// ended.
func (cs *ClientStream) Status() (*status.Error, bool) {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	return cs.final, cs.ended
}

// Cancel resets the stream if it has not ended.
func (cs *ClientStream) Cancel() {
	cs.cancel(status.New(status.Canceled, "stream canceled by the client"))
}

func (cs *ClientStream) cancel(s *status.Error) {
	if cs.end(s, nil) {
		cs.cc.w.push(item{kind: itRST, ws: &cs.ws, code: http2.ErrCodeCancel})
	}
}

// end records the call's outcome once; s nil means OK. It reports whether
// this call ended the stream.
func (cs *ClientStream) end(s *status.Error, trailer metadata.MD) bool {
	cs.mu.Lock()
	if cs.ended {
		cs.mu.Unlock()
		return false
	}
	cs.ended = true
	cs.final = s
	if trailer != nil {
		cs.trailer = trailer
	}
	if cs.hdrSig != nil {
		close(cs.hdrSig)
		cs.hdrSig = nil
	}
	stopWatch := cs.stopWatch
	cs.mu.Unlock()
	if s == nil {
		cs.recv.deliver(nil, 0, true)
	} else {
		cs.recv.fail(s)
	}
	cs.ws.release(0, true)
	cs.cc.removeStream(cs)
	if stopWatch != nil {
		stopWatch()
	}
	return true
}

func (cs *ClientStream) beginHeaders() {
	cs.httpStatus, cs.respCT, cs.grpcStatus, cs.grpcMessage, cs.details, cs.respEnc = "", "", "", "", "", ""
	cs.hasGrpcStatus = false
	cs.fields = cs.fields[:0]
}

func (cs *ClientStream) onField(f hpack.HeaderField) {
	switch f.Name {
	case ":status":
		cs.httpStatus = f.Value
	case "content-type":
		cs.respCT = f.Value
	case "grpc-status":
		cs.grpcStatus, cs.hasGrpcStatus = f.Value, true
	case "grpc-message":
		cs.grpcMessage = f.Value
	case "grpc-status-details-bin":
		cs.details = f.Value
	case "grpc-encoding":
		cs.respEnc = f.Value
	default:
		if !reservedHeader(f.Name) {
			cs.fields = append(cs.fields, f)
		}
	}
}

// endHeaders interprets a complete header block: the response headers, a
// trailers-only response, or the trailers.
func (cs *ClientStream) endHeaders(trailers, end bool) {
	var md metadata.MD
	if len(cs.fields) > 0 {
		md, _ = fieldsToMD(cs.fields)
	}
	if !trailers {
		cs.gotHeaders = true
		if cs.httpStatus != "200" && !cs.hasGrpcStatus {
			code, _ := strconv.Atoi(cs.httpStatus)
			msg := "unexpected HTTP status code received from server: " + cs.httpStatus
			if cs.respCT != "" {
				msg += "; content-type " + strconv.Quote(cs.respCT)
			}
			cs.endWithHeaderMD(md, status.New(wire.HTTPToCode(code), msg), end)
			return
		}
		if _, ok := wire.Subtype(cs.respCT); !ok && !cs.hasGrpcStatus {
			cs.endWithHeaderMD(md, status.Errorf(status.Unknown, "transport: received unexpected content-type %q", cs.respCT), end)
			return
		}
		if cs.respEnc != "" && cs.respEnc != wire.IdentityEncoding {
			c, ok := compress.Get(cs.respEnc)
			if !ok {
				cs.endWithHeaderMD(md, status.Errorf(status.Internal, "grpc: Decompressor is not installed for grpc-encoding %q", cs.respEnc), end)
				return
			}
			cs.recvComp = c
		}
		if !end {
			cs.mu.Lock()
			if !cs.ended {
				cs.header = md
				cs.headerReady = true
				if cs.hdrSig != nil {
					close(cs.hdrSig)
					cs.hdrSig = nil
				}
			}
			cs.mu.Unlock()
			return
		}
		// Trailers-only: the metadata is both header and trailer.
		cs.mu.Lock()
		cs.header = md
		cs.headerReady = true
		cs.mu.Unlock()
		cs.end(cs.parseStatus(), md)
		cs.dropQueued()
		return
	}
	cs.end(cs.parseStatus(), md)
	cs.dropQueued()
}

// dropQueued resets a stream the server has ended while request data is
// still queued behind flow control: the server will grant no more window
// for it, so the writer would hold those bytes for the connection's life.
func (cs *ClientStream) dropQueued() {
	if cs.ws.hasQueued() {
		cs.cc.w.push(item{kind: itRST, ws: &cs.ws, code: http2.ErrCodeCancel})
	}
}

func (cs *ClientStream) endWithHeaderMD(md metadata.MD, s *status.Error, end bool) {
	cs.mu.Lock()
	cs.header = md
	cs.mu.Unlock()
	if cs.end(s, md) && !end {
		cs.cc.w.push(item{kind: itRST, ws: &cs.ws, code: http2.ErrCodeCancel})
	}
}

func (cs *ClientStream) parseStatus() *status.Error {
	if !cs.hasGrpcStatus {
		return status.New(status.Internal, "transport: server ended the call without grpc-status")
	}
	code, ok := wire.ParseCode(cs.grpcStatus)
	if !ok {
		return status.Errorf(status.Internal, "transport: malformed grpc-status %q", cs.grpcStatus)
	}
	if code == status.OK {
		return nil
	}
	msg := wire.DecodeMessage(cs.grpcMessage)
	if cs.details != "" {
		raw, err := wire.DecodeBin(cs.details)
		if err == nil {
			if d, err := wire.UnmarshalStatus([]byte(raw)); err == nil && d.Code() == code {
				return d
			}
		}
	}
	return status.New(code, msg)
}
