package client_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/protoc-gen-micro/micro/examples/greeter/greeterpb"
	"github.com/protoc-gen-micro/micro/internal/leakcheck"
	"github.com/protoc-gen-micro/micro/internal/transport"
	"github.com/protoc-gen-micro/micro/runtime/client"
	"github.com/protoc-gen-micro/micro/runtime/registry"
	"github.com/protoc-gen-micro/micro/runtime/registry/memory"
	"github.com/protoc-gen-micro/micro/runtime/server"
	"github.com/protoc-gen-micro/micro/runtime/status"
)

// deadAddr returns a loopback address nothing listens on.
func deadAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

func registryOf(addrs ...string) registry.Registry {
	s := &registry.Service{Name: "greeter", Version: "1"}
	for i, a := range addrs {
		s.Nodes = append(s.Nodes, &registry.Node{ID: fmt.Sprint("node-", i), Address: a})
	}
	return memory.NewRegistry(memory.WithServices(s))
}

// TestRetryOnRefusedNode: a node that refuses connections costs no call
// when retries are on, and fails calls with a retryable Unavailable when
// they are off. Each call uses a fresh client, whose selector has no memory
// of the dead node, so about half the calls try it first.
func TestRetryOnRefusedNode(t *testing.T) {
	leakcheck.Check(t)
	srv := serveGreeter(t, nil)
	reg := registryOf(deadAddr(t), srv.Address())
	ctx := context.Background()

	const calls = 24
	for i := 0; i < calls; i++ {
		c := client.NewClient(client.WithRegistry(reg))
		g := greeterpb.NewGreeterService("greeter", c)
		rsp, err := g.SayHello(ctx, &greeterpb.HelloRequest{Name: "r"})
		if err != nil || rsp.Message != "Hello r" {
			t.Fatalf("call %d with retries: %v %v", i, rsp, err)
		}
		// Streams retry a refused connection too.
		bs, err := g.Chat(ctx)
		if err != nil {
			t.Fatalf("stream %d with retries: %v", i, err)
		}
		bs.Close()
		c.(interface{ Close() error }).Close()
	}

	failed := 0
	for i := 0; i < calls; i++ {
		c := client.NewClient(client.WithRegistry(reg))
		g := greeterpb.NewGreeterService("greeter", c)
		_, err := g.SayHello(ctx, &greeterpb.HelloRequest{Name: "r"}, client.WithRetries(0))
		c.(interface{ Close() error }).Close()
		if err == nil {
			continue
		}
		failed++
		if status.CodeOf(err) != status.Unavailable || !errors.Is(err, transport.ErrUnprocessed) {
			t.Fatalf("call %d without retries: got %v, want Unavailable marked ErrUnprocessed", i, err)
		}
	}
	if failed == 0 {
		t.Fatalf("none of %d calls without retries failed, though half should have tried the dead node", calls)
	}

	// A client-wide WithRetries(0) behaves the same.
	failed = 0
	for i := 0; i < calls; i++ {
		c := client.NewClient(client.WithRegistry(reg), client.WithRetries(0))
		_, err := greeterpb.NewGreeterService("greeter", c).SayHello(ctx, &greeterpb.HelloRequest{Name: "r"})
		c.(interface{ Close() error }).Close()
		if err != nil {
			failed++
		}
	}
	if failed == 0 {
		t.Fatalf("client.WithRetries(0): no call failed")
	}
}

// TestRetryManyCallsOneClient: one client, many calls, one dead node:
// every call succeeds.
func TestRetryManyCallsOneClient(t *testing.T) {
	leakcheck.Check(t)
	srv := serveGreeter(t, nil)
	c := newTestClient(t, client.WithRegistry(registryOf(deadAddr(t), srv.Address(), deadAddr(t))), client.WithRetries(2))
	g := greeterpb.NewGreeterService("greeter", c)
	for i := 0; i < 200; i++ {
		if _, err := g.SayHello(context.Background(), &greeterpb.HelloRequest{Name: "m"}); err != nil {
			t.Fatalf("call %d: %v", i, err)
		}
	}
}

// TestMaxConcurrentStreamsWaits: with the server allowing one stream per
// connection, a second call waits for the first rather than being refused.
func TestMaxConcurrentStreamsWaits(t *testing.T) {
	leakcheck.Check(t)
	entered := make(chan string, 2)
	release := make(chan struct{})
	var active, maxActive atomic.Int32
	srv := serveGreeter(t, &funcGreeter{
		hello: func(ctx context.Context, in *greeterpb.HelloRequest, out *greeterpb.HelloReply) error {
			n := active.Add(1)
			defer active.Add(-1)
			for {
				m := maxActive.Load()
				if n <= m || maxActive.CompareAndSwap(m, n) {
					break
				}
			}
			if in.Name != "warm-up" {
				entered <- in.Name
			}
			if in.Name == "first" {
				select {
				case <-release:
				case <-time.After(5 * time.Second):
					return status.New(status.Internal, "never released")
				}
			}
			out.Message = in.Name
			return nil
		},
	}, server.WithMaxConcurrentStreams(1))
	g := greeterAt(newTestClient(t), srv.Address())
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	// A finished call proves the client has read the server's SETTINGS.
	if _, err := g.SayHello(ctx, &greeterpb.HelloRequest{Name: "warm-up"}); err != nil {
		t.Fatal(err)
	}
	results := make(chan error, 2)
	go func() {
		_, err := g.SayHello(ctx, &greeterpb.HelloRequest{Name: "first"})
		results <- err
	}()
	if got := <-entered; got != "first" {
		t.Fatalf("entered %q", got)
	}
	second := make(chan error, 1)
	go func() {
		_, err := g.SayHello(ctx, &greeterpb.HelloRequest{Name: "second"})
		second <- err
	}()
	select {
	case err := <-second:
		t.Fatalf("second call finished while the first held the only stream: %v", err)
	case name := <-entered:
		t.Fatalf("handler for %q ran while the first held the only stream", name)
	case <-time.After(200 * time.Millisecond):
	}
	close(release)
	if err := <-results; err != nil {
		t.Fatalf("first call: %v", err)
	}
	select {
	case err := <-second:
		if err != nil {
			t.Fatalf("second call: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("second call never finished")
	}
	if m := maxActive.Load(); m != 1 {
		t.Fatalf("%d handlers ran at once with MaxConcurrentStreams(1)", m)
	}
}

// TestGracefulStopInFlight: Stop lets an in-flight call finish, and calls
// made once the server is draining fail with a retryable Unavailable.
func TestGracefulStopInFlight(t *testing.T) {
	leakcheck.Check(t)
	entered := make(chan struct{})
	release := make(chan struct{})
	srv := serveGreeter(t, &funcGreeter{
		hello: func(ctx context.Context, in *greeterpb.HelloRequest, out *greeterpb.HelloReply) error {
			if in.Name == "slow" {
				close(entered)
				select {
				case <-release:
				case <-time.After(5 * time.Second):
					return status.New(status.Internal, "never released")
				}
			}
			out.Message = "Hello " + in.Name
			return nil
		},
	}, server.WithGracePeriod(5*time.Second))
	g := greeterAt(newTestClient(t), srv.Address())
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	inflight := make(chan error, 1)
	go func() {
		rsp, err := g.SayHello(ctx, &greeterpb.HelloRequest{Name: "slow"})
		if err == nil && rsp.Message != "Hello slow" {
			err = fmt.Errorf("got %q", rsp.Message)
		}
		inflight <- err
	}()
	waitClosed(t, entered, 5*time.Second, "the slow handler")

	stopped := make(chan error, 1)
	go func() { stopped <- srv.Stop() }()

	// Once the client has seen GOAWAY, new calls fail without reaching the
	// server. Calls made before that may still be admitted. Each call is a
	// round trip; the deadline only bounds a client that never sees it.
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, err := g.SayHello(ctx, &greeterpb.HelloRequest{Name: "new"}, client.WithRetries(0))
		if err != nil {
			if status.CodeOf(err) != status.Unavailable || !errors.Is(err, transport.ErrUnprocessed) {
				t.Fatalf("new call during drain: %v, want Unavailable marked ErrUnprocessed", err)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("new calls still succeed long after Stop began")
		}
	}
	select {
	case err := <-stopped:
		t.Fatalf("Stop returned (%v) while a call was in flight", err)
	default:
	}

	close(release)
	if err := <-inflight; err != nil {
		t.Fatalf("in-flight call: %v", err)
	}
	select {
	case err := <-stopped:
		if err != nil {
			t.Fatalf("Stop: %v", err)
		}
	case <-time.After(3 * time.Second):
		t.Fatal("Stop did not return after the last call finished")
	}
	if _, err := g.SayHello(ctx, &greeterpb.HelloRequest{Name: "after"}); status.CodeOf(err) != status.Unavailable {
		t.Fatalf("call after Stop: %v", err)
	}
}

// TestFailoverWhenNodeStops: calls keep succeeding while one of two nodes
// stops gracefully under load.
func TestFailoverWhenNodeStops(t *testing.T) {
	leakcheck.Check(t)
	var aRan, bRan atomic.Int64
	counting := func(n *atomic.Int64) *funcGreeter {
		return &funcGreeter{hello: func(ctx context.Context, in *greeterpb.HelloRequest, out *greeterpb.HelloReply) error {
			n.Add(1)
			out.Message = "Hello " + in.Name
			return nil
		}}
	}
	a := serveGreeter(t, counting(&aRan), server.WithGracePeriod(2*time.Second))
	b := serveGreeter(t, counting(&bRan))
	c := newTestClient(t, client.WithRegistry(registryOf(a.Address(), b.Address())))
	g := greeterpb.NewGreeterService("greeter", c)
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()

	var ok atomic.Int64
	var wg sync.WaitGroup
	stop := make(chan struct{})
	errs := make(chan error, 8)
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				name := fmt.Sprint("n", i)
				rsp, err := g.SayHello(ctx, &greeterpb.HelloRequest{Name: name})
				if err == nil && rsp.Message != "Hello "+name {
					err = fmt.Errorf("got %q", rsp.Message)
				}
				if err != nil {
					errs <- fmt.Errorf("call %d: %w", i, err)
					return
				}
				ok.Add(1)
			}
		}()
	}
	// Stop a under load, once both nodes have served calls, then let the
	// workers make 200 more calls (a worker that fails stops and reports).
	progress := func(what string, cond func() bool) {
		t.Helper()
		for deadline := time.Now().Add(10 * time.Second); !cond() && len(errs) == 0; runtime.Gosched() {
			if time.Now().After(deadline) {
				close(stop)
				wg.Wait()
				t.Fatalf("never: %s", what)
			}
		}
	}
	progress("calls served by both nodes", func() bool { return aRan.Load() > 0 && bRan.Load() > 0 && ok.Load() >= 100 })
	if err := a.Stop(); err != nil {
		t.Errorf("Stop: %v", err)
	}
	before := ok.Load()
	progress("200 calls after the node stopped", func() bool { return ok.Load() >= before+200 })
	close(stop)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if after := ok.Load(); after == before {
		t.Fatal("no call succeeded after one node stopped")
	}
}
