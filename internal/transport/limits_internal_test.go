package transport

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/protoc-gen-micro/micro/internal/leakcheck"
	"golang.org/x/net/http2"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// serveEcho starts a transport server with cfg (its Handler is the echo
// handler) and returns it with its address.
func serveEcho(t *testing.T, cfg ServerConfig) (*Server, string) {
	t.Helper()
	cfg.Handler = echoHandler{}
	srv := NewServer(cfg)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan struct{})
	go func() { srv.Serve(ln); close(served) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
		<-served
	})
	return srv, ln.Addr().String()
}

func dial(t *testing.T, addr string) *ClientConn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	cc, err := Dial(ctx, addr, DialConfig{MaxRecvMsgSize: 8 << 20})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	return cc
}

// TestBudgetBoundsLargeRequests: many honest clients, each sending a
// message of 3.9 MiB at once on its own connection, all get their answer,
// while the messages held past their streams' 64 KiB windows never
// exceed the server-wide budget: the rest wait, stalled by flow control,
// instead of exhausting memory. (Neither grpc-go nor x/net bounds this.)
func TestBudgetBoundsLargeRequests(t *testing.T) {
	leakcheck.Check(t)
	const (
		clients = 16
		size    = 3900 << 10
		budget  = 8 << 20 // room for two such messages at once
	)
	srv, addr := serveEcho(t, ServerConfig{MaxRecvMsgSize: 4 << 20, Limits: Limits{MaxBufferedRequestBytes: budget}})
	var wg sync.WaitGroup
	errs := make(chan error, clients)
	for i := 0; i < clients; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cc := dial(t, addr)
			// No deadline but the test's: the clients take turns, and
			// how long that takes is not what is tested.
			cs, err := cc.NewStream(context.Background(), StreamConfig{Method: "/t/echo"})
			if err == nil {
				err = cs.SendMsg(&wrapperspb.BytesValue{Value: make([]byte, size)}, true)
			}
			var out wrapperspb.BytesValue
			if err == nil {
				err = cs.RecvMsg(&out)
			}
			if err == nil && len(out.Value) != size {
				err = fmt.Errorf("echo of %d bytes came back with %d", size, len(out.Value))
			}
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("a client sending 3.9 MiB: %v", err)
		}
	}
	if p := srv.budget.peak.Load(); p > budget || p < size {
		t.Fatalf("budget peak %d bytes, want between one message (%d) and the budget (%d)", p, size, budget)
	}
	if u := srv.budget.inUse(); u != 0 {
		t.Fatalf("%d bytes of budget still reserved after every call ended", u)
	}
}

// TestBudgetFIFO: waiters are admitted in order, a large one is not
// overtaken by small ones, and a cancelled waiter gives up its place.
func TestBudgetFIFO(t *testing.T) {
	b := newMemBudget(100)
	var order []int
	var mu sync.Mutex
	mk := func(i int) *recvBuffer {
		r := &recvBuffer{}
		r.curState, r.waitSeq = curWaiting, 1
		r.budget = b
		r.cf = newConnFlow(1<<20, false)
		r.w = newWriter(nil, 0, 0, func(error) {})
		r.target, r.w0 = 1<<16, 1<<16
		r.id = uint32(i)
		return r
	}
	if !b.reserve(mk(0), 90, 1) {
		t.Fatal("first reservation refused")
	}
	waiters := []*recvBuffer{mk(1), mk(2), mk(3)}
	sizes := []int64{50, 5, 5}
	for i, r := range waiters {
		if b.reserve(r, sizes[i], 1) {
			t.Fatalf("waiter %d admitted over the limit", i+1)
		}
	}
	// 5 bytes are free, but the 50-byte waiter is first: nobody passes it.
	if b.inUse() != 90 {
		t.Fatalf("in use %d", b.inUse())
	}
	b.cancel(waiters[2])
	b.release(90)
	for i, r := range waiters[:2] {
		r.mu.Lock()
		if r.curState == curAdmitted {
			mu.Lock()
			order = append(order, i+1)
			mu.Unlock()
		}
		r.mu.Unlock()
	}
	if fmt.Sprint(order) != "[1 2]" || b.inUse() != 55 {
		t.Fatalf("admitted %v with %d in use, want [1 2] and 55", order, b.inUse())
	}
	if waiters[2].curState == curAdmitted {
		t.Fatal("a cancelled waiter was admitted")
	}
}

// flakyListener fails Accept with EMFILE a few times first.
type flakyListener struct {
	net.Listener
	fails int
	mu    sync.Mutex
}

func (l *flakyListener) Accept() (net.Conn, error) {
	l.mu.Lock()
	if l.fails > 0 {
		l.fails--
		l.mu.Unlock()
		return nil, &net.OpError{Op: "accept", Net: "tcp", Err: &osSyscallError{syscall.EMFILE}}
	}
	l.mu.Unlock()
	return l.Listener.Accept()
}

type osSyscallError struct{ err error }

func (e *osSyscallError) Error() string { return "accept4: " + e.err.Error() }
func (e *osSyscallError) Unwrap() error { return e.err }

// TestAcceptBackoff: running out of file descriptors makes Serve wait and
// try again, not return while the service stays registered.
func TestAcceptBackoff(t *testing.T) {
	leakcheck.Check(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := NewServer(ServerConfig{Handler: echoHandler{}})
	served := make(chan error, 1)
	go func() { served <- srv.Serve(&flakyListener{Listener: ln, fails: 5}) }()
	cc := dial(t, ln.Addr().String())
	if err := roundTrip(t, cc, "/t/echo", 10); err != nil {
		t.Fatal(err)
	}
	srv.Close()
	if err := <-served; !errors.Is(err, ErrServerClosed) {
		t.Fatalf("Serve returned %v", err)
	}
}

// TestIdleTimeout: a connection without calls is sent GOAWAY and closed.
func TestIdleTimeout(t *testing.T) {
	leakcheck.Check(t)
	_, addr := serveEcho(t, ServerConfig{Limits: Limits{IdleTimeout: 50 * time.Millisecond}})
	cc := dial(t, addr)
	if err := roundTrip(t, cc, "/t/echo", 10); err != nil {
		t.Fatal(err)
	}
	select {
	case <-cc.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("an idle connection was not closed")
	}
}

// TestKeepaliveClosesSilentPeer: a connection that does not answer the
// server's keepalive PING is closed.
func TestKeepaliveClosesSilentPeer(t *testing.T) {
	leakcheck.Check(t)
	_, addr := serveEcho(t, ServerConfig{Limits: Limits{KeepaliveTime: 50 * time.Millisecond, KeepaliveTimeout: 50 * time.Millisecond}})
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fr := http2.NewFramer(c, c)
	io.WriteString(c, clientPreface)
	fr.WriteSettings()
	sawPing := false
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	for {
		f, err := fr.ReadFrame()
		if err != nil {
			if !sawPing {
				t.Fatalf("closed without a keepalive PING first: %v", err)
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				t.Fatal("the server did not close a connection that never answered its PING")
			}
			return
		}
		if p, ok := f.(*http2.PingFrame); ok && !p.IsAck() {
			sawPing = true // and never answered
		}
	}
}

// TestKeepaliveAnswered: a silent peer that answers the keepalive PINGs
// keeps its connection, round after round.
func TestKeepaliveAnswered(t *testing.T) {
	leakcheck.Check(t)
	_, addr := serveEcho(t, ServerConfig{Limits: Limits{KeepaliveTime: 20 * time.Millisecond, KeepaliveTimeout: 100 * time.Millisecond, IdleTimeout: -1}})
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fr := http2.NewFramer(c, c)
	io.WriteString(c, clientPreface)
	fr.WriteSettings()
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	for pings := 0; pings < 5; {
		f, err := fr.ReadFrame()
		if err != nil {
			t.Fatalf("after %d answered keepalive PINGs: %v", pings, err)
		}
		switch f := f.(type) {
		case *http2.PingFrame:
			if !f.IsAck() {
				pings++
				fr.WritePing(true, f.Data)
			}
		case *http2.GoAwayFrame:
			t.Fatalf("GOAWAY %v after %d answered PINGs", f.ErrCode, pings)
		}
	}
}

// TestMaxConnectionAge: an old connection is drained (GOAWAY) so clients
// move on, and closed after the grace period even with a call running.
func TestMaxConnectionAge(t *testing.T) {
	leakcheck.Check(t)
	_, addr := serveEcho(t, ServerConfig{Limits: Limits{MaxConnectionAge: 50 * time.Millisecond, MaxConnectionAgeGrace: 50 * time.Millisecond}})
	cc := dial(t, addr)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// A call that never finishes: headers, no END_STREAM.
	cs, err := cc.NewStream(ctx, StreamConfig{Method: "/t/echo"})
	if err != nil {
		t.Fatal(err)
	}
	if err := cs.SendMsg(&wrapperspb.BytesValue{}, false); err != nil {
		t.Fatal(err)
	}
	select {
	case <-cc.Done():
	case <-ctx.Done():
		t.Fatal("a connection past its age and grace was not closed")
	}
	if cc.Usable() {
		t.Fatal("closed connection reports usable")
	}
}
