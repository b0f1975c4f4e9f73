// Package client is the part of go-micro's client package
// (go-micro.dev/v5/client) that services use: raw calls with NewRequest and
// Call, publications with NewMessage and Publish, client wrappers, and the
// call options WithRequestTimeout, WithRetries and WithAddress.
//
// Calls go through a runtime client (runtime/client): over the gRPC
// protocol, to a node the runtime's selector picks. Before each call the
// metadata of the context (package gomicro/metadata) is sent as outgoing
// metadata, and an error received is returned as a go-micro *errors.Error
// that unwraps to the *status.Error received.
//
// One difference from go-micro: generated NewXService functions take a
// runtime client.Client, whose Call method has another signature than
// go-micro's, so pass them Native(svc.Client()) instead of svc.Client().
//
// Use runtime/client directly in new code; this package is for porting.
package client

import (
	"context"
	"errors"
	"time"

	"github.com/protoc-gen-micro/micro/runtime/broker"
	rtclient "github.com/protoc-gen-micro/micro/runtime/client"
)

// Client is go-micro's client interface, less Init, Options and Stream:
// what a Wrapper wraps and what a gomicro service's Client method returns.
type Client interface {
	// NewRequest describes a call of endpoint ("Greeter.SayHello") of
	// service with the request req.
	NewRequest(service, endpoint string, req any, opts ...RequestOption) Request
	// Call makes the unary call req describes and decodes the response
	// into rsp.
	Call(ctx context.Context, req Request, rsp any, opts ...CallOption) error
	// NewMessage describes a publication of payload to topic.
	NewMessage(topic string, payload any, opts ...MessageOption) Message
	// Publish publishes msg with the service's broker.
	Publish(ctx context.Context, msg Message, opts ...PublishOption) error
	// String names the implementation: "micro".
	String() string
}

// Wrapper wraps a Client, as go-micro's does: typically a struct that
// embeds the Client and overrides Call.
type Wrapper func(Client) Client

// Request describes a call.
type Request interface {
	// Service returns the name of the service called.
	Service() string
	// Method returns the endpoint: "Greeter.SayHello".
	Method() string
	// Endpoint returns the same as Method.
	Endpoint() string
	// ContentType returns "application/proto" or "application/json".
	ContentType() string
	// Body returns the request message.
	Body() any
	// Stream reports whether the call is a stream.
	Stream() bool
}

// Message describes a publication.
type Message interface {
	// Topic returns the topic published to.
	Topic() string
	// Payload returns the message to encode.
	Payload() any
	// ContentType returns "application/proto" or "application/json".
	ContentType() string
}

// CallOption configures one call: it is runtime/client's, so the options
// given to generated client methods are the same.
type CallOption = rtclient.CallOption

// PublishOption configures a publication; it is runtime/broker's.
type PublishOption = broker.PublishOption

// RequestOption configures a Request.
type RequestOption func(*requestOptions)

type requestOptions struct{ contentType string }

// MessageOption configures a Message.
type MessageOption func(*messageOptions)

type messageOptions struct{ contentType string }

// WithContentType encodes the request with the codec of ct:
// "application/json" for JSON, protobuf otherwise.
func WithContentType(ct string) RequestOption {
	return func(o *requestOptions) { o.contentType = ct }
}

// WithMessageContentType encodes the publication with the codec of ct:
// "application/json" for JSON, protobuf otherwise.
func WithMessageContentType(ct string) MessageOption {
	return func(o *messageOptions) { o.contentType = ct }
}

// WithRequestTimeout sets the call's deadline (rtclient.WithRequestTimeout).
func WithRequestTimeout(d time.Duration) CallOption { return rtclient.WithRequestTimeout(d) }

// WithRetries sets how many times the call may be retried on another node
// (rtclient.WithRetries); the runtime retries only calls that cannot have
// run twice, see runtime/client.
func WithRetries(n int) CallOption { return rtclient.WithRetries(n) }

// WithAddress sends the call to one of the addresses, host:port, instead
// of a node the selector picks (rtclient.WithAddress).
func WithAddress(addrs ...string) CallOption { return rtclient.WithAddress(addrs...) }

// DefaultClient is what the package-level functions use. A gomicro service
// sets it to its client, unwrapped, when it is created, as go-micro does;
// nil before.
var DefaultClient Client

var errNoDefault = errors.New("gomicro/client: no DefaultClient: create a service with gomicro.NewService first")

// NewRequest describes a call with DefaultClient's NewRequest.
func NewRequest(service, endpoint string, req any, opts ...RequestOption) Request {
	return newRequest(service, endpoint, req, opts)
}

// NewMessage describes a publication with DefaultClient's NewMessage.
func NewMessage(topic string, payload any, opts ...MessageOption) Message {
	return newMessage(topic, payload, opts)
}

// Call makes a call with DefaultClient.
func Call(ctx context.Context, req Request, rsp any, opts ...CallOption) error {
	if DefaultClient == nil {
		return errNoDefault
	}
	return DefaultClient.Call(ctx, req, rsp, opts...)
}

// Publish publishes with DefaultClient.
func Publish(ctx context.Context, msg Message, opts ...PublishOption) error {
	if DefaultClient == nil {
		return errNoDefault
	}
	return DefaultClient.Publish(ctx, msg, opts...)
}
