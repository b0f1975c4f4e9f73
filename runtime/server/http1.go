package server

import (
	"context"
	"crypto/tls"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/protoc-gen-micro/micro/internal/transport"
	"github.com/protoc-gen-micro/micro/internal/webrpc"
)

// The server's one port speaks HTTP/1.1 too: the transport hands over every
// connection that is not HTTP/2 (see transport.ServerConfig.HTTP1), and a
// net/http server, restricted to HTTP/1.1, serves them with webrpc's
// handler (Connect and gRPC-Web). HTTP/2 stays on the transport.

// http1Server serves the HTTP/1.x connections of one Start.
type http1Server struct {
	ln   *connListener
	hs   *http.Server
	done chan struct{} // closed when hs.Serve has returned

	// fresh are the connections that have not yet sent a whole request.
	// net/http's Shutdown waits 5 s for them; ours closes them at once,
	// as the transport closes connections that have not sent the preface.
	mu       sync.Mutex
	fresh    map[net.Conn]struct{}
	stopping bool
}

// newHTTP1Server returns the HTTP/1.1 side of a server whose transport
// takes its limits from cfg (defaults filled in); ln receives the
// connections the transport hands over.
func newHTTP1Server(ln *connListener, cfg transport.ServerConfig, h http.Handler, log *slog.Logger) *http1Server {
	var protocols http.Protocols
	protocols.SetHTTP1(true)
	hs := &http.Server{
		Handler:           newHTTP1Limiter(h, cfg),
		Protocols:         &protocols,
		ReadHeaderTimeout: cfg.HandshakeTimeout,
		MaxHeaderBytes:    int(cfg.MaxHeaderListSize),
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelDebug),
	}
	if cfg.IdleTimeout > 0 {
		hs.IdleTimeout = cfg.IdleTimeout
	}
	// A TLS connection that chose no protocol by ALPN was sniffed, so
	// net/http gets it wrapped and cannot see its TLS state; the request
	// gets it from the connection's context instead.
	hs.ConnContext = func(ctx context.Context, c net.Conn) context.Context {
		if _, plain := c.(*tls.Conn); !plain {
			if cs := transport.TLSState(c); cs != nil {
				ctx = context.WithValue(ctx, tlsStateKey{}, cs)
			}
		}
		return ctx
	}
	s := &http1Server{ln: ln, hs: hs, done: make(chan struct{}), fresh: map[net.Conn]struct{}{}}
	hs.ConnState = func(c net.Conn, st http.ConnState) {
		s.track(c, st)
		if d := cfg.WriteTimeout; d > 0 && st == http.StateActive {
			// What net/http writes before a handler runs (the answer
			// to a malformed request) gets a fresh deadline, not the
			// one the last response left on a kept-alive connection.
			c.SetWriteDeadline(time.Now().Add(d))
		}
	}
	go func() {
		defer close(s.done)
		hs.Serve(ln)
	}()
	return s
}

// shutdown lets the requests in flight finish until ctx ends (their
// responses say Connection: close), closes idle connections, then closes
// whatever is left.
func (s *http1Server) shutdown(ctx context.Context) error {
	s.ln.Close() // even if Serve has not started: handOff must not wait
	s.mu.Lock()
	s.stopping = true
	for c := range s.fresh {
		c.Close()
	}
	s.mu.Unlock()
	err := s.hs.Shutdown(ctx)
	if err != nil {
		s.hs.Close()
	}
	<-s.done
	return err
}

// track keeps the set of connections that have not sent a whole request,
// and closes one that arrives while stopping.
func (s *http1Server) track(c net.Conn, st http.ConnState) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case st == http.StateNew && s.stopping:
		c.Close()
	case st == http.StateNew:
		s.fresh[c] = struct{}{}
	default:
		delete(s.fresh, c)
	}
}

// connListener is the net.Listener net/http accepts the handed-over
// connections from.
type connListener struct {
	addr  net.Addr
	conns chan net.Conn
	quit  chan struct{}
	once  sync.Once
}

func newConnListener(addr net.Addr) *connListener {
	return &connListener{addr: addr, conns: make(chan net.Conn), quit: make(chan struct{})}
}

// handOff waits until net/http takes c, or closes c if the listener is
// closed first. The transport counts c as its own until it returns, so a
// shutdown never misses a connection between the two.
func (l *connListener) handOff(c net.Conn) {
	select {
	case l.conns <- c:
	case <-l.quit:
		c.Close()
	}
}

func (l *connListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.quit:
		return nil, net.ErrClosed
	}
}

func (l *connListener) Close() error {
	l.once.Do(func() { close(l.quit) })
	return nil
}

func (l *connListener) Addr() net.Addr { return l.addr }

// http1Limiter bounds what HTTP/1.1 requests make the server hold. Each
// connection runs one request at a time, so a flood of connections is a
// flood of handlers: at most MaxConcurrentStreams run at once, as on one
// HTTP/2 connection, as many more wait for a slot (holding no more than
// their header block), and further ones are refused with 503. Writes to a
// client that does not read, and reads of a request body the client
// stalls, fail after WriteTimeout each, so that a slot is not held for
// ever; a response that streams for long is fine as long as it moves.
type http1Limiter struct {
	next    http.Handler
	slots   chan struct{}
	pending atomic.Int64 // requests running or waiting for a slot
	maxPend int64
	timeout time.Duration // per read and write; none when <= 0
}

func newHTTP1Limiter(next http.Handler, cfg transport.ServerConfig) *http1Limiter {
	n := int(cfg.MaxConcurrentStreams)
	return &http1Limiter{next: next, slots: make(chan struct{}, n), maxPend: 2 * int64(n), timeout: cfg.WriteTimeout}
}

// overloaded is the answer past the bound: HTTP 503, which the Connect and
// gRPC-Web clients read as UNAVAILABLE (retryable), with the Connect error
// body and the gRPC status for clients that look for them.
const overloaded = `{"code":"unavailable","message":"server: too many HTTP/1.1 requests at once"}`

// tlsStateKey is the context key of the TLS state of a connection
// net/http got wrapped (see newHTTP1Server).
type tlsStateKey struct{}

func (l *http1Limiter) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.TLS == nil {
		if cs, ok := r.Context().Value(tlsStateKey{}).(*tls.ConnectionState); ok {
			r2 := *r
			r2.TLS = cs
			r = &r2
		}
	}
	if l.pending.Add(1) > l.maxPend {
		l.pending.Add(-1)
		h := w.Header()
		h.Set("Content-Type", "application/json")
		h.Set("Grpc-Status", "14")
		h.Set("Grpc-Message", "server: too many HTTP/1.1 requests at once")
		h.Set("Connection", "close")
		w.WriteHeader(http.StatusServiceUnavailable)
		w.Write([]byte(overloaded))
		return
	}
	defer l.pending.Add(-1)
	select {
	case l.slots <- struct{}{}:
	case <-r.Context().Done():
		return
	}
	defer func() { <-l.slots }()
	rc := http.NewResponseController(w)
	if r.Body != nil && r.Body != http.NoBody {
		// Even without a timeout: the body takes the call's deadline
		// from webrpc, and sets it on the connection only as it reads.
		r.Body = &deadlineBody{ReadCloser: r.Body, rc: rc, timeout: l.timeout}
	}
	if l.timeout <= 0 {
		l.next.ServeHTTP(w, r)
		return
	}
	dw := &deadlineWriter{ResponseWriter: w, rc: rc, timeout: l.timeout}
	// What net/http writes once the handler returns (the rest of the
	// buffered response, the last chunk) gets a deadline of its own.
	defer func() { rc.SetWriteDeadline(time.Now().Add(l.timeout)) }()
	l.next.ServeHTTP(dw, r)
}

// deadlineWriter gives each write and flush a deadline of its own: a
// client that does not read is cut off after the timeout, however long a
// server-streaming response lasts.
type deadlineWriter struct {
	http.ResponseWriter
	rc      *http.ResponseController
	timeout time.Duration
}

func (w *deadlineWriter) Write(p []byte) (int, error) {
	w.rc.SetWriteDeadline(time.Now().Add(w.timeout))
	return w.ResponseWriter.Write(p)
}

func (w *deadlineWriter) Flush() {
	w.rc.SetWriteDeadline(time.Now().Add(w.timeout))
	w.rc.Flush()
}

// FlushError is Flush for http.ResponseController, with the error.
func (w *deadlineWriter) FlushError() error {
	w.rc.SetWriteDeadline(time.Now().Add(w.timeout))
	return w.rc.Flush()
}

// Unwrap lets http.ResponseController reach net/http's writer.
func (w *deadlineWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// deadlineBody gives each read of a request body a deadline of its own, and
// clears it when the body ends: net/http then reads the connection in the
// background to notice the client leaving, and a deadline left behind
// would cancel the call.
type deadlineBody struct {
	io.ReadCloser
	rc      *http.ResponseController
	timeout time.Duration
	call    time.Time // the call's deadline, if it has one
}

// SetCallDeadline implements webrpc.CallDeadliner: no read waits past t.
func (b *deadlineBody) SetCallDeadline(t time.Time) { b.call = t }

func (b *deadlineBody) Read(p []byte) (int, error) {
	now := time.Now()
	var d time.Time
	if b.timeout > 0 {
		d = now.Add(b.timeout)
	}
	if !b.call.IsZero() && (d.IsZero() || b.call.Before(d)) {
		if !b.call.After(now) {
			// Past the call's deadline, the body is not read at all: a
			// read served from net/http's buffer could reach the end of
			// the body and start its background read of the connection
			// under a deadline already passed, which would cancel every
			// later request on the connection.
			return 0, os.ErrDeadlineExceeded
		}
		d = b.call
	}
	b.rc.SetReadDeadline(d)
	n, err := b.ReadCloser.Read(p)
	if err != nil {
		b.rc.SetReadDeadline(time.Time{})
	}
	return n, err
}

// webLookup returns webrpc's view of the server's method table, read
// lock-free per request like the transport's.
func (s *rpcServer) webLookup(procedure string) (*webrpc.Method, bool) {
	h := s.methods.Load().byPath[procedure]
	if h == nil {
		return nil, false
	}
	return h.web, true
}
