package client_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"runtime"
	"slices"
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
	"github.com/protoc-gen-micro/micro/runtime/selector"
	"github.com/protoc-gen-micro/micro/runtime/server"
	"github.com/protoc-gen-micro/micro/runtime/spec"
	"github.com/protoc-gen-micro/micro/runtime/status"
)

// sayHello is greeter's SayHello as generated: NO_SIDE_EFFECTS.
// sayHelloUnsafe is the same method as if it were not declared
// idempotent: the client must not run it twice.
var (
	sayHello = &spec.Method{
		Service: greeterpb.GreeterName, Name: "SayHello", Procedure: greeterpb.GreeterSayHelloProcedure,
		StreamType: spec.Unary, Idempotency: spec.NoSideEffects,
	}
	sayHelloUnsafe = &spec.Method{
		Service: greeterpb.GreeterName, Name: "SayHello", Procedure: greeterpb.GreeterSayHelloProcedure,
		StreamType: spec.Unary, Idempotency: spec.IdempotencyUnknown,
	}
)

// killable is a greeter server that can die as if SIGKILLed: its listener
// and every connection it accepted are closed at once, without GOAWAY,
// resetting the connections (SO_LINGER 0).
type killable struct {
	tr     *transport.Server
	ln     net.Listener
	served chan error
	once   sync.Once
	mu     sync.Mutex
	conns  []net.Conn
}

func serveKillable(t *testing.T, h *funcGreeter) *killable {
	t.Helper()
	srv := server.NewServer()
	if err := greeterpb.RegisterGreeterHandler(srv, h); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	k := &killable{ln: ln, served: make(chan error, 1)}
	k.tr = transport.NewServer(transport.ServerConfig{Handler: srv.(transport.Handler)})
	go func() { k.served <- k.tr.Serve(trackingListener{ln, k}) }()
	t.Cleanup(k.kill)
	return k
}

func (k *killable) Address() string { return k.ln.Addr().String() }

type trackingListener struct {
	net.Listener
	k *killable
}

func (l trackingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		l.k.mu.Lock()
		l.k.conns = append(l.k.conns, c)
		l.k.mu.Unlock()
	}
	return c, err
}

func (k *killable) kill() {
	k.once.Do(func() {
		k.ln.Close()
		k.mu.Lock()
		for _, c := range k.conns {
			if tc, ok := c.(*net.TCPConn); ok {
				tc.SetLinger(0)
			}
			c.Close()
		}
		k.mu.Unlock()
		<-k.served
		k.tr.Close() // ends the server's goroutines; the connections are gone already
	})
}

// runs counts how many times the handler ran for each request name.
type runs struct{ m sync.Map }

// greeter counts each call, and holds it while h (when not nil) is armed.
func (r *runs) greeter(h *hold) *funcGreeter {
	return &funcGreeter{hello: func(ctx context.Context, in *greeterpb.HelloRequest, out *greeterpb.HelloReply) error {
		n, _ := r.m.LoadOrStore(in.Name, new(atomic.Int32))
		n.(*atomic.Int32).Add(1)
		if h != nil && h.armed.Load() {
			h.held.Add(1)
			select {
			case <-h.release:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		out.Message = "Hello " + in.Name
		return nil
	}}
}

// hold keeps calls in a handler once armed, until release is closed or
// their connection goes: calls certainly in flight when a node is killed.
type hold struct {
	armed   atomic.Bool
	held    atomic.Int32
	release chan struct{}
}

func (r *runs) of(name string) int32 {
	n, ok := r.m.Load(name)
	if !ok {
		return 0
	}
	return n.(*atomic.Int32).Load()
}

// outcome is what a kill-and-stop run saw.
type outcome struct {
	calls, failed        int
	afterSend, unprocess int // failures: Unavailable after the request was sent, or not processed
	other                []error
	twice                int // requests the handlers ran more than once
	failedRan            int // failed calls whose handler ran anyway
}

// killAndStop runs steady concurrent load on three nodes of "greeter":
// one is killed abruptly, then another stopped gracefully (and then
// deregistered, as a service does), while the third carries on.
func killAndStop(t *testing.T, m *spec.Method, opts ...client.CallOption) outcome {
	t.Helper()
	var r runs
	inFlight := &hold{release: make(chan struct{})}
	a := serveKillable(t, r.greeter(inFlight))
	b := serveGreeter(t, r.greeter(nil), server.WithGracePeriod(5*time.Second))
	c := serveGreeter(t, r.greeter(nil))
	reg := registryOf(a.Address(), b.Address(), c.Address())
	cl := newTestClient(t, client.WithRegistry(reg))

	const workers = 16
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		out     outcome
		failed  []string
		stop    = make(chan struct{})
		started atomic.Int64
	)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				name := fmt.Sprint("w", w, "-", i)
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				var rsp greeterpb.HelloReply
				err := cl.Call(ctx, "greeter", m, &greeterpb.HelloRequest{Name: name}, &rsp, opts...)
				cancel()
				if err == nil && rsp.Message != "Hello "+name {
					err = fmt.Errorf("got %q", rsp.Message)
				}
				started.Add(1)
				mu.Lock()
				out.calls++
				if err != nil {
					out.failed++
					failed = append(failed, name)
					switch {
					case errors.Is(err, transport.ErrUnprocessed):
						out.unprocess++
					case status.CodeOf(err) == status.Unavailable:
						out.afterSend++
					default:
						out.other = append(out.other, err)
					}
				}
				mu.Unlock()
			}
		}()
	}
	// Each phase lasts until enough calls have gone through, not a set
	// time, so that a slow machine sees the same story.
	// (The deadline only bounds a client that stops making progress.)
	waitFor := func(what string, cond func() bool) {
		t.Helper()
		for deadline := time.Now().Add(20 * time.Second); !cond(); runtime.Gosched() {
			if time.Now().After(deadline) {
				close(stop)
				wg.Wait()
				t.Fatalf("never: %s", what)
			}
		}
	}
	phase := func(n int64) {
		start := started.Load()
		waitFor(fmt.Sprint(n, " more calls"), func() bool { return started.Load()-start >= n })
	}
	phase(500)
	// The node dies with calls in its handlers.
	inFlight.armed.Store(true)
	waitFor("calls held on the node to kill", func() bool { return inFlight.held.Load() >= 2 })
	a.kill()
	close(inFlight.release)
	phase(500)
	if err := b.Stop(); err != nil {
		t.Errorf("graceful Stop: %v", err)
	}
	reg.Deregister(context.Background(), &registry.Service{Name: "greeter", Version: "1", Nodes: []*registry.Node{{ID: "node-1"}}})
	phase(500)
	close(stop)
	wg.Wait()

	r.m.Range(func(_, v any) bool {
		if v.(*atomic.Int32).Load() > 1 {
			out.twice++
		}
		return true
	})
	for _, name := range failed {
		if r.of(name) > 0 {
			out.failedRan++
		}
	}
	return out
}

// TestFailoverKillAndStop: three nodes under steady load, one killed
// abruptly and one stopped gracefully. An idempotent method loses no call.
// (Its calls in flight on the killed node may run twice, which the method
// allows.) A method not declared idempotent loses only calls that were
// sent to the killed node, with Unavailable, and runs no request twice.
func TestFailoverKillAndStop(t *testing.T) {
	t.Run("idempotent", func(t *testing.T) {
		leakcheck.Check(t)
		out := killAndStop(t, sayHello)
		if out.failed != 0 {
			t.Fatalf("%d of %d calls failed (%d after send, %d unprocessed, other %v)",
				out.failed, out.calls, out.afterSend, out.unprocess, out.other)
		}
	})
	t.Run("not idempotent", func(t *testing.T) {
		leakcheck.Check(t)
		out := killAndStop(t, sayHelloUnsafe)
		if out.twice != 0 {
			t.Fatalf("%d requests ran twice", out.twice)
		}
		if out.unprocess != 0 || len(out.other) != 0 {
			t.Fatalf("%d of %d calls failed: %d unprocessed, which should have been retried, and %v",
				out.failed, out.calls, out.unprocess, out.other)
		}
		t.Logf("%d of %d calls failed with Unavailable after send; %d of those ran", out.failed, out.calls, out.failedRan)
	})
}

// TestKillMeasure logs how many calls fail out of the calls made while a
// node is killed and another stopped, under each retry policy. It asserts
// nothing about the numbers, which depend on timing.
func TestKillMeasure(t *testing.T) {
	for _, tc := range []struct {
		name string
		m    *spec.Method
		opts []client.CallOption
	}{
		{"idempotent, default retries", sayHello, nil},
		{"idempotent, no retries", sayHello, []client.CallOption{client.WithRetries(0)}},
		{"not idempotent, default retries", sayHelloUnsafe, nil},
		{"not idempotent, WithRetryOnUnavailable", sayHelloUnsafe, []client.CallOption{client.WithRetryOnUnavailable()}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			leakcheck.Check(t)
			out := killAndStop(t, tc.m, tc.opts...)
			t.Logf("%s: %d of %d calls failed (%d Unavailable after send, %d unprocessed, %d other); %d requests ran twice; %d failed calls ran",
				tc.name, out.failed, out.calls, out.afterSend, out.unprocess, len(out.other), out.twice, out.failedRan)
		})
	}
}

// TestSlowHandlerRunsOnce: a handler slower than the call's timeout runs
// exactly once, however many retries are allowed: a timeout is never
// retried, and there is no per-attempt timeout to retry after.
func TestSlowHandlerRunsOnce(t *testing.T) {
	leakcheck.Check(t)
	var ran atomic.Int32
	ended := make(chan struct{}, 8)
	slow := &funcGreeter{hello: func(ctx context.Context, in *greeterpb.HelloRequest, out *greeterpb.HelloReply) error {
		ran.Add(1)
		defer func() { ended <- struct{}{} }()
		if in.Name == "deadline" { // the handler reports the timeout itself
			return status.New(status.DeadlineExceeded, "too slow")
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(3 * time.Second):
			return nil
		}
	}}
	reg := registryOf(serveGreeter(t, slow).Address(), serveGreeter(t, slow).Address(), serveGreeter(t, slow).Address())
	for _, tc := range []struct {
		name   string
		client []client.Option
		call   []client.CallOption
	}{
		{"call timeout", nil, []client.CallOption{client.WithRequestTimeout(100 * time.Millisecond)}},
		{"client timeout", []client.Option{client.WithRequestTimeout(100 * time.Millisecond)}, nil},
		{"deadline", nil, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ran.Store(0)
			c := newTestClient(t, append(tc.client, client.WithRegistry(reg), client.WithRetries(5))...)
			name := "slow"
			if tc.name == "deadline" {
				name = "deadline"
			}
			opts := append(tc.call, client.WithRetries(5), client.WithRetryOnUnavailable())
			var rsp greeterpb.HelloReply
			err := c.Call(context.Background(), "greeter", sayHello, &greeterpb.HelloRequest{Name: name}, &rsp, opts...)
			if status.CodeOf(err) != status.DeadlineExceeded {
				t.Fatalf("got %v, want DeadlineExceeded", err)
			}
			select {
			case <-ended:
			case <-time.After(5 * time.Second):
				t.Fatal("the handler never ended")
			}
			if n := ran.Load(); n != 1 {
				t.Fatalf("handler ran %d times", n)
			}
		})
	}
}

// recorder wraps a selector and records what it is asked and told.
type recorder struct {
	selector.Selector
	mu      sync.Mutex
	selects [][]string // exclude, then the address picked
	marks   []error
}

func (r *recorder) Select(ctx context.Context, service string, exclude []string) (*registry.Node, error) {
	n, err := r.Selector.Select(ctx, service, exclude)
	if err == nil {
		r.mu.Lock()
		r.selects = append(r.selects, append(slices.Clone(exclude), n.Address))
		r.mu.Unlock()
	}
	return n, err
}

func (r *recorder) Mark(service string, node *registry.Node, err error) {
	r.mu.Lock()
	r.marks = append(r.marks, err)
	r.mu.Unlock()
	r.Selector.Mark(service, node, err)
}

// TestRetryGoesToAnotherNode: each retry excludes every node the call
// tried, and the node that failed is ejected for later calls.
func TestRetryGoesToAnotherNode(t *testing.T) {
	leakcheck.Check(t)
	f1, f2 := startFakeServer(t, true), startFakeServer(t, true)
	srv := serveGreeter(t, nil)
	reg := registryOf(f1.ln.Addr().String(), f2.ln.Addr().String(), srv.Address())
	rec := &recorder{Selector: selector.NewSelector(reg)}
	c := newTestClient(t, client.WithSelector(rec))
	g := greeterpb.NewGreeterService("greeter", c)
	for i := range 20 {
		if _, err := g.SayHello(context.Background(), &greeterpb.HelloRequest{Name: "x"}); err != nil {
			t.Fatalf("call %d: %v", i, err)
		}
	}
	var tried []string
	for _, s := range rec.selects {
		exclude, picked := s[:len(s)-1], s[len(s)-1]
		if len(exclude) == 0 {
			tried = nil // a new call
		}
		if !slices.Equal(exclude, tried) {
			t.Fatalf("Select excluded %v, want the nodes tried so far, %v", exclude, tried)
		}
		if slices.Contains(exclude, picked) {
			t.Fatalf("Select picked %s, which it was told to exclude", picked)
		}
		tried = append(tried, picked)
	}
	// Each fake node fails at most one call, then stays ejected.
	if n := len(rec.selects); n > 20+2 {
		t.Fatalf("%d attempts for 20 calls: failed nodes were not ejected", n)
	}
}

// TestRetryOnUnavailableOptIn: a call of a method not declared idempotent
// whose connection breaks after it was sent fails with Unavailable, unless
// made with WithRetryOnUnavailable.
func TestRetryOnUnavailableOptIn(t *testing.T) {
	leakcheck.Check(t)
	fs := startFakeServer(t, true)
	srv := serveGreeter(t, nil)
	reg := registryOf(fs.ln.Addr().String(), srv.Address())
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	call := func(opts ...client.CallOption) error {
		// A fresh client each time: no ejection from earlier calls.
		c := client.NewClient(client.WithRegistry(reg))
		defer c.(interface{ Close() error }).Close()
		var rsp greeterpb.HelloReply
		return c.Call(ctx, "greeter", sayHelloUnsafe, &greeterpb.HelloRequest{Name: "u"}, &rsp, opts...)
	}
	failed := 0
	for range 24 {
		if err := call(); err != nil {
			failed++
			if status.CodeOf(err) != status.Unavailable || errors.Is(err, transport.ErrUnprocessed) {
				t.Fatalf("got %v, want Unavailable after send", err)
			}
		}
	}
	if failed == 0 {
		t.Fatal("no call failed, though about half went first to the node that drops connections")
	}
	for i := range 24 {
		if err := call(client.WithRetryOnUnavailable()); err != nil {
			t.Fatalf("call %d with WithRetryOnUnavailable: %v", i, err)
		}
	}
}

// TestRetryBudget: the client-wide budget caps retries at the configured
// share of calls, and WithRetryBudget(0, 0) turns them off.
func TestRetryBudget(t *testing.T) {
	leakcheck.Check(t)
	reg := registryOf(deadAddr(t), deadAddr(t), deadAddr(t))
	for _, tc := range []struct {
		ratio      float64
		maxRetries int
	}{{0, 0}, {0.2, 20}, {0.5, 50}} {
		rec := &recorder{Selector: selector.NewSelector(reg)}
		c := newTestClient(t, client.WithSelector(rec), client.WithRetryBudget(tc.ratio, 0))
		g := greeterpb.NewGreeterService("greeter", c)
		const calls = 100
		for range calls {
			if _, err := g.SayHello(context.Background(), &greeterpb.HelloRequest{Name: "b"}); status.CodeOf(err) != status.Unavailable {
				t.Fatalf("call to dead nodes: %v", err)
			}
		}
		if retries := len(rec.selects) - calls; retries > tc.maxRetries || retries < tc.maxRetries-1 {
			t.Errorf("WithRetryBudget(%v, 0): %d retries for %d calls, want %d", tc.ratio, retries, calls, tc.maxRetries)
		}
	}
}

// TestStreamMarkedWhenItEnds: the selector hears of a stream when it ends,
// not when it opens, so LeastRequest counts it in flight meanwhile.
func TestStreamMarkedWhenItEnds(t *testing.T) {
	leakcheck.Check(t)
	srv := serveGreeter(t, nil)
	rec := &recorder{Selector: selector.NewSelector(registryOf(srv.Address()), selector.WithStrategy(selector.LeastRequest))}
	g := greeterpb.NewGreeterService("greeter", newTestClient(t, client.WithSelector(rec)))
	marks := func() int { rec.mu.Lock(); defer rec.mu.Unlock(); return len(rec.marks) }

	bs, err := g.Chat(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if err := bs.Send(&greeterpb.HelloRequest{Name: "s"}); err != nil {
		t.Fatal(err)
	}
	if _, err := bs.Recv(); err != nil {
		t.Fatal(err)
	}
	if n := marks(); n != 0 {
		t.Fatalf("stream marked %d times while open", n)
	}
	bs.CloseSend()
	if _, err := bs.Recv(); err == nil {
		t.Fatal("Recv after CloseSend returned a message")
	}
	if n := marks(); n != 1 || rec.marks[0] != nil {
		t.Fatalf("marks after the stream ended: %v", rec.marks)
	}
	bs.Close()
	if n := marks(); n != 1 {
		t.Fatalf("marked %d times after Close", n)
	}

	// A stream closed early is marked once, as a success of the node.
	bs, err = g.Chat(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	bs.Close()
	if n := marks(); n != 2 || rec.marks[1] != nil {
		t.Fatalf("marks after Close: %v", rec.marks)
	}
}

// TestSelectorCacheNoLookupPerCall: calls through the default selector do
// not look the service up in the registry each time.
func TestSelectorCacheNoLookupPerCall(t *testing.T) {
	leakcheck.Check(t)
	srv := serveGreeter(t, nil)
	reg := &lookups{Registry: memory.NewRegistry(memory.WithServices(&registry.Service{
		Name: "greeter", Nodes: []*registry.Node{{ID: "a", Address: srv.Address()}},
	}))}
	g := greeterpb.NewGreeterService("greeter", newTestClient(t, client.WithRegistry(reg)))
	for range 50 {
		if _, err := g.SayHello(context.Background(), &greeterpb.HelloRequest{Name: "c"}); err != nil {
			t.Fatal(err)
		}
	}
	if n := reg.n.Load(); n != 1 {
		t.Fatalf("%d registry lookups for 50 calls", n)
	}
}

type lookups struct {
	registry.Registry
	n atomic.Int32
}

func (l *lookups) GetService(ctx context.Context, name string) ([]*registry.Service, error) {
	l.n.Add(1)
	return l.Registry.GetService(ctx, name)
}
