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
	"go.opentelemetry.io/otel/metric"
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
// call's metadata and records the client metrics. A service gives one list
// of interceptors to both its server and client: instrument it with
// Instrument instead.
func ClientInterceptor(opts ...Option) interceptor.Interceptor {
	c := newConfig(opts)
	return newClientSide(&c)
}

// ServerInterceptor returns an interceptor for a server (server.WithInterceptors):
// it makes a server span for each call, the child of the caller's span
// when the call's metadata carries one, and records the server metrics.
// For a service, use Instrument.
func ServerInterceptor(opts ...Option) interceptor.Interceptor {
	c := newConfig(opts)
	return newServerSide(&c, false)
}

// maxCode is the highest status code; metric attribute sets are made once
// per method for each code up to it.
const maxCode = status.Unauthenticated

// method is what a side knows of one method, computed once: the span name
// and start options, and the metric attributes for each status code, so
// that a call allocates none of them.
type method struct {
	name  string
	start []trace.SpanStartOption
	// rec holds, for each status code, the option recording a
	// measurement with the method's attributes and the code.
	rec   [maxCode + 1][]metric.RecordOption
	attrs []attribute.KeyValue
	// streamsRsp says the server may send many responses.
	streamsRsp bool
}

// maxMethods bounds the methods a side caches. Generated code declares
// one *spec.Method per method, but a program making Methods per call must
// not grow the cache without end: beyond the bound, a method's state is
// made for each call.
const maxMethods = 4096

// methods caches each *spec.Method's method: a client wraps per call.
type methods struct {
	kind trace.SpanKind
	m    sync.Map
	n    atomic.Int32 // entries in m, about
}

func (ms *methods) get(m *spec.Method) *method {
	if v, ok := ms.m.Load(m); ok {
		return v.(*method)
	}
	attrs := []attribute.KeyValue{semconv.RPCSystemGRPC, semconv.RPCService(m.Service), semconv.RPCMethod(m.Name)}
	st := &method{
		name:       m.Service + "/" + m.Name,
		start:      []trace.SpanStartOption{trace.WithSpanKind(ms.kind), trace.WithAttributes(attrs...)},
		attrs:      attrs,
		streamsRsp: m.StreamType == spec.ServerStream || m.StreamType == spec.BidiStream,
	}
	for c := range st.rec {
		st.rec[c] = st.recordOptions(status.Code(c))
	}
	if ms.n.Load() >= maxMethods {
		return st
	}
	v, loaded := ms.m.LoadOrStore(m, st)
	if !loaded {
		ms.n.Add(1)
	}
	return v.(*method)
}

func (st *method) recordOptions(c status.Code) []metric.RecordOption {
	set := attribute.NewSet(append(st.attrs[:len(st.attrs):len(st.attrs)], semconv.RPCGRPCStatusCodeKey.Int(int(c)))...)
	return []metric.RecordOption{metric.WithAttributeSet(set)}
}

// instruments are one side's metrics, named as semconv's rpcconv names
// them; they record with options made once per method and code, as
// rpcconv's own Record methods allocate an option per measurement.
type instruments struct {
	duration     metric.Float64Histogram
	reqSize      metric.Int64Histogram
	rspSize      metric.Int64Histogram
	reqsPerCall  metric.Int64Histogram
	rspsPerCall  metric.Int64Histogram
	methods      methods
	tracer       trace.Tracer
	prop         propagation.TextMapPropagator
	serverFaults bool // only server-fault codes make a span's status Error
}

// A failed instrument is a no-op; the meter provider reports why.
func newClientSide(c *config) *clientSide {
	m := c.meter()
	d, _ := rpcconv.NewClientDuration(m)
	rq, _ := rpcconv.NewClientRequestSize(m)
	rs, _ := rpcconv.NewClientResponseSize(m)
	rqn, _ := rpcconv.NewClientRequestsPerRPC(m)
	rsn, _ := rpcconv.NewClientResponsesPerRPC(m)
	return &clientSide{instruments{duration: d.Inst(), reqSize: rq.Inst(), rspSize: rs.Inst(), reqsPerCall: rqn.Inst(), rspsPerCall: rsn.Inst(),
		methods: methods{kind: trace.SpanKindClient}, tracer: c.tracer(), prop: c.prop}}
}

func newServerSide(c *config, mark bool) *serverSide {
	m := c.meter()
	d, _ := rpcconv.NewServerDuration(m)
	rq, _ := rpcconv.NewServerRequestSize(m)
	rs, _ := rpcconv.NewServerResponseSize(m)
	rqn, _ := rpcconv.NewServerRequestsPerRPC(m)
	rsn, _ := rpcconv.NewServerResponsesPerRPC(m)
	return &serverSide{instruments{duration: d.Inst(), reqSize: rq.Inst(), rspSize: rs.Inst(), reqsPerCall: rqn.Inst(), rspsPerCall: rsn.Inst(),
		methods: methods{kind: trace.SpanKindServer}, tracer: c.tracer(), prop: c.prop, serverFaults: true}, mark}
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
	if code > maxCode {
		// A code beyond gRPC's is Unknown, as gRPC says; recording it as
		// it is would let a peer make a metric series per code it sends.
		code = status.Unknown
	}
	c.span.SetAttributes(semconv.RPCGRPCStatusCodeKey.Int(int(code)))
	if code != status.OK && (!c.in.serverFaults || serverFault(code)) {
		c.span.SetStatus(codes.Error, status.Convert(err).Message())
	}
	rec := c.st.rec[code]
	c.in.duration.Record(ctx, float64(time.Since(c.start))/float64(time.Millisecond), rec...)
	c.in.reqsPerCall.Record(ctx, reqs, rec...)
	c.in.rspsPerCall.Record(ctx, rsps, rec...)
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

// recordSize records the size of m in h. Sizes are recorded as the call
// goes, before its status is known, so with status OK.
func recordSize(ctx context.Context, h metric.Int64Histogram, st *method, m any) {
	if n := size(m); n >= 0 {
		h.Record(ctx, n, st.rec[status.OK]...)
	}
}

// clientSide is the client's interceptor.
type clientSide struct{ instruments }

func (c *clientSide) begin(ctx context.Context, m *spec.Method) (context.Context, call) {
	st := c.methods.get(m)
	start := time.Now()
	ctx, span := c.tracer.Start(ctx, st.name, st.start...)
	var carrier outgoing
	c.prop.Inject(ctx, &carrier)
	if len(carrier) > 0 {
		ctx = metadata.AppendToOutgoingContext(ctx, carrier...)
	}
	return ctx, call{in: &c.instruments, st: st, span: span, start: start}
}

func (c *clientSide) WrapUnary(m *spec.Method, next interceptor.UnaryFunc) interceptor.UnaryFunc {
	return func(ctx context.Context, req, rsp any) error { return c.unary(ctx, m, next, req, rsp) }
}

func (c *clientSide) unary(ctx context.Context, m *spec.Method, next interceptor.UnaryFunc, req, rsp any) error {
	ctx, cl := c.begin(ctx, m)
	recordSize(ctx, c.reqSize, cl.st, req)
	err := next(ctx, req, rsp)
	var rsps int64
	if err == nil {
		rsps = 1
		recordSize(ctx, c.rspSize, cl.st, rsp)
	}
	cl.end(ctx, err, 1, rsps)
	return err
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
	call       call
	sent, recv atomic.Int64
	once       sync.Once
}

func (s *clientStream) Context() context.Context { return s.ctx }

func (s *clientStream) SendMsg(m any) error {
	err := s.ClientStream.SendMsg(m)
	if err == nil {
		s.sent.Add(1)
		recordSize(s.ctx, s.call.in.reqSize, s.call.st, m)
	}
	return err
}

func (s *clientStream) RecvMsg(m any) error {
	err := s.ClientStream.RecvMsg(m)
	switch {
	case err == nil:
		s.recv.Add(1)
		recordSize(s.ctx, s.call.in.rspSize, s.call.st, m)
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

func (s *serverSide) begin(ctx context.Context, m *spec.Method) (context.Context, call) {
	st := s.methods.get(m)
	start := time.Now()
	if md, ok := metadata.FromIncomingContext(ctx); ok {
		ctx = s.prop.Extract(ctx, incoming(md))
	}
	ctx, span := s.tracer.Start(ctx, st.name, st.start...)
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
	return ctx, call{in: &s.instruments, st: st, span: span, start: start}
}

func (s *serverSide) WrapUnary(m *spec.Method, next interceptor.UnaryFunc) interceptor.UnaryFunc {
	return func(ctx context.Context, req, rsp any) error { return s.unary(ctx, m, next, req, rsp) }
}

func (s *serverSide) unary(ctx context.Context, m *spec.Method, next interceptor.UnaryFunc, req, rsp any) error {
	ctx, cl := s.begin(ctx, m)
	recordSize(ctx, s.reqSize, cl.st, req)
	err := next(ctx, req, rsp)
	var rsps int64
	if err == nil {
		rsps = 1
		recordSize(ctx, s.rspSize, cl.st, rsp)
	}
	// A server receives the requests and sends the responses: its
	// requests_per_rpc counts what it received.
	cl.end(ctx, err, 1, rsps)
	return err
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
	call       call
	sent, recv atomic.Int64
}

func (s *serverStream) Context() context.Context { return s.ctx }

func (s *serverStream) SendMsg(m any) error {
	err := s.ServerStream.SendMsg(m)
	if err == nil {
		s.sent.Add(1)
		recordSize(s.ctx, s.call.in.rspSize, s.call.st, m)
	}
	return err
}

func (s *serverStream) RecvMsg(m any) error {
	err := s.ServerStream.RecvMsg(m)
	if err == nil {
		s.recv.Add(1)
		recordSize(s.ctx, s.call.in.reqSize, s.call.st, m)
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
	return func(ctx context.Context, req, rsp any) error {
		if ctx.Value(serving{}) == nil {
			if _, ok := server.PeerFromContext(ctx); ok {
				return s.server.unary(ctx, m, next, req, rsp)
			}
		}
		return s.client.unary(ctx, m, next, req, rsp)
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
