package client

import (
	"context"
	"fmt"
	"strings"
	"sync"

	gmerrors "github.com/protoc-gen-micro/micro/gomicro/errors"
	"github.com/protoc-gen-micro/micro/gomicro/metadata"
	"github.com/protoc-gen-micro/micro/internal/brokerkit"
	"github.com/protoc-gen-micro/micro/runtime/broker"
	rtclient "github.com/protoc-gen-micro/micro/runtime/client"
	"github.com/protoc-gen-micro/micro/runtime/codec"
	"github.com/protoc-gen-micro/micro/runtime/spec"
	"github.com/protoc-gen-micro/micro/runtime/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/descriptorpb"
)

// Backend is what a Client calls and publishes through. A runtime service
// (runtime/service.Service) is one.
type Backend interface {
	Client() rtclient.Client
	Broker() broker.Broker
}

// base is the Client at the bottom of a wrapper chain.
type base struct{ b Backend }

func (c *base) String() string { return "micro" }

func (c *base) NewRequest(service, endpoint string, req any, opts ...RequestOption) Request {
	return newRequest(service, endpoint, req, opts)
}

func (c *base) NewMessage(topic string, payload any, opts ...MessageOption) Message {
	return newMessage(topic, payload, opts)
}

// Call makes the call with the runtime client: the method is the one a
// generated stub gave, or the one the endpoint and request type name among
// the protobuf services linked into the program.
func (c *base) Call(ctx context.Context, req Request, rsp any, opts ...CallOption) error {
	m, err := methodOf(req)
	if err != nil {
		return err
	}
	if codecName(req.ContentType()) == "json" {
		opts = append(opts[:len(opts):len(opts)], rtclient.WithContentType("json"))
	}
	err = c.b.Client().Call(metadata.Outgoing(ctx), req.Service(), m, req.Body(), rsp, opts...)
	if err != nil {
		return gmerrors.FromError(err)
	}
	return nil
}

func (c *base) Publish(ctx context.Context, msg Message, opts ...PublishOption) error {
	cd, ok := codec.Get(codecName(msg.ContentType()))
	if !ok {
		return fmt.Errorf("gomicro/client: no codec for content type %q", msg.ContentType())
	}
	body, err := cd.MarshalAppend(nil, msg.Payload())
	if err != nil {
		return fmt.Errorf("gomicro/client: publish to %q: encoding %T: %w", msg.Topic(), msg.Payload(), err)
	}
	var header map[string]string
	if cd.Name() != codec.Proto.Name() {
		header = map[string]string{brokerkit.HeaderContentType: brokerkit.ContentTypeOf(cd.Name())}
	}
	return c.b.Broker().Publish(metadata.Outgoing(ctx), msg.Topic(), &broker.Message{Header: header, Body: body}, opts...)
}

// codecName is the runtime codec of a go-micro content type.
func codecName(ct string) string {
	if strings.Contains(ct, "json") {
		return "json"
	}
	return "proto"
}

type request struct {
	service, endpoint, contentType string
	body                           any
	method                         *spec.Method // set for calls of generated stubs
}

func newRequest(service, endpoint string, body any, opts []RequestOption) *request {
	var o requestOptions
	for _, opt := range opts {
		opt(&o)
	}
	if o.contentType == "" {
		o.contentType = "application/proto"
	}
	return &request{service: service, endpoint: endpoint, body: body, contentType: o.contentType}
}

func (r *request) Service() string     { return r.service }
func (r *request) Method() string      { return r.endpoint }
func (r *request) Endpoint() string    { return r.endpoint }
func (r *request) ContentType() string { return r.contentType }
func (r *request) Body() any           { return r.body }
func (r *request) Stream() bool        { return r.method != nil && r.method.StreamType != spec.Unary }

type message struct {
	topic, contentType string
	payload            any
}

func newMessage(topic string, payload any, opts []MessageOption) *message {
	var o messageOptions
	for _, opt := range opts {
		opt(&o)
	}
	if o.contentType == "" {
		o.contentType = "application/proto"
	}
	return &message{topic: topic, payload: payload, contentType: o.contentType}
}

func (m *message) Topic() string       { return m.topic }
func (m *message) Payload() any        { return m.payload }
func (m *message) ContentType() string { return m.contentType }

// methods caches resolved endpoints by endpoint and request type.
var methods sync.Map // string -> *spec.Method

// methodOf returns the method req calls. go-micro names it "Service.Method"
// without the protobuf package; the request's message type tells which
// linked service of that name is meant. "/pkg.Service/Method" and
// "pkg.Service.Method" are accepted too.
func methodOf(req Request) (*spec.Method, error) {
	if r, ok := req.(*request); ok && r.method != nil {
		return r.method, nil
	}
	msg, ok := req.Body().(proto.Message)
	if !ok {
		return nil, status.Errorf(status.InvalidArgument, "gomicro/client: request of %s is a %T, not a protobuf message", req.Endpoint(), req.Body())
	}
	in := msg.ProtoReflect().Descriptor().FullName()
	key := req.Endpoint() + "\x00" + string(in)
	if m, ok := methods.Load(key); ok {
		return m.(*spec.Method), nil
	}
	m, err := resolve(req.Endpoint(), in)
	if err != nil {
		return nil, err
	}
	methods.Store(key, m)
	return m, nil
}

func resolve(endpoint string, in protoreflect.FullName) (*spec.Method, error) {
	ep := strings.ReplaceAll(strings.TrimPrefix(endpoint, "/"), "/", ".")
	i := strings.LastIndexByte(ep, '.')
	if i <= 0 {
		return nil, status.Errorf(status.InvalidArgument, "gomicro/client: endpoint %q is not Service.Method", endpoint)
	}
	svcName, methodName := ep[:i], protoreflect.Name(ep[i+1:])
	var found []protoreflect.MethodDescriptor
	protoregistry.GlobalFiles.RangeFiles(func(fd protoreflect.FileDescriptor) bool {
		for j := 0; j < fd.Services().Len(); j++ {
			sd := fd.Services().Get(j)
			if string(sd.FullName()) != svcName && string(sd.Name()) != svcName {
				continue
			}
			if md := sd.Methods().ByName(methodName); md != nil && md.Input().FullName() == in {
				found = append(found, md)
			}
		}
		return true
	})
	switch len(found) {
	case 0:
		return nil, status.Errorf(status.Unimplemented, "gomicro/client: no linked protobuf service has a method %s taking %s", endpoint, in)
	case 1:
	default:
		return nil, status.Errorf(status.InvalidArgument, "gomicro/client: endpoint %s taking %s is ambiguous: name the service with its package", endpoint, in)
	}
	md := found[0]
	if md.IsStreamingClient() || md.IsStreamingServer() {
		return nil, status.Errorf(status.Unimplemented, "gomicro/client: %s is a streaming method; Call makes unary calls", endpoint)
	}
	m := &spec.Method{
		Service:   string(md.Parent().FullName()),
		Name:      string(md.Name()),
		Procedure: "/" + string(md.Parent().FullName()) + "/" + string(md.Name()),
	}
	if opts, ok := md.Options().(*descriptorpb.MethodOptions); ok {
		switch opts.GetIdempotencyLevel() {
		case descriptorpb.MethodOptions_NO_SIDE_EFFECTS:
			m.Idempotency = spec.NoSideEffects
		case descriptorpb.MethodOptions_IDEMPOTENT:
			m.Idempotency = spec.Idempotent
		}
	}
	return m, nil
}
