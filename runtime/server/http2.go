package server

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"reflect"
	"runtime/debug"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/protoc-gen-micro/micro/internal/callctx"
	"github.com/protoc-gen-micro/micro/internal/chain"
	"github.com/protoc-gen-micro/micro/internal/transport"
	"github.com/protoc-gen-micro/micro/internal/webrpc"
	"github.com/protoc-gen-micro/micro/internal/wire"
	"github.com/protoc-gen-micro/micro/runtime/compress"
	"github.com/protoc-gen-micro/micro/runtime/interceptor"
	"github.com/protoc-gen-micro/micro/runtime/metadata"
	"github.com/protoc-gen-micro/micro/runtime/spec"
	"github.com/protoc-gen-micro/micro/runtime/status"
)

// NewServer returns a server speaking gRPC, Connect and gRPC-Web on one
// port: gRPC over HTTP/2, the other two over HTTP/1.1 and HTTP/2.
func NewServer(opts ...Option) Server {
	o := options{address: ":0", gracePeriod: 10 * time.Second}
	for _, opt := range opts {
		opt.applyToServer(&o)
	}
	if o.logger == nil {
		o.logger = slog.Default()
	}
	s := &rpcServer{opts: o}
	s.methods.Store(&methodTable{})
	return s
}

type rpcServer struct {
	opts options

	mu       sync.Mutex
	services []*ServiceDesc
	methods  atomic.Pointer[methodTable] // replaced whole on Handle, read lock-free per call
	tr       *transport.Server
	http1    *http1Server
	addr     string
	serveErr chan error
}

// methodTable maps procedure paths to handlers; it is never mutated once
// published.
type methodTable struct {
	byPath   map[string]*methodHandler
	services map[string]bool
}

type methodHandler struct {
	desc   *MethodDesc
	unary  interceptor.UnaryFunc
	stream interceptor.StreamingHandlerFunc
	web    *webrpc.Method // the same handlers, for HTTP/1.1
}

// streamHandler returns the innermost handler of a streaming method: for a
// server-streaming one it first reads the single request, through the
// stream the interceptors may have wrapped, so they see it.
func streamHandler(md *MethodDesc, impl any) interceptor.StreamingHandlerFunc {
	call := md.Stream
	if md.Method.StreamType != spec.ServerStream {
		return func(ctx context.Context, st Stream) error { return call(impl, ctx, nil, st) }
	}
	return func(ctx context.Context, st Stream) error {
		ts, ok := callctx.FromContext(ctx)
		if !ok {
			return status.New(status.Internal, "server: a stream interceptor replaced the call's context with one not derived from it")
		}
		req := md.NewRequest()
		if err := recvOne(ts, st, req); err != nil {
			return err
		}
		return call(impl, ctx, req, st)
	}
}

func (s *rpcServer) Handle(desc *ServiceDesc, impl any, opts ...HandlerOption) error {
	if desc == nil || desc.Name == "" {
		return errors.New("server: Handle needs a service description with a name")
	}
	if impl == nil {
		return fmt.Errorf("server: Handle(%s): handler is nil", desc.Name)
	}
	if desc.HandlerType != nil {
		want := reflect.TypeOf(desc.HandlerType).Elem()
		if got := reflect.TypeOf(impl); !got.Implements(want) {
			return fmt.Errorf("server: Handle(%s): %v does not implement %v", desc.Name, got, want)
		}
	}
	var ho handlerOptions
	for _, o := range opts {
		o.applyToHandler(&ho)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	old := s.methods.Load()
	if old.services[desc.Name] {
		return fmt.Errorf("server: service %s is already registered", desc.Name)
	}
	next := &methodTable{byPath: make(map[string]*methodHandler, len(old.byPath)+len(desc.Methods)), services: map[string]bool{desc.Name: true}}
	for k, v := range old.byPath {
		next.byPath[k] = v
	}
	for k := range old.services {
		next.services[k] = true
	}
	ics := append(append([]interceptor.Interceptor(nil), s.opts.interceptors...), ho.interceptors...)
	for i := range desc.Methods {
		md := &desc.Methods[i]
		if md.Method == nil || md.NewRequest == nil {
			return fmt.Errorf("server: Handle(%s): method %d lacks its spec or request constructor", desc.Name, i)
		}
		h := &methodHandler{desc: md}
		switch md.Method.StreamType {
		case spec.Unary:
			if md.Unary == nil || md.NewResponse == nil {
				return fmt.Errorf("server: Handle(%s): unary method %s lacks its handler", desc.Name, md.Method.Name)
			}
			call := md.Unary
			h.unary = chain.Unary(ics, md.Method, func(ctx context.Context, req, rsp any) error { return call(impl, ctx, req, rsp) })
		default:
			if md.Stream == nil {
				return fmt.Errorf("server: Handle(%s): streaming method %s lacks its handler", desc.Name, md.Method.Name)
			}
			h.stream = chain.StreamingHandler(ics, md.Method, streamHandler(md, impl))
		}
		h.web = &webrpc.Method{Spec: md.Method, NewRequest: md.NewRequest, NewResponse: md.NewResponse, Unary: h.unary, Stream: h.stream}
		next.byPath[md.Method.Procedure] = h
	}
	s.methods.Store(next)
	s.services = append(s.services, desc)
	return nil
}

func (s *rpcServer) Services() []*ServiceDesc {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := append([]*ServiceDesc(nil), s.services...)
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

func (s *rpcServer) Start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.tr != nil {
		return errors.New("server: already started")
	}
	if n := s.opts.sendCompression; n != "" && n != wire.IdentityEncoding {
		if _, ok := compress.Get(n); !ok {
			return fmt.Errorf("server: WithSendCompression(%q): no such compressor is registered (have %s)", n, wire.AcceptEncoding())
		}
	}
	ln, err := net.Listen("tcp", s.opts.address)
	if err != nil {
		return fmt.Errorf("server: listen on %s: %w", s.opts.address, err)
	}
	if s.opts.tlsConfig != nil {
		cfg := s.opts.tlsConfig.Clone()
		cfg.NextProtos = []string{"h2", "http/1.1"}
		ln = tls.NewListener(ln, cfg)
	}
	log := s.opts.logger
	web := s.opts.http1Handler
	if web == nil {
		web = webrpc.NewHandler(webrpc.Config{
			Lookup:          s.webLookup,
			MaxRecvMsgSize:  s.opts.maxRecvMsgSize,
			SendCompression: s.opts.sendCompression,
			AllowedOrigins:  s.opts.corsOrigins,
			Log:             log,
		})
	}
	h1ln := newConnListener(ln.Addr())
	s.tr = transport.NewServer(transport.ServerConfig{
		Handler:              s,
		MaxRecvMsgSize:       s.opts.maxRecvMsgSize,
		MaxConcurrentStreams: s.opts.maxConcurrentStreams,
		Limits:               transport.Limits(s.opts.limits),
		SendCompression:      s.opts.sendCompression,
		ErrorLog: func(msg string, err error) {
			log.Debug("micro server: "+msg, "err", err)
		},
		HTTP1: h1ln.handOff,
		Web:   web,
	})
	s.http1 = newHTTP1Server(h1ln, s.tr.Config(), web, log)
	s.addr = ln.Addr().String()
	s.serveErr = make(chan error, 1)
	go func(tr *transport.Server, errc chan error) { errc <- tr.Serve(ln) }(s.tr, s.serveErr)
	return nil
}

func (s *rpcServer) Stop() error {
	s.mu.Lock()
	tr, h1, errc := s.tr, s.http1, s.serveErr
	s.tr, s.http1 = nil, nil
	s.mu.Unlock()
	if tr == nil {
		return nil
	}
	// Both protocols drain at once, within the one grace period.
	ctx, cancel := context.WithTimeout(context.Background(), s.opts.gracePeriod)
	defer cancel()
	h1err := make(chan error, 1)
	go func() { h1err <- h1.shutdown(ctx) }()
	err := tr.Shutdown(ctx)
	if herr := <-h1err; err == nil {
		err = herr
	}
	if serr := <-errc; serr != nil && !errors.Is(serr, transport.ErrServerClosed) && err == nil {
		err = serr
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("server: calls still running after the %v grace period were cut off", s.opts.gracePeriod)
	}
	return err
}

func (s *rpcServer) Address() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.addr != "" {
		return s.addr
	}
	return s.opts.address
}

// Route implements transport.Handler: it finds the method's handler on the
// connection's reader goroutine.
func (s *rpcServer) Route(st *transport.ServerStream) (bool, *status.Error) {
	t := s.methods.Load()
	h := t.byPath[st.Method()]
	if h == nil {
		return false, unknownMethod(t, st.Method())
	}
	st.Route = h
	typ := h.desc.Method.StreamType
	return typ == spec.Unary || typ == spec.ServerStream, nil
}

func unknownMethod(t *methodTable, path string) *status.Error {
	p := strings.TrimPrefix(path, "/")
	svc, method, ok := strings.Cut(p, "/")
	if !ok {
		return status.Errorf(status.Unimplemented, "malformed method name: %q", path)
	}
	if t.services[svc] {
		return status.Errorf(status.Unimplemented, "unknown method %s for service %s", method, svc)
	}
	return status.Errorf(status.Unimplemented, "unknown service %s", svc)
}

// Serve implements transport.Handler: it runs one call on a worker.
func (s *rpcServer) Serve(st *transport.ServerStream) {
	h := st.Route.(*methodHandler)
	defer func() {
		if r := recover(); r != nil {
			s.opts.logger.Error("micro server: handler panicked", "method", st.Method(), "panic", r, "stack", string(debug.Stack()))
			st.Finish(status.Errorf(status.Internal, "panic in handler %s: %v", st.Method(), r))
		}
	}()
	switch h.desc.Method.StreamType {
	case spec.Unary:
		req := h.desc.NewRequest()
		if err := recvOne(st, st, req); err != nil {
			st.Finish(err)
			return
		}
		rsp := h.desc.NewResponse()
		if err := h.unary(st, req, rsp); err != nil {
			st.Finish(err)
			return
		}
		st.FinishWithMessage(rsp)
	default:
		st.Finish(h.stream(st, st))
	}
}

// recvOne reads the single request of a unary or server-streaming call
// from s, which is st or, for a server-streaming call, the stream the
// interceptors wrapped around it.
func recvOne(st callctx.Call, s Stream, req any) error {
	if err := s.RecvMsg(req); err != nil {
		if err == io.EOF {
			return status.Errorf(status.Unimplemented, "grpc: no request message for %s, which takes exactly one", st.Method())
		}
		return err
	}
	if st.MoreData() {
		return status.Errorf(status.Unimplemented, "grpc: more than one request message for %s, which takes exactly one", st.Method())
	}
	return nil
}

// SetHeader sets response headers from a unary handler's context; they are
// sent with the response.
func SetHeader(ctx context.Context, md metadata.MD) error {
	st, ok := callctx.FromContext(ctx)
	if !ok {
		return errors.New("server: SetHeader: context is not a call's")
	}
	return st.SetHeader(md)
}

// SendHeader sends response headers now from a handler's context.
func SendHeader(ctx context.Context, md metadata.MD) error {
	st, ok := callctx.FromContext(ctx)
	if !ok {
		return errors.New("server: SendHeader: context is not a call's")
	}
	return st.SendHeader(md)
}

// SetTrailer sets trailers from a handler's context; they are sent with the
// status.
func SetTrailer(ctx context.Context, md metadata.MD) error {
	st, ok := callctx.FromContext(ctx)
	if !ok {
		return errors.New("server: SetTrailer: context is not a call's")
	}
	st.SetTrailer(md)
	return nil
}

// Peer is the client of a call.
type Peer struct {
	// Addr is the client's address.
	Addr net.Addr
	// TLS is the state of the call's TLS connection; nil for cleartext.
	// With mutual TLS, TLS.VerifiedChains[0][0] is the client's verified
	// certificate.
	TLS *tls.ConnectionState
}

// PeerFromContext returns the client of the call of a handler's context.
func PeerFromContext(ctx context.Context) (Peer, bool) {
	st, ok := callctx.FromContext(ctx)
	if !ok {
		return Peer{}, false
	}
	return Peer{Addr: st.RemoteAddr(), TLS: st.TLSState()}, true
}
