package main

import (
	"context"
	"io"
	"time"

	"github.com/protoc-gen-micro/micro/conformance/internal/compat"
	"github.com/protoc-gen-micro/micro/conformance/internal/conformancepb"
	"github.com/protoc-gen-micro/micro/runtime/metadata"
	"github.com/protoc-gen-micro/micro/runtime/server"
	"github.com/protoc-gen-micro/micro/runtime/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
)

// conformanceService answers each call as its request's response
// definition says, and echoes what it received (headers, timeout, request
// messages) in a RequestInfo: in the first response, or in the error's
// details when it sends none.
//
// Delays are plain sleeps, as in the reference server: a deadline that
// passes meanwhile must be enforced by the runtime, not by the handler.
type conformanceService struct{}

func (conformanceService) Unary(ctx context.Context, in *conformancepb.UnaryRequest, out *conformancepb.UnaryResponse) error {
	payload, err := unary(ctx, in.GetResponseDefinition(), []*anypb.Any{asAny(in)})
	out.Payload = payload
	return err
}

// IdempotentUnary is Unary under another name: gRPC has no GET.
func (conformanceService) IdempotentUnary(ctx context.Context, in *conformancepb.IdempotentUnaryRequest, out *conformancepb.IdempotentUnaryResponse) error {
	payload, err := unary(ctx, in.GetResponseDefinition(), []*anypb.Any{asAny(in)})
	out.Payload = payload
	return err
}

// Unimplemented completes the handler interface, which the generated method
// table's functions assert. It is never called: serviceDesc leaves the
// method out, so that the runtime's own answer is what the suite checks.
func (conformanceService) Unimplemented(context.Context, *conformancepb.UnimplementedRequest, *conformancepb.UnimplementedResponse) error {
	return status.New(status.Internal, "Unimplemented was registered, which it must not be")
}

func (conformanceService) ClientStream(ctx context.Context, stream conformancepb.ConformanceService_ClientStreamHandlerStream) error {
	var def *conformancepb.UnaryResponseDefinition
	var reqs []*anypb.Any
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		req, err := stream.Recv()
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
		if len(reqs) == 0 {
			def = req.GetResponseDefinition()
		}
		reqs = append(reqs, asAny(req))
	}
	payload, err := unary(ctx, def, reqs)
	if err != nil {
		return err
	}
	return stream.SendAndClose(&conformancepb.ClientStreamResponse{Payload: payload})
}

// unary answers a unary or client-streaming call: headers and trailers set
// for the runtime to send, the delay, then either a payload or the error
// with the request info as its last detail.
func unary(ctx context.Context, def *conformancepb.UnaryResponseDefinition, reqs []*anypb.Any) (*conformancepb.ConformancePayload, error) {
	info := requestInfo(ctx, reqs)
	if def != nil {
		if err := server.SetHeader(ctx, compat.MD(def.GetResponseHeaders())); err != nil {
			return nil, err
		}
		if err := server.SetTrailer(ctx, compat.MD(def.GetResponseTrailers())); err != nil {
			return nil, err
		}
		if err := sleepMs(ctx, def.GetResponseDelayMs()); err != nil {
			return nil, err
		}
	}
	if e := def.GetError(); e != nil {
		return nil, errorWithInfo(e, info)
	}
	return &conformancepb.ConformancePayload{Data: def.GetResponseData(), RequestInfo: info}, nil
}

func (conformanceService) ServerStream(ctx context.Context, in *conformancepb.ServerStreamRequest, stream conformancepb.ConformanceService_ServerStreamHandlerStream) error {
	info := requestInfo(ctx, []*anypb.Any{asAny(in)})
	def := in.GetResponseDefinition()
	if def == nil {
		return nil
	}
	data := def.GetResponseData()
	if err := setMetadata(stream, def, len(data) > 0); err != nil {
		return err
	}
	for i, d := range data {
		payload := &conformancepb.ConformancePayload{Data: d}
		if i == 0 {
			payload.RequestInfo = info
		}
		if err := sleepMs(ctx, def.GetResponseDelayMs()); err != nil {
			return err
		}
		if err := stream.Send(&conformancepb.ServerStreamResponse{Payload: payload}); err != nil {
			return err
		}
	}
	if e := def.GetError(); e != nil {
		if len(data) == 0 {
			return errorWithInfo(e, info)
		}
		return compat.Status(e)
	}
	return nil
}

// BidiStream answers a full-duplex call one response per request, and a
// half-duplex call with every response after the client half-closed.
// Responses not yet sent when the requests end go out afterwards, then the
// error if one is defined.
func (conformanceService) BidiStream(ctx context.Context, stream conformancepb.ConformanceService_BidiStreamHandlerStream) error {
	var (
		def        *conformancepb.StreamResponseDefinition
		fullDuplex bool
		received   bool
		sent       int
		reqs       []*anypb.Any // received since the last response
	)
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		req, err := stream.Recv()
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
		reqs = append(reqs, asAny(req))
		if !received {
			received = true
			def, fullDuplex = req.GetResponseDefinition(), req.GetFullDuplex()
			if def != nil {
				// A half-duplex client reads nothing before it has sent
				// everything, so its headers wait for the upload's end.
				if err := setMetadata(stream, def, fullDuplex && len(def.GetResponseData()) > 0); err != nil {
					return err
				}
			}
		}
		if !fullDuplex {
			continue
		}
		if sent >= len(def.GetResponseData()) {
			break
		}
		info := &conformancepb.ConformancePayload_RequestInfo{Requests: reqs}
		if sent == 0 {
			info = requestInfo(ctx, reqs)
		}
		if err := sendBidi(stream, def, sent, info); err != nil {
			return err
		}
		sent++
		reqs = nil
	}
	if def == nil {
		return nil
	}
	data := def.GetResponseData()
	if !fullDuplex && len(data) > 0 {
		if err := stream.SendHeader(nil); err != nil {
			return err
		}
	}
	for ; sent < len(data); sent++ {
		if err := ctx.Err(); err != nil {
			return err
		}
		var info *conformancepb.ConformancePayload_RequestInfo
		if sent == 0 {
			info = requestInfo(ctx, reqs)
		}
		if err := sendBidi(stream, def, sent, info); err != nil {
			return err
		}
	}
	if e := def.GetError(); e != nil {
		if sent == 0 {
			return errorWithInfo(e, requestInfo(ctx, reqs))
		}
		return compat.Status(e)
	}
	return nil
}

func sendBidi(stream conformancepb.ConformanceService_BidiStreamHandlerStream, def *conformancepb.StreamResponseDefinition, i int, info *conformancepb.ConformancePayload_RequestInfo) error {
	if err := sleepMs(stream.Context(), def.GetResponseDelayMs()); err != nil {
		return err
	}
	return stream.Send(&conformancepb.BidiStreamResponse{Payload: &conformancepb.ConformancePayload{
		Data:        def.GetResponseData()[i],
		RequestInfo: info,
	}})
}

// setMetadata sets a stream's headers and trailers; with sendNow the
// headers leave at once, so the client sees them before the first delay.
func setMetadata(stream server.Stream, def *conformancepb.StreamResponseDefinition, sendNow bool) error {
	stream.SetTrailer(compat.MD(def.GetResponseTrailers()))
	headers := compat.MD(def.GetResponseHeaders())
	if sendNow {
		return stream.SendHeader(headers)
	}
	return stream.SetHeader(headers)
}

// requestInfo describes what the call received: its custom headers, the
// time left before its deadline, and the request messages.
func requestInfo(ctx context.Context, reqs []*anypb.Any) *conformancepb.ConformancePayload_RequestInfo {
	md, _ := metadata.FromIncomingContext(ctx)
	info := &conformancepb.ConformancePayload_RequestInfo{
		RequestHeaders: compat.Headers(md),
		Requests:       reqs,
	}
	if deadline, ok := ctx.Deadline(); ok {
		info.TimeoutMs = proto.Int64(max(time.Until(deadline).Milliseconds(), 0))
	}
	return info
}

// errorWithInfo returns e with info appended to its details.
func errorWithInfo(e *conformancepb.Error, info *conformancepb.ConformancePayload_RequestInfo) error {
	e = proto.CloneOf(e)
	e.Details = append(e.Details, asAny(info))
	return compat.Status(e)
}

func asAny(m proto.Message) *anypb.Any {
	a, err := anypb.New(m)
	if err != nil {
		// Only a message that cannot be marshaled fails, and these were
		// just unmarshaled or built here.
		panic(err)
	}
	return a
}

// sleepMs waits ms milliseconds, or until the call is over: a handler
// that outlived its call would hold the server's drain at Stop.
func sleepMs(ctx context.Context, ms uint32) error {
	if ms == 0 {
		return nil
	}
	t := time.NewTimer(time.Duration(ms) * time.Millisecond)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
