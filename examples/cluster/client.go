package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/protoc-gen-micro/micro/examples/greeter/greeterpb"
	"github.com/protoc-gen-micro/micro/runtime/broker"
	"github.com/protoc-gen-micro/micro/runtime/service"
)

// counts are the client's calls so far.
type counts struct {
	mu     sync.Mutex
	calls  int
	failed int
	by     map[string]int // replies per answering instance
	errs   map[string]int
}

func (c *counts) add(rsp *greeterpb.HelloReply, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.calls++
	if err != nil {
		c.failed++
		c.errs[err.Error()]++
		return
	}
	_, instance, _ := strings.Cut(rsp.Message, " from ")
	c.by[instance]++
}

func (c *counts) String() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	names := make([]string, 0, len(c.by))
	for n := range c.by {
		names = append(names, n)
	}
	sort.Strings(names)
	for i, n := range names {
		names[i] = fmt.Sprintf("%s=%d", n, c.by[n])
	}
	return fmt.Sprintf("calls=%d failed=%d answered by: %s", c.calls, c.failed, strings.Join(names, " "))
}

// client calls SayHello on "greeter", found by name in the registry the
// environment names, from -workers goroutines until -load has passed or
// SIGTERM, then prints a summary and fails if a call failed. Commands on
// standard input, one a line:
//
//	count TAG      prints "count TAG calls=N failed=M answered by: ..."
//	publish TEXT   publishes an event carrying TEXT to the topic and
//	               prints "published TEXT" once JetStream has stored it
func client(args []string) error {
	fs := flag.NewFlagSet("client", flag.ExitOnError)
	loadFor := fs.Duration("load", time.Minute, "call for at most this long")
	workers := fs.Int("workers", 4, "concurrent callers")
	fs.Parse(args)

	b := natsBroker("client")
	svc := service.NewService(service.WithName("greeter.client"), service.WithBroker(b))
	defer b.Disconnect()
	greeter := greeterpb.NewGreeterService("greeter", svc.Client())
	events := broker.NewPublisher[*greeterpb.HelloReply](b, topic)

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, *loadFor)
	defer cancel()
	total := &counts{by: map[string]int{}, errs: map[string]int{}}
	var wg sync.WaitGroup
	for range *workers {
		wg.Go(func() {
			for ctx.Err() == nil {
				callCtx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
				rsp, err := greeter.SayHello(callCtx, &greeterpb.HelloRequest{Name: "cluster"})
				cancel()
				total.add(rsp, err)
				time.Sleep(time.Millisecond)
			}
		})
	}
	go commands(ctx, total, events)
	fmt.Printf("client: calling greeter by name with %d workers\n", *workers)
	<-ctx.Done()
	wg.Wait()
	fmt.Printf("client summary: %s\n", total)
	if total.failed > 0 {
		for e, n := range total.errs {
			fmt.Printf("client error (%d×): %s\n", n, e)
		}
		return fmt.Errorf("%d of %d calls failed", total.failed, total.calls)
	}
	return nil
}

func commands(ctx context.Context, total *counts, events *broker.Publisher[*greeterpb.HelloReply]) {
	sc := bufio.NewScanner(os.Stdin)
	for sc.Scan() && ctx.Err() == nil {
		cmd, arg, _ := strings.Cut(strings.TrimSpace(sc.Text()), " ")
		switch cmd {
		case "count":
			fmt.Printf("count %s %s\n", arg, total)
		case "publish":
			pubCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
			err := events.Publish(pubCtx, &greeterpb.HelloReply{Message: arg})
			cancel()
			if err != nil {
				fmt.Printf("publish %q failed: %v\n", arg, err)
				continue
			}
			fmt.Printf("published %s\n", arg)
		default:
			fmt.Printf("client: unknown command %q\n", cmd)
		}
	}
}
