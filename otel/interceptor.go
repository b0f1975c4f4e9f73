package otelmicro

import (
	"context"
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	semconv "go.opentelemetry.io/otel/semconv/v1.37.0"
	"go.opentelemetry.io/otel/semconv/v1.37.0/rpcconv"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/protobuf/proto"

	"github.com/protoc-gen-micro/micro/runtime/interceptor"
	"github.com/protoc-gen-micro/micro/runtime/metadata"
	"github.com/protoc-gen-micro/micro/runtime/server"
	"github.com/protoc-gen-micro/micro/runtime/spec"
	"github.com/protoc-gen-micro/micro/runtime/status"
)

// ClientInterceptor returns an interceptor for a client (client.WithInterceptors):
// it makes a client span for each call, injects its context into the
// call's metadata and records the client metrics.
func ClientInterceptor(opts ...Option) interceptor.Interceptor {
	c := newConfig(opts)
	return newClientSide(&c)
}

// ServerInterceptor returns an interceptor for a server (server.WithInterceptors):
// it makes a server span for each call, the child of the caller's span
// when the call's metadata carries one, and records the server metrics.
func ServerInterceptor(opts ...Option) interceptor.Interceptor {
	c := newConfig(opts)
	return newServerSide(&c, false)
}

// maxCode is the highest status code; metric attribute sets are made once
// per method for each code up to it.
const maxCode = status.Unauthenticated

// method is what a side knows of one method, computed once: the span name
// and attributes, and the metric attribute set for each status code, so
// that a call allocates none of them.
type method struct {
	name  string
	attrs []attribute.KeyValue
	sets  [maxCode + 1]attribute.Set
	// streamsRsp says the server may send many responses.
	streamsRsp bool
}

// methods caches each *spec.Method's method: a client wraps per call.
type methods struct{ m sync.Map }

func (ms *methods) get(m *spec.Method) *method {
	if v, ok := ms.m.Load(m); ok {
		return v.(*method)
	}
	st := &method{
		name:       m.Service + "/" + m.Name,
		attrs:      []attribute.KeyValue{semconv.RPCSystemGRPC, semconv.RPCService(m.Service), semconv.RPCMethod(m.Name)},
		streamsRsp: m.StreamType == spec.ServerStream || m.StreamType == spec.BidiStream,
	}
	for c := range st.sets {
		st.sets[c] = attribute.NewSet(append(st.attrs[:len(st.attrs):len(st.attrs)], semconv.RPCGRPCStatusCodeKey.Int(c))...)
	}
	v, _ := ms.m.LoadOrStore(m, st)
	return v.(*method)
}

func (st *method) set(code status.Code) attribute.Set {
	if code <= maxCode {
		return st.sets[code]
	}
	return attribute.NewSet(append(st.attrs[:len(st.attrs):len(st.attrs)], semconv.RPCGRPCStatusCodeKey.Int(int(code)))...)
}

// instruments are one side's metrics.
type instruments struct {
	duration interface {
		RecordSet(context.Context, float64, attribute.Set)
	}
	reqSize interface {
		RecordSet(context.Context, int64, attribute.Set)
	}
	rspSize interface {
		RecordSet(context.Context, int64, attribute.Set)
	}
	reqsPerCall interface {
		RecordSet(context.Context, int64, attribute.Set)
	}
	rspsPerCall interface {
		RecordSet(context.Context, int64, attribute.Set)
	}
	methods      methods
	tracer       trace.Tracer
	prop         propagation.TextMapPropagator
	kind         trace.SpanKind
	serverFaults bool // only server-fault codes make a span's status Error
}

// otel.Handle reports instrument errors; a failed instrument is a no-op.
func newClientSide(c *config) *clientSide {
	m := c.meter()
	d, _ := rpcconv.NewClientDuration(m)
	rq, _ := rpcconv.NewClientRequestSize(m)
	rs, _ := rpcconv.NewClientResponseSize(m)
	rqn, _ := rpcconv.NewClientRequestsPerRPC(m)
	rsn, _ := rpcconv.NewClientResponsesPerRPC(m)
	return &clientSide{instruments{duration: d, reqSize: rq, rspSize: rs, reqsPerCall: rqn, rspsPerCall: rsn,
		tracer: c.tracer(), prop: c.prop, kind: trace.SpanKindClient}}
}

func newServerSide(c *config, mark bool) *serverSide {
	m := c.meter()
	d, _ := rpcconv.NewServerDuration(m)
	rq, _ := rpcconv.NewServerRequestSize(m)
	rs, _ := rpcconv.NewServerResponseSize(m)
	rqn, _ := rpcconv.NewServerRequestsPerRPC(m)
	rsn, _ := rpcconv.NewServerResponsesPerRPC(m)
	return &serverSide{instruments{duration: d, reqSize: rq, rspSize: rs, reqsPerCall: rqn, rspsPerCall: rsn,
		tracer: c.tracer(), prop: c.prop, kind: trace.SpanKindServer, serverFaults: true}, mark}
}

// call is one call in progress.
type call struct {
	in    *instruments
	st    *method
	span  trace.Span
	start time.Time
}

// end ends the call with err, having sent reqs requests and received rsps
// responses (as the client sees them).
func (c *call) end(ctx context.Context, err error, reqs, rsps int64) {
	code := status.CodeOf(err)
	c.span.SetAttributes(semconv.RPCGRPCStatusCodeKey.Int(int(code)))
	if code != status.OK && (!c.in.serverFaults || serverFault(code)) {
		c.span.SetStatus(codes.Error, status.Convert(err).Message())
	}
	set := c.st.set(code)
	c.in.duration.RecordSet(ctx, float64(time.Since(c.start))/float64(time.Millisecond), set)
	c.in.reqsPerCall.RecordSet(ctx, reqs, set)
	c.in.rspsPerCall.RecordSet(ctx, rsps, set)
	c.span.End()
}

// serverFault says a code means the server failed, not the caller.
func serverFault(c status.Code) bool {
	switch c {
	case status.Unknown, status.DeadlineExceeded, status.Unimplemented, status.Internal, status.Unavailable, status.DataLoss:
		return true
	}
	return false
}

// size is the protobuf-encoded size of a message; -1 for anything else.
func size(m any) int64 {
	switch v := m.(type) {
	case interface{ SizeVT() int }:
		return int64(v.SizeVT())
	case proto.Message:
		return int64(proto.Size(v))
	}
	return -1
}

func (in *instruments) recordSize(ctx context.Context, h interface {
	RecordSet(context.Context, int64, attribute.Set)
}, st *method, m any) {
	if n := size(m); n >= 0 {
		// Sizes are recorded as the call goes, before its status is known.
		h.RecordSet(ctx, n, st.sets[status.OK])
	}
}

// clientSide is the client's interceptor.
type clientSide struct{ instruments }

func (c *clientSide) begin(ctx context.Context, m *spec.Method) (context.Context, *call) {
	st := c.methods.get(m)
	start := time.Now()
	ctx, span := c.tracer.Start(ctx, st.name, trace.WithSpanKind(trace.SpanKindClient), trace.WithAttributes(st.attrs...), trace.WithTimestamp(start))
	var carrier outgoing
	c.prop.Inject(ctx, &carrier)
	if len(carrier) > 0 {
		ctx = metadata.AppendToOutgoingContext(ctx, carrier...)
	}
	return ctx, &call{in: &c.instruments, st: st, span: span, start: start}
}

func (c *clientSide) WrapUnary(m *spec.Method, next interceptor.UnaryFunc) interceptor.UnaryFunc {
	return func(ctx context.Context, req, rsp any) error {
		ctx, cl := c.begin(ctx, m)
		c.recordSize(ctx, c.reqSize, cl.st, req)
		err := next(ctx, req, rsp)
		var rsps int64
		if err == nil {
			rsps = 1
			c.recordSize(ctx, c.rspSize, cl.st, rsp)
		}
		cl.end(ctx, err, 1, rsps)
		return err
	}
}

func (c *clientSide) WrapStreamingClient(m *spec.Method, next interceptor.StreamingClientFunc) interceptor.StreamingClientFunc {
	return func(ctx context.Context) (interceptor.ClientStream, error) {
		ctx, cl := c.begin(ctx, m)
		cs, err := next(ctx)
		if err != nil {
			cl.end(ctx, err, 0, 0)
			return nil, err
		}
		return &clientStream{ClientStream: cs, ctx: ctx, call: cl}, nil
	}
}

func (c *clientSide) WrapStreamingHandler(_ *spec.Method, next interceptor.StreamingHandlerFunc) interceptor.StreamingHandlerFunc {
	return next
}

// clientStream counts a stream's messages and ends its span when the
// stream ends: at its status, after the one response of a method whose
// server does not stream, or at Close.
type clientStream struct {
	interceptor.ClientStream
	ctx        context.Context
	call       *call
	sent, recv atomic.Int64
	once       sync.Once
}

func (s *clientStream) Context() context.Context { return s.ctx }

func (s *clientStream) SendMsg(m any) error {
	err := s.ClientStream.SendMsg(m)
	if err == nil {
		s.sent.Add(1)
		s.call.in.recordSize(s.ctx, s.call.in.reqSize, s.call.st, m)
	}
	return err
}

func (s *clientStream) RecvMsg(m any) error {
	err := s.ClientStream.RecvMsg(m)
	switch {
	case err == nil:
		s.recv.Add(1)
		s.call.in.recordSize(s.ctx, s.call.in.rspSize, s.call.st, m)
		if !s.call.st.streamsRsp {
			s.finish(nil)
		}
	case errors.Is(err, io.EOF):
		s.finish(nil)
	default:
		s.finish(err)
	}
	return err
}

func (s *clientStream) Close() error {
	err := s.ClientStream.Close()
	// A stream closed before its end was cancelled.
	s.finish(status.New(status.Canceled, "stream closed by the client"))
	return err
}

func (s *clientStream) finish(err error) {
	s.once.Do(func() { s.call.end(s.ctx, err, s.sent.Load(), s.recv.Load()) })
}

// serverSide is the server's interceptor. With mark, it marks the
// contexts of the calls it serves, for serviceInterceptor.
type serverSide struct {
	instruments
	mark bool
}

// serving marks a context as that of a call served, or a message handled,
// with a span of ours: calls made with it are a client's.
type serving struct{}

func (s *serverSide) begin(ctx context.Context, m *spec.Method) (context.Context, *call) {
	st := s.methods.get(m)
	start := time.Now()
	if md, ok := metadata.FromIncomingContext(ctx); ok {
		ctx = s.prop.Extract(ctx, incoming(md))
	}
	ctx, span := s.tracer.Start(ctx, st.name, trace.WithSpanKind(trace.SpanKindServer), trace.WithAttributes(st.attrs...), trace.WithTimestamp(start))
	if span.IsRecording() {
		if p, ok := server.PeerFromContext(ctx); ok {
			if a, ok := p.Addr.(*net.TCPAddr); ok {
				span.SetAttributes(semconv.NetworkPeerAddress(a.IP.String()), semconv.NetworkPeerPort(a.Port))
			}
		}
	}
	if s.mark {
		ctx = context.WithValue(ctx, serving{}, true)
	}
	return ctx, &call{in: &s.instruments, st: st, span: span, start: start}
}

func (s *serverSide) WrapUnary(m *spec.Method, next interceptor.UnaryFunc) interceptor.UnaryFunc {
	return func(ctx context.Context, req, rsp any) error {
		ctx, cl := s.begin(ctx, m)
		s.recordSize(ctx, s.reqSize, cl.st, req)
		err := next(ctx, req, rsp)
		var rsps int64
		if err == nil {
			rsps = 1
			s.recordSize(ctx, s.rspSize, cl.st, rsp)
		}
		// A server receives the requests and sends the responses: its
		// requests_per_rpc counts what it received.
		cl.end(ctx, err, 1, rsps)
		return err
	}
}

func (s *serverSide) WrapStreamingClient(_ *spec.Method, next interceptor.StreamingClientFunc) interceptor.StreamingClientFunc {
	return next
}

func (s *serverSide) WrapStreamingHandler(m *spec.Method, next interceptor.StreamingHandlerFunc) interceptor.StreamingHandlerFunc {
	return func(ctx context.Context, stream interceptor.ServerStream) error {
		ctx, cl := s.begin(ctx, m)
		ss := &serverStream{ServerStream: stream, ctx: ctx, call: cl}
		err := next(ctx, ss)
		cl.end(ctx, err, ss.recv.Load(), ss.sent.Load())
		return err
	}
}

// serverStream counts a served stream's messages.
type serverStream struct {
	interceptor.ServerStream
	ctx        context.Context
	call       *call
	sent, recv atomic.Int64
}

func (s *serverStream) Context() context.Context { return s.ctx }

func (s *serverStream) SendMsg(m any) error {
	err := s.ServerStream.SendMsg(m)
	if err == nil {
		s.sent.Add(1)
		s.call.in.recordSize(s.ctx, s.call.in.rspSize, s.call.st, m)
	}
	return err
}

func (s *serverStream) RecvMsg(m any) error {
	err := s.ServerStream.RecvMsg(m)
	if err == nil {
		s.recv.Add(1)
		s.call.in.recordSize(s.ctx, s.call.in.reqSize, s.call.st, m)
	}
	return err
}

// serviceInterceptor is installed on both the server and the client of a
// service (service.WithInterceptors), so for a unary call it tells the
// sides apart at call time: a call is served when its context is a server
// call's (server.PeerFromContext) not yet marked as served by us, and made
// otherwise, such as by a handler with the context of the call it serves.
type serviceInterceptor struct {
	client *clientSide
	server *serverSide
}

func (s *serviceInterceptor) WrapUnary(m *spec.Method, next interceptor.UnaryFunc) interceptor.UnaryFunc {
	served, made := s.server.WrapUnary(m, next), s.client.WrapUnary(m, next)
	return func(ctx context.Context, req, rsp any) error {
		if ctx.Value(serving{}) == nil {
			if _, ok := server.PeerFromContext(ctx); ok {
				return served(ctx, req, rsp)
			}
		}
		return made(ctx, req, rsp)
	}
}

func (s *serviceInterceptor) WrapStreamingClient(m *spec.Method, next interceptor.StreamingClientFunc) interceptor.StreamingClientFunc {
	return s.client.WrapStreamingClient(m, next)
}

func (s *serviceInterceptor) WrapStreamingHandler(m *spec.Method, next interceptor.StreamingHandlerFunc) interceptor.StreamingHandlerFunc {
	return s.server.WrapStreamingHandler(m, next)
}

// outgoing collects the propagator's fields as key/value pairs for
// metadata.AppendToOutgoingContext.
type outgoing []string

func (o *outgoing) Get(string) string { return "" }
func (o *outgoing) Set(k, v string)   { *o = append(*o, k, v) }
func (o *outgoing) Keys() []string {
	keys := make([]string, 0, len(*o)/2)
	for i := 0; i < len(*o); i += 2 {
		keys = append(keys, (*o)[i])
	}
	return keys
}

// incoming reads the propagator's fields from a call's metadata.
type incoming metadata.MD

func (md incoming) Get(k string) string { return metadata.MD(md).Value(k) }
func (md incoming) Set(k, v string)     { metadata.MD(md).Set(k, v) }
func (md incoming) Keys() []string {
	keys := make([]string, 0, len(md))
	for k := range md {
		keys = append(keys, k)
	}
	return keys
}
