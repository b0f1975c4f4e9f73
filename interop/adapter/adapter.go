// Package adapter presents the micro client of grpc.testing.TestService as
// grpc-go's generated client interface, so that grpc-go's interop client
// logic (google.golang.org/grpc/interop) drives the micro runtime.
//
// It translates at the seam only: grpc outgoing metadata becomes micro
// outgoing metadata, grpc.Header and grpc.Trailer call options become
// client.Header and client.Trailer, and every *status.Error becomes a grpc
// status error with the same code, message and details. An error from the
// runtime that is not a *status.Error is reported as such, with code
// Unknown, rather than converted: the runtime promises *status.Error.
package adapter

import (
	"context"
	"io"

	"github.com/protoc-gen-micro/micro/interop/testpb"
	"github.com/protoc-gen-micro/micro/runtime/client"
	"github.com/protoc-gen-micro/micro/runtime/metadata"
	"github.com/protoc-gen-micro/micro/runtime/status"
	spb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
	grpcmd "google.golang.org/grpc/metadata"
	grpcstatus "google.golang.org/grpc/status"
)

// TestService adapts svc to grpc-go's TestServiceClient. opts are added to
// every call, typically client.WithAddress.
func TestService(svc testpb.TestServiceService, opts ...client.CallOption) testgrpc.TestServiceClient {
	return &testService{svc: svc, opts: opts}
}

// UnimplementedService adapts svc to grpc-go's UnimplementedServiceClient.
func UnimplementedService(svc testpb.UnimplementedServiceService, opts ...client.CallOption) testgrpc.UnimplementedServiceClient {
	return &unimplementedService{svc: svc, opts: opts}
}

type testService struct {
	svc  testpb.TestServiceService
	opts []client.CallOption
}

func (c *testService) EmptyCall(ctx context.Context, in *testgrpc.Empty, opts ...grpc.CallOption) (*testgrpc.Empty, error) {
	return unary(ctx, in, c.opts, opts, c.svc.EmptyCall)
}

func (c *testService) UnaryCall(ctx context.Context, in *testgrpc.SimpleRequest, opts ...grpc.CallOption) (*testgrpc.SimpleResponse, error) {
	return unary(ctx, in, c.opts, opts, c.svc.UnaryCall)
}

func (c *testService) CacheableUnaryCall(ctx context.Context, in *testgrpc.SimpleRequest, opts ...grpc.CallOption) (*testgrpc.SimpleResponse, error) {
	return unary(ctx, in, c.opts, opts, c.svc.CacheableUnaryCall)
}

func (c *testService) UnimplementedCall(ctx context.Context, in *testgrpc.Empty, opts ...grpc.CallOption) (*testgrpc.Empty, error) {
	return unary(ctx, in, c.opts, opts, c.svc.UnimplementedCall)
}

func (c *testService) StreamingOutputCall(ctx context.Context, in *testgrpc.StreamingOutputCallRequest, opts ...grpc.CallOption) (grpc.ServerStreamingClient[testgrpc.StreamingOutputCallResponse], error) {
	ctx, call, err := translate(ctx, c.opts, opts)
	if err != nil {
		return nil, err
	}
	s, err := c.svc.StreamingOutputCall(ctx, in, call.opts...)
	if err != nil {
		return nil, toGRPC(err)
	}
	return &outputStream{baseStream{s, call}, s}, nil
}

func (c *testService) StreamingInputCall(ctx context.Context, opts ...grpc.CallOption) (grpc.ClientStreamingClient[testgrpc.StreamingInputCallRequest, testgrpc.StreamingInputCallResponse], error) {
	ctx, call, err := translate(ctx, c.opts, opts)
	if err != nil {
		return nil, err
	}
	s, err := c.svc.StreamingInputCall(ctx, call.opts...)
	if err != nil {
		return nil, toGRPC(err)
	}
	return &inputStream{baseStream{s, call}, s}, nil
}

func (c *testService) FullDuplexCall(ctx context.Context, opts ...grpc.CallOption) (grpc.BidiStreamingClient[testgrpc.StreamingOutputCallRequest, testgrpc.StreamingOutputCallResponse], error) {
	ctx, call, err := translate(ctx, c.opts, opts)
	if err != nil {
		return nil, err
	}
	s, err := c.svc.FullDuplexCall(ctx, call.opts...)
	if err != nil {
		return nil, toGRPC(err)
	}
	return &bidiStream[testpb.TestService_FullDuplexCallClientStream]{baseStream{s, call}, s}, nil
}

func (c *testService) HalfDuplexCall(ctx context.Context, opts ...grpc.CallOption) (grpc.BidiStreamingClient[testgrpc.StreamingOutputCallRequest, testgrpc.StreamingOutputCallResponse], error) {
	ctx, call, err := translate(ctx, c.opts, opts)
	if err != nil {
		return nil, err
	}
	s, err := c.svc.HalfDuplexCall(ctx, call.opts...)
	if err != nil {
		return nil, toGRPC(err)
	}
	return &bidiStream[testpb.TestService_HalfDuplexCallClientStream]{baseStream{s, call}, s}, nil
}

type unimplementedService struct {
	svc  testpb.UnimplementedServiceService
	opts []client.CallOption
}

func (c *unimplementedService) UnimplementedCall(ctx context.Context, in *testgrpc.Empty, opts ...grpc.CallOption) (*testgrpc.Empty, error) {
	return unary(ctx, in, c.opts, opts, c.svc.UnimplementedCall)
}

// unary makes a unary call through the generated method fn.
func unary[Req, Res any](ctx context.Context, in *Req, base []client.CallOption, opts []grpc.CallOption,
	fn func(context.Context, *Req, ...client.CallOption) (*Res, error)) (*Res, error) {
	ctx, call, err := translate(ctx, base, opts)
	if err != nil {
		return nil, err
	}
	out, err := fn(ctx, in, call.opts...)
	call.finish()
	if err != nil {
		return nil, toGRPC(err)
	}
	return out, nil
}

// call is a grpc call's options in micro terms.
type call struct {
	opts []client.CallOption
	// header and trailer receive the response metadata from the runtime;
	// finish copies them to where the grpc options asked.
	header, trailer         metadata.MD
	headerAddr, trailerAddr *grpcmd.MD
}

// translate turns the grpc outgoing metadata of ctx and the grpc call
// options into their micro equivalents.
func translate(ctx context.Context, base []client.CallOption, opts []grpc.CallOption) (context.Context, *call, error) {
	if md, ok := grpcmd.FromOutgoingContext(ctx); ok {
		ctx = metadata.NewOutgoingContext(ctx, metadata.MD(md))
	}
	c := &call{opts: append([]client.CallOption(nil), base...)}
	for _, o := range opts {
		switch o := o.(type) {
		case grpc.HeaderCallOption:
			c.headerAddr = o.HeaderAddr
			c.opts = append(c.opts, client.WithResponseHeader(&c.header))
		case grpc.TrailerCallOption:
			c.trailerAddr = o.TrailerAddr
			c.opts = append(c.opts, client.WithResponseTrailer(&c.trailer))
		default:
			return nil, nil, grpcstatus.Errorf(codes.Internal, "adapter: call option %T has no micro equivalent", o)
		}
	}
	return ctx, c, nil
}

// finish hands the response metadata to the grpc options that asked for it.
func (c *call) finish() {
	if c.headerAddr != nil {
		*c.headerAddr = grpcmd.MD(c.header)
	}
	if c.trailerAddr != nil {
		*c.trailerAddr = grpcmd.MD(c.trailer)
	}
}

// toGRPC converts a runtime error into the grpc status error with the same
// code, message and details. io.EOF, the end of a stream, passes unchanged.
func toGRPC(err error) error {
	if err == nil || err == io.EOF {
		return err
	}
	s, ok := status.FromError(err)
	if !ok {
		return grpcstatus.Errorf(codes.Unknown, "adapter: the runtime returned %T, not a *status.Error: %v", err, err)
	}
	return grpcstatus.FromProto(&spb.Status{Code: int32(s.Code()), Message: s.Message(), Details: s.Details()}).Err()
}

// baseStream implements grpc.ClientStream on a micro client stream.
type baseStream struct {
	s    client.Stream
	call *call
}

func (b *baseStream) Context() context.Context { return b.s.Context() }
func (b *baseStream) Trailer() grpcmd.MD       { return grpcmd.MD(b.s.Trailer()) }
func (b *baseStream) CloseSend() error         { return toGRPC(b.s.CloseSend()) }
func (b *baseStream) SendMsg(m any) error      { return toGRPC(b.s.SendMsg(m)) }

func (b *baseStream) Header() (grpcmd.MD, error) {
	md, err := b.s.Header()
	return grpcmd.MD(md), toGRPC(err)
}

func (b *baseStream) RecvMsg(m any) error { return b.recvDone(b.s.RecvMsg(m)) }

// recvDone finishes the call once a receive has ended the stream.
func (b *baseStream) recvDone(err error) error {
	if err != nil {
		b.call.finish()
	}
	return toGRPC(err)
}

type outputStream struct {
	baseStream
	s testpb.TestService_StreamingOutputCallClientStream
}

func (x *outputStream) Recv() (*testgrpc.StreamingOutputCallResponse, error) {
	m, err := x.s.Recv()
	return m, x.recvDone(err)
}

type inputStream struct {
	baseStream
	s testpb.TestService_StreamingInputCallClientStream
}

func (x *inputStream) Send(m *testgrpc.StreamingInputCallRequest) error {
	return toGRPC(x.s.Send(m))
}

func (x *inputStream) CloseAndRecv() (*testgrpc.StreamingInputCallResponse, error) {
	m, err := x.s.CloseAndRecv()
	return m, x.recvDone(err)
}

// bidiService is what the generated bidirectional streams have in common.
type bidiService interface {
	Send(*testgrpc.StreamingOutputCallRequest) error
	Recv() (*testgrpc.StreamingOutputCallResponse, error)
}

type bidiStream[S bidiService] struct {
	baseStream
	s S
}

func (x *bidiStream[S]) Send(m *testgrpc.StreamingOutputCallRequest) error {
	return toGRPC(x.s.Send(m))
}

func (x *bidiStream[S]) Recv() (*testgrpc.StreamingOutputCallResponse, error) {
	m, err := x.s.Recv()
	return m, x.recvDone(err)
}
