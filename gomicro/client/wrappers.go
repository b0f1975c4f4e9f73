package client

import (
	"context"

	"github.com/protoc-gen-micro/micro/gomicro/internal/endpoint"
	"github.com/protoc-gen-micro/micro/gomicro/metadata"
	rtclient "github.com/protoc-gen-micro/micro/runtime/client"
	"github.com/protoc-gen-micro/micro/runtime/spec"
	"github.com/protoc-gen-micro/micro/runtime/status"
)

// NewClient returns a Client that calls and publishes through b, wrapped
// in w; the first wrapper is outermost, as in go-micro. The unary calls of
// generated stubs given Native of it run through the wrappers too.
func NewClient(b Backend, w ...Wrapper) Client {
	sc := &serviceClient{base: &base{b: b}}
	sc.Client = sc.base
	for i := len(w) - 1; i >= 0; i-- {
		sc.Client = w[i](sc.Client)
	}
	return sc
}

// serviceClient is a wrapper chain that remembers its base, so that Native
// can open streams, which wrappers do not see.
type serviceClient struct {
	Client
	base *base
}

// Native returns c as the runtime client generated NewXService functions
// take: its unary calls run through c's Call, and so through c's wrappers,
// with a Request whose Endpoint is "Service.Method". Streams of a Client
// made by NewClient (a gomicro service's) open directly on its runtime
// client; other Clients cannot open streams.
func Native(c Client) rtclient.Client { return native{c} }

type native struct{ c Client }

func (n native) Call(ctx context.Context, service string, m *spec.Method, req, rsp any, opts ...rtclient.CallOption) error {
	r := &request{service: service, endpoint: endpoint.Of(m), body: req, contentType: "application/proto", method: m}
	return n.c.Call(ctx, r, rsp, opts...)
}

func (n native) Stream(ctx context.Context, service string, m *spec.Method, opts ...rtclient.CallOption) (rtclient.Stream, error) {
	sc, ok := n.c.(*serviceClient)
	if !ok {
		return nil, status.Errorf(status.Unimplemented, "gomicro/client: %T cannot open streams; use a gomicro service's client", n.c)
	}
	return sc.base.b.Client().Stream(metadata.Outgoing(ctx), service, m, opts...)
}

// Close does nothing: the service that made the client closes it.
func (n native) Close() error { return nil }
