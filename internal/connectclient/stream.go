package connectclient

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptrace"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/protoc-gen-micro/micro/internal/mdctx"
	"github.com/protoc-gen-micro/micro/internal/transport"
	"github.com/protoc-gen-micro/micro/internal/wire"
	"github.com/protoc-gen-micro/micro/runtime/compress"
	"github.com/protoc-gen-micro/micro/runtime/metadata"
	"github.com/protoc-gen-micro/micro/runtime/status"
)

// maxTimeoutMs is the largest Connect-Timeout-Ms the protocol allows: ten
// digits.
const maxTimeoutMs = 9_999_999_999

// errCallEnded ends the request body of a call that has ended.
var errCallEnded = errors.New("connectclient: the call has ended")

// Stream is the client side of one Connect call. Its methods are those
// runtime/client uses on a gRPC stream: one goroutine may send while
// another receives.
type Stream struct {
	t      *Transport
	call   Call
	parent context.Context // the caller's
	// ctx is the request's: the parent with the connection trace, and for
	// a streaming call a cancel that ends the request with the call.
	ctx       context.Context
	cancel    context.CancelFunc
	stopWatch func() bool

	// connected is set, and gotConn closed, once a connection carries the
	// request: a failure before that means nothing was sent.
	connected atomic.Bool
	gotConn   chan struct{}

	// The request side. A unary call holds its encoded message in pending
	// until CloseSend; a streaming call writes envelopes into pw.
	pw      *io.PipeWriter
	pending []byte
	sendBuf []byte

	// respReady is closed once the response's headers are in (resp,
	// recvComp and unary are set by then) or the request failed.
	respReady chan struct{}
	resp      *http.Response
	recvComp  compress.Compressor
	bodyOnce  sync.Once
	// unary is a unary call's response message, decoded by RecvMsg.
	unary     []byte
	unaryRead bool
	recvBuf   []byte
	decBuf    []byte

	mu      sync.Mutex
	sentEnd bool
	ended   bool
	done    chan struct{} // closed when the call ends
	final   *status.Error // nil for OK
	header  metadata.MD
	trailer metadata.MD
}

func newStream(ctx context.Context, t *Transport, call Call) *Stream {
	s := &Stream{
		t: t, call: call, parent: ctx,
		gotConn:   make(chan struct{}),
		respReady: make(chan struct{}),
		done:      make(chan struct{}),
	}
	trace := &httptrace.ClientTrace{GotConn: s.onConn}
	s.ctx = httptrace.WithClientTrace(ctx, trace)
	if call.Streaming {
		s.ctx, s.cancel = context.WithCancel(s.ctx)
		// Nobody may be waiting on a stream when its context ends; it
		// ends then all the same, as a gRPC stream does.
		s.stopWatch = context.AfterFunc(ctx, func() { s.fail(ctxStatus(ctx.Err())) })
	}
	return s
}

func (s *Stream) onConn(httptrace.GotConnInfo) {
	if s.connected.CompareAndSwap(false, true) {
		close(s.gotConn)
	}
}

// Context returns the call's context.
func (s *Stream) Context() context.Context { return s.parent }

// newRequest builds the call's POST with its headers: the protocol's,
// the deadline, compression and the outgoing metadata.
func (s *Stream) newRequest(body io.Reader) (*http.Request, *status.Error) {
	u := &url.URL{Scheme: s.t.scheme, Host: s.call.Addr, Path: s.call.Procedure}
	req, err := http.NewRequestWithContext(s.ctx, http.MethodPost, u.String(), body)
	if err != nil {
		return nil, status.Errorf(status.Internal, "connect: cannot make a request to %s: %v", s.call.Addr, err)
	}
	h := req.Header
	name := s.call.Codec.Name()
	if s.call.Streaming {
		h.Set("Content-Type", "application/connect+"+name)
		s.setEncoding(h, "Connect-Content-Encoding", "Connect-Accept-Encoding")
	} else {
		h.Set("Content-Type", "application/"+name)
		s.setEncoding(h, "Content-Encoding", "Accept-Encoding")
	}
	h.Set("Connect-Protocol-Version", "1")
	h.Set("User-Agent", transport.UserAgent)
	if d, ok := s.parent.Deadline(); ok {
		ms := (time.Until(d) + time.Millisecond - 1) / time.Millisecond
		if ms <= 0 {
			return nil, status.New(status.DeadlineExceeded, "context deadline exceeded")
		}
		h.Set("Connect-Timeout-Ms", strconv.FormatInt(min(int64(ms), maxTimeoutMs), 10))
	}
	if st := addMetadata(s.parent, h); st != nil {
		return nil, st
	}
	return req, nil
}

func (s *Stream) setEncoding(h http.Header, content, accept string) {
	if s.call.Compressor != nil {
		h.Set(content, s.call.Compressor.Name())
	}
	if a := wire.AcceptEncoding(); a != "" {
		h.Set(accept, a)
	}
}

// addMetadata adds the outgoing metadata of ctx to h, -bin values in
// base64; keys the protocols reserve are not sent. A key or value a header
// cannot carry fails the call, as on the gRPC path.
func addMetadata(ctx context.Context, h http.Header) *status.Error {
	var bad *status.Error
	mdctx.RangeOutgoing(ctx, func(k, v string) {
		k = strings.ToLower(k)
		if bad != nil || wire.ReservedHTTPHeader(k) || k == "user-agent" {
			return
		}
		switch {
		case !wire.ValidMetadataKey(k):
			bad = status.Errorf(status.Internal, "connect: metadata key %q is not a valid header name", k)
		case wire.IsBinHeader(k):
			h.Add(k, wire.EncodeBin(v))
		case !wire.ValidFieldValue(v):
			bad = status.Errorf(status.Internal, "connect: metadata value of %q contains a control character headers may not hold", k)
		default:
			h.Add(k, v)
		}
	})
	return bad
}

// requestError is the status of a request net/http could not complete.
func (s *Stream) requestError(err error) *status.Error {
	if cerr := s.parent.Err(); cerr != nil {
		return ctxStatus(cerr)
	}
	if ue := (*url.Error)(nil); errors.As(err, &ue) {
		err = ue.Err
	}
	if !s.connected.Load() {
		return status.Convert(s.t.dialFailed(&s.call, err))
	}
	return status.Errorf(status.Unavailable, "connect: %v", err)
}

// SendHeader does nothing: a streaming call's request starts with the
// stream, and a unary call's with its message.
func (s *Stream) SendHeader() {}

// SendMsg sends a request message; last half-closes the request with it.
// It returns io.EOF if the call has already ended: RecvMsg then tells why.
func (s *Stream) SendMsg(m any, last bool) error {
	if err := s.parent.Err(); err != nil {
		s.fail(ctxStatus(err))
		return io.EOF
	}
	s.mu.Lock()
	sentEnd, ended := s.sentEnd, s.ended
	if last && !sentEnd && !ended {
		s.sentEnd = true
	}
	s.mu.Unlock()
	switch {
	case ended:
		return io.EOF
	case sentEnd:
		return status.New(status.Internal, "connect: SendMsg after CloseSend")
	}
	if !s.call.Streaming {
		return s.sendUnary(m, last)
	}
	b, st := s.encodeEnvelope(m)
	if st != nil {
		return st
	}
	if _, err := s.pw.Write(b); err != nil {
		return io.EOF
	}
	if last {
		s.pw.Close()
	}
	return nil
}

// CloseSend half-closes the request; a unary call's request goes out now.
func (s *Stream) CloseSend() error {
	if err := s.parent.Err(); err != nil {
		s.fail(ctxStatus(err))
		return nil
	}
	s.mu.Lock()
	if s.sentEnd || s.ended {
		s.mu.Unlock()
		return nil
	}
	s.sentEnd = true
	s.mu.Unlock()
	if !s.call.Streaming {
		s.exchange(s.pending)
		return nil
	}
	return s.pw.Close()
}

// Header waits for the response headers.
func (s *Stream) Header() (metadata.MD, error) {
	select {
	case <-s.respReady:
	case <-s.done:
	case <-s.parent.Done():
		st := ctxStatus(s.parent.Err())
		s.fail(st)
		return nil, st
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.header == nil && s.final != nil {
		return nil, s.final
	}
	return s.header, nil
}

// Trailer returns the trailers; complete once RecvMsg has returned an error.
func (s *Stream) Trailer() metadata.MD {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.trailer
}

// Status returns the call's final status (nil for OK) and whether it has
// ended.
func (s *Stream) Status() (*status.Error, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.final, s.ended
}

// Cancel ends the call, and its request, if it has not ended.
func (s *Stream) Cancel() {
	s.fail(status.New(status.Canceled, "stream canceled by the client"))
}

// RecvMsg decodes the next response message into m. It returns io.EOF when
// the server ended the call with OK and the call's status otherwise.
func (s *Stream) RecvMsg(m any) error {
	if err := s.awaitResponse(); err != nil {
		return err
	}
	if !s.call.Streaming {
		return s.recvUnary(m)
	}
	body, err := s.nextMessage()
	if err != nil {
		return err
	}
	if err := s.call.Codec.Unmarshal(body, m); err != nil {
		return s.failWith(status.Errorf(status.Internal, "connect: failed to unmarshal the received message: %v", err))
	}
	return nil
}

// RecvEnd waits for the end of a call that expects no further message, as
// a unary call does after its response.
func (s *Stream) RecvEnd() error {
	err := s.awaitResponse()
	switch {
	case err == io.EOF:
		return nil
	case err != nil:
		return err
	case !s.call.Streaming:
		s.end(nil, nil)
		return nil
	}
	_, err = s.nextMessage()
	switch err {
	case io.EOF:
		return nil
	case nil:
		return s.failWith(status.New(status.Unimplemented, "cardinality violation: expected <EOF> for non server-streaming RPCs, but received another message"))
	}
	return err
}

// awaitResponse waits for the response headers. It returns io.EOF if the
// call has ended with OK and its status if it has failed.
func (s *Stream) awaitResponse() error {
	select {
	case <-s.respReady:
	case <-s.done:
	case <-s.parent.Done():
		s.fail(ctxStatus(s.parent.Err()))
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.ended {
		return nil
	}
	if s.final != nil {
		return s.final
	}
	return io.EOF
}

// end records the call's outcome once; st nil means OK. A call that fails
// once its context has ended fails for the context's reason, whatever the
// server or the connection said meanwhile, as unary calls do in
// runtime/client. It reports whether this call ended the stream.
func (s *Stream) end(st *status.Error, trailer metadata.MD) bool {
	if err := s.parent.Err(); st != nil && err != nil {
		st = ctxStatus(err)
	}
	s.mu.Lock()
	if s.ended {
		s.mu.Unlock()
		return false
	}
	s.ended = true
	s.final = st
	if trailer != nil {
		s.trailer = trailer
	}
	close(s.done)
	s.mu.Unlock()
	s.release(st == nil)
	return true
}

// fail ends the call with st unless it has ended.
func (s *Stream) fail(st *status.Error) { s.end(st, nil) }

// failWith ends the call with st unless it has ended, and returns the
// call's status: st, or what ended it first.
func (s *Stream) failWith(st *status.Error) error {
	if s.end(st, nil) {
		return st
	}
	final, _ := s.Status()
	if final == nil {
		return io.EOF
	}
	return final
}

// release frees what a finished call holds: the request body, the
// response body (read to its end after an OK end-of-stream, so that an
// HTTP/1.1 connection can be reused) and the request's context.
func (s *Stream) release(clean bool) {
	if s.pw != nil {
		s.pw.CloseWithError(errCallEnded)
	}
	if !clean && s.cancel != nil {
		s.cancel()
	}
	select {
	case <-s.respReady:
		s.closeBody(clean)
	default:
		// The request is in flight: roundTrip closes the body it gets.
	}
	if s.cancel != nil {
		s.cancel()
		s.stopWatch()
	}
}

// drainLimit bounds what is read after the end of a response to let its
// connection be reused.
const drainLimit = 4 << 10

func (s *Stream) closeBody(drain bool) {
	s.bodyOnce.Do(func() {
		if s.resp == nil {
			return
		}
		if drain {
			_, _ = io.CopyN(io.Discard, s.resp.Body, drainLimit)
		}
		s.resp.Body.Close()
	})
}

// ctxStatus is the status of a call whose context ended.
func ctxStatus(err error) *status.Error {
	if errors.Is(err, context.DeadlineExceeded) {
		return status.New(status.DeadlineExceeded, "context deadline exceeded")
	}
	return status.New(status.Canceled, "context canceled")
}
