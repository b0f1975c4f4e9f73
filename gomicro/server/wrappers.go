package server

import (
	"context"

	"github.com/protoc-gen-micro/micro/gomicro/internal/endpoint"
	"github.com/protoc-gen-micro/micro/gomicro/metadata"
	"github.com/protoc-gen-micro/micro/internal/callctx"
	"github.com/protoc-gen-micro/micro/runtime/interceptor"
	"github.com/protoc-gen-micro/micro/runtime/spec"
)

// HandlerInterceptor returns the wrappers as a runtime interceptor of a
// server's handlers; the first wrapper is outermost. Each unary call, and
// each stream when its handler starts, runs through them with a Request
// whose Service is service. Client calls pass through it untouched.
func HandlerInterceptor(service string, w ...HandlerWrapper) interceptor.Interceptor {
	return handlerInterceptor{service: service, wrappers: w}
}

type handlerInterceptor struct {
	service  string
	wrappers []HandlerWrapper
}

// chain wraps h in the wrappers, once per method.
func (hi handlerInterceptor) chain(h HandlerFunc) HandlerFunc {
	for i := len(hi.wrappers) - 1; i >= 0; i-- {
		h = hi.wrappers[i](h)
	}
	return h
}

func (hi handlerInterceptor) WrapUnary(m *spec.Method, next interceptor.UnaryFunc) interceptor.UnaryFunc {
	h := hi.chain(func(ctx context.Context, req Request, rsp any) error {
		return next(ctx, req.Body(), rsp)
	})
	return func(ctx context.Context, req, rsp any) error {
		return h(ctx, &request{service: hi.service, method: m, body: req, ctx: ctx}, rsp)
	}
}

type streamKey struct{}

func (hi handlerInterceptor) WrapStreamingHandler(m *spec.Method, next interceptor.StreamingHandlerFunc) interceptor.StreamingHandlerFunc {
	h := hi.chain(func(ctx context.Context, _ Request, _ any) error {
		return next(ctx, ctx.Value(streamKey{}).(interceptor.ServerStream))
	})
	return func(ctx context.Context, stream interceptor.ServerStream) error {
		ctx = context.WithValue(ctx, streamKey{}, stream)
		return h(ctx, &request{service: hi.service, method: m, ctx: ctx, stream: true}, nil)
	}
}

func (hi handlerInterceptor) WrapStreamingClient(_ *spec.Method, next interceptor.StreamingClientFunc) interceptor.StreamingClientFunc {
	return next
}

// request is the Request of one call.
type request struct {
	service string
	method  *spec.Method
	body    any
	ctx     context.Context
	stream  bool
}

func (r *request) Service() string  { return r.service }
func (r *request) Method() string   { return endpoint.Of(r.method) }
func (r *request) Endpoint() string { return endpoint.Of(r.method) }
func (r *request) Body() any        { return r.body }
func (r *request) Stream() bool     { return r.stream }

func (r *request) ContentType() string {
	if st, ok := callctx.FromContext(r.ctx); ok {
		return "application/" + st.Codec().Name()
	}
	return "application/proto"
}

func (r *request) Header() map[string]string {
	md, _ := metadata.FromContext(r.ctx)
	return md
}
