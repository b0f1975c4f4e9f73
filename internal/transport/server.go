package transport

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/protoc-gen-micro/micro/runtime/compress"
	"github.com/protoc-gen-micro/micro/runtime/status"
)

// Handler routes and serves the streams of a server.
type Handler interface {
	// Route is called on the connection's reader goroutine once a stream's
	// headers have arrived, so it must be quick. It returns a status to
	// reject the stream at once (sent as a trailers-only response), and
	// whether the handler needs the whole request before it starts (unary
	// and server-streaming methods), which spares it waiting for data.
	// Route may record its decision in st.Route.
	Route(st *ServerStream) (wholeRequest bool, reject *status.Error)
	// Serve runs the stream on a worker goroutine. It must end the stream
	// with Finish.
	Serve(st *ServerStream)
}

// ServerConfig configures a Server.
type ServerConfig struct {
	Handler Handler
	// MaxRecvMsgSize bounds a received message, after decompression;
	// 4 MiB when 0.
	MaxRecvMsgSize int
	// MaxConcurrentStreams is advertised per connection and bounds the
	// handlers running for it, including those of streams the client
	// reset; 256 when 0.
	MaxConcurrentStreams uint32
	// Limits bounds the rest of what a client can make the server hold.
	Limits
	// SendCompression names the compressor (see package compress) for
	// responses to clients that accept it; a compressed request is always
	// answered in its own encoding. None when empty.
	SendCompression string
	// BaseContext is the parent of every stream's context.
	BaseContext context.Context
	// ErrorLog receives connection-level errors; dropped when nil.
	ErrorLog func(msg string, err error)
	// HTTP1 takes over the connections that are not HTTP/2: a TLS
	// connection that negotiated ALPN http/1.1, or one whose first bytes
	// differ from the client preface (they are replayed to whoever reads
	// the connection it is given). The server forgets the connection once
	// HTTP1 returns, so HTTP1 should hand it on quickly. When nil, HTTP/1.x
	// requests get 505 as from grpc-go.
	HTTP1 func(net.Conn)
	// Web serves the HTTP/2 streams that are not gRPC (any content type
	// but application/grpc and its +codec forms, or a method other than
	// POST): Connect, gRPC-Web, CORS preflights. It runs under the same
	// bounds as a gRPC handler. When nil they are refused with 415 or 405
	// as by grpc-go.
	Web http.Handler
}

// Limits bounds the resources a client can make a server hold; zero
// fields take the defaults below. It has the fields of server.Limits, which
// documents them, so that the server converts one into the other.
type Limits struct {
	MaxHeaderListSize       uint32
	InitialWindowSize       int32
	InitialConnWindowSize   int32
	MaxBufferedRequestBytes int64
	HandshakeTimeout        time.Duration
	WriteTimeout            time.Duration
	IdleTimeout             time.Duration
	MaxConnectionAge        time.Duration
	MaxConnectionAgeGrace   time.Duration
	KeepaliveTime           time.Duration
	KeepaliveTimeout        time.Duration
	PingMinTime             time.Duration
	PermitPingWithoutCalls  bool
}

func (cfg *ServerConfig) setDefaults() {
	if cfg.MaxRecvMsgSize <= 0 {
		cfg.MaxRecvMsgSize = defaultMaxRecvMsgSize
	}
	if cfg.MaxConcurrentStreams == 0 {
		cfg.MaxConcurrentStreams = defaultMaxConcurrentStreams
	}
	if cfg.MaxHeaderListSize == 0 {
		cfg.MaxHeaderListSize = defaultMaxHeaderListSize
	}
	if cfg.InitialWindowSize <= 0 {
		cfg.InitialWindowSize = defaultServerStreamWindow
	}
	if cfg.InitialConnWindowSize <= 0 {
		cfg.InitialConnWindowSize = defaultConnWindow
	}
	if need := int64(cfg.InitialWindowSize) * int64(cfg.MaxConcurrentStreams); int64(cfg.InitialConnWindowSize) < need {
		cfg.InitialConnWindowSize = int32(min(need, maxWindow))
	}
	if cfg.MaxBufferedRequestBytes <= 0 {
		cfg.MaxBufferedRequestBytes = defaultMaxBufferedRequestBytes
	}
	cfg.MaxBufferedRequestBytes = max(cfg.MaxBufferedRequestBytes, int64(cfg.MaxRecvMsgSize)+headerSize)
	if cfg.HandshakeTimeout <= 0 {
		cfg.HandshakeTimeout = defaultHandshakeTimeout
	}
	if cfg.WriteTimeout == 0 {
		cfg.WriteTimeout = defaultWriteTimeout
	}
	if cfg.IdleTimeout == 0 {
		cfg.IdleTimeout = defaultIdleTimeout
	}
	if cfg.KeepaliveTime <= 0 {
		cfg.KeepaliveTime = defaultKeepaliveTime
	}
	if cfg.KeepaliveTimeout <= 0 {
		cfg.KeepaliveTimeout = defaultKeepaliveTimeout
	}
	if cfg.PingMinTime <= 0 {
		cfg.PingMinTime = defaultPingMinTime
	}
	if cfg.BaseContext == nil {
		cfg.BaseContext = context.Background()
	}
}

// Server accepts HTTP/2 connections and turns their streams into calls.
type Server struct {
	cfg      ServerConfig
	budget   *memBudget
	sendComp compress.Compressor
	work     chan *ServerStream
	quit     chan struct{}
	idle     atomic.Int32

	mu        sync.Mutex
	listeners map[net.Listener]struct{}
	conns     map[*serverConn]struct{}
	shutdown  bool
	connsDone chan struct{} // closed when conns becomes empty during shutdown
	wg        sync.WaitGroup
}

// NewServer returns a server; cfg.Handler is required. A SendCompression
// that names no registered compressor is ignored: server.NewServer checks
// it.
func NewServer(cfg ServerConfig) *Server {
	cfg.setDefaults()
	sendComp, _ := compress.Get(cfg.SendCompression)
	return &Server{
		sendComp:  sendComp,
		cfg:       cfg,
		budget:    newMemBudget(cfg.MaxBufferedRequestBytes),
		work:      make(chan *ServerStream),
		quit:      make(chan struct{}),
		listeners: map[net.Listener]struct{}{},
		conns:     map[*serverConn]struct{}{},
	}
}

// Config returns the server's configuration with the defaults filled in.
func (s *Server) Config() ServerConfig { return s.cfg }

// ErrServerClosed is returned by Serve after Shutdown or Close.
var ErrServerClosed = errors.New("transport: server closed")

// Serve accepts connections on l until Shutdown or Close. It always closes l.
func (s *Server) Serve(l net.Listener) error {
	s.mu.Lock()
	if s.shutdown {
		s.mu.Unlock()
		l.Close()
		return ErrServerClosed
	}
	s.listeners[l] = struct{}{}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.listeners, l)
		s.mu.Unlock()
		l.Close()
	}()
	var backoff time.Duration
	for {
		c, err := l.Accept()
		if err != nil {
			s.mu.Lock()
			down := s.shutdown
			s.mu.Unlock()
			if down {
				return ErrServerClosed
			}
			if !temporaryAcceptError(err) {
				return err
			}
			// Out of file descriptors or memory, or a connection that
			// died before we took it: wait and go on rather than end
			// Serve while the service stays registered.
			backoff = min(max(backoff*2, 5*time.Millisecond), time.Second)
			s.logf("accept failed; retrying in "+backoff.String(), err)
			select {
			case <-time.After(backoff):
			case <-s.quit:
				return ErrServerClosed
			}
			continue
		}
		backoff = 0
		s.ServeConn(c)
	}
}

// temporaryAcceptError reports whether Accept may succeed if tried again.
func temporaryAcceptError(err error) bool {
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return true
	}
	for _, e := range []error{syscall.EMFILE, syscall.ENFILE, syscall.ENOBUFS, syscall.ENOMEM,
		syscall.ECONNABORTED, syscall.ECONNRESET, syscall.EPROTO, syscall.EPERM, syscall.EAGAIN, syscall.EINTR} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

func (s *Server) logf(msg string, err error) {
	if s.cfg.ErrorLog != nil {
		s.cfg.ErrorLog(msg, err)
	}
}

// ServeConn serves one connection in the background.
func (s *Server) ServeConn(c net.Conn) {
	s.mu.Lock()
	if s.shutdown {
		s.mu.Unlock()
		c.Close()
		return
	}
	sc := newServerConn(s, c)
	s.conns[sc] = struct{}{}
	s.wg.Add(1)
	s.mu.Unlock()
	go sc.serve()
}

func (s *Server) removeConn(sc *serverConn) {
	s.mu.Lock()
	delete(s.conns, sc)
	if len(s.conns) == 0 && s.connsDone != nil {
		close(s.connsDone)
		s.connsDone = nil
	}
	s.mu.Unlock()
	s.wg.Done()
}

// Shutdown stops accepting, sends GOAWAY on every connection, waits for
// in-flight streams to finish or ctx to end, then closes everything. It
// returns ctx's error if streams were cut short.
func (s *Server) Shutdown(ctx context.Context) error {
	conns, done := s.stop(true)
	for _, sc := range conns {
		sc.drain()
	}
	var err error
	if done != nil {
		select {
		case <-done:
		case <-ctx.Done():
			err = ctx.Err()
			s.Close()
		}
	}
	s.wg.Wait()
	return err
}

// Close closes every listener and connection at once; in-flight streams
// fail with Unavailable.
func (s *Server) Close() error {
	conns, _ := s.stop(false)
	for _, sc := range conns {
		sc.close(errClosed)
	}
	return nil
}

// stop marks the server shut down, closes its listeners and returns its
// connections; with wait, also a channel closed when the last one is gone
// (nil when there is none).
func (s *Server) stop(wait bool) (conns []*serverConn, done chan struct{}) {
	s.mu.Lock()
	first := !s.shutdown
	s.shutdown = true
	for l := range s.listeners {
		l.Close()
	}
	conns = make([]*serverConn, 0, len(s.conns))
	for sc := range s.conns {
		conns = append(conns, sc)
	}
	if wait && len(s.conns) > 0 {
		if s.connsDone == nil {
			s.connsDone = make(chan struct{})
		}
		done = s.connsDone
	}
	s.mu.Unlock()
	if first {
		close(s.quit)
	}
	return conns, done
}

// dispatch hands a stream to an idle worker or starts one. Reusing worker
// goroutines saves the closure allocation and stack growth of a goroutine
// per call.
func (s *Server) dispatch(st *ServerStream) {
	select {
	case s.work <- st:
	default:
		go s.worker(st)
	}
}

// maxIdleWorkers bounds the goroutines kept waiting for work.
const maxIdleWorkers = 256

func (s *Server) worker(st *ServerStream) {
	for {
		sc := st.conn
		if st.web != nil {
			s.serveWeb(st)
		} else {
			s.cfg.Handler.Serve(st)
		}
		sc.handlerDone()
		if s.idle.Add(1) > maxIdleWorkers {
			s.idle.Add(-1)
			return
		}
		select {
		case st = <-s.work:
			s.idle.Add(-1)
		case <-s.quit:
			s.idle.Add(-1)
			return
		}
	}
}

// http1Response answers an HTTP/1.x request on a gRPC port, as grpc-go's
// handler transport does.
const http1Response = "HTTP/1.1 505 HTTP Version Not Supported\r\n" +
	"Content-Type: text/plain; charset=utf-8\r\nConnection: close\r\nContent-Length: 21\r\n\r\n" +
	"gRPC requires HTTP/2\n"

// readPreface reads the client connection preface, answering HTTP/1.x
// requests with 505.
func readPreface(c net.Conn, r *bufio.Reader) error {
	buf, err := r.Peek(len(clientPreface))
	if err != nil {
		if len(buf) > 0 && looksHTTP1(buf) {
			c.Write([]byte(http1Response))
		}
		return err
	}
	if !bytes.Equal(buf, []byte(clientPreface)) {
		if looksHTTP1(buf) {
			c.Write([]byte(http1Response))
			return errors.New("transport: HTTP/1.x request on a gRPC port")
		}
		return errors.New("transport: bad HTTP/2 connection preface")
	}
	_, err = r.Discard(len(clientPreface))
	return err
}

func looksHTTP1(b []byte) bool {
	for _, m := range []string{"GET ", "POST ", "PUT ", "HEAD ", "OPTIONS ", "DELETE ", "PATCH ", "CONNECT ", "TRACE "} {
		if bytes.HasPrefix(b, []byte(m)) || (len(b) < len(m) && bytes.HasPrefix([]byte(m), b)) {
			return true
		}
	}
	return false
}
