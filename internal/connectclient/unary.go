package connectclient

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net/http"
	"strings"

	"github.com/protoc-gen-micro/micro/internal/wire"
	"github.com/protoc-gen-micro/micro/runtime/compress"
	"github.com/protoc-gen-micro/micro/runtime/metadata"
	"github.com/protoc-gen-micro/micro/runtime/status"
)

// unaryTrailerPrefix marks the response headers of a unary call that are
// its trailers.
const unaryTrailerPrefix = "Trailer-"

// sendUnary encodes a unary call's message; last sends the request now,
// otherwise CloseSend does.
func (s *Stream) sendUnary(m any, last bool) error {
	if s.pending != nil {
		return status.New(status.Internal, "connect: a unary call takes exactly one request message")
	}
	b, err := s.call.Codec.MarshalAppend(make([]byte, 0, 64), m)
	if err != nil {
		return status.Errorf(status.Internal, "connect: error while marshaling: %v", err)
	}
	if c := s.call.Compressor; c != nil {
		if b, err = c.Compress(nil, b); err != nil {
			return status.Errorf(status.Internal, "connect: error while compressing with %s: %v", c.Name(), err)
		}
	}
	if !last {
		s.pending = b
		return nil
	}
	s.exchange(b)
	return nil
}

// exchange sends a unary call's request and reads its whole response: the
// call has its outcome when exchange returns.
func (s *Stream) exchange(body []byte) {
	defer close(s.respReady)
	req, st := s.newRequest(bytes.NewReader(body))
	if st != nil {
		s.fail(st)
		return
	}
	resp, err := s.t.http.Do(req)
	if err != nil {
		s.fail(s.requestError(err))
		return
	}
	s.resp = resp
	st = s.readUnaryResponse(resp)
	s.closeBody(true)
	if st != nil {
		s.fail(st)
	}
}

// readUnaryResponse records a unary response's headers and trailers and
// reads its message, or its error.
func (s *Stream) readUnaryResponse(resp *http.Response) *status.Error {
	header, trailer := wire.HTTPHeaderToMD(resp.Header), unaryTrailer(resp.Header)
	s.mu.Lock()
	s.header, s.trailer = header, trailer
	s.mu.Unlock()
	comp, st := responseCompressor(resp.Header.Get("Content-Encoding"))
	if resp.StatusCode != http.StatusOK {
		return s.unaryError(resp, comp)
	}
	if st != nil {
		return st
	}
	if st := checkContentType(resp.Header.Get("Content-Type"), "application/", s.call.Codec.Name()); st != nil {
		return st
	}
	msg, st := s.readBody(resp.Body, comp)
	if st != nil {
		return st
	}
	s.unary = msg
	return nil
}

// unaryTrailer returns the trailers a unary response carries as headers
// prefixed with Trailer-.
func unaryTrailer(h http.Header) metadata.MD {
	var t http.Header
	for k, vs := range h {
		if len(k) > len(unaryTrailerPrefix) && strings.EqualFold(k[:len(unaryTrailerPrefix)], unaryTrailerPrefix) {
			if t == nil {
				t = http.Header{}
			}
			t[k[len(unaryTrailerPrefix):]] = vs
		}
	}
	if t == nil {
		return nil
	}
	return wire.HTTPHeaderToMD(t)
}

// unaryError is the status of a unary response that is not 200: the
// Connect error in its JSON body, or else the code its HTTP status maps to.
func (s *Stream) unaryError(resp *http.Response, comp compress.Compressor) *status.Error {
	code := wire.HTTPToCode(resp.StatusCode)
	fallback := status.Errorf(code, "HTTP status %s", resp.Status)
	if mt, _, err := mime.ParseMediaType(resp.Header.Get("Content-Type")); err != nil || mt != "application/json" {
		return fallback
	}
	body, st := s.readBody(resp.Body, comp)
	if st != nil {
		return fallback
	}
	var we wire.ConnectError
	if err := json.Unmarshal(body, &we); err != nil {
		return fallback
	}
	return we.Status(code)
}

// readBody reads a whole unary response body and decompresses it, within
// the receive limit before and after decompression.
func (s *Stream) readBody(r io.Reader, comp compress.Compressor) ([]byte, *status.Error) {
	b, err := compress.ReadLimited(nil, r, s.t.maxMsg)
	if errors.Is(err, compress.ErrTooLarge) {
		return nil, status.Errorf(status.ResourceExhausted, "connect: message is larger than configured max %d", s.t.maxMsg)
	}
	if err != nil {
		return nil, s.readError(err, "the response")
	}
	if comp == nil || len(b) == 0 {
		return b, nil
	}
	return decompress(comp, nil, b, s.t.maxMsg)
}

// recvUnary decodes a unary call's response message into m.
func (s *Stream) recvUnary(m any) error {
	if s.unaryRead {
		return io.EOF
	}
	s.unaryRead = true
	if err := s.call.Codec.Unmarshal(s.unary, m); err != nil {
		return s.failWith(status.Errorf(status.Internal, "connect: failed to unmarshal the received message: %v", err))
	}
	return nil
}
