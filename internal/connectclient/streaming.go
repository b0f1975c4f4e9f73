package connectclient

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"

	"github.com/protoc-gen-micro/micro/internal/wire"
	"github.com/protoc-gen-micro/micro/runtime/compress"
	"github.com/protoc-gen-micro/micro/runtime/status"
)

// Envelope flags of the Connect streaming protocol.
const (
	flagCompressed = 0x01
	flagEndStream  = 0x02
	prefixLen      = 5
)

// start sends a streaming call's request, its body a pipe that SendMsg
// feeds, and waits until a connection carries it or it fails.
func (s *Stream) start() error {
	pr, pw := io.Pipe()
	s.pw = pw
	req, st := s.newRequest(pr)
	if st != nil {
		s.fail(st)
		return st
	}
	go s.roundTrip(req)
	select {
	case <-s.gotConn:
		return nil
	case <-s.respReady:
		// The server answered at once, or the request failed: if before a
		// connection carried it, the call may go elsewhere.
		if final, _ := s.Status(); final != nil && !s.connected.Load() {
			return final
		}
		return nil
	case <-s.parent.Done():
		st := ctxStatus(s.parent.Err())
		s.fail(st)
		return st
	}
}

// roundTrip runs a streaming call's request until its response headers
// arrive, and checks them.
func (s *Stream) roundTrip(req *http.Request) {
	resp, err := s.t.http.Do(req)
	var st *status.Error
	if err != nil {
		st = s.requestError(err)
	} else {
		s.resp = resp
		st = s.checkStreamResponse(resp)
	}
	if st != nil {
		s.fail(st) // before respReady: whoever sees it closed sees the status
	}
	close(s.respReady)
	if _, ended := s.Status(); ended {
		// The call ended while the request was in flight, or just now.
		s.closeBody(false)
	}
}

// checkStreamResponse records a streaming response's headers and checks
// its status, content type and encoding.
func (s *Stream) checkStreamResponse(resp *http.Response) *status.Error {
	s.mu.Lock()
	s.header = wire.HTTPHeaderToMD(resp.Header)
	s.mu.Unlock()
	if resp.StatusCode != http.StatusOK {
		return status.Errorf(wire.HTTPToCode(resp.StatusCode), "HTTP status %s", resp.Status)
	}
	if st := checkContentType(resp.Header.Get("Content-Type"), "application/connect+", s.call.Codec.Name()); st != nil {
		return st
	}
	comp, st := responseCompressor(resp.Header.Get("Connect-Content-Encoding"))
	s.recvComp = comp
	return st
}

// checkContentType checks that a response's content type is prefix
// followed by the request's codec name, parameters aside.
func checkContentType(ct, prefix, codecName string) *status.Error {
	if len(ct) < len(prefix) || !strings.EqualFold(ct[:len(prefix)], prefix) {
		return status.Errorf(status.Unknown, "connect: invalid content-type %q; expecting %q", ct, prefix+codecName)
	}
	name, _, _ := strings.Cut(ct[len(prefix):], ";")
	if !strings.EqualFold(strings.TrimSpace(name), codecName) {
		return status.Errorf(status.Internal, "connect: invalid content-type %q; expecting %q", ct, prefix+codecName)
	}
	return nil
}

// responseCompressor returns the compressor of a response's encoding, nil
// for none.
func responseCompressor(enc string) (compress.Compressor, *status.Error) {
	if enc == "" || enc == wire.IdentityEncoding {
		return nil, nil
	}
	c, ok := compress.Get(enc)
	if !ok {
		return nil, status.Errorf(status.Internal, "connect: unknown encoding %q: accepted encodings are %q", enc, wire.AcceptEncoding())
	}
	return c, nil
}

// encodeEnvelope encodes m as an envelope into the stream's send buffer,
// compressed if the call compresses. The buffer is reused: a pipe's Write
// returns only once the request has taken every byte.
func (s *Stream) encodeEnvelope(m any) ([]byte, *status.Error) {
	b := append(s.sendBuf[:0], 0, 0, 0, 0, 0)
	b, err := s.call.Codec.MarshalAppend(b, m)
	if err != nil {
		return nil, status.Errorf(status.Internal, "connect: error while marshaling: %v", err)
	}
	if c := s.call.Compressor; c != nil {
		out, err := c.Compress(append(make([]byte, 0, prefixLen+len(b)/2), flagCompressed, 0, 0, 0, 0), b[prefixLen:])
		if err != nil {
			return nil, status.Errorf(status.Internal, "connect: error while compressing with %s: %v", c.Name(), err)
		}
		b = out
	}
	binary.BigEndian.PutUint32(b[1:prefixLen], uint32(len(b)-prefixLen))
	s.sendBuf = b
	return b, nil
}

// nextMessage reads the next message of a streaming response. It ends the
// call at the end-of-stream message, returning io.EOF for OK and the
// status otherwise; a malformed or oversized envelope fails the call.
func (s *Stream) nextMessage() ([]byte, error) {
	flags, body, st := s.readEnvelope()
	if st != nil {
		return nil, s.failWith(st)
	}
	if flags&flagEndStream == 0 {
		return body, nil
	}
	var end wire.ConnectEndStream
	if err := json.Unmarshal(body, &end); err != nil {
		return nil, s.failWith(status.Errorf(status.Internal, "connect: malformed end-of-stream message: %v", err))
	}
	var final *status.Error
	if end.Error != nil {
		final = end.Error.Status(status.Unknown)
	}
	if !s.end(final, wire.HTTPHeaderToMD(http.Header(end.Metadata))) {
		final, _ = s.Status()
	}
	if final == nil {
		return nil, io.EOF
	}
	return nil, final
}

// readEnvelope reads one envelope, its body decompressed, within the
// receive limit before and after decompression.
func (s *Stream) readEnvelope() (byte, []byte, *status.Error) {
	var p [prefixLen]byte
	body := s.resp.Body
	if _, err := io.ReadFull(body, p[:]); err != nil {
		if err == io.EOF {
			return 0, nil, status.New(status.Internal, "connect: protocol error: the response ended without an end-of-stream message")
		}
		return 0, nil, s.readError(err, "an envelope's prefix")
	}
	flags := p[0]
	if flags&^(flagCompressed|flagEndStream) != 0 {
		return 0, nil, status.Errorf(status.Internal, "connect: protocol error: invalid envelope flags %#x", flags)
	}
	size := binary.BigEndian.Uint32(p[1:])
	if int64(size) > int64(s.t.maxMsg) {
		return 0, nil, status.Errorf(status.ResourceExhausted, "connect: message size %d is larger than configured max %d", size, s.t.maxMsg)
	}
	if cap(s.recvBuf) < int(size) {
		s.recvBuf = make([]byte, size)
	}
	b := s.recvBuf[:size]
	if _, err := io.ReadFull(body, b); err != nil {
		return 0, nil, s.readError(err, "an envelope")
	}
	if flags&flagCompressed == 0 {
		return flags, b, nil
	}
	if s.recvComp == nil {
		return 0, nil, status.New(status.Internal, "connect: protocol error: received a compressed message, but no Connect-Content-Encoding was negotiated")
	}
	out, st := decompress(s.recvComp, s.decBuf[:0], b, s.t.maxMsg)
	if st != nil {
		return 0, nil, st
	}
	s.decBuf = out
	return flags, out, nil
}

// readError is the status of a failed read of the response body.
func (s *Stream) readError(err error, what string) *status.Error {
	if cerr := s.parent.Err(); cerr != nil {
		return ctxStatus(cerr)
	}
	if final, ended := s.Status(); ended && final != nil {
		return final
	}
	if errors.Is(err, io.ErrUnexpectedEOF) {
		return status.Errorf(status.Internal, "connect: protocol error: the response ended within %s", what)
	}
	return status.Errorf(status.Unavailable, "connect: reading the response: %v", err)
}

// decompress decompresses src into dst within limit bytes.
func decompress(c compress.Compressor, dst, src []byte, limit int) ([]byte, *status.Error) {
	out, err := c.Decompress(dst, src, limit)
	if err == nil && len(out) > limit {
		err = compress.ErrTooLarge // a third-party compressor overshot
	}
	switch {
	case errors.Is(err, compress.ErrTooLarge):
		return nil, status.Errorf(status.ResourceExhausted, "connect: received message after decompression larger than max (%d)", limit)
	case err != nil:
		return nil, status.Errorf(status.Internal, "connect: failed to decompress the received message with %s: %v", c.Name(), err)
	}
	return out, nil
}
