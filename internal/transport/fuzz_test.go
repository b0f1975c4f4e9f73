package transport

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/protoc-gen-micro/micro/internal/wire"
	"github.com/protoc-gen-micro/micro/runtime/status"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// Fuzz targets for everything that parses bytes from a peer: the server's
// and the client's read loops (over net.Pipe, seeded with valid
// conversations), the message envelope parser, grpc-timeout and binary
// metadata. Interesting inputs are kept in testdata/fuzz; `make fuzz` runs
// each target for a fixed time.

// conversation builds frames with x/net's Framer and an hpack encoder.
type conversation struct {
	buf  bytes.Buffer
	fr   *http2.Framer
	hbuf bytes.Buffer
	henc *hpack.Encoder
}

func newConversation() *conversation {
	c := &conversation{}
	c.fr = http2.NewFramer(&c.buf, nil)
	c.henc = hpack.NewEncoder(&c.hbuf)
	return c
}

func (c *conversation) headers(id uint32, end bool, kv ...string) {
	c.hbuf.Reset()
	for i := 0; i < len(kv); i += 2 {
		c.henc.WriteField(hpack.HeaderField{Name: kv[i], Value: kv[i+1]})
	}
	c.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: c.hbuf.Bytes(), EndStream: end, EndHeaders: true})
}

func (c *conversation) request(id uint32, path string, kv ...string) {
	c.headers(id, false, append([]string{":method", "POST", ":scheme", "http", ":path", path, ":authority", "fuzz",
		"content-type", "application/grpc", "te", "trailers"}, kv...)...)
}

func envelopeOf(payload []byte) []byte {
	b := make([]byte, 5+len(payload))
	binary.BigEndian.PutUint32(b[1:], uint32(len(payload)))
	copy(b[5:], payload)
	return b
}

// serverSeeds are whole conversations a client could have after the
// preface.
func serverSeeds() [][]byte {
	var seeds [][]byte
	add := func(build func(c *conversation)) {
		c := newConversation()
		c.fr.WriteSettings(http2.Setting{ID: http2.SettingInitialWindowSize, Val: 1 << 20})
		build(c)
		seeds = append(seeds, append([]byte(nil), c.buf.Bytes()...))
	}
	add(func(c *conversation) { // a unary call
		c.request(1, "/t/echo", "grpc-timeout", "1S", "x-md", "v", "x-bin-bin", "AAEC")
		c.fr.WriteData(1, true, envelopeOf([]byte{0x0a, 0x03, 'a', 'b', 'c'}))
	})
	add(func(c *conversation) { // two calls, a ping, window updates, a reset
		c.request(1, "/t/echo")
		c.fr.WriteData(1, false, envelopeOf(nil)[:3])
		c.fr.WriteData(1, true, envelopeOf(nil)[3:])
		c.fr.WritePing(false, [8]byte{1})
		c.fr.WriteWindowUpdate(0, 1000)
		c.request(3, "/t/reject")
		c.fr.WriteRSTStream(3, http2.ErrCodeCancel)
		c.fr.WriteWindowUpdate(1, 10)
	})
	add(func(c *conversation) { // headers in CONTINUATION, trailers, padding
		c.hbuf.Reset()
		for _, kv := range [][2]string{{":method", "POST"}, {":scheme", "http"}, {":path", "/t/echo"}, {":authority", "f"}, {"content-type", "application/grpc+proto"}} {
			c.henc.WriteField(hpack.HeaderField{Name: kv[0], Value: kv[1]})
		}
		b := append([]byte(nil), c.hbuf.Bytes()...)
		c.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: b[:4]})
		c.fr.WriteContinuation(1, true, b[4:])
		c.fr.WriteDataPadded(1, false, envelopeOf([]byte("x")), []byte{0, 0, 0})
		c.headers(1, true, "x-trailer", "t")
	})
	add(func(c *conversation) { // a large message over several frames
		c.request(1, "/t/echo")
		msg := envelopeOf(bytes.Repeat([]byte{0x0a}, 100000))
		for len(msg) > 0 {
			n := min(len(msg), 16384)
			c.fr.WriteData(1, n == len(msg), msg[:n])
			msg = msg[n:]
		}
	})
	add(func(c *conversation) { // web streams beside a gRPC call
		c.headers(1, false, ":method", "POST", ":scheme", "http", ":path", "/w/echo?x=1", ":authority", "f",
			"content-type", "application/json", "cookie", "a=1", "cookie", "b=2", "content-length", "7")
		c.fr.WriteData(1, false, []byte(`{"a":`))
		c.fr.WriteData(1, true, []byte(`1}`))
		c.headers(3, true, ":method", "GET", ":scheme", "http", ":path", "/w/get?encoding=json&message=%7B%7D", ":authority", "f")
		c.headers(5, true, ":method", "OPTIONS", ":scheme", "http", ":path", "*", ":authority", "f")
		c.request(7, "/t/echo")
		c.fr.WriteData(7, true, envelopeOf(nil))
		c.headers(9, false, ":method", "POST", ":scheme", "http", ":path", "/w/trailers", ":authority", "f", "content-type", "application/grpc-web")
		c.fr.WriteData(9, false, envelopeOf([]byte("x")))
		c.fr.WriteRSTStream(9, http2.ErrCodeCancel)
	})
	add(func(c *conversation) { // settings, priority, goaway
		c.fr.WriteSettings(http2.Setting{ID: http2.SettingHeaderTableSize, Val: 0}, http2.Setting{ID: http2.SettingMaxFrameSize, Val: 1 << 20})
		c.fr.WriteSettingsAck()
		c.fr.WritePriority(1, http2.PriorityParam{StreamDep: 0, Weight: 10})
		c.fr.WriteGoAway(0, http2.ErrCodeNo, nil)
	})
	return seeds
}

// FuzzServerConn feeds a server connection whatever a client might send
// after the preface. The server must not panic, and once the connection
// is gone every byte of budget it reserved must be back.
func FuzzServerConn(f *testing.F) {
	for _, s := range serverSeeds() {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		srv := NewServer(ServerConfig{Handler: echoHandler{}, Web: webEcho{}, MaxRecvMsgSize: 1 << 20,
			Limits: Limits{MaxBufferedRequestBytes: 2 << 20, HandshakeTimeout: time.Second, WriteTimeout: time.Second}})
		cEnd, sEnd := net.Pipe()
		srv.ServeConn(sEnd)
		drained := make(chan struct{})
		go func() { io.Copy(io.Discard, cEnd); close(drained) }()
		cEnd.Write([]byte(clientPreface))
		cEnd.Write(data)
		cEnd.Close()
		<-drained
		srv.wg.Wait()
		srv.Close()
		// Handlers end soon after their streams; then nothing is held.
		// No event marks the last handler's return (workers are not
		// counted), so this polls the budget itself; the deadline only
		// fails, and is generous for fuzzing workers sharing the CPUs.
		deadline := time.Now().Add(10 * time.Second)
		for srv.budget.inUse() != 0 {
			if time.Now().After(deadline) {
				t.Fatalf("%d bytes of budget still reserved 10 s after the connection ended", srv.budget.inUse())
			}
			time.Sleep(time.Millisecond)
		}
	})
}

// webEcho is the web handler of the fuzzed server: it echoes a bounded
// part of the body in two writes, flushes, and sets a trailer.
type webEcho struct{}

func (webEcho) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", r.Header.Get("Content-Type"))
	b, err := io.ReadAll(io.LimitReader(r.Body, 1<<16))
	if err != nil {
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	w.Write(b[:len(b)/2])
	http.NewResponseController(w).Flush()
	w.Write(b[len(b)/2:])
	w.Header().Set(http.TrailerPrefix+"X-Path", r.URL.Path)
}

// clientSeeds are what a server might answer to the call on stream 1.
func clientSeeds() [][]byte {
	var seeds [][]byte
	add := func(build func(c *conversation)) {
		c := newConversation()
		build(c)
		seeds = append(seeds, append([]byte(nil), c.buf.Bytes()...))
	}
	add(func(c *conversation) {
		c.headers(1, false, ":status", "200", "content-type", "application/grpc", "x-h", "v")
		c.fr.WriteData(1, false, envelopeOf([]byte{0x0a, 0x01, 'x'}))
		c.headers(1, true, "grpc-status", "0", "x-t-bin", "AQI")
	})
	add(func(c *conversation) {
		c.headers(1, true, ":status", "200", "content-type", "application/grpc", "grpc-status", "3", "grpc-message", "bad%20arg",
			"grpc-status-details-bin", "CAMSB2JhZCBhcmc")
	})
	add(func(c *conversation) {
		c.fr.WriteSettings(http2.Setting{ID: http2.SettingMaxConcurrentStreams, Val: 1})
		c.fr.WritePing(false, [8]byte{})
		c.fr.WriteWindowUpdate(0, 100)
		c.fr.WriteWindowUpdate(1, 100)
		c.headers(1, false, ":status", "200", "content-type", "application/grpc")
		c.fr.WriteRSTStream(1, http2.ErrCodeRefusedStream)
		c.fr.WriteGoAway(1, http2.ErrCodeNo, []byte("bye"))
	})
	add(func(c *conversation) {
		c.headers(1, true, ":status", "503")
	})
	return seeds
}

// FuzzClientConn feeds the client's connection whatever a server might
// answer to a call. The client must not panic, and the call must end.
func FuzzClientConn(f *testing.F) {
	for _, s := range clientSeeds() {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		cEnd, sEnd := net.Pipe()
		defer cEnd.Close()
		opened := make(chan struct{})
		served := make(chan struct{})
		go func() {
			defer close(served)
			defer sEnd.Close()
			fr := http2.NewFramer(sEnd, sEnd)
			preface := make([]byte, len(clientPreface))
			if _, err := io.ReadFull(sEnd, preface); err != nil {
				return
			}
			go func() {
				// Keep reading what the client writes; say when the call
				// opened.
				once := false
				for {
					f, err := fr.ReadFrame()
					if err != nil {
						if !once {
							close(opened)
						}
						return
					}
					if _, ok := f.(*http2.HeadersFrame); ok && !once {
						once = true
						close(opened)
					}
				}
			}()
			sEnd.Write(frameBytes(func(fr *http2.Framer) { fr.WriteSettings() }))
			<-opened
			sEnd.Write(data)
		}()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		cc, err := newClientConn(ctx, cEnd, "fuzz", "http", DialConfig{MaxRecvMsgSize: 1 << 20})
		if err != nil {
			<-served
			return
		}
		defer cc.Close()
		cs, err := cc.NewStream(ctx, StreamConfig{Method: "/t/echo"})
		if err != nil {
			return
		}
		cs.SendMsg(&wrapperspb.BytesValue{Value: []byte("q")}, true)
		var out wrapperspb.BytesValue
		for {
			if err := cs.RecvMsg(&out); err != nil {
				if errors.Is(err, context.DeadlineExceeded) || status.CodeOf(err) == status.DeadlineExceeded {
					t.Fatal("the call did not end after the server closed the connection")
				}
				break
			}
		}
		cc.Close()
		<-served
	})
}

func frameBytes(write func(fr *http2.Framer)) []byte {
	var b bytes.Buffer
	write(http2.NewFramer(&b, nil))
	return b.Bytes()
}

// FuzzRecvBuffer delivers arbitrary data in arbitrary pieces to a stream's
// receive buffer and consumes what it can: the window accounting must
// stay consistent, and releasing the stream must return every byte.
func FuzzRecvBuffer(f *testing.F) {
	f.Add([]byte{0, 0, 0, 0, 3, 'a', 'b', 'c', 0, 0, 0, 0, 0}, uint8(4))
	f.Add(envelopeOf(bytes.Repeat([]byte{1}, 70000)), uint8(200))
	f.Add([]byte{1, 0xff, 0xff, 0xff, 0xff}, uint8(1))
	f.Add([]byte{0, 0, 1, 0, 0, 1, 2, 3}, uint8(2))
	f.Fuzz(func(t *testing.T, data []byte, piece uint8) {
		cf := newConnFlow(1<<20, false)
		b := newMemBudget(1 << 20)
		w := newWriter(nil, 0, 0, func(error) {})
		var r recvBuffer
		r.init(cf, b, w, 1<<16, 1<<17)
		step := int(piece) + 1
		for off := 0; off < len(data); off += step {
			chunk := data[off:min(off+step, len(data))]
			if _, err := cf.receive(int64(len(chunk))); err != nil {
				break // the test sent more than the connection allows
			}
			if _, err := r.deliver(chunk, int64(len(chunk)), off+step >= len(data)); err != nil {
				cf.adjust(int64(len(chunk)), 0, false)
				break
			}
			for r.pendingComplete() {
				m, err := r.next(nil, nil)
				if err != nil {
					break
				}
				if m.size != headerSize+len(m.body) {
					t.Fatalf("message of %d bytes reports size %d", len(m.body), m.size)
				}
				r.consume(m)
			}
			r.mu.Lock()
			bad := r.buffered < 0 || r.win < 0 || r.buffered > int64(r.unread())
			r.mu.Unlock()
			if bad {
				t.Fatalf("stream accounting: buffered %d, window %d, unread %d", r.buffered, r.win, r.unread())
			}
		}
		r.release()
		if held := cf.held(); held != 0 {
			t.Fatalf("%d bytes still held on the connection after release", held)
		}
		if u := b.inUse(); u != 0 {
			t.Fatalf("%d bytes of budget still reserved after release", u)
		}
	})
}

// FuzzDecodeTimeout: any grpc-timeout value parses or fails cleanly, and
// what encodeTimeout writes parses back to at least the duration encoded.
func FuzzDecodeTimeout(f *testing.F) {
	for _, s := range []string{"1S", "99999999H", "0n", "10x", "", "1", "123456789S", "-1S"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d, err := decodeTimeout(s)
		if err != nil {
			return
		}
		if d < 0 {
			t.Fatalf("decodeTimeout(%q) = %v", s, d)
		}
		back, err := decodeTimeout(encodeTimeout(d))
		if err != nil || back < d {
			t.Fatalf("encodeTimeout(%v) = %q, decodes to %v, %v", d, encodeTimeout(d), back, err)
		}
	})
}

// FuzzMetadata: binary metadata decodes or fails cleanly and round-trips.
func FuzzMetadata(f *testing.F) {
	for _, s := range []string{"", "AAEC", "AAE=", "AA==", "!!!!", "YWJj"} {
		f.Add("x-bin", s)
	}
	f.Add("x-text", "v")
	f.Fuzz(func(t *testing.T, name, value string) {
		md, err := fieldsToMD([]hpack.HeaderField{{Name: name, Value: value}})
		if err != nil {
			return
		}
		if !wire.IsBinHeader(name) {
			return
		}
		raw := md[name][0]
		if got, err := wire.DecodeBin(wire.EncodeBin(raw)); err != nil || got != raw {
			t.Fatalf("binary value %q does not round-trip: %q, %v", raw, got, err)
		}
	})
}

// pendingComplete reports whether next would return at once.
func (r *recvBuffer) pendingComplete() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.complete > 0 || r.err != nil || r.tooBig >= 0 || r.eof
}
