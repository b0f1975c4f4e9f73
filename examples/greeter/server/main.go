// Command server serves the example Greeter service.
//
//	go run ./examples/greeter/server -address 127.0.0.1:8080
//
// It stops gracefully on SIGINT or SIGTERM, letting calls in flight finish.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log"
	"os"
	"strings"

	"github.com/protoc-gen-micro/micro/examples/greeter/greeterpb"
	"github.com/protoc-gen-micro/micro/runtime/broker"
	"github.com/protoc-gen-micro/micro/runtime/metadata"
	"github.com/protoc-gen-micro/micro/runtime/service"
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

func main() {
	addr := flag.String("address", "127.0.0.1:0", "address to listen on")
	addrFile := flag.String("address-file", "", "write the address the server listens on to this file once it serves")
	instance := flag.String("instance", "", "name of this instance, added to replies")
	events := flag.Bool("events", false, "publish a \"greeter.greeted\" event for each group LotsOfGreetings greets")
	flag.Parse()

	svc := service.NewService(service.WithName("greeter"), service.WithAddress(*addr))
	g := Greeter{Instance: *instance}
	if *events {
		g.Events = broker.NewPublisher[*greeterpb.HelloReply](svc.Broker(), "greeter.greeted", broker.WithRequireSubscribers())
	}
	if err := greeterpb.RegisterGreeterHandler(svc.Server(), g); err != nil {
		log.Fatal(err)
	}
	svc.Init(service.WithAfterStart(func() error {
		fmt.Printf("greeter: serving on %s\n", svc.Server().Address())
		if *addrFile == "" {
			return nil
		}
		return os.WriteFile(*addrFile, []byte(svc.Server().Address()), 0o644)
	}), service.WithAfterStop(func() error {
		fmt.Println("greeter: stopped gracefully")
		return nil
	}))
	if err := svc.Run(); err != nil {
		log.Fatal(err)
	}
}
