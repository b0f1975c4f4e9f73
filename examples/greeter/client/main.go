// Command client calls the example Greeter service in each of the four ways
// an RPC can go and prints what it got back.
//
//	go run ./examples/greeter/client -address 127.0.0.1:8080 -name World
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"os"
	"time"

	"github.com/protoc-gen-micro/micro/examples/greeter/greeterpb"
	"github.com/protoc-gen-micro/micro/runtime/client"
	"github.com/protoc-gen-micro/micro/runtime/metadata"
	"github.com/protoc-gen-micro/micro/runtime/service"
	"github.com/protoc-gen-micro/micro/runtime/status"
)

func main() {
	addr := flag.String("address", "", "address of a greeter server (found in the registry when empty)")
	name := flag.String("name", "World", "who to greet")
	loadFor := flag.Duration("load", 0, "instead of the four calls, call SayHello under steady load for this long (or until SIGTERM) and count who answers")
	workers := flag.Int("workers", 4, "concurrent callers in -load mode")
	interval := flag.Duration("interval", time.Second, "how often -load mode prints its counts")
	flag.Parse()

	svc := service.NewService(service.WithName("greeter.client"))
	greeter := greeterpb.NewGreeterService("greeter", svc.Client())
	var opts []client.CallOption
	if *addr != "" {
		opts = append(opts, client.WithAddress(*addr))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ctx = metadata.AppendToOutgoingContext(ctx, "x-caller", "example client")

	if *loadFor != 0 {
		if failed := load(greeter, opts, *loadFor, *workers, *interval); failed > 0 {
			os.Exit(1)
		}
		return
	}
	if err := run(ctx, greeter, *name, opts); err != nil {
		log.Fatal(err)
	}
}

func run(ctx context.Context, greeter greeterpb.GreeterService, name string, opts []client.CallOption) error {
	rsp, err := greeter.SayHello(ctx, &greeterpb.HelloRequest{Name: name}, opts...)
	if err != nil {
		return fmt.Errorf("SayHello: %w", err)
	}
	fmt.Printf("unary          SayHello        -> %q\n", rsp.Message)

	_, err = greeter.SayHello(ctx, &greeterpb.HelloRequest{}, opts...)
	var se *status.Error
	if !errors.As(err, &se) {
		return fmt.Errorf("SayHello without a name: want a status error, got %v", err)
	}
	fmt.Printf("unary error    SayHello        -> %s: %s\n", se.Code(), se.Message())

	replies, err := greeter.LotsOfReplies(ctx, &greeterpb.HelloRequest{Name: name}, opts...)
	if err != nil {
		return fmt.Errorf("LotsOfReplies: %w", err)
	}
	for {
		m, err := replies.Recv()
		if err == io.EOF {
			break
		}
		if err != nil {
			return fmt.Errorf("LotsOfReplies: %w", err)
		}
		fmt.Printf("server stream  LotsOfReplies   -> %q\n", m.Message)
	}

	greetings, err := greeter.LotsOfGreetings(ctx, opts...)
	if err != nil {
		return fmt.Errorf("LotsOfGreetings: %w", err)
	}
	for _, n := range []string{"Ada", "Grace", "Linus"} {
		if err := greetings.Send(&greeterpb.HelloRequest{Name: n}); err != nil {
			return fmt.Errorf("LotsOfGreetings: %w", err)
		}
	}
	all, err := greetings.CloseAndRecv()
	if err != nil {
		return fmt.Errorf("LotsOfGreetings: %w", err)
	}
	fmt.Printf("client stream  LotsOfGreetings -> %q\n", all.Message)

	chat, err := greeter.Chat(ctx, opts...)
	if err != nil {
		return fmt.Errorf("Chat: %w", err)
	}
	for _, n := range []string{"Ken", "Rob"} {
		if err := chat.Send(&greeterpb.HelloRequest{Name: n}); err != nil {
			return fmt.Errorf("Chat: %w", err)
		}
		m, err := chat.Recv()
		if err != nil {
			return fmt.Errorf("Chat: %w", err)
		}
		fmt.Printf("bidi stream    Chat            -> %q\n", m.Message)
	}
	if err := chat.CloseSend(); err != nil {
		return fmt.Errorf("Chat: %w", err)
	}
	if _, err := chat.Recv(); err != io.EOF {
		return fmt.Errorf("Chat: want io.EOF at the end, got %v", err)
	}
	return nil
}
