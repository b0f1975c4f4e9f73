// Package server is the part of go-micro's server package
// (go-micro.dev/v5/server) that services use: handler wrappers and the
// Request they see, subscriber options, and the Server a gomicro service
// returns, which generated RegisterXHandler functions take.
//
// A HandlerWrapper runs as a runtime interceptor (see HandlerInterceptor);
// it wraps every unary handler, and the opening of every streaming one.
// Use runtime/server and runtime/interceptor directly in new code; this
// package is for porting.
package server

import (
	"context"

	"github.com/protoc-gen-micro/micro/runtime/broker"
	rtserver "github.com/protoc-gen-micro/micro/runtime/server"
)

// Server is what a gomicro service's Server method returns: a runtime
// server, which generated RegisterXHandler functions take, that knows the
// service's broker, which gomicro.RegisterSubscriber subscribes with.
type Server interface {
	rtserver.Server
	// Broker returns the service's broker.
	Broker() broker.Broker
}

// Request describes the call a HandlerWrapper wraps.
type Request interface {
	// Service returns the name the service is registered under.
	Service() string
	// Method returns the endpoint, as go-micro names it: "Greeter.SayHello".
	Method() string
	// Endpoint returns the same as Method.
	Endpoint() string
	// ContentType returns the request's codec as "application/proto" or
	// "application/json".
	ContentType() string
	// Header returns the metadata the call arrived with, keys in
	// canonical form.
	Header() map[string]string
	// Body returns the decoded request; nil for a stream.
	Body() any
	// Stream reports whether the call is a stream.
	Stream() bool
}

// HandlerFunc is a handler as a wrapper sees it: for a unary call rsp is
// the response to fill; for a stream it is nil.
type HandlerFunc func(ctx context.Context, req Request, rsp any) error

// HandlerWrapper wraps a HandlerFunc, as go-micro's does.
type HandlerWrapper func(HandlerFunc) HandlerFunc

// SubscriberOption configures a subscription made with
// gomicro.RegisterSubscriber; it is runtime/broker's option.
type SubscriberOption = broker.SubscribeOption

// SubscriberQueue makes the subscription join the queue group name, whose
// members receive each message once between them (broker.WithQueue).
func SubscriberQueue(name string) SubscriberOption { return broker.WithQueue(name) }
