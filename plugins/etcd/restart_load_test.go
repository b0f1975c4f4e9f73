package etcd_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/protoc-gen-micro/micro/examples/greeter/greeterpb"
	"github.com/protoc-gen-micro/micro/internal/leakcheck"
	"github.com/protoc-gen-micro/micro/plugins/etcd"
	micro "github.com/protoc-gen-micro/micro/runtime/service"
)

type hello struct {
	greeterpb.UnimplementedGreeterHandler
}

func (hello) SayHello(_ context.Context, in *greeterpb.HelloRequest, out *greeterpb.HelloReply) error {
	out.Message = "hello " + in.GetName()
	return nil
}

// TestCallsAcrossEtcdRestart: calls found by name through etcd keep
// succeeding while etcd is down and after it comes back: the client's
// lookups answer from its cache, and the servers' registrations are still
// there afterwards. Goal and assertion: no failed call. It logs how many
// calls were made in each phase.
func TestCallsAcrossEtcdRestart(t *testing.T) {
	leakcheck.Check(t)
	srv, err := newServer(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.stop)
	const name = "restart-greeter"
	for i := range 2 {
		svc := micro.NewService(micro.WithName(name), micro.WithAddress("127.0.0.1:0"), micro.WithSignal(false),
			micro.WithRegistry(newRegistry(t, srv.addr())))
		if err := greeterpb.RegisterGreeterHandler(svc.Server(), hello{}); err != nil {
			t.Fatal(err)
		}
		if err := svc.Start(); err != nil {
			t.Fatalf("server %d: %v", i, err)
		}
		t.Cleanup(func() { svc.Stop() })
	}
	l := newLogs()
	cli := micro.NewService(micro.WithName("restart-client"), micro.WithSignal(false),
		micro.WithRegistry(newRegistry(t, srv.addr(), etcd.WithLogger(l.logger()))))
	t.Cleanup(func() { cli.Stop() })
	g := greeterpb.NewGreeterService(name, cli.Client())

	// Steady load: one call after another, each with its own deadline,
	// counted; progress wakes the test every 50 calls.
	var ok, failed atomic.Int64
	var firstErr atomic.Value
	progress := make(chan struct{}, 1)
	stop, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; i < 1_000_000; i++ {
			select {
			case <-stop:
				return
			default:
			}
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			_, err := g.SayHello(ctx, &greeterpb.HelloRequest{Name: fmt.Sprint(i)})
			cancel()
			if err != nil {
				failed.Add(1)
				firstErr.CompareAndSwap(nil, err)
			} else if ok.Add(1)%50 == 0 {
				select {
				case progress <- struct{}{}:
				default:
				}
			}
		}
	}()
	defer func() {
		close(stop)
		<-done
	}()
	// awaitCalls waits until n more calls succeeded than at its start.
	awaitCalls := func(phase string, n int64) int64 {
		t.Helper()
		from := ok.Load()
		timeout := time.NewTimer(30 * time.Second)
		defer timeout.Stop()
		for ok.Load()-from < n {
			select {
			case <-progress:
			case <-timeout.C:
				t.Fatalf("%s: only %d calls succeeded in 30 s (%d failed, first: %v)", phase, ok.Load()-from, failed.Load(), firstErr.Load())
			}
		}
		return ok.Load()
	}

	before := awaitCalls("before the restart", 500)
	srv.stop()
	l.await(t, "etcd is unreachable", 1)
	down := awaitCalls("while etcd is down", 500)
	if err := srv.start(); err != nil {
		t.Fatal(err)
	}
	l.await(t, "reachable again", 1)
	after := awaitCalls("after the restart", 500)
	if n := failed.Load(); n != 0 {
		t.Fatalf("%d calls failed across the etcd restart (first: %v); want 0", n, firstErr.Load())
	}
	t.Logf("calls: %d before the stop, %d with etcd down, %d after the restart; 0 failed", before, down-before, after-down)
}
