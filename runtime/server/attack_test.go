package server_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/protoc-gen-micro/micro/examples/greeter/greeterpb"
	"github.com/protoc-gen-micro/micro/internal/leakcheck"
	"github.com/protoc-gen-micro/micro/internal/rawframe"
	"github.com/protoc-gen-micro/micro/runtime/client"
	"github.com/protoc-gen-micro/micro/runtime/server"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// The tests in this file attack the server the way a hostile client
// would, one class of attack each, with raw HTTP/2 frames. Each asserts
// what the server answers, that the process lives on, that a well-behaved
// client on another connection is still served, and, where the attack
// aims at memory, that the heap stays under a stated bound.

// victim is the handler under attack. Its handlers ignore their context
// where an attacker would want them to (the worst case for the server) and
// report how many run at once.
type victim struct {
	greeterpb.GreeterHandler
	running, maxRunning atomic.Int32
	release             chan struct{}
}

func (v *victim) enter() {
	n := v.running.Add(1)
	for {
		m := v.maxRunning.Load()
		if n <= m || v.maxRunning.CompareAndSwap(m, n) {
			return
		}
	}
}

func (v *victim) SayHello(ctx context.Context, in *greeterpb.HelloRequest, out *greeterpb.HelloReply) error {
	out.Message = "Hello " + in.Name
	return nil
}

// Chat blocks, ignoring its context, until the test ends.
func (v *victim) Chat(ctx context.Context, s greeterpb.Greeter_ChatHandlerStream) error {
	v.enter()
	defer v.running.Add(-1)
	<-v.release
	return nil
}

// LotsOfGreetings never reads its stream.
func (v *victim) LotsOfGreetings(ctx context.Context, s greeterpb.Greeter_LotsOfGreetingsHandlerStream) error {
	v.enter()
	defer v.running.Add(-1)
	select {
	case <-v.release:
	case <-ctx.Done():
	}
	return ctx.Err()
}

// LotsOfReplies sends 1 KiB replies until it cannot.
func (v *victim) LotsOfReplies(ctx context.Context, in *greeterpb.HelloRequest, s greeterpb.Greeter_LotsOfRepliesHandlerStream) error {
	v.enter()
	defer v.running.Add(-1)
	m := &greeterpb.HelloReply{Message: strings.Repeat("r", 1024)}
	for {
		if err := s.Send(m); err != nil {
			return err
		}
	}
}

func startVictim(t *testing.T, opts ...server.Option) (server.Server, *victim) {
	t.Helper()
	v := &victim{release: make(chan struct{})}
	srv := server.NewServer(append([]server.Option{server.WithAddress("127.0.0.1:0"), server.WithGracePeriod(time.Second)}, opts...)...)
	if err := greeterpb.RegisterGreeterHandler(srv, v); err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		close(v.release)
		srv.Stop()
	})
	return srv, v
}

// wellBehaved makes an ordinary call on a connection of its own.
func wellBehaved(t *testing.T, addr string) {
	t.Helper()
	c := client.NewClient()
	defer c.(io.Closer).Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	rsp, err := greeterpb.NewGreeterService("greeter", c).SayHello(ctx, &greeterpb.HelloRequest{Name: "bystander"}, client.WithAddress(addr))
	if err != nil || rsp.Message != "Hello bystander" {
		t.Fatalf("a well-behaved client on another connection: %v %v", rsp, err)
	}
}

// heapInUse returns the live heap after a collection.
func heapInUse() int64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return int64(m.HeapAlloc)
}

func checkHeap(t *testing.T, before int64, bound int64, what string) {
	t.Helper()
	if grew := heapInUse() - before; grew > bound {
		t.Fatalf("%s: the heap grew by %d KiB, over the %d KiB bound", what, grew>>10, bound>>10)
	}
}

// raw writes bytes on the connection as they are.
func (rc *rawConn) raw(b []byte) {
	rc.t.Helper()
	if _, err := rc.c.Write(b); err != nil {
		rc.t.Fatal(err)
	}
}

// expectGoAway reads until GOAWAY and checks its code.
func (rc *rawConn) expectGoAway(code http2.ErrCode) {
	rc.t.Helper()
	if g := rc.readGoAway(); g.ErrCode != code {
		rc.t.Fatalf("GOAWAY %v (%s), want %v", g.ErrCode, g.DebugData(), code)
	}
}

// expectClosed reads until the server closes the connection.
func (rc *rawConn) expectClosed() {
	rc.t.Helper()
	rc.c.SetReadDeadline(time.Now().Add(10 * time.Second))
	for {
		if _, err := rc.fr.ReadFrame(); err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				rc.t.Fatal("the server did not close the connection")
			}
			return
		}
	}
}

// TestAttackMalformedFrameLengths: frames whose length their type forbids
// (a PING not of 8 bytes, RST_STREAM and WINDOW_UPDATE not of 4, SETTINGS
// not a multiple of 6, a SETTINGS ACK with a payload) end the connection
// with GOAWAY FRAME_SIZE_ERROR. Before, x/net's detail-less error was
// dereferenced and the process died.
func TestAttackMalformedFrameLengths(t *testing.T) {
	leakcheck.Check(t)
	srv, _ := startVictim(t)
	cases := []struct {
		name  string
		frame []byte
	}{
		{"PING of 7 bytes", rawframe.Frame(http2.FramePing, 0, 0, make([]byte, 7))},
		{"PING ACK of 9 bytes", rawframe.Frame(http2.FramePing, http2.FlagPingAck, 0, make([]byte, 9))},
		{"RST_STREAM of 3 bytes", rawframe.Frame(http2.FrameRSTStream, 0, 1, make([]byte, 3))},
		{"WINDOW_UPDATE of 5 bytes", rawframe.Frame(http2.FrameWindowUpdate, 0, 0, []byte{0, 0, 0, 1, 0})},
		{"SETTINGS of 7 bytes", rawframe.Frame(http2.FrameSettings, 0, 0, make([]byte, 7))},
		{"SETTINGS ACK with a payload", rawframe.Frame(http2.FrameSettings, http2.FlagSettingsAck, 0, make([]byte, 6))},
		{"PRIORITY of 4 bytes", rawframe.Frame(http2.FramePriority, 0, 1, make([]byte, 4))},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			rc := dialRaw(t, srv.Address())
			rc.raw(c.frame)
			rc.expectGoAway(http2.ErrCodeFrameSize)
		})
	}
	wellBehaved(t, srv.Address())
}

// TestAttackEmptyHeaderName: an HPACK field with an empty name resets the
// stream with PROTOCOL_ERROR (it panicked on f.Name[0]); the connection
// serves the next call.
func TestAttackEmptyHeaderName(t *testing.T) {
	leakcheck.Check(t)
	srv, _ := startVictim(t)
	rc := dialRaw(t, srv.Address())
	fields := append(grpcHeaders(greeterpb.GreeterSayHelloProcedure), hpack.HeaderField{Name: "", Value: "x"})
	rc.headers(1, true, fields)
	if r := rc.read(1); r.rst == nil || *r.rst != http2.ErrCodeProtocol {
		t.Fatalf("want RST_STREAM(PROTOCOL_ERROR), got %+v", r)
	}
	rc.headers(3, false, grpcHeaders(greeterpb.GreeterSayHelloProcedure))
	rc.data(3, true, envelope(0, helloBytes(t, "next")))
	rc.read(3).expectStatus(t, "0", "")
	wellBehaved(t, srv.Address())
}

// TestAttackMalformedHeaders: what RFC 9113 §8.2-8.3 calls malformed is a
// stream error PROTOCOL_ERROR (h2spec 8.1.2 and its subsections).
func TestAttackMalformedHeaders(t *testing.T) {
	leakcheck.Check(t)
	srv, _ := startVictim(t)
	path := greeterpb.GreeterSayHelloProcedure
	cases := map[string][]hpack.HeaderField{
		"upper-case name":          grpcHeaders(path, "X-Upper", "v"),
		"unknown pseudo-header":    append(grpcHeaders(path), hpack.HeaderField{Name: ":foo", Value: "v"}),
		"response pseudo-header":   append(grpcHeaders(path), hpack.HeaderField{Name: ":status", Value: "200"}),
		"pseudo after regular":     append(append(grpcHeaders(path), hpack.HeaderField{Name: "x-a", Value: "b"}), hpack.HeaderField{Name: ":authority", Value: "late"}),
		"duplicate :path":          append(grpcHeaders(path), hpack.HeaderField{Name: ":path", Value: path}),
		"missing :method":          grpcHeaders(path, ":method", ""),
		"missing :scheme":          grpcHeaders(path, ":scheme", ""),
		"empty :path":              grpcHeaders(path, ":path", ""),
		"connection header":        grpcHeaders(path, "connection", "keep-alive"),
		"transfer-encoding":        grpcHeaders(path, "transfer-encoding", "chunked"),
		"te other than trailers":   grpcHeaders(path, "te", "gzip"),
		"NUL in a value":           grpcHeaders(path, "x-nul", "a\x00b"),
		"LF in a value":            grpcHeaders(path, "x-lf", "a\nb"),
		"space in a name":          grpcHeaders(path, "x a", "b"),
		"non-ASCII in a name":      grpcHeaders(path, "x-\xff", "b"),
		"stream depends on itself": nil, // built below
	}
	id := uint32(1)
	for name, fields := range cases {
		t.Run(name, func(t *testing.T) {
			rc := dialRaw(t, srv.Address())
			if fields == nil {
				rc.hbuf.Reset()
				for _, f := range grpcHeaders(path) {
					rc.henc.WriteField(f)
				}
				if err := rc.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: rc.hbuf.Bytes(), EndHeaders: true, EndStream: true,
					Priority: http2.PriorityParam{StreamDep: id}}); err != nil {
					t.Fatal(err)
				}
			} else {
				rc.headers(id, true, fields)
			}
			if r := rc.read(id); r.rst == nil || *r.rst != http2.ErrCodeProtocol {
				t.Fatalf("want RST_STREAM(PROTOCOL_ERROR), got %+v", r)
			}
			// The connection is intact.
			rc.headers(id+2, false, grpcHeaders(path))
			rc.data(id+2, true, envelope(0, helloBytes(t, "ok")))
			rc.read(id+2).expectStatus(t, "0", "")
		})
	}
	wellBehaved(t, srv.Address())
}

// TestAttackRapidReset (CVE-2023-44487): a client that opens streams and
// resets them at once can no longer make the server run more handlers than
// MaxConcurrentStreams, even handlers that ignore cancellation; a client
// that keeps doing it past the waste budget is told ENHANCE_YOUR_CALM.
func TestAttackRapidReset(t *testing.T) {
	leakcheck.Check(t)
	const limit = 10
	srv, v := startVictim(t, server.WithMaxConcurrentStreams(limit))
	rc := dialRaw(t, srv.Address())
	before := heapInUse()
	var buf []byte
	id := uint32(1)
	for i := 0; i < 3000; i++ {
		rc.hbuf.Reset()
		for _, f := range grpcHeaders(greeterpb.GreeterChatProcedure) {
			rc.henc.WriteField(f)
		}
		buf = append(buf, rawframe.Frame(http2.FrameHeaders, http2.FlagHeadersEndHeaders, id, rc.hbuf.Bytes())...)
		buf = append(buf, rawframe.Frame(http2.FrameRSTStream, 0, id, []byte{0, 0, 0, byte(http2.ErrCodeCancel)})...)
		id += 2
	}
	go rc.c.Write(buf) // the server may stop reading before the end
	rc.expectGoAway(http2.ErrCodeEnhanceYourCalm)
	if n := v.maxRunning.Load(); n > limit {
		t.Fatalf("%d handlers ran at once with MaxConcurrentStreams %d", n, limit)
	}
	checkHeap(t, before, 8<<20, "rapid reset")
	wellBehaved(t, srv.Address())
}

// TestAttackTooManyStreams: streams over MaxConcurrentStreams are refused
// with REFUSED_STREAM (safe to retry); a client that keeps opening them is
// told ENHANCE_YOUR_CALM.
func TestAttackTooManyStreams(t *testing.T) {
	leakcheck.Check(t)
	srv, v := startVictim(t, server.WithMaxConcurrentStreams(4))
	rc := dialRaw(t, srv.Address())
	for id := uint32(1); id <= 7; id += 2 {
		rc.headers(id, false, grpcHeaders(greeterpb.GreeterChatProcedure))
	}
	rc.headers(9, false, grpcHeaders(greeterpb.GreeterChatProcedure))
	if r := rc.read(9); r.rst == nil || *r.rst != http2.ErrCodeRefusedStream {
		t.Fatalf("fifth stream: want RST_STREAM(REFUSED_STREAM), got %+v", r)
	}
	var buf []byte
	for id := uint32(11); id < 11+2*2000; id += 2 {
		rc.hbuf.Reset()
		for _, f := range grpcHeaders(greeterpb.GreeterChatProcedure) {
			rc.henc.WriteField(f)
		}
		buf = append(buf, rawframe.Frame(http2.FrameHeaders, http2.FlagHeadersEndHeaders, id, rc.hbuf.Bytes())...)
	}
	go rc.c.Write(buf)
	rc.expectGoAway(http2.ErrCodeEnhanceYourCalm)
	if n := v.maxRunning.Load(); n > 4 {
		t.Fatalf("%d handlers ran with MaxConcurrentStreams 4", n)
	}
	wellBehaved(t, srv.Address())
}

// headerBlock encodes fields with a fresh encoder (no dynamic table
// entries the server does not know about).
func headerBlock(fields []hpack.HeaderField) []byte {
	var b strings.Builder
	enc := hpack.NewEncoder(&b)
	for _, f := range fields {
		enc.WriteField(f)
	}
	return []byte(b.String())
}

// TestAttackContinuationFlood (the CVE-2024-27316 class): a header block
// that never ends, in CONTINUATION frames, is cut off once its wire size
// passes twice the header list limit, with GOAWAY ENHANCE_YOUR_CALM; its
// fields are not kept past the limit meanwhile.
func TestAttackContinuationFlood(t *testing.T) {
	leakcheck.Check(t)
	srv, _ := startVictim(t)
	before := heapInUse()
	rc := dialRaw(t, srv.Address())
	rc.raw(rawframe.Frame(http2.FrameHeaders, 0, 1, headerBlock(grpcHeaders(greeterpb.GreeterSayHelloProcedure))))
	field := headerBlock([]hpack.HeaderField{{Name: "x-flood", Value: strings.Repeat("f", 4000)}})
	done := make(chan error, 1)
	go func() {
		for i := 0; i < 100000; i++ {
			if _, err := rc.c.Write(rawframe.Frame(http2.FrameContinuation, 0, 1, field)); err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	rc.expectGoAway(http2.ErrCodeEnhanceYourCalm)
	rc.c.Close()
	<-done
	checkHeap(t, before, 4<<20, "CONTINUATION flood")
	wellBehaved(t, srv.Address())

	// Empty CONTINUATION frames cost nothing to send: they are wasted
	// frames, and a stream of them ends the connection too.
	rc = dialRaw(t, srv.Address())
	rc.raw(rawframe.Frame(http2.FrameHeaders, 0, 1, headerBlock(grpcHeaders(greeterpb.GreeterSayHelloProcedure))))
	go func() {
		var buf []byte
		for i := 0; i < 20000; i++ {
			buf = append(buf, rawframe.Frame(http2.FrameContinuation, 0, 1, nil)...)
		}
		rc.c.Write(buf)
	}()
	rc.expectGoAway(http2.ErrCodeEnhanceYourCalm)
}

// TestAttackHPACKBomb: a few bytes that refer to a large dynamic-table
// entry again and again decode to hundreds of megabytes; decoding stops
// keeping fields at the header list limit and the call is refused with
// RESOURCE_EXHAUSTED, the connection intact.
func TestAttackHPACKBomb(t *testing.T) {
	leakcheck.Check(t)
	srv, _ := startVictim(t)
	before := heapInUse()
	rc := dialRaw(t, srv.Address())
	rc.hbuf.Reset()
	for _, f := range grpcHeaders(greeterpb.GreeterSayHelloProcedure) {
		rc.henc.WriteField(f)
	}
	// A 4000-byte entry, added to the dynamic table (index 62)...
	rc.henc.WriteField(hpack.HeaderField{Name: "x-bomb", Value: strings.Repeat("b", 4000)})
	block := append([]byte(nil), rc.hbuf.Bytes()...)
	// ...then referred to by one byte (0x80|62) 100,000 times: 400 MB.
	for i := 0; i < 100000; i++ {
		block = append(block, 0x80|62)
	}
	rc.raw(rawframe.Frame(http2.FrameHeaders, http2.FlagHeadersEndStream, 1, block[:16384]))
	for off := 16384; off < len(block); off += 16384 {
		end := min(off+16384, len(block))
		flags := http2.Flags(0)
		if end == len(block) {
			flags = http2.FlagContinuationEndHeaders
		}
		rc.raw(rawframe.Frame(http2.FrameContinuation, flags, 1, block[off:end]))
	}
	rc.read(1).expectStatus(t, "8", "header list larger than")
	checkHeap(t, before, 4<<20, "HPACK bomb")
	rc.headers(3, false, grpcHeaders(greeterpb.GreeterSayHelloProcedure))
	rc.data(3, true, envelope(0, helloBytes(t, "after")))
	rc.read(3).expectStatus(t, "0", "")
	wellBehaved(t, srv.Address())
}

// TestAttackHugeHeaderList: a header list over MaxHeaderListSize gets
// RESOURCE_EXHAUSTED; a single value longer than the limit is decoded and
// refused the same way, rather than failing HPACK and the connection.
func TestAttackHugeHeaderList(t *testing.T) {
	leakcheck.Check(t)
	srv, _ := startVictim(t, server.WithLimits(server.Limits{MaxHeaderListSize: 16 << 10}))
	rc := dialRaw(t, srv.Address())
	for i, fields := range [][]hpack.HeaderField{
		grpcHeaders(greeterpb.GreeterSayHelloProcedure, "x-a", strings.Repeat("a", 8000), "x-b", strings.Repeat("b", 8000), "x-c", strings.Repeat("c", 8000)),
		grpcHeaders(greeterpb.GreeterSayHelloProcedure, "x-long", strings.Repeat("l", 20000)),
	} {
		id := uint32(1 + 2*i)
		block := headerBlock(fields)
		half := len(block) / 2
		rc.raw(rawframe.Frame(http2.FrameHeaders, http2.FlagHeadersEndStream, id, block[:half]))
		rc.raw(rawframe.Frame(http2.FrameContinuation, http2.FlagContinuationEndHeaders, id, block[half:]))
		rc.read(id).expectStatus(t, "8", "header list larger than")
	}
	wellBehaved(t, srv.Address())
}

// TestAttackPingFloodNoRead: a client that floods PINGs and never reads the
// acknowledgements cannot grow the server's queue: past 1000 queued control
// frames the server stops reading, and once its writes have been blocked
// for the write timeout it drops the connection. The keepalive policy is
// relaxed here so that this defence, not that one, is what acts.
func TestAttackPingFloodNoRead(t *testing.T) {
	leakcheck.Check(t)
	srv, _ := startVictim(t, server.WithLimits(server.Limits{
		WriteTimeout: 300 * time.Millisecond, PingMinTime: time.Nanosecond, PermitPingWithoutCalls: true,
	}))
	before := heapInUse()
	rc := dialRaw(t, srv.Address())
	ping := rawframe.Frame(http2.FramePing, 0, 0, make([]byte, 8))
	var buf []byte
	for i := 0; i < 4096; i++ {
		buf = append(buf, ping...)
	}
	sent := 0
	var err error
	for sent < 1<<30 {
		rc.c.SetWriteDeadline(time.Now().Add(10 * time.Second))
		if _, err = rc.c.Write(buf); err != nil {
			break
		}
		sent += len(buf)
	}
	var ne net.Error
	if err == nil || errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("after %d MiB of PINGs the server neither stopped reading nor closed the connection (%v)", sent>>20, err)
	}
	checkHeap(t, before, 8<<20, "PING flood")
	wellBehaved(t, srv.Address())
}

// TestAttackPingFlood: a client that pings again and again while the
// server sends it nothing is told GOAWAY ENHANCE_YOUR_CALM "too_many_pings",
// as grpc-go's keepalive enforcement does.
func TestAttackPingFlood(t *testing.T) {
	leakcheck.Check(t)
	srv, _ := startVictim(t)
	rc := dialRaw(t, srv.Address())
	for i := 0; i < 10; i++ {
		if err := rc.fr.WritePing(false, [8]byte{byte(i)}); err != nil {
			break
		}
	}
	g := rc.readGoAway()
	if g.ErrCode != http2.ErrCodeEnhanceYourCalm || string(g.DebugData()) != "too_many_pings" {
		t.Fatalf("GOAWAY %v %q, want ENHANCE_YOUR_CALM too_many_pings", g.ErrCode, g.DebugData())
	}
	wellBehaved(t, srv.Address())
}

// TestAttackSettingsFlood: each SETTINGS costs an acknowledgement; a client
// that sends thousands is told ENHANCE_YOUR_CALM.
func TestAttackSettingsFlood(t *testing.T) {
	leakcheck.Check(t)
	srv, _ := startVictim(t)
	rc := dialRaw(t, srv.Address())
	var buf []byte
	for i := 0; i < 5000; i++ {
		buf = append(buf, rawframe.Frame(http2.FrameSettings, 0, 0, []byte{0, byte(http2.SettingMaxFrameSize), 0, 0, 0x40, 0})...)
	}
	go rc.c.Write(buf)
	rc.expectGoAway(http2.ErrCodeEnhanceYourCalm)
	wellBehaved(t, srv.Address())
}

// TestAttackEmptyDataFlood: empty DATA frames without END_STREAM do nothing
// but cost a frame each; a stream of them ends the connection with
// ENHANCE_YOUR_CALM.
func TestAttackEmptyDataFlood(t *testing.T) {
	leakcheck.Check(t)
	srv, _ := startVictim(t)
	rc := dialRaw(t, srv.Address())
	rc.headers(1, false, grpcHeaders(greeterpb.GreeterLotsOfGreetingsProcedure))
	var buf []byte
	for i := 0; i < 5000; i++ {
		buf = append(buf, rawframe.Frame(http2.FrameData, 0, 1, nil)...)
	}
	go rc.c.Write(buf)
	rc.expectGoAway(http2.ErrCodeEnhanceYourCalm)
	wellBehaved(t, srv.Address())
}

// TestAttackIdleStreams: a client that opens every stream it may and sends
// nothing on them blocks only itself: its streams hold their headers and
// nothing more, and other connections are served.
func TestAttackIdleStreams(t *testing.T) {
	leakcheck.Check(t)
	srv, _ := startVictim(t)
	before := heapInUse()
	rc := dialRaw(t, srv.Address())
	for id := uint32(1); id < 2*256; id += 2 {
		rc.headers(id, false, grpcHeaders(greeterpb.GreeterSayHelloProcedure))
	}
	rc.headers(513, false, grpcHeaders(greeterpb.GreeterSayHelloProcedure))
	if r := rc.read(513); r.rst == nil || *r.rst != http2.ErrCodeRefusedStream {
		t.Fatalf("stream 257: want REFUSED_STREAM, got %+v", r)
	}
	checkHeap(t, before, 4<<20, "256 idle streams")
	wellBehaved(t, srv.Address())
}

// TestAttackZeroWindowReader: a client that sets its stream window to zero
// and never opens it cannot make a streaming handler queue more than 64 KiB
// of replies per stream; the handler blocks in Send and returns when the
// client goes away.
func TestAttackZeroWindowReader(t *testing.T) {
	leakcheck.Check(t)
	srv, v := startVictim(t)
	before := heapInUse()
	rc := dialRaw(t, srv.Address())
	if err := rc.fr.WriteSettings(http2.Setting{ID: http2.SettingInitialWindowSize, Val: 0}); err != nil {
		t.Fatal(err)
	}
	const streams = 64
	for i := uint32(0); i < streams; i++ {
		id := 1 + 2*i
		rc.headers(id, false, grpcHeaders(greeterpb.GreeterLotsOfRepliesProcedure))
		rc.data(id, true, envelope(0, helloBytes(t, "z")))
	}
	waitFor(t, func() bool { return v.running.Load() == streams })
	// Each handler has filled its 64 KiB quota and blocks in Send.
	checkHeap(t, before, streams*(64<<10)*2+(4<<20), "64 streams at a zero window")
	wellBehaved(t, srv.Address())
	rc.c.Close()
	waitFor(t, func() bool { return v.running.Load() == 0 })
}

// waitFor polls cond until it holds, for at most 10 s.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 10 s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestAttackSlowloris: connections that dribble the preface (or send
// nothing) are closed when the handshake timeout passes.
func TestAttackSlowloris(t *testing.T) {
	leakcheck.Check(t)
	srv, _ := startVictim(t, server.WithLimits(server.Limits{HandshakeTimeout: 300 * time.Millisecond}))
	before := heapInUse()
	const n = 100
	conns := make([]net.Conn, n)
	for i := range conns {
		c, err := net.Dial("tcp", srv.Address())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		conns[i] = c
		if i%2 == 0 {
			c.Write([]byte(http2.ClientPreface[:5]))
		}
	}
	var wg sync.WaitGroup
	for _, c := range conns {
		wg.Add(1)
		go func(c net.Conn) {
			defer wg.Done()
			c.SetReadDeadline(time.Now().Add(10 * time.Second))
			for i := 5; ; i++ {
				// One byte at a time, never finishing.
				if _, err := c.Write([]byte{http2.ClientPreface[i%len(http2.ClientPreface)]}); err != nil {
					return
				}
				buf := make([]byte, 64)
				c.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
				if _, err := c.Read(buf); err != nil {
					var ne net.Error
					if !errors.As(err, &ne) || !ne.Timeout() {
						return // closed by the server
					}
				}
			}
		}(c)
	}
	wg.Wait()
	checkHeap(t, before, 4<<20, "slowloris")
	wellBehaved(t, srv.Address())
}

// TestAttackOversizedLengthPrefix: a message prefix claiming 4 GiB fails
// the call with RESOURCE_EXHAUSTED without the server allocating for it.
func TestAttackOversizedLengthPrefix(t *testing.T) {
	leakcheck.Check(t)
	srv, _ := startVictim(t)
	before := heapInUse()
	rc := dialRaw(t, srv.Address())
	for id := uint32(1); id < 200; id += 2 {
		rc.headers(id, false, grpcHeaders(greeterpb.GreeterSayHelloProcedure))
		rc.data(id, false, []byte{0, 0xff, 0xff, 0xff, 0xff})
		rc.read(id).expectStatus(t, "8", "larger than max")
	}
	// Just under the limit: the prefix alone allocates no 4 MiB.
	for id := uint32(201); id < 401; id += 2 {
		rc.headers(id, false, grpcHeaders(greeterpb.GreeterLotsOfGreetingsProcedure))
		rc.data(id, false, []byte{0, 0, 0x3f, 0xff, 0xff})
	}
	checkHeap(t, before, 8<<20, "oversized prefixes")
	wellBehaved(t, srv.Address())
}

// TestAttackWindowOverflow: a WINDOW_UPDATE that takes a window past
// 2^31-1 is a FLOW_CONTROL_ERROR: for the connection, GOAWAY; for a
// stream, RST_STREAM.
func TestAttackWindowOverflow(t *testing.T) {
	leakcheck.Check(t)
	srv, _ := startVictim(t)
	rc := dialRaw(t, srv.Address())
	rc.headers(1, false, grpcHeaders(greeterpb.GreeterChatProcedure))
	if err := rc.fr.WriteWindowUpdate(1, 1<<31-1); err != nil {
		t.Fatal(err)
	}
	if r := rc.read(1); r.rst == nil || *r.rst != http2.ErrCodeFlowControl {
		t.Fatalf("stream window overflow: want RST_STREAM(FLOW_CONTROL_ERROR), got %+v", r)
	}
	if err := rc.fr.WriteWindowUpdate(0, 1<<31-1); err != nil {
		t.Fatal(err)
	}
	rc.expectGoAway(http2.ErrCodeFlowControl)
	wellBehaved(t, srv.Address())
}

// TestAttackFlowControlOverrun: DATA beyond the window we granted is a
// FLOW_CONTROL_ERROR (it used to be buffered: 48 MiB on a 1 MiB window).
func TestAttackFlowControlOverrun(t *testing.T) {
	leakcheck.Check(t)
	srv, _ := startVictim(t)
	rc := dialRaw(t, srv.Address())
	rc.headers(1, false, grpcHeaders(greeterpb.GreeterLotsOfGreetingsProcedure))
	chunk := make([]byte, 16384)
	for sent := 0; sent <= 64<<10; sent += len(chunk) {
		rc.data(1, false, chunk)
	}
	if r := rc.read(1); r.rst == nil || *r.rst != http2.ErrCodeFlowControl {
		t.Fatalf("stream overrun: want RST_STREAM(FLOW_CONTROL_ERROR), got %+v", r)
	}
	wellBehaved(t, srv.Address())
}

// TestAttackNonReadingHandlers: a client that fills the windows of many
// streams whose handlers never read gets no more window: the connection's
// window comes back only as handlers read, so one connection holds at most
// what we advertised, not streams × window.
func TestAttackNonReadingHandlers(t *testing.T) {
	leakcheck.Check(t)
	srv, v := startVictim(t)
	before := heapInUse()
	rc := dialRaw(t, srv.Address())
	// The server's preface: its SETTINGS, then the connection window.
	const connWin = 16 << 20
	rc.c.SetReadDeadline(time.Now().Add(10 * time.Second))
	for granted := false; !granted; {
		f, err := rc.fr.ReadFrame()
		if err != nil {
			t.Fatal(err)
		}
		if wu, ok := f.(*http2.WindowUpdateFrame); ok && wu.StreamID == 0 {
			if wu.Increment != connWin-65535 {
				t.Fatalf("initial connection window increment %d", wu.Increment)
			}
			granted = true
		}
	}
	const streams = 256 // the limit: 256 × 64 KiB is the connection window
	for i := uint32(0); i < streams; i++ {
		rc.headers(1+2*i, false, grpcHeaders(greeterpb.GreeterLotsOfGreetingsProcedure))
	}
	waitFor(t, func() bool { return v.running.Load() == streams })
	chunk := make([]byte, 16384)
	for i := uint32(0); i < streams; i++ {
		for off := 0; off < 64<<10; off += len(chunk) {
			rc.data(1+2*i, false, chunk)
		}
	}
	// The server grants nothing back while no handler reads.
	rc.c.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	for {
		f, err := rc.fr.ReadFrame()
		if err != nil {
			break
		}
		if wu, ok := f.(*http2.WindowUpdateFrame); ok {
			t.Fatalf("WINDOW_UPDATE(%d, %d) while no handler reads", wu.StreamID, wu.Increment)
		}
	}
	checkHeap(t, before, connWin+(8<<20), "16 MiB unread on one connection")
	// One byte more overruns the connection.
	rc.c.SetReadDeadline(time.Time{})
	rc.data(1, false, []byte{0})
	rc.expectGoAway(http2.ErrCodeFlowControl)
	wellBehaved(t, srv.Address())
}

// TestAttackFirstFrameNotSettings: the preface must be followed by
// SETTINGS.
func TestAttackFirstFrameNotSettings(t *testing.T) {
	leakcheck.Check(t)
	srv, _ := startVictim(t)
	c, err := net.Dial("tcp", srv.Address())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Write([]byte(http2.ClientPreface))
	c.Write(rawframe.Frame(http2.FramePing, 0, 0, make([]byte, 8)))
	fr := http2.NewFramer(c, c)
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	for {
		f, err := fr.ReadFrame()
		if err != nil {
			t.Fatalf("no GOAWAY before the close: %v", err)
		}
		if g, ok := f.(*http2.GoAwayFrame); ok {
			if g.ErrCode != http2.ErrCodeProtocol {
				t.Fatalf("GOAWAY %v", g.ErrCode)
			}
			break
		}
	}
	wellBehaved(t, srv.Address())
}

// TestAttackOversizedFrame: a frame over the 16 KiB we advertise is a
// FRAME_SIZE_ERROR (h2spec 4.2), not accepted as before.
func TestAttackOversizedFrame(t *testing.T) {
	leakcheck.Check(t)
	srv, _ := startVictim(t)
	rc := dialRaw(t, srv.Address())
	rc.headers(1, false, grpcHeaders(greeterpb.GreeterLotsOfGreetingsProcedure))
	rc.raw(rawframe.Frame(http2.FrameData, 0, 1, make([]byte, 16385)))
	rc.expectGoAway(http2.ErrCodeFrameSize)
	wellBehaved(t, srv.Address())
}

// TestLateFramesOnResetStream: frames the client sent before it saw our
// reset (trailers, DATA, WINDOW_UPDATE) are ignored, as RFC 9113 §5.1 asks,
// and the connection goes on; DATA on a stream both sides ended is a
// STREAM_CLOSED error.
func TestLateFramesOnResetStream(t *testing.T) {
	leakcheck.Check(t)
	srv, _ := startVictim(t)
	rc := dialRaw(t, srv.Address())
	// An unknown method is answered at once, while the client still sends.
	rc.headers(1, false, grpcHeaders("/greeter.v1.Greeter/Nope"))
	rc.read(1).expectStatus(t, "12", "")
	rc.data(1, false, envelope(0, helloBytes(t, "late")))
	rc.headers(1, true, []hpack.HeaderField{{Name: "x-trailer", Value: "late"}})
	rc.fr.WriteWindowUpdate(1, 100)
	rc.headers(3, false, grpcHeaders(greeterpb.GreeterSayHelloProcedure))
	rc.data(3, true, envelope(0, helloBytes(t, "next")))
	rc.read(3).expectStatus(t, "0", "")
	// Stream 3 ended on both sides: more DATA on it is an error.
	rc.data(3, false, []byte{0})
	rc.expectGoAway(http2.ErrCodeStreamClosed)
}

// TestBusyConnectionDoesNotStarveOthers: a connection kept as busy as a
// client can make it (64 unary calls at a time and 8 endless server
// streams read as fast as they come) does not hold back another
// connection's calls: each of 200 calls made one after another on a second
// connection is answered, while the busy one is served too. (The soak in
// internal/soak checks the same with the attack classes as the busy
// connections.)
func TestBusyConnectionDoesNotStarveOthers(t *testing.T) {
	leakcheck.Check(t)
	srv, _ := startVictim(t)
	at := client.WithAddress(srv.Address())
	busy := client.NewClient()
	defer busy.(io.Closer).Close()
	svc := greeterpb.NewGreeterService("greeter", busy)
	ctx, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	defer func() { stop(); wg.Wait() }()
	var served atomic.Int64
	for range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				if _, err := svc.SayHello(ctx, &greeterpb.HelloRequest{Name: "busy"}, at); err == nil {
					served.Add(1)
				}
			}
		}()
	}
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s, err := svc.LotsOfReplies(ctx, &greeterpb.HelloRequest{}, at)
			if err != nil {
				return
			}
			for {
				if _, err := s.Recv(); err != nil {
					return
				}
				served.Add(1)
			}
		}()
	}
	waitFor(t, func() bool { return served.Load() > 1000 })

	bystander := client.NewClient()
	defer bystander.(io.Closer).Close()
	bsvc := greeterpb.NewGreeterService("greeter", bystander)
	before := served.Load()
	for i := range 200 {
		cctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		rsp, err := bsvc.SayHello(cctx, &greeterpb.HelloRequest{Name: "bystander"}, at)
		cancel()
		if err != nil || rsp.Message != "Hello bystander" {
			t.Fatalf("call %d on another connection while one is busy: %v %v", i, rsp, err)
		}
	}
	if served.Load() == before {
		t.Fatal("the busy connection was not served while the other called")
	}
}

// TestAttackKeepsSendingAfterGoAway: after a protocol error the server
// reads and drops the client's input for a moment, so that its GOAWAY is
// not lost to a TCP reset, but no longer than 1 s or 256 KiB: a client
// that goes on writing is disconnected all the same.
func TestAttackKeepsSendingAfterGoAway(t *testing.T) {
	leakcheck.Check(t)
	srv, _ := startVictim(t)
	rc := dialRaw(t, srv.Address())
	rc.raw(rawframe.Frame(http2.FramePing, 0, 0, make([]byte, 7)))
	junk := rawframe.Frame(http2.FramePing, 0, 0, make([]byte, 8))
	junk = bytes.Repeat(junk, 64<<10/len(junk))
	done := make(chan int)
	go func() {
		sent := 0
		rc.c.SetWriteDeadline(time.Now().Add(10 * time.Second))
		for sent < 64<<20 {
			n, err := rc.c.Write(junk)
			sent += n
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				sent = 64 << 20 // the server stopped reading but kept the connection
			}
			if err != nil {
				break
			}
		}
		done <- sent
	}()
	rc.expectGoAway(http2.ErrCodeFrameSize)
	// The writes end when the server closes; not within 64 MiB or 10 s
	// means it kept reading.
	if sent := <-done; sent >= 64<<20 {
		t.Fatalf("the server read %d MiB after its GOAWAY", sent>>20)
	}
	wellBehaved(t, srv.Address())
}
