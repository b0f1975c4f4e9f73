// Package webrpc serves the Connect protocol and gRPC-Web as an
// http.Handler over the server's method table, so that curl, browsers and
// anything behind an HTTP/1.1-only proxy can call the same handlers the
// HTTP/2 gRPC transport serves.
//
// One handler answers, chosen by each request's method and content type:
//   - Connect unary: POST application/json or application/proto (or
//     another registered codec's name), and GET for methods without side
//     effects;
//   - Connect streaming: POST application/connect+json or +proto, with
//     enveloped messages and the end-of-stream message;
//   - gRPC-Web: application/grpc-web(+proto|+json) and
//     application/grpc-web-text, with the trailers as the last frame.
//
// Plain gRPC is served over HTTP/1.1 too, with chunked encoding and HTTP
// trailers, for the clients that can; over HTTP/2 it stays on
// internal/transport. Bidi streaming needs HTTP/2 and is refused over
// HTTP/1.1 on every protocol.
//
// webrpc does not listen or sniff connections: the server hands it the
// HTTP/1.1 requests net/http parsed and the HTTP/2 streams of its
// transport that are not gRPC.
package webrpc

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"github.com/protoc-gen-micro/micro/internal/transport"
	"github.com/protoc-gen-micro/micro/internal/wire"
	"github.com/protoc-gen-micro/micro/runtime/codec"
	"github.com/protoc-gen-micro/micro/runtime/compress"
	"github.com/protoc-gen-micro/micro/runtime/interceptor"
	"github.com/protoc-gen-micro/micro/runtime/spec"
	"github.com/protoc-gen-micro/micro/runtime/status"
)

// Method is one method the handler serves, as the server's method table
// has it.
type Method struct {
	// Spec is the method's name, path, stream type and idempotency.
	Spec *spec.Method
	// NewRequest returns a new, empty request message.
	NewRequest func() any
	// NewResponse returns a new, empty response message (unary and
	// client-streaming methods).
	NewResponse func() any
	// Unary is the handler of a unary method, interceptors applied.
	Unary interceptor.UnaryFunc
	// Stream is the handler of a streaming method, interceptors applied.
	// For a server-streaming method it reads the single request from the
	// stream itself, as the server's own does; the stream's call answers
	// MoreData through callctx so it can refuse a second one.
	Stream interceptor.StreamingHandlerFunc
}

// Config configures a handler. Only Lookup is required.
type Config struct {
	// Lookup finds the method of a procedure path, e.g.
	// "/greeter.v1.Greeter/SayHello".
	Lookup func(procedure string) (*Method, bool)
	// MaxRecvMsgSize bounds a request message after decompression, and
	// before; 4 MiB when 0.
	MaxRecvMsgSize int
	// SendCompression names the compressor (package runtime/compress)
	// for responses to clients that accept it; none when "".
	SendCompression string
	// AllowedOrigins turns on CORS for these origins ("*" for any): nil
	// means no CORS handling at all.
	AllowedOrigins []string
	// Log receives handler panics and, at DEBUG, refused requests;
	// slog.Default() when nil.
	Log *slog.Logger
}

// defaultMaxRecvMsgSize is the receive limit gRPC implementations share.
const defaultMaxRecvMsgSize = 4 << 20

// The CORS headers connect-go's cors package lists: what a browser must be
// allowed to send and to read for Connect and gRPC-Web.
const (
	allowedMethods = "GET, POST"
	allowedHeaders = "Content-Type, Connect-Protocol-Version, Connect-Timeout-Ms, Connect-Accept-Encoding, " +
		"Connect-Content-Encoding, Grpc-Timeout, Grpc-Accept-Encoding, Grpc-Encoding, X-Grpc-Web, X-User-Agent"
	exposedHeaders = "Grpc-Status, Grpc-Message, Grpc-Status-Details-Bin"
	// maxRequestedHeaders bounds the extra header names a preflight may
	// have allowed (a call's custom metadata).
	maxRequestedHeaders = 64
)

// protocolHeader holds allowedHeaders in lower case.
var protocolHeader = func() map[string]bool {
	m := map[string]bool{}
	for _, h := range strings.Split(allowedHeaders, ", ") {
		m[strings.ToLower(h)] = true
	}
	return m
}()

type handler struct {
	lookup    func(string) (*Method, bool)
	maxMsg    int
	sendComp  compress.Compressor
	log       *slog.Logger
	corsOn    bool
	anyOrigin bool
	origins   map[string]bool
}

// NewHandler returns the handler serving cfg's methods. A SendCompression
// that names no registered compressor is logged and ignored.
func NewHandler(cfg Config) http.Handler {
	h := &handler{lookup: cfg.Lookup, maxMsg: cfg.MaxRecvMsgSize, log: cfg.Log}
	if h.maxMsg <= 0 {
		h.maxMsg = defaultMaxRecvMsgSize
	}
	if h.log == nil {
		h.log = slog.Default()
	}
	if h.lookup == nil {
		h.lookup = func(string) (*Method, bool) { return nil, false }
	}
	if n := cfg.SendCompression; n != "" && n != wire.IdentityEncoding {
		if c, ok := compress.Get(n); ok {
			h.sendComp = c
		} else {
			h.log.Warn("webrpc: SendCompression names no registered compressor; responses go uncompressed", "name", n)
		}
	}
	if cfg.AllowedOrigins != nil {
		h.corsOn = true
		h.origins = make(map[string]bool, len(cfg.AllowedOrigins))
		for _, o := range cfg.AllowedOrigins {
			if o == "*" {
				h.anyOrigin = true
			}
			h.origins[o] = true
		}
	}
	return h
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	corsOK := false
	if h.corsOn {
		w.Header().Add("Vary", "Origin")
		if origin := r.Header.Get("Origin"); origin != "" && (h.anyOrigin || h.origins[origin]) {
			corsOK = true
			if h.anyOrigin {
				w.Header().Set("Access-Control-Allow-Origin", "*")
			} else {
				w.Header().Set("Access-Control-Allow-Origin", origin)
			}
			if r.Method == http.MethodOptions && r.Header.Get("Access-Control-Request-Method") != "" {
				preflight(w, r)
				return
			}
		}
	}
	if r.Method != http.MethodPost && r.Method != http.MethodGet {
		w.Header().Set("Allow", allowedMethods)
		w.WriteHeader(http.StatusMethodNotAllowed)
		return
	}
	var (
		p    protocol
		sub  string
		text bool
		q    *getQuery
	)
	if r.Method == http.MethodGet {
		p = connectUnary
	} else {
		p, sub, text = classify(r.Header.Get("Content-Type"))
	}
	m, ok := h.lookup(r.URL.Path)
	if !ok {
		s := status.Errorf(status.Unimplemented, "unknown procedure %s", r.URL.Path)
		if p == grpcWeb || p == grpcPlain {
			c := &call{h: h, w: w, r: r, proto: p, contentType: grpcContentType(p, r), cors: corsOK}
			c.finishGRPC(s, nil)
			return
		}
		// 404, as connect-go's mux answers; its clients read the JSON.
		writeConnectErrorStatus(w, s, corsOK, http.StatusNotFound)
		return
	}
	typ := m.Spec.StreamType
	if typ == spec.BidiStream && r.ProtoMajor < 2 {
		// As connect-go: bidi streaming needs HTTP/2 in every protocol.
		w.Header().Set("Connection", "close")
		w.WriteHeader(http.StatusHTTPVersionNotSupported)
		return
	}
	if r.Method == http.MethodGet && (typ != spec.Unary || m.Spec.Idempotency != spec.NoSideEffects) {
		w.Header().Set("Allow", http.MethodPost)
		w.WriteHeader(http.StatusMethodNotAllowed)
		return
	}
	if r.Method == http.MethodGet {
		gq, err := parseGetQuery(r.URL.RawQuery, h.maxMsg)
		if err != nil {
			writeConnectError(w, err, corsOK)
			return
		}
		sub, q = gq.encoding, &gq
	}
	cd, ok := codec.Get(sub)
	if sub == "" && (p == connectUnary || p == connectStream) {
		ok = false // Connect names its codec
	}
	switch {
	case !ok, p == protoUnknown,
		p == connectUnary && typ != spec.Unary,
		p == connectStream && typ == spec.Unary:
		if r.Method == http.MethodPost {
			w.Header().Set("Accept-Post", acceptPost(typ))
		}
		w.WriteHeader(http.StatusUnsupportedMediaType)
		return
	}
	if q != nil && r.ContentLength > 0 {
		w.WriteHeader(http.StatusUnsupportedMediaType)
		return
	}
	c := &call{h: h, m: m, w: w, r: r, body: r.Body, rc: http.NewResponseController(w), proto: p, text: text, codec: cd, cors: corsOK, get: q}
	c.contentType = responseContentType(p, sub, r)
	ctx := r.Context()
	timeout, hasTimeout, bad := h.timeout(p, r)
	if hasTimeout {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
		// A read the handler waits on must end with the deadline, and
		// the body's reads do not watch the context: the connection's
		// read deadline ends them. Not in a goroutine of our own, which
		// would outlive the call and race net/http's draining of the
		// body after it.
		deadline, _ := ctx.Deadline()
		c.deadline = deadline
		switch b := r.Body.(type) {
		case CallDeadliner:
			b.SetCallDeadline(deadline)
		case nil:
		default:
			if r.Body != http.NoBody {
				// Not for an empty body: net/http is already reading
				// the connection in the background to see the client
				// leave, and a deadline that fired there would cancel
				// every later request on the connection.
				c.rc.SetReadDeadline(deadline) // an error: reads just do not stop
			}
		}
	}
	c.ctx = ctx
	if bad == nil {
		bad = h.negotiate(c, q)
	}
	if bad == nil && (p == connectUnary || p == connectStream) {
		bad = checkConnectVersion(r, q)
	}
	if bad == nil && q != nil && !q.hasMessage {
		bad = status.New(status.InvalidArgument, "missing message parameter")
	}
	if bad != nil {
		h.log.Debug("webrpc: refused a request", "method", r.URL.Path, "err", bad)
		c.finish(bad, nil)
		return
	}
	if p != connectUnary {
		c.newEnvelopeReader()
		if r.ProtoMajor < 2 && typ != spec.Unary {
			// Let a handler read the body after it began answering.
			_ = c.rc.EnableFullDuplex()
		}
	}
	h.run(c)
}

// run calls the method's handler and ends the call with what it returns;
// a panic ends the call with INTERNAL, as on the gRPC path.
func (h *handler) run(c *call) {
	defer func() {
		if r := recover(); r != nil {
			if r == http.ErrAbortHandler {
				panic(r)
			}
			h.log.Error("micro server: handler panicked", "method", c.m.Spec.Procedure, "panic", r, "stack", string(debug.Stack()))
			c.finish(status.Errorf(status.Internal, "panic in handler %s: %v", c.m.Spec.Procedure, r), nil)
		}
	}()
	m := c.m
	if m.Spec.StreamType != spec.Unary {
		c.finish(m.Stream(c, c), nil)
		return
	}
	req := m.NewRequest()
	if err := c.RecvMsg(req); err != nil {
		if err == io.EOF {
			err = status.Errorf(status.Unimplemented, "no request message for %s, which takes exactly one", m.Spec.Procedure)
		}
		c.finish(err, nil)
		return
	}
	if c.MoreData() {
		c.finish(status.Errorf(status.Unimplemented, "more than one request message for %s, which takes exactly one", m.Spec.Procedure), nil)
		return
	}
	rsp := m.NewResponse()
	if err := m.Unary(c, req, rsp); err != nil {
		c.finish(err, nil)
		return
	}
	c.finish(nil, rsp)
}

// classify finds a POST's protocol and codec name from its content type.
func classify(ct string) (p protocol, sub string, text bool) {
	if i := strings.IndexByte(ct, ';'); i >= 0 {
		ct = ct[:i]
	}
	ct = strings.ToLower(strings.TrimSpace(ct))
	rest, ok := strings.CutPrefix(ct, "application/")
	if !ok {
		return protoUnknown, "", false
	}
	split := func(s, base string) (string, bool) {
		t, ok := strings.CutPrefix(s, base)
		switch {
		case !ok:
			return "", false
		case t == "":
			return "proto", true
		case t[0] == '+' && len(t) > 1:
			return t[1:], true
		}
		return "", false
	}
	if sub, ok := split(rest, "grpc-web-text"); ok {
		return grpcWeb, sub, true
	}
	if sub, ok := split(rest, "grpc-web"); ok {
		return grpcWeb, sub, false
	}
	if sub, ok := split(rest, "grpc"); ok {
		return grpcPlain, sub, false
	}
	if sub, ok := strings.CutPrefix(rest, "connect+"); ok {
		return connectStream, sub, false
	}
	if rest == "" || strings.ContainsAny(rest, "+/") {
		return protoUnknown, "", false
	}
	return connectUnary, rest, false
}

// responseContentType is the content type of a successful response.
func responseContentType(p protocol, sub string, r *http.Request) string {
	switch p {
	case connectUnary:
		return "application/" + sub
	case connectStream:
		return "application/connect+" + sub
	}
	return grpcContentType(p, r)
}

// grpcContentType echoes the request's content type without parameters,
// as connect-go does.
func grpcContentType(p protocol, r *http.Request) string {
	ct := r.Header.Get("Content-Type")
	if i := strings.IndexByte(ct, ';'); i >= 0 {
		ct = ct[:i]
	}
	ct = strings.ToLower(strings.TrimSpace(ct))
	if ct == "" {
		if p == grpcPlain {
			return "application/grpc"
		}
		return "application/grpc-web"
	}
	return ct
}

func acceptPost(t spec.StreamType) string {
	const grpcTypes = "application/grpc, application/grpc+json, application/grpc+proto, " +
		"application/grpc-web, application/grpc-web+json, application/grpc-web+proto, " +
		"application/grpc-web-text, application/grpc-web-text+json, application/grpc-web-text+proto"
	if t == spec.Unary {
		return grpcTypes + ", application/json, application/proto"
	}
	return "application/connect+json, application/connect+proto, " + grpcTypes
}

// timeout reads the client's deadline: Connect-Timeout-Ms (at most 10
// digits) for Connect, grpc-timeout for gRPC and gRPC-Web.
func (h *handler) timeout(p protocol, r *http.Request) (time.Duration, bool, *status.Error) {
	if p == connectUnary || p == connectStream {
		v := r.Header.Get("Connect-Timeout-Ms")
		if v == "" {
			return 0, false, nil
		}
		ms, err := strconv.ParseInt(v, 10, 64)
		if len(v) > 10 || err != nil || ms < 0 {
			return 0, false, status.Errorf(status.InvalidArgument, "malformed Connect-Timeout-Ms %q", v)
		}
		return time.Duration(ms) * time.Millisecond, true, nil
	}
	v := r.Header.Get("Grpc-Timeout")
	if v == "" {
		return 0, false, nil
	}
	d, err := transport.ParseTimeout(v)
	if err != nil {
		return 0, false, status.Errorf(status.InvalidArgument, "malformed grpc-timeout: %v", err)
	}
	return d, true, nil
}

// negotiate picks the request's and the response's compression: the
// request's own if it has one, else the handler's preference when the
// client accepts it.
func (h *handler) negotiate(c *call, q *getQuery) *status.Error {
	var sent, accept string
	switch c.proto {
	case connectUnary:
		sent, accept = c.r.Header.Get("Content-Encoding"), c.r.Header.Get("Accept-Encoding")
		if q != nil {
			sent = q.compression
		}
	case connectStream:
		sent, accept = c.r.Header.Get("Connect-Content-Encoding"), c.r.Header.Get("Connect-Accept-Encoding")
	default:
		sent, accept = c.r.Header.Get("Grpc-Encoding"), c.r.Header.Get("Grpc-Accept-Encoding")
	}
	if sent != "" && sent != wire.IdentityEncoding {
		comp, ok := compress.Get(sent)
		if !ok {
			return status.Errorf(status.Unimplemented, "unknown compression %q: supported encodings are %s", sent, wire.AcceptEncoding())
		}
		c.recvComp = comp
		// A Connect unary response is plain HTTP: its Content-Encoding
		// must be one the client accepts. The enveloped protocols answer
		// in the request's encoding, as gRPC does.
		if c.proto != connectUnary || acceptsEncoding(accept, sent) {
			c.sendComp = comp
			return nil
		}
	}
	if h.sendComp != nil && acceptsEncoding(accept, h.sendComp.Name()) {
		c.sendComp = h.sendComp
	}
	return nil
}

// acceptsEncoding reports whether an accept-encoding list names name,
// ignoring weights (a weight of 0 still counts: a client that refuses gzip
// does not list it).
func acceptsEncoding(list, name string) bool {
	for list != "" {
		var item string
		item, list, _ = strings.Cut(list, ",")
		if i := strings.IndexByte(item, ';'); i >= 0 {
			item = item[:i]
		}
		if strings.TrimSpace(item) == name {
			return true
		}
	}
	return false
}

// checkConnectVersion refuses a Connect request that names a protocol
// version other than 1; naming none is allowed, as connect-go allows it.
func checkConnectVersion(r *http.Request, q *getQuery) *status.Error {
	if q != nil {
		if q.connect != "" && q.connect != "v1" {
			return status.Errorf(status.InvalidArgument, "connect must be \"v1\": got %q", q.connect)
		}
		return nil
	}
	if v := r.Header.Get("Connect-Protocol-Version"); v != "" && v != "1" {
		return status.Errorf(status.InvalidArgument, "Connect-Protocol-Version must be \"1\": got %q", v)
	}
	return nil
}

// preflight answers a CORS preflight from an allowed origin: the methods
// and protocol headers Connect and gRPC-Web use, and the custom headers
// (call metadata) the browser asks for.
func preflight(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Add("Vary", "Access-Control-Request-Method")
	h.Add("Vary", "Access-Control-Request-Headers")
	h.Set("Access-Control-Allow-Methods", allowedMethods)
	allow := allowedHeaders
	n := 0
	for _, v := range r.Header.Values("Access-Control-Request-Headers") {
		for _, name := range strings.Split(v, ",") {
			name = strings.ToLower(strings.TrimSpace(name))
			if name == "" || !wire.ValidMetadataKey(name) || protocolHeader[name] {
				continue
			}
			if n++; n > maxRequestedHeaders {
				break
			}
			allow += ", " + name
		}
	}
	h.Set("Access-Control-Allow-Headers", allow)
	h.Set("Access-Control-Max-Age", "7200")
	w.WriteHeader(http.StatusNoContent)
}
