// Package accesslog logs one line per call, when it ends: the method, the
// peer, the status code, the duration and the size of what went each way.
//
// Server logs the calls a server handles; Client the calls a client makes.
// A service logs its server's calls with service.WithAccessLog, through
// its own logger, so each line also names the service and node.
//
// accesslog is not a metrics system: for counts and latency distributions
// use the OpenTelemetry module (otel/), which reads the same calls.
package accesslog

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"sync"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/protoc-gen-micro/micro/runtime/interceptor"
	"github.com/protoc-gen-micro/micro/runtime/server"
	"github.com/protoc-gen-micro/micro/runtime/spec"
	"github.com/protoc-gen-micro/micro/runtime/status"
)

// Server returns an interceptor for a server that logs every call it
// handles to l (slog.Default() when nil) with these attributes:
//
//	method          the call's path, e.g. /greeter.v1.Greeter/SayHello
//	peer            the client's address
//	code            the status code, e.g. OK or NotFound
//	duration        from the call reaching its handler to the handler's return
//	request_bytes   the size of the requests received (encoded, uncompressed)
//	response_bytes  the size of the responses sent
//	requests, responses  message counts, on streaming calls
//	error           the error's message, when the code is not OK
//
// A call that ends OK, or with a code that names a client's mistake
// (Canceled, InvalidArgument, NotFound, AlreadyExists, PermissionDenied,
// Unauthenticated, FailedPrecondition, OutOfRange, Aborted), is logged at
// INFO; DeadlineExceeded, ResourceExhausted and Unavailable at WARN; the
// codes of a server fault (Unknown, Unimplemented, Internal, DataLoss) at
// ERROR.
func Server(l *slog.Logger) interceptor.Interceptor { return logger{l: l, server: true} }

// Client returns an interceptor for a client that logs every call it makes
// to l, as Server does, without the peer: the node is chosen, and may be
// chosen again on a retry, beneath the interceptors. The duration runs
// from the call to its end, retries included.
func Client(l *slog.Logger) interceptor.Interceptor { return logger{l: l} }

type logger struct {
	l      *slog.Logger
	server bool
}

func (g logger) log() *slog.Logger {
	if g.l != nil {
		return g.l
	}
	return slog.Default()
}

func (g logger) WrapUnary(m *spec.Method, next interceptor.UnaryFunc) interceptor.UnaryFunc {
	return func(ctx context.Context, req, rsp any) error {
		start := time.Now()
		err := next(ctx, req, rsp)
		c := counts{start: start, reqBytes: size(req)}
		if err == nil {
			c.rspBytes = size(rsp)
		}
		g.write(ctx, m, &c, err)
		return err
	}
}

func (g logger) WrapStreamingHandler(m *spec.Method, next interceptor.StreamingHandlerFunc) interceptor.StreamingHandlerFunc {
	return func(ctx context.Context, stream interceptor.ServerStream) error {
		s := &serverStream{ServerStream: stream, c: counts{start: time.Now(), stream: true}}
		err := next(ctx, s)
		g.write(ctx, m, &s.c, err)
		return err
	}
}

func (g logger) WrapStreamingClient(m *spec.Method, next interceptor.StreamingClientFunc) interceptor.StreamingClientFunc {
	return func(ctx context.Context) (interceptor.ClientStream, error) {
		c := counts{start: time.Now(), stream: true}
		cs, err := next(ctx)
		if err != nil {
			g.write(ctx, m, &c, err)
			return nil, err
		}
		return &clientStream{ClientStream: cs, c: c, oneResponse: m.StreamType == spec.ClientStream,
			end: func(c *counts, err error) { g.write(ctx, m, c, err) }}, nil
	}
}

// counts is what a call carried.
type counts struct {
	start               time.Time
	stream              bool
	requests, responses int
	reqBytes, rspBytes  int
}

func (g logger) write(ctx context.Context, m *spec.Method, c *counts, err error) {
	code := status.CodeOf(err)
	level := levelOf(code)
	l := g.log()
	if !l.Enabled(ctx, level) {
		return
	}
	attrs := make([]slog.Attr, 0, 9)
	attrs = append(attrs, slog.String("method", m.Procedure))
	if g.server {
		if p, ok := server.PeerFromContext(ctx); ok && p.Addr != nil {
			attrs = append(attrs, slog.String("peer", p.Addr.String()))
		}
	}
	attrs = append(attrs,
		slog.String("code", code.String()),
		slog.Duration("duration", time.Since(c.start)),
		slog.Int("request_bytes", c.reqBytes),
		slog.Int("response_bytes", c.rspBytes))
	if c.stream {
		attrs = append(attrs, slog.Int("requests", c.requests), slog.Int("responses", c.responses))
	}
	if err != nil {
		attrs = append(attrs, slog.String("error", err.Error()))
	}
	msg := "rpc client"
	if g.server {
		msg = "rpc server"
	}
	l.LogAttrs(ctx, level, msg, attrs...)
}

// levelOf is the level a call ending with c is logged at.
func levelOf(c status.Code) slog.Level {
	switch c {
	case status.DeadlineExceeded, status.ResourceExhausted, status.Unavailable:
		return slog.LevelWarn
	case status.Unknown, status.Unimplemented, status.Internal, status.DataLoss:
		return slog.LevelError
	}
	return slog.LevelInfo
}

// size is a message's encoded size, as the proto codec writes it; 0 for
// anything else.
func size(m any) int {
	if pm, ok := m.(proto.Message); ok {
		return proto.Size(pm)
	}
	return 0
}

type serverStream struct {
	interceptor.ServerStream
	c counts // the handler's goroutine only, until it returns
}

func (s *serverStream) SendMsg(m any) error {
	err := s.ServerStream.SendMsg(m)
	if err == nil {
		s.c.responses++
		s.c.rspBytes += size(m)
	}
	return err
}

func (s *serverStream) RecvMsg(m any) error {
	err := s.ServerStream.RecvMsg(m)
	if err == nil {
		s.c.requests++
		s.c.reqBytes += size(m)
	}
	return err
}

// clientStream counts messages and logs once: when RecvMsg reports the
// call's end (or, on a client-streaming call, returns its one response) or
// Close ends it first. A client stream's sends and receives
// may run on two goroutines, hence the lock.
type clientStream struct {
	interceptor.ClientStream
	oneResponse bool
	end         func(*counts, error)

	mu   sync.Mutex
	c    counts
	done bool
}

func (s *clientStream) SendMsg(m any) error {
	err := s.ClientStream.SendMsg(m)
	if err == nil {
		n := size(m)
		s.mu.Lock()
		s.c.requests++
		s.c.reqBytes += n
		s.mu.Unlock()
	}
	return err
}

func (s *clientStream) RecvMsg(m any) error {
	err := s.ClientStream.RecvMsg(m)
	if err == nil {
		n := size(m)
		s.mu.Lock()
		s.c.responses++
		s.c.rspBytes += n
		s.mu.Unlock()
		if s.oneResponse {
			s.finish(nil)
		}
		return nil
	}
	if errors.Is(err, io.EOF) {
		s.finish(nil)
	} else {
		s.finish(err)
	}
	return err
}

func (s *clientStream) Close() error {
	err := s.ClientStream.Close()
	s.finish(status.New(status.Canceled, "stream closed before its end"))
	return err
}

func (s *clientStream) finish(err error) {
	s.mu.Lock()
	if s.done {
		s.mu.Unlock()
		return
	}
	s.done = true
	c := s.c
	s.mu.Unlock()
	s.end(&c, err)
}
