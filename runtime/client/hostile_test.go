package client_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"io"
	"net"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/protoc-gen-micro/micro/examples/greeter/greeterpb"
	"github.com/protoc-gen-micro/micro/internal/leakcheck"
	"github.com/protoc-gen-micro/micro/internal/rawframe"
	"github.com/protoc-gen-micro/micro/runtime/client"
	"github.com/protoc-gen-micro/micro/runtime/status"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
	"google.golang.org/protobuf/proto"
)

// The tests in this file put the client in front of a hostile or broken
// server, scripted frame by frame: nothing a server sends may panic the
// client, and each call fails with a status that says why.

// scriptConn is one connection of a scripted server.
type scriptConn struct {
	t    *testing.T
	c    net.Conn
	fr   *http2.Framer
	hbuf bytes.Buffer
	henc *hpack.Encoder
}

// scriptServer accepts connections and runs script on each after the
// preface; the server's SETTINGS are sent first unless noSettings.
func scriptServer(t *testing.T, noSettings bool, script func(sc *scriptConn)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				preface := make([]byte, len(http2.ClientPreface))
				if _, err := io.ReadFull(c, preface); err != nil {
					return
				}
				sc := &scriptConn{t: t, c: c, fr: http2.NewFramer(c, c)}
				sc.henc = hpack.NewEncoder(&sc.hbuf)
				if !noSettings {
					sc.fr.WriteSettings()
				}
				script(sc)
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return ln.Addr().String()
}

// nextHeaders reads until the client opens a stream and returns its id.
func (sc *scriptConn) nextHeaders() uint32 {
	for {
		f, err := sc.fr.ReadFrame()
		if err != nil {
			return 0
		}
		switch f := f.(type) {
		case *http2.SettingsFrame:
			if !f.IsAck() {
				sc.fr.WriteSettingsAck()
			}
		case *http2.HeadersFrame:
			return f.StreamID
		}
	}
}

// readUntil reads frames until match returns true or the connection ends.
func (sc *scriptConn) readUntil(match func(http2.Frame) bool) bool {
	for {
		f, err := sc.fr.ReadFrame()
		if err != nil {
			return false
		}
		if sf, ok := f.(*http2.SettingsFrame); ok && !sf.IsAck() {
			sc.fr.WriteSettingsAck()
		}
		if match(f) {
			return true
		}
	}
}

func (sc *scriptConn) block(fields ...string) []byte {
	sc.hbuf.Reset()
	for i := 0; i < len(fields); i += 2 {
		sc.henc.WriteField(hpack.HeaderField{Name: fields[i], Value: fields[i+1]})
	}
	return append([]byte(nil), sc.hbuf.Bytes()...)
}

func (sc *scriptConn) raw(b []byte) { sc.c.Write(b) }

func replyBytes(t *testing.T, msg string) []byte {
	b, err := proto.Marshal(&greeterpb.HelloReply{Message: msg})
	if err != nil {
		t.Fatal(err)
	}
	env := make([]byte, 5+len(b))
	binary.BigEndian.PutUint32(env[1:], uint32(len(b)))
	copy(env[5:], b)
	return env
}

// callOnce makes one SayHello to addr with a fresh client.
func callOnce(t *testing.T, addr string, timeout time.Duration) (*greeterpb.HelloReply, error) {
	c := client.NewClient()
	defer c.(io.Closer).Close()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	return greeterpb.NewGreeterService("greeter", c).SayHello(ctx, &greeterpb.HelloRequest{Name: "x"},
		client.WithAddress(addr), client.WithRetries(0))
}

// TestHostileServerFrames: frames of impossible lengths, malformed response
// headers and flow-control violations fail the call cleanly.
func TestHostileServerFrames(t *testing.T) {
	leakcheck.Check(t)
	cases := []struct {
		name   string
		script func(sc *scriptConn, id uint32)
		code   status.Code
	}{
		{"PING of 7 bytes", func(sc *scriptConn, id uint32) {
			sc.raw(rawframe.Frame(http2.FramePing, 0, 0, make([]byte, 7)))
		}, status.Unavailable},
		{"SETTINGS ACK with a payload", func(sc *scriptConn, id uint32) {
			sc.raw(rawframe.Frame(http2.FrameSettings, http2.FlagSettingsAck, 0, make([]byte, 6)))
		}, status.Unavailable},
		{"WINDOW_UPDATE of 3 bytes", func(sc *scriptConn, id uint32) {
			sc.raw(rawframe.Frame(http2.FrameWindowUpdate, 0, id, make([]byte, 3)))
		}, status.Unavailable},
		{"frame over 16 KiB", func(sc *scriptConn, id uint32) {
			sc.raw(rawframe.Frame(http2.FrameHeaders, http2.FlagHeadersEndHeaders, id, sc.block(":status", "200", "content-type", "application/grpc")))
			sc.raw(rawframe.Frame(http2.FrameData, 0, id, make([]byte, 20000)))
		}, status.Unavailable},
		{"empty header name", func(sc *scriptConn, id uint32) {
			sc.raw(rawframe.Frame(http2.FrameHeaders, http2.FlagHeadersEndHeaders, id, sc.block(":status", "200", "", "x")))
		}, status.Internal},
		{"upper-case header name", func(sc *scriptConn, id uint32) {
			sc.raw(rawframe.Frame(http2.FrameHeaders, http2.FlagHeadersEndHeaders, id, sc.block(":status", "200", "X-Up", "x")))
		}, status.Internal},
		{"no :status", func(sc *scriptConn, id uint32) {
			sc.raw(rawframe.Frame(http2.FrameHeaders, http2.FlagHeadersEndHeaders, id, sc.block("content-type", "application/grpc")))
		}, status.Internal},
		{"request pseudo-header", func(sc *scriptConn, id uint32) {
			sc.raw(rawframe.Frame(http2.FrameHeaders, http2.FlagHeadersEndHeaders, id, sc.block(":status", "200", ":path", "/")))
		}, status.Internal},
		{"pseudo-header in trailers", func(sc *scriptConn, id uint32) {
			sc.raw(rawframe.Frame(http2.FrameHeaders, http2.FlagHeadersEndHeaders, id, sc.block(":status", "200", "content-type", "application/grpc")))
			sc.raw(rawframe.Frame(http2.FrameData, 0, id, replyBytes(t, "hi")))
			sc.raw(rawframe.Frame(http2.FrameHeaders, http2.FlagHeadersEndHeaders|http2.FlagHeadersEndStream, id, sc.block(":status", "200", "grpc-status", "0")))
		}, status.Internal},
		{"DATA beyond the stream window", func(sc *scriptConn, id uint32) {
			sc.raw(rawframe.Frame(http2.FrameHeaders, http2.FlagHeadersEndHeaders, id, sc.block(":status", "200", "content-type", "application/grpc")))
			// A 2 MiB message is granted its size on top of the 1 MiB
			// window; 4 MiB overruns that.
			sc.raw(rawframe.Frame(http2.FrameData, 0, id, []byte{0, 0, 0x20, 0, 0}))
			for i := 0; i < 256; i++ {
				sc.raw(rawframe.Frame(http2.FrameData, 0, id, make([]byte, 16384)))
			}
		}, status.Internal},
		{"message over the receive limit", func(sc *scriptConn, id uint32) {
			sc.raw(rawframe.Frame(http2.FrameHeaders, http2.FlagHeadersEndHeaders, id, sc.block(":status", "200", "content-type", "application/grpc")))
			sc.raw(rawframe.Frame(http2.FrameData, 0, id, []byte{0, 0xff, 0xff, 0xff, 0xff}))
		}, status.ResourceExhausted},
		{"second message on a unary call", func(sc *scriptConn, id uint32) {
			sc.raw(rawframe.Frame(http2.FrameHeaders, http2.FlagHeadersEndHeaders, id, sc.block(":status", "200", "content-type", "application/grpc")))
			sc.raw(rawframe.Frame(http2.FrameData, 0, id, append(replyBytes(t, "a"), replyBytes(t, "b")...)))
			sc.raw(rawframe.Frame(http2.FrameHeaders, http2.FlagHeadersEndHeaders|http2.FlagHeadersEndStream, id, sc.block("grpc-status", "0")))
		}, status.Unimplemented},
		{"no message on a unary call", func(sc *scriptConn, id uint32) {
			sc.raw(rawframe.Frame(http2.FrameHeaders, http2.FlagHeadersEndHeaders, id, sc.block(":status", "200", "content-type", "application/grpc")))
			sc.raw(rawframe.Frame(http2.FrameHeaders, http2.FlagHeadersEndHeaders|http2.FlagHeadersEndStream, id, sc.block("grpc-status", "0")))
		}, status.Unimplemented},
		{"WINDOW_UPDATE overflowing the connection", func(sc *scriptConn, id uint32) {
			sc.fr.WriteWindowUpdate(0, 1<<31-1)
		}, status.Unavailable},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			addr := scriptServer(t, false, func(sc *scriptConn) {
				if id := sc.nextHeaders(); id != 0 {
					c.script(sc, id)
					sc.readUntil(func(http2.Frame) bool { return false })
				}
			})
			_, err := callOnce(t, addr, 10*time.Second)
			if status.CodeOf(err) != c.code {
				t.Fatalf("got %v, want %v", err, c.code)
			}
		})
	}
}

// TestHostileServerNoSettings: a peer that answers the preface with
// something other than SETTINGS is not an HTTP/2 server: the call fails
// with Unavailable, as not processed.
func TestHostileServerNoSettings(t *testing.T) {
	leakcheck.Check(t)
	addr := scriptServer(t, true, func(sc *scriptConn) {
		sc.raw(rawframe.Frame(http2.FramePing, 0, 0, make([]byte, 8)))
		sc.readUntil(func(http2.Frame) bool { return false })
	})
	if _, err := callOnce(t, addr, 10*time.Second); status.CodeOf(err) != status.Unavailable {
		t.Fatalf("got %v, want Unavailable", err)
	}
}

// TestCancelBetweenHeadersAndContinuation: a call cancelled after the
// response's HEADERS and before its END_HEADERS used to close a channel
// twice in the reader and panic.
func TestCancelBetweenHeadersAndContinuation(t *testing.T) {
	leakcheck.Check(t)
	// The call's HEADERS must reach the server before it is cancelled (a
	// call cancelled sooner is never sent at all).
	began := make(chan struct{})
	addr := scriptServer(t, false, func(sc *scriptConn) {
		id := sc.nextHeaders()
		if id == 0 {
			return
		}
		block := sc.block(":status", "200", "content-type", "application/grpc", "x-a", "b")
		sc.raw(rawframe.Frame(http2.FrameHeaders, 0, id, block[:2]))
		close(began)
		// Wait for the client's RST_STREAM, then end the block. The next
		// call's HEADERS may come first: the reset is pushed by whichever
		// of the cancelled call's goroutines ends it, so it can be late.
		next := uint32(0)
		sc.readUntil(func(f http2.Frame) bool {
			if h, ok := f.(*http2.HeadersFrame); ok && h.StreamID != id {
				next = h.StreamID
			}
			_, ok := f.(*http2.RSTStreamFrame)
			return ok
		})
		sc.raw(rawframe.Frame(http2.FrameContinuation, http2.FlagContinuationEndHeaders, id, block[2:]))
		// The connection is still usable: answer the next call.
		if id = next; id == 0 {
			id = sc.nextHeaders()
		}
		sc.raw(rawframe.Frame(http2.FrameHeaders, http2.FlagHeadersEndHeaders, id, sc.block(":status", "200", "content-type", "application/grpc")))
		sc.raw(rawframe.Frame(http2.FrameData, 0, id, replyBytes(t, "after")))
		sc.raw(rawframe.Frame(http2.FrameHeaders, http2.FlagHeadersEndHeaders|http2.FlagHeadersEndStream, id, sc.block("grpc-status", "0")))
		sc.readUntil(func(http2.Frame) bool { return false })
	})
	c := client.NewClient()
	defer c.(io.Closer).Close()
	g := greeterpb.NewGreeterService("greeter", c)
	ctx, cancel := context.WithCancel(context.Background())
	st, err := g.Chat(ctx, client.WithAddress(addr))
	if err != nil {
		t.Fatal(err)
	}
	hdr := make(chan error, 1)
	go func() { _, err := st.Header(); hdr <- err }()
	// Header waits (the bug needs a waiter); cancelling ends it and
	// resets the stream.
	<-began
	waitBlocked(t, "(*ClientStream).Header")
	cancel()
	if err := <-hdr; status.CodeOf(err) != status.Canceled {
		t.Fatalf("Header after cancel: %v", err)
	}
	ctx2, cancel2 := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel2()
	rsp, err := g.SayHello(ctx2, &greeterpb.HelloRequest{Name: "x"}, client.WithAddress(addr))
	if err != nil || rsp.Message != "after" {
		t.Fatalf("call after the cancelled one: %v %v", rsp, err)
	}
}

// waitBlocked waits until a goroutine is blocked in a function whose name
// contains fn, read from the goroutines' stacks.
func waitBlocked(t *testing.T, fn string) {
	t.Helper()
	buf := make([]byte, 1<<20)
	for i := 0; i < 10000; i++ {
		n := runtime.Stack(buf, true)
		for _, g := range strings.Split(string(buf[:n]), "\n\n") {
			if strings.Contains(g, fn) && (strings.Contains(g, "[select") || strings.Contains(g, "[chan receive")) {
				return
			}
		}
		runtime.Gosched()
	}
	t.Fatalf("no goroutine blocked in %s", fn)
}

// TestDialNotBoundToFirstCaller: the connection pool dials for everyone:
// a caller with a short deadline that starts the dial does not make it
// fail for a caller with time left.
func TestDialNotBoundToFirstCaller(t *testing.T) {
	leakcheck.Check(t)
	accepted := make(chan struct{})
	proceed := make(chan struct{})
	addr := scriptServer(t, true, func(sc *scriptConn) {
		close(accepted)
		<-proceed
		sc.fr.WriteSettings()
		id := sc.nextHeaders()
		sc.raw(rawframe.Frame(http2.FrameHeaders, http2.FlagHeadersEndHeaders, id, sc.block(":status", "200", "content-type", "application/grpc")))
		sc.raw(rawframe.Frame(http2.FrameData, 0, id, replyBytes(t, "patient")))
		sc.raw(rawframe.Frame(http2.FrameHeaders, http2.FlagHeadersEndHeaders|http2.FlagHeadersEndStream, id, sc.block("grpc-status", "0")))
		sc.readUntil(func(http2.Frame) bool { return false })
	})
	c := client.NewClient()
	defer c.(io.Closer).Close()
	g := greeterpb.NewGreeterService("greeter", c)

	hasty, cancel := context.WithCancel(context.Background())
	hastyErr := make(chan error, 1)
	go func() {
		_, err := g.SayHello(hasty, &greeterpb.HelloRequest{Name: "hasty"}, client.WithAddress(addr), client.WithRetries(0))
		hastyErr <- err
	}()
	<-accepted // the hasty caller's dial is under way
	patient := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		rsp, err := g.SayHello(ctx, &greeterpb.HelloRequest{Name: "patient"}, client.WithAddress(addr), client.WithRetries(0))
		if err == nil && rsp.Message != "patient" {
			err = io.ErrUnexpectedEOF
		}
		patient <- err
	}()
	cancel()
	if err := <-hastyErr; status.CodeOf(err) != status.Canceled {
		t.Fatalf("hasty caller: %v, want Canceled", err)
	}
	close(proceed)
	if err := <-patient; err != nil {
		t.Fatalf("the patient caller failed with the hasty one's dial: %v", err)
	}
}
