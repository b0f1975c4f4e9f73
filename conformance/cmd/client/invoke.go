package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"time"

	"github.com/protoc-gen-micro/micro/conformance/internal/compat"
	"github.com/protoc-gen-micro/micro/conformance/internal/conformancepb"
	"github.com/protoc-gen-micro/micro/runtime/client"
	"github.com/protoc-gen-micro/micro/runtime/compress"
	"github.com/protoc-gen-micro/micro/runtime/metadata"
	"google.golang.org/protobuf/proto"
)

// invoke makes the call req describes and reports what came back. An error
// means the call could not be made as described at all; the call's own
// failure is part of the result.
func invoke(ctx context.Context, clients *clientCache, req *conformancepb.ClientCompatRequest) (*conformancepb.ClientResponseResult, error) {
	if err := supported(req); err != nil {
		return nil, err
	}
	c, err := clients.get(req)
	if err != nil {
		return nil, err
	}
	compressOpts, err := compression(req.GetCompression())
	if err != nil {
		return nil, err
	}
	call := &call{
		req: req,
		svc: conformancepb.NewConformanceServiceService(conformancepb.ConformanceServiceName, c),
		opts: append([]client.CallOption{
			client.WithAddress(net.JoinHostPort(req.GetHost(), strconv.FormatUint(uint64(req.GetPort()), 10))),
			client.WithContentType(codecName(req)),
		}, compressOpts...),
	}
	ctx = metadata.NewOutgoingContext(ctx, compat.MD(req.GetRequestHeaders()))
	if req.TimeoutMs != nil {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, time.Duration(req.GetTimeoutMs())*time.Millisecond)
		defer cancel()
	}
	switch req.GetMethod() {
	case "Unary":
		return unary(ctx, call, call.svc.Unary, (*conformancepb.UnaryResponse).GetPayload)
	case "IdempotentUnary":
		return unary(ctx, call, call.svc.IdempotentUnary, (*conformancepb.IdempotentUnaryResponse).GetPayload)
	case "Unimplemented":
		return unary(ctx, call, call.svc.Unimplemented, func(*conformancepb.UnimplementedResponse) *conformancepb.ConformancePayload { return nil })
	case "ServerStream":
		return call.serverStream(ctx)
	case "ClientStream":
		return call.clientStream(ctx)
	case "BidiStream":
		return call.bidiStream(ctx)
	}
	return nil, fmt.Errorf("unknown method %q", req.GetMethod())
}

// supported rejects what the client's profile excludes: gRPC over HTTP/2
// and Connect over HTTP/1.1 and HTTP/2, in proto or JSON, without GET.
func supported(req *conformancepb.ClientCompatRequest) error {
	switch {
	case req.GetService() != conformancepb.ConformanceServiceName:
		return fmt.Errorf("unknown service %q", req.GetService())
	case req.GetProtocol() != conformancepb.Protocol_PROTOCOL_GRPC && req.GetProtocol() != conformancepb.Protocol_PROTOCOL_CONNECT:
		return fmt.Errorf("protocol %v is not supported: only gRPC and Connect", req.GetProtocol())
	case req.GetHttpVersion() != conformancepb.HTTPVersion_HTTP_VERSION_2 &&
		(req.GetHttpVersion() != conformancepb.HTTPVersion_HTTP_VERSION_1 || req.GetProtocol() != conformancepb.Protocol_PROTOCOL_CONNECT):
		return fmt.Errorf("HTTP version %v is not supported for %v", req.GetHttpVersion(), req.GetProtocol())
	case req.GetCodec() != conformancepb.Codec_CODEC_PROTO && req.GetCodec() != conformancepb.Codec_CODEC_JSON:
		return fmt.Errorf("codec %v is not supported: only proto and JSON", req.GetCodec())
	case req.GetUseGetHttpMethod():
		return errors.New("HTTP GET is not supported")
	case req.GetRawRequest() != nil:
		return errors.New("raw requests are for the reference client only")
	}
	return nil
}

// protocol is the client protocol that speaks req's protocol over its HTTP
// version: Connect over HTTP/2 is h2c in cleartext and HTTP/2 alone over
// TLS.
func protocol(req *conformancepb.ClientCompatRequest) client.Protocol {
	switch {
	case req.GetProtocol() == conformancepb.Protocol_PROTOCOL_GRPC:
		return client.ProtocolGRPC
	case req.GetHttpVersion() == conformancepb.HTTPVersion_HTTP_VERSION_2:
		return client.ProtocolConnectH2C
	}
	return client.ProtocolConnect
}

// codecName is the name of req's codec in the runtime.
func codecName(req *conformancepb.ClientCompatRequest) string {
	if req.GetCodec() == conformancepb.Codec_CODEC_JSON {
		return "json"
	}
	return "proto"
}

// compression returns the call options that compress requests as asked.
// A compression the runtime does not have fails the case rather than go
// out uncompressed: the reference server reports that, but the grpc-go one
// does not check, and such a case would pass without testing anything.
func compression(c conformancepb.Compression) ([]client.CallOption, error) {
	switch c {
	case conformancepb.Compression_COMPRESSION_IDENTITY, conformancepb.Compression_COMPRESSION_UNSPECIFIED:
		return nil, nil
	case conformancepb.Compression_COMPRESSION_GZIP:
		return []client.CallOption{client.WithSendCompression(compress.Gzip)}, nil
	}
	return nil, fmt.Errorf("compression %v: the runtime has no such compressor", c)
}

// call is one ClientCompatRequest being carried out.
type call struct {
	req  *conformancepb.ClientCompatRequest
	svc  conformancepb.ConformanceServiceService
	opts []client.CallOption
}

// requests returns the request messages, each as a new M.
func requests[M any, PM interface {
	*M
	proto.Message
}](req *conformancepb.ClientCompatRequest) ([]PM, error) {
	out := make([]PM, len(req.GetRequestMessages()))
	for i, a := range req.GetRequestMessages() {
		out[i] = new(M)
		if err := a.UnmarshalTo(out[i]); err != nil {
			return nil, fmt.Errorf("request message %d: %w", i+1, err)
		}
	}
	return out, nil
}

// unary makes a unary call, canceling it after_close_send_ms after it
// started if asked: a unary call sends and half-closes at once.
func unary[Req, Rsp any, PReq interface {
	*Req
	proto.Message
}](
	ctx context.Context,
	c *call,
	invoke func(context.Context, PReq, ...client.CallOption) (Rsp, error),
	payload func(Rsp) *conformancepb.ConformancePayload,
) (*conformancepb.ClientResponseResult, error) {
	reqs, err := requests[Req, PReq](c.req)
	if err != nil {
		return nil, err
	}
	if len(reqs) != 1 {
		return nil, fmt.Errorf("a unary call takes one request message, not %d", len(reqs))
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if d, ok := cancelAfterCloseSend(c.req); ok {
		defer time.AfterFunc(d, cancel).Stop()
	}
	var header, trailer metadata.MD
	rsp, err := invoke(ctx, reqs[0], append(c.opts, client.WithResponseHeader(&header), client.WithResponseTrailer(&trailer))...)
	result := &conformancepb.ClientResponseResult{
		ResponseHeaders:  compat.Headers(header),
		ResponseTrailers: compat.Headers(trailer),
	}
	if err != nil {
		result.Error = compat.Error(err)
	} else {
		result.Payloads = []*conformancepb.ConformancePayload{orEmpty(payload(rsp))}
	}
	return result, nil
}

func (c *call) serverStream(ctx context.Context) (*conformancepb.ClientResponseResult, error) {
	reqs, err := requests[conformancepb.ServerStreamRequest](c.req)
	if err != nil {
		return nil, err
	}
	if len(reqs) != 1 {
		return nil, fmt.Errorf("a server-streaming call takes one request message, not %d", len(reqs))
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := c.svc.ServerStream(ctx, reqs[0], c.opts...)
	if err != nil {
		return &conformancepb.ClientResponseResult{Error: compat.Error(err)}, nil
	}
	defer stream.Close()
	if d, ok := cancelAfterCloseSend(c.req); ok {
		time.Sleep(d)
		cancel()
	}
	result := &conformancepb.ClientResponseResult{}
	result.Error = receive(stream, c.req, result, cancel)
	setMetadata(result, stream)
	return result, nil
}

func (c *call) clientStream(ctx context.Context) (*conformancepb.ClientResponseResult, error) {
	reqs, err := requests[conformancepb.ClientStreamRequest](c.req)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := c.svc.ClientStream(ctx, c.opts...)
	if err != nil {
		return &conformancepb.ClientResponseResult{Error: compat.Error(err)}, nil
	}
	defer stream.Close()
	result := &conformancepb.ClientResponseResult{}
	for i, m := range reqs {
		sleepMs(c.req.GetRequestDelayMs())
		if err := stream.Send(m); err != nil {
			// The call has ended; CloseAndRecv tells how.
			result.NumUnsentRequests = int32(len(reqs) - i)
			break
		}
	}
	if c.req.GetCancel().GetBeforeCloseSend() != nil {
		cancel()
	} else if d, ok := cancelAfterCloseSend(c.req); ok {
		// CloseAndRecv half-closes and waits in one call, so the
		// cancellation is armed just before it.
		defer time.AfterFunc(d, cancel).Stop()
	}
	rsp, err := stream.CloseAndRecv()
	if err != nil {
		result.Error = compat.Error(err)
	} else {
		result.Payloads = []*conformancepb.ConformancePayload{orEmpty(rsp.GetPayload())}
	}
	setMetadata(result, stream)
	return result, nil
}

// bidiStream sends every request, in full-duplex reading a response after
// each, then half-closes and reads the remaining responses.
func (c *call) bidiStream(ctx context.Context) (*conformancepb.ClientResponseResult, error) {
	reqs, err := requests[conformancepb.BidiStreamRequest](c.req)
	if err != nil {
		return nil, err
	}
	fullDuplex := c.req.GetStreamType() == conformancepb.StreamType_STREAM_TYPE_FULL_DUPLEX_BIDI_STREAM
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := c.svc.BidiStream(ctx, c.opts...)
	if err != nil {
		return &conformancepb.ClientResponseResult{Error: compat.Error(err)}, nil
	}
	defer stream.Close()
	result := &conformancepb.ClientResponseResult{}
	afterResponses := int(c.req.GetCancel().GetAfterNumResponses())
	var callErr error
	for i, m := range reqs {
		sleepMs(c.req.GetRequestDelayMs())
		if err := stream.Send(m); err != nil {
			result.NumUnsentRequests = int32(len(reqs) - i)
			if err != io.EOF {
				callErr = err
			}
			// io.EOF: the server ended the call with OK before reading
			// everything; what it sent is read below.
			break
		}
		if !fullDuplex {
			continue
		}
		rsp, err := stream.Recv()
		if err != nil {
			result.NumUnsentRequests = int32(len(reqs) - i - 1)
			if err != io.EOF {
				callErr = err
			}
			break
		}
		result.Payloads = append(result.Payloads, orEmpty(rsp.GetPayload()))
		if len(result.Payloads) == afterResponses {
			cancel()
		}
	}
	if c.req.GetCancel().GetBeforeCloseSend() != nil {
		cancel()
	}
	if err := stream.CloseSend(); err != nil && callErr == nil {
		callErr = err
	}
	if d, ok := cancelAfterCloseSend(c.req); ok {
		time.Sleep(d)
		cancel()
	}
	if callErr != nil {
		result.Error = compat.Error(callErr)
	} else {
		result.Error = receive(stream, c.req, result, cancel)
	}
	setMetadata(result, stream)
	return result, nil
}

// receive reads responses into result until the stream ends, canceling the
// call after the number of responses req asks for, and returns the call's
// error (nil when it ended with OK).
func receive[Rsp interface {
	GetPayload() *conformancepb.ConformancePayload
}](
	stream interface{ Recv() (Rsp, error) },
	req *conformancepb.ClientCompatRequest,
	result *conformancepb.ClientResponseResult,
	cancel context.CancelFunc,
) *conformancepb.Error {
	after := int(req.GetCancel().GetAfterNumResponses())
	for {
		rsp, err := stream.Recv()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return compat.Error(err)
		}
		result.Payloads = append(result.Payloads, orEmpty(rsp.GetPayload()))
		if len(result.Payloads) == after {
			cancel()
		}
	}
}

// setMetadata records a finished stream's headers and trailers. Headers
// that never came (the call failed first) are recorded as none.
func setMetadata(result *conformancepb.ClientResponseResult, stream client.Stream) {
	header, _ := stream.Header()
	result.ResponseHeaders = compat.Headers(header)
	result.ResponseTrailers = compat.Headers(stream.Trailer())
}

// cancelAfterCloseSend returns how long after half-closing the call is to
// be canceled, if it is.
func cancelAfterCloseSend(req *conformancepb.ClientCompatRequest) (time.Duration, bool) {
	timing, ok := req.GetCancel().GetCancelTiming().(*conformancepb.ClientCompatRequest_Cancel_AfterCloseSendMs)
	if !ok {
		return 0, false
	}
	return time.Duration(timing.AfterCloseSendMs) * time.Millisecond, true
}

// orEmpty stands an empty payload in for a response that had none.
func orEmpty(p *conformancepb.ConformancePayload) *conformancepb.ConformancePayload {
	if p == nil {
		return &conformancepb.ConformancePayload{}
	}
	return p
}

func sleepMs(ms uint32) {
	if ms > 0 {
		time.Sleep(time.Duration(ms) * time.Millisecond)
	}
}
