package client_test

import (
	"context"
	"errors"
	"math"
	"strconv"
	"testing"
	"time"

	"github.com/protoc-gen-micro/micro/examples/greeter/greeterpb"
	"github.com/protoc-gen-micro/micro/internal/leakcheck"
	"github.com/protoc-gen-micro/micro/runtime/client"
	"github.com/protoc-gen-micro/micro/runtime/metadata"
	"github.com/protoc-gen-micro/micro/runtime/server"
	"github.com/protoc-gen-micro/micro/runtime/status"
)

// deadlineEcho answers with the time left until the handler's deadline in
// milliseconds, or "none".
func deadlineEcho() *funcGreeter {
	return &funcGreeter{
		hello: func(ctx context.Context, in *greeterpb.HelloRequest, out *greeterpb.HelloReply) error {
			d, ok := ctx.Deadline()
			if !ok {
				out.Message = "none"
				return nil
			}
			out.Message = strconv.FormatInt(time.Until(d).Milliseconds(), 10)
			return nil
		},
	}
}

func TestDeadlinePropagation(t *testing.T) {
	leakcheck.Check(t)
	srv := serveGreeter(t, deadlineEcho())
	g := greeterAt(newTestClient(t), srv.Address())
	withDefault := greeterAt(newTestClient(t, client.WithRequestTimeout(3*time.Second)), srv.Address())

	left := func(t *testing.T, g greeterpb.GreeterService, ctx context.Context, opts ...client.CallOption) string {
		t.Helper()
		rsp, err := g.SayHello(ctx, &greeterpb.HelloRequest{Name: "d"}, opts...)
		if err != nil {
			t.Fatal(err)
		}
		return rsp.Message
	}
	// within checks the handler saw a deadline at most want away and not
	// much less: the call itself takes milliseconds.
	within := func(t *testing.T, got string, want time.Duration) {
		t.Helper()
		ms, err := strconv.ParseInt(got, 10, 64)
		if err != nil {
			t.Fatalf("handler saw no deadline (%q), want about %v", got, want)
		}
		d := time.Duration(ms) * time.Millisecond
		if d > want || d < want-time.Second {
			t.Fatalf("handler saw %v left, want just under %v", d, want)
		}
	}

	bg := context.Background()
	if got := left(t, g, bg); got != "none" {
		t.Fatalf("no deadline set, handler saw %s ms", got)
	}
	ctx, cancel := context.WithTimeout(bg, 2*time.Second)
	defer cancel()
	within(t, left(t, g, ctx), 2*time.Second)
	within(t, left(t, g, bg, client.WithRequestTimeout(4*time.Second)), 4*time.Second)
	within(t, left(t, withDefault, bg), 3*time.Second)
	// A sooner context deadline wins over the call option, and the call
	// option over the client's default.
	within(t, left(t, g, ctx, client.WithRequestTimeout(time.Hour)), 2*time.Second)
	within(t, left(t, withDefault, bg, client.WithRequestTimeout(5*time.Second)), 5*time.Second)
	ctx10, cancel10 := context.WithTimeout(bg, 10*time.Second)
	defer cancel10()
	within(t, left(t, g, ctx10, client.WithRequestTimeout(time.Second)), time.Second)
	// A context deadline is not overridden by the client's default.
	within(t, left(t, withDefault, ctx10), 10*time.Second)
}

// TestFarDeadline: a deadline centuries away must still be sent as a valid
// grpc-timeout.
func TestFarDeadline(t *testing.T) {
	leakcheck.Check(t)
	srv := serveGreeter(t, deadlineEcho())
	g := greeterAt(newTestClient(t), srv.Address())
	for _, d := range []time.Duration{100 * 365 * 24 * time.Hour, math.MaxInt64} {
		ctx, cancel := context.WithTimeout(context.Background(), d)
		rsp, err := g.SayHello(ctx, &greeterpb.HelloRequest{Name: "far"})
		cancel()
		if err != nil {
			t.Errorf("timeout %v: %v", d, err)
			continue
		}
		if rsp.Message == "none" {
			t.Errorf("timeout %v: handler saw no deadline", d)
		}
	}
}

func TestRequestTimeoutExpires(t *testing.T) {
	leakcheck.Check(t)
	handlerErr := make(chan error, 1)
	srv := serveGreeter(t, &funcGreeter{
		hello: func(ctx context.Context, in *greeterpb.HelloRequest, out *greeterpb.HelloReply) error {
			select {
			case <-ctx.Done():
				handlerErr <- ctx.Err()
				return ctx.Err()
			case <-time.After(5 * time.Second):
				handlerErr <- errors.New("handler's context never ended")
				return nil
			}
		},
	})
	g := greeterAt(newTestClient(t), srv.Address())
	// No clock is read: had the call outlived its timeout until the
	// handler gave up on its own, the handler would report that its
	// context never ended, which the check below rejects.
	_, err := g.SayHello(context.Background(), &greeterpb.HelloRequest{Name: "slow"}, client.WithRequestTimeout(100*time.Millisecond))
	if status.CodeOf(err) != status.DeadlineExceeded {
		t.Fatalf("got %v, want DeadlineExceeded", err)
	}
	select {
	case err := <-handlerErr:
		// The server's own timer and the client's RST_STREAM race to end
		// it; either way the handler must learn the call is over.
		if !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, context.Canceled) {
			t.Fatalf("handler's ctx.Err() = %v, want DeadlineExceeded or Canceled", err)
		}
	case <-time.After(3 * time.Second): // a watchdog only
		t.Fatal("handler's context did not end")
	}
}

// blockingGreeter has every method block until its context ends, reporting
// entry and the end of the context on channels. Reports never block, so a
// handler left over from a failed check cannot leak.
type blockingGreeter struct {
	entered chan string // method name
	done    chan string // method name, once ctx.Done() fired
}

func newBlockingGreeter() *blockingGreeter {
	return &blockingGreeter{entered: make(chan string, 16), done: make(chan string, 16)}
}

func post(ch chan string, method string) {
	select {
	case ch <- method:
	default:
	}
}

// await waits up to d for method to be reported on ch, skipping reports
// of other methods.
func await(ch chan string, method string, d time.Duration) bool {
	timeout := time.After(d)
	for {
		select {
		case m := <-ch:
			if m == method {
				return true
			}
		case <-timeout:
			return false
		}
	}
}

func (b *blockingGreeter) wait(ctx context.Context, method string) error {
	post(b.entered, method)
	select {
	case <-ctx.Done():
		post(b.done, method)
		return ctx.Err()
	case <-time.After(3 * time.Second):
		return errors.New("context never ended")
	}
}

func (b *blockingGreeter) greeter() *funcGreeter {
	return &funcGreeter{
		hello: func(ctx context.Context, in *greeterpb.HelloRequest, out *greeterpb.HelloReply) error {
			return b.wait(ctx, "SayHello")
		},
		replies: func(ctx context.Context, in *greeterpb.HelloRequest, s greeterpb.Greeter_LotsOfRepliesHandlerStream) error {
			return b.wait(ctx, "LotsOfReplies")
		},
		chat: func(ctx context.Context, s greeterpb.Greeter_ChatHandlerStream) error {
			if _, err := s.Recv(); err != nil {
				return err
			}
			return b.wait(ctx, "Chat")
		},
	}
}

// TestCancelReachesServer: cancelling the client's context ends the call at
// once with Canceled and ends the handler's context, which only happens if
// RST_STREAM(CANCEL) reached the server (no deadline is set).
func TestCancelReachesServer(t *testing.T) {
	leakcheck.Check(t)
	b := newBlockingGreeter()
	srv := serveGreeter(t, b.greeter())
	g := greeterAt(newTestClient(t), srv.Address())

	for _, tc := range []struct {
		method string
		call   func(ctx context.Context) error
	}{
		{"SayHello", func(ctx context.Context) error {
			_, err := g.SayHello(ctx, &greeterpb.HelloRequest{Name: "x"})
			return err
		}},
		{"LotsOfReplies", func(ctx context.Context) error {
			rs, err := g.LotsOfReplies(ctx, &greeterpb.HelloRequest{Name: "x"})
			if err != nil {
				return err
			}
			_, err = rs.Recv()
			return err
		}},
		{"Chat", func(ctx context.Context) error {
			bs, err := g.Chat(ctx)
			if err != nil {
				return err
			}
			if err := bs.Send(&greeterpb.HelloRequest{Name: "x"}); err != nil {
				return err
			}
			_, err = bs.Recv()
			return err
		}},
	} {
		t.Run(tc.method, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			errc := make(chan error, 1)
			go func() { errc <- tc.call(ctx) }()
			if !await(b.entered, tc.method, 5*time.Second) {
				t.Fatal("handler not entered")
			}
			cancel()
			select {
			case err := <-errc:
				if status.CodeOf(err) != status.Canceled {
					t.Fatalf("client got %v, want Canceled", err)
				}
			case <-time.After(2 * time.Second):
				t.Fatal("client call did not return after cancel")
			}
			if !await(b.done, tc.method, time.Second) {
				t.Fatalf("%s handler's ctx.Done() did not fire after the client cancelled: RST_STREAM never reached the server", tc.method)
			}
		})
	}
}

// TestCancelIdleStream: a stream nobody is reading from is reset when its
// context ends.
func TestCancelIdleStream(t *testing.T) {
	leakcheck.Check(t)
	b := newBlockingGreeter()
	srv := serveGreeter(t, b.greeter())
	g := greeterAt(newTestClient(t), srv.Address())
	ctx, cancel := context.WithCancel(context.Background())
	bs, err := g.Chat(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := bs.Send(&greeterpb.HelloRequest{Name: "x"}); err != nil {
		t.Fatal(err)
	}
	if !await(b.entered, "Chat", 3*time.Second) {
		t.Fatal("handler not entered")
	}
	cancel()
	if !await(b.done, "Chat", 3*time.Second) {
		t.Fatal("the handler's ctx.Done() did not fire after the client's ctx ended")
	}
	if _, err := bs.Recv(); status.CodeOf(err) != status.Canceled {
		t.Fatalf("Recv after cancel: %v", err)
	}
	// Once the call has failed, Send reports its status.
	if err := bs.Send(&greeterpb.HelloRequest{Name: "y"}); status.CodeOf(err) != status.Canceled {
		t.Fatalf("Send after cancel: %v, want Canceled", err)
	}
}

// TestDerivedHandlerContext: contexts a handler derives from its own (as
// middleware does) see the client's cancellation, the deadline and the
// call's metadata.
func TestDerivedHandlerContext(t *testing.T) {
	leakcheck.Check(t)
	type seen struct {
		peer, md  string
		deadline  bool
		afterFunc bool
		err       error
	}
	result := make(chan seen, 1)
	entered := make(chan struct{}, 1)
	srv := serveGreeter(t, &funcGreeter{
		chat: func(ctx context.Context, s greeterpb.Greeter_ChatHandlerStream) error {
			dctx, cancel := context.WithCancel(ctx)
			defer cancel()
			vctx := context.WithValue(dctx, struct{}{}, 1)
			fired := make(chan struct{})
			stop := context.AfterFunc(vctx, func() { close(fired) })
			defer stop()
			if _, err := s.Recv(); err != nil {
				return err
			}
			var r seen
			if p, ok := server.PeerFromContext(vctx); ok {
				r.peer = p.Addr.String()
			}
			r.md = metadata.ValueFromIncomingContext(vctx, "x-derived")[0]
			_, r.deadline = vctx.Deadline()
			entered <- struct{}{}
			select {
			case <-vctx.Done():
				r.err = vctx.Err()
			case <-time.After(3 * time.Second):
			}
			select {
			case <-fired:
				r.afterFunc = true
			case <-time.After(time.Second):
			}
			result <- r
			return vctx.Err()
		},
	})
	g := greeterAt(newTestClient(t), srv.Address())
	ctx, cancel := context.WithTimeout(metadata.AppendToOutgoingContext(context.Background(), "x-derived", "v"), 10*time.Second)
	defer cancel()
	cctx, ccancel := context.WithCancel(ctx)
	bs, err := g.Chat(cctx)
	if err != nil {
		t.Fatal(err)
	}
	bs.Send(&greeterpb.HelloRequest{Name: "d"})
	select {
	case <-entered:
	case <-time.After(5 * time.Second):
		t.Fatal("handler not entered")
	}
	ccancel()
	r := <-result
	if r.peer == "" || r.md != "v" || !r.deadline {
		t.Fatalf("derived context lost the call's values: %+v", r)
	}
	if !errors.Is(r.err, context.Canceled) {
		t.Fatalf("derived context's Err() = %v after the client cancelled", r.err)
	}
	if !r.afterFunc {
		t.Fatal("context.AfterFunc on a derived handler context did not run")
	}
}
