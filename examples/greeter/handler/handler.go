// Package handler is the example Greeter's implementation, served by
// examples/greeter/server and by the OpenTelemetry example in otel/.
package handler

import (
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/protoc-gen-micro/micro/examples/greeter/greeterpb"
	"github.com/protoc-gen-micro/micro/runtime/broker"
	"github.com/protoc-gen-micro/micro/runtime/metadata"
	"github.com/protoc-gen-micro/micro/runtime/status"
)

// Greeter implements greeterpb.GreeterHandler.
type Greeter struct {
	// UnimplementedGreeterHandler answers Unimplemented for a method
	// added to greeter.proto until Greeter implements it, so that
	// regenerating never breaks this build.
	greeterpb.UnimplementedGreeterHandler

	// Instance, when set, names this server in replies, so a client
	// can tell which of several instances answered.
	Instance string
	// Events, when set, receives a "greeted" event for every group
	// LotsOfGreetings greets.
	Events *broker.Publisher[*greeterpb.HelloReply]
}

// SayHello greets one person.
func (g Greeter) SayHello(ctx context.Context, in *greeterpb.HelloRequest, out *greeterpb.HelloReply) error {
	if in.Name == "" {
		return status.New(status.InvalidArgument, "name is required")
	}
	who := ""
	if md, ok := metadata.FromIncomingContext(ctx); ok && md.Value("x-caller") != "" {
		who = " (asked by " + md.Value("x-caller") + ")"
	}
	out.Message = "Hello " + in.Name + who
	if g.Instance != "" {
		out.Message += " from " + g.Instance
	}
	return nil
}

// LotsOfReplies greets one person three times.
func (g Greeter) LotsOfReplies(ctx context.Context, in *greeterpb.HelloRequest, stream greeterpb.Greeter_LotsOfRepliesHandlerStream) error {
	for i, greeting := range []string{"Hello", "Bonjour", "Hallo"} {
		if err := stream.Send(&greeterpb.HelloReply{Message: fmt.Sprintf("%d: %s %s", i+1, greeting, in.Name)}); err != nil {
			return err
		}
	}
	return nil
}

// LotsOfGreetings greets everyone it was sent at once.
func (g Greeter) LotsOfGreetings(ctx context.Context, stream greeterpb.Greeter_LotsOfGreetingsHandlerStream) error {
	var names []string
	for {
		in, err := stream.Recv()
		if err == io.EOF {
			reply := &greeterpb.HelloReply{Message: "Hello " + strings.Join(names, ", ")}
			if g.Events != nil {
				// Returns once a subscriber has handled the event.
				if err := g.Events.Publish(ctx, reply); err != nil {
					return err
				}
			}
			return stream.SendAndClose(reply)
		}
		if err != nil {
			return err
		}
		names = append(names, in.Name)
	}
}

// Chat greets each person as they arrive.
func (g Greeter) Chat(ctx context.Context, stream greeterpb.Greeter_ChatHandlerStream) error {
	for {
		in, err := stream.Recv()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		if err := stream.Send(&greeterpb.HelloReply{Message: "Hello " + in.Name}); err != nil {
			return err
		}
	}
}
