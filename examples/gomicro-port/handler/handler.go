// Package handler is the Greeter service of a typical go-micro program,
// ported to protoc-gen-micro by rewriting its imports only: go-micro's
// errors, metadata, logger, handler and client wrappers, pub/sub and a raw
// NewRequest+Call. See docs/migrating-from-go-micro.md.
package handler

import (
	"context"
	"strings"
	"sync"

	micro "github.com/protoc-gen-micro/micro/gomicro"
	"github.com/protoc-gen-micro/micro/gomicro/client"
	"github.com/protoc-gen-micro/micro/gomicro/errors"
	"github.com/protoc-gen-micro/micro/gomicro/logger"
	"github.com/protoc-gen-micro/micro/gomicro/metadata"
	"github.com/protoc-gen-micro/micro/gomicro/server"

	pb "github.com/protoc-gen-micro/micro/examples/greeter/greeterpb"
)

// Topic is where a greeting is announced.
const Topic = "greeter.greeted"

// Greeter greets people, announces each greeting and remembers who was
// greeted.
type Greeter struct {
	Client  client.Client
	Greeted micro.Event

	mu    sync.Mutex
	names []string
}

// New returns a Greeter that calls and publishes with c.
func New(c client.Client) *Greeter {
	return &Greeter{Client: c, Greeted: micro.NewEvent(Topic, c)}
}

// SayHello greets one person. "twice:NAME" greets NAME by calling the
// service itself with a raw request.
func (g *Greeter) SayHello(ctx context.Context, req *pb.HelloRequest, rsp *pb.HelloReply) error {
	if req.Name == "" {
		return errors.BadRequest("greeter.SayHello", "name is required")
	}
	if strings.ContainsAny(req.Name, "<>") {
		return errors.Forbidden("greeter.SayHello", "name %q contains markup", req.Name)
	}
	if name, ok := strings.CutPrefix(req.Name, "twice:"); ok {
		inner := &pb.HelloReply{}
		r := g.Client.NewRequest("greeter", "Greeter.SayHello", &pb.HelloRequest{Name: name})
		if err := g.Client.Call(ctx, r, inner); err != nil {
			return errors.InternalServerError("greeter.SayHello", "inner call: %v", err)
		}
		rsp.Message = inner.Message + " " + inner.Message
		return nil
	}
	from := "anonymous"
	if md, ok := metadata.FromContext(ctx); ok {
		if v, ok := md.Get("X-From"); ok {
			from = v
		}
	}
	logger.Fields(map[string]interface{}{"name": req.Name, "from": from}).Log(logger.InfoLevel, "greeting")
	rsp.Message = "Hello " + req.Name + ", from " + from
	if err := g.Greeted.Publish(ctx, rsp); err != nil {
		logger.Errorf("announcing greeting: %v", err)
		return errors.InternalServerError("greeter.SayHello", "announcing: %v", err)
	}
	return nil
}

// LotsOfReplies is not offered.
func (g *Greeter) LotsOfReplies(ctx context.Context, req *pb.HelloRequest, stream pb.Greeter_LotsOfRepliesStream) error {
	return errors.MethodNotAllowed("greeter.LotsOfReplies", "not offered")
}

// LotsOfGreetings is not offered.
func (g *Greeter) LotsOfGreetings(ctx context.Context, stream pb.Greeter_LotsOfGreetingsStream) error {
	return errors.MethodNotAllowed("greeter.LotsOfGreetings", "not offered")
}

// Chat is not offered.
func (g *Greeter) Chat(ctx context.Context, stream pb.Greeter_ChatStream) error {
	return errors.MethodNotAllowed("greeter.Chat", "not offered")
}

// Remember is the subscriber of Topic.
func (g *Greeter) Remember(ctx context.Context, msg *pb.HelloReply) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.names = append(g.names, msg.Message)
	logger.Debugf("remembered %q", msg.Message)
	return nil
}

// Greetings returns what Remember heard, in order.
func (g *Greeter) Greetings() []string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([]string(nil), g.names...)
}

// LogWrapper logs every call the service serves.
func LogWrapper(fn server.HandlerFunc) server.HandlerFunc {
	return func(ctx context.Context, req server.Request, rsp interface{}) error {
		logger.Infof("serving %s.%s", req.Service(), req.Endpoint())
		err := fn(ctx, req, rsp)
		if err != nil {
			logger.Warnf("%s failed: %v", req.Endpoint(), errors.FromError(err).Detail)
		}
		return err
	}
}

// fromWrapper marks every outgoing call with the caller's name.
type fromWrapper struct {
	client.Client
	from string
}

func (w *fromWrapper) Call(ctx context.Context, req client.Request, rsp interface{}, opts ...client.CallOption) error {
	ctx = metadata.MergeContext(ctx, metadata.Metadata{"X-From": w.from}, false)
	return w.Client.Call(ctx, req, rsp, opts...)
}

// FromWrapper returns a client wrapper that sends X-From: from unless the
// context already says who is calling.
func FromWrapper(from string) client.Wrapper {
	return func(c client.Client) client.Client { return &fromWrapper{c, from} }
}

// Register registers g's handler and subscriber with the service.
func Register(service micro.Service, g *Greeter) error {
	if err := pb.RegisterGreeterHandler(service.Server(), g); err != nil {
		return err
	}
	return micro.RegisterSubscriber(Topic, service.Server(), g.Remember)
}
