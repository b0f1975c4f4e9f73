package server_test

import (
	"bytes"
	"encoding/binary"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// rawConn is a hand-driven HTTP/2 client: tests use it to send exactly the
// frames a well-behaved client never would.
type rawConn struct {
	t    *testing.T
	c    net.Conn
	fr   *http2.Framer
	henc *hpack.Encoder
	hbuf bytes.Buffer
	hdec *hpack.Decoder
}

func dialRaw(t *testing.T, addr string) *rawConn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	rc := &rawConn{t: t, c: c, fr: http2.NewFramer(c, c)}
	rc.henc = hpack.NewEncoder(&rc.hbuf)
	rc.hdec = hpack.NewDecoder(4096, nil)
	if _, err := io.WriteString(c, http2.ClientPreface); err != nil {
		t.Fatal(err)
	}
	if err := rc.fr.WriteSettings(); err != nil {
		t.Fatal(err)
	}
	return rc
}

// grpcHeaders returns the headers of a well-formed call, with overrides
// (an empty value deletes the field).
func grpcHeaders(path string, override ...string) []hpack.HeaderField {
	fields := []hpack.HeaderField{
		{Name: ":method", Value: "POST"},
		{Name: ":scheme", Value: "http"},
		{Name: ":path", Value: path},
		{Name: ":authority", Value: "test"},
		{Name: "content-type", Value: "application/grpc"},
		{Name: "te", Value: "trailers"},
	}
	for i := 0; i < len(override); i += 2 {
		found := false
		for j := range fields {
			if fields[j].Name == override[i] {
				fields[j].Value = override[i+1]
				found = true
			}
		}
		if !found {
			fields = append(fields, hpack.HeaderField{Name: override[i], Value: override[i+1]})
		}
	}
	out := fields[:0]
	for _, f := range fields {
		if f.Value != "" {
			out = append(out, f)
		}
	}
	return out
}

func (rc *rawConn) headers(id uint32, end bool, fields []hpack.HeaderField) {
	rc.t.Helper()
	rc.hbuf.Reset()
	for _, f := range fields {
		rc.henc.WriteField(f)
	}
	if err := rc.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: rc.hbuf.Bytes(), EndStream: end, EndHeaders: true}); err != nil {
		rc.t.Fatal(err)
	}
}

func envelope(flag byte, payload []byte) []byte {
	b := make([]byte, 5+len(payload))
	b[0] = flag
	binary.BigEndian.PutUint32(b[1:], uint32(len(payload)))
	copy(b[5:], payload)
	return b
}

func (rc *rawConn) data(id uint32, end bool, b []byte) {
	rc.t.Helper()
	if err := rc.fr.WriteData(id, end, b); err != nil {
		rc.t.Fatal(err)
	}
}

// response collects what the server sent on one stream.
type response struct {
	headers  map[string]string
	trailers map[string]string
	data     []byte
	rst      *http2.ErrCode
	ended    bool
}

// read reads frames until stream id has ended (END_STREAM or RST_STREAM)
// and returns what arrived on it.
func (rc *rawConn) read(id uint32) *response {
	rc.t.Helper()
	return rc.readAll(id)[id]
}

// readAll reads frames until every stream of ids has ended and returns
// what arrived on each.
func (rc *rawConn) readAll(ids ...uint32) map[uint32]*response {
	rc.t.Helper()
	out := make(map[uint32]*response, len(ids))
	for _, id := range ids {
		out[id] = &response{}
	}
	open := len(ids)
	rc.c.SetReadDeadline(time.Now().Add(5 * time.Second))
	for open > 0 {
		f, err := rc.fr.ReadFrame()
		if err != nil {
			rc.t.Fatalf("reading streams %v: %v", ids, err)
		}
		id := f.Header().StreamID
		r := out[id]
		if r == nil || r.ended {
			r = &response{} // another stream's, or after the end: dropped
		}
		switch f := f.(type) {
		case *http2.SettingsFrame:
			if !f.IsAck() {
				rc.fr.WriteSettingsAck()
			}
		case *http2.HeadersFrame:
			fields, err := rc.hdec.DecodeFull(f.HeaderBlockFragment())
			if err != nil {
				rc.t.Fatal(err)
			}
			m := map[string]string{}
			for _, hf := range fields {
				m[hf.Name] = hf.Value
			}
			if r.headers == nil {
				r.headers = m
				if f.StreamEnded() {
					r.trailers = m
				}
			} else {
				r.trailers = m
			}
			r.ended = f.StreamEnded()
		case *http2.DataFrame:
			r.data = append(r.data, f.Data()...)
			r.ended = f.StreamEnded()
		case *http2.RSTStreamFrame:
			code := f.ErrCode
			r.rst = &code
			r.ended = true
		case *http2.GoAwayFrame:
			rc.t.Fatalf("GOAWAY while waiting for streams %v: %v %s", ids, f.ErrCode, f.DebugData())
		}
		if r.ended && out[id] == r {
			open--
		}
	}
	return out
}

// expectStatus checks the grpc-status (and optionally a message fragment)
// of a response.
func (r *response) expectStatus(t *testing.T, code string, msgPart string) {
	t.Helper()
	if r.trailers == nil {
		t.Fatalf("no trailers; headers %v rst %v", r.headers, r.rst)
	}
	if got := r.trailers["grpc-status"]; got != code {
		t.Fatalf("grpc-status = %q (%q), want %s", got, r.trailers["grpc-message"], code)
	}
	if msgPart != "" && !strings.Contains(r.trailers["grpc-message"], msgPart) {
		t.Fatalf("grpc-message = %q, want it to contain %q", r.trailers["grpc-message"], msgPart)
	}
}

// readGoAway reads until the server sends GOAWAY and returns it.
func (rc *rawConn) readGoAway() *http2.GoAwayFrame {
	rc.t.Helper()
	rc.c.SetReadDeadline(time.Now().Add(5 * time.Second))
	for {
		f, err := rc.fr.ReadFrame()
		if err != nil {
			rc.t.Fatalf("waiting for GOAWAY: %v", err)
		}
		if g, ok := f.(*http2.GoAwayFrame); ok {
			return g
		}
	}
}
