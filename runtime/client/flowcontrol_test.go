package client_test

import (
	"context"
	"io"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/protoc-gen-micro/micro/examples/greeter/greeterpb"
	"github.com/protoc-gen-micro/micro/internal/leakcheck"
	"github.com/protoc-gen-micro/micro/runtime/client"
	"github.com/protoc-gen-micro/micro/runtime/metadata"
	"github.com/protoc-gen-micro/micro/runtime/server"
	"github.com/protoc-gen-micro/micro/runtime/status"
)

// TestClientSendBackpressure: when the handler stops reading, the client's
// SendMsg blocks after a bounded amount rather than buffering without
// limit, and cancelling the context unblocks it.
func TestClientSendBackpressure(t *testing.T) {
	leakcheck.Check(t)
	handlerDone := make(chan error, 1)
	first := make(chan struct{})
	srv := serveGreeter(t, &funcGreeter{
		chat: func(ctx context.Context, s greeterpb.Greeter_ChatHandlerStream) error {
			if _, err := s.Recv(); err != nil {
				return err
			}
			close(first)
			<-ctx.Done() // stop reading
			handlerDone <- ctx.Err()
			return ctx.Err()
		},
	}, server.WithMaxRecvMsgSize(2<<20))
	g := greeterAt(newTestClient(t), srv.Address())
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	bs, err := g.Chat(ctx)
	if err != nil {
		t.Fatal(err)
	}
	msg := &greeterpb.HelloRequest{Name: strings.Repeat("b", 1<<20)}
	var sent atomic.Int64
	sendDone := make(chan error, 1)
	go func() {
		for i := 0; i < 64; i++ {
			if err := bs.Send(msg); err != nil {
				sendDone <- err
				return
			}
			sent.Add(1)
		}
		sendDone <- nil
	}()
	select {
	case <-first:
	case <-time.After(10 * time.Second):
		t.Fatal("the handler never received the first message")
	}
	stalled(t, g, sent.Load, sendDone, "the client's Send")
	select {
	case err := <-sendDone:
		t.Fatalf("64 MiB were sent to a handler that stopped reading (err %v): no backpressure", err)
	default:
	}
	// A 1 MiB stream window, the 16 MiB connection window and the 1 MiB
	// send quota bound what can be in flight.
	if n := sent.Load(); n > 20 {
		t.Fatalf("%d MiB accepted by SendMsg while the handler was not reading", n)
	}
	cancel()
	select {
	case err := <-sendDone:
		if err != nil && err != io.EOF && status.CodeOf(err) != status.Canceled {
			t.Fatalf("blocked Send returned %v", err)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("a blocked Send did not return after the context was cancelled")
	}
	select {
	case <-handlerDone:
	case <-time.After(2 * time.Second):
		t.Fatal("the handler's context did not end after the client cancelled")
	}
}

// stalled returns once count has stopped growing: while it stays the same
// over 20 consecutive unary round trips on the connection (which other
// calls must still get through), the sender is blocked. It fails if done
// is ready (the sender finished or failed) or count never settles.
func stalled(t *testing.T, g greeterpb.GreeterService, count func() int64, done chan error, what string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	last, same := count(), 0
	for range 5000 {
		if len(done) > 0 {
			return // the caller reports it
		}
		if _, err := g.SayHello(ctx, &greeterpb.HelloRequest{Name: "tick"}); err != nil {
			t.Fatalf("a unary call beside the blocked stream: %v", err)
		}
		if n := count(); n != last {
			last, same = n, 0
			continue
		}
		if same++; same == 20 {
			return
		}
	}
	t.Fatalf("%s never stopped: %d messages sent", what, count())
}

// TestServerSendBackpressure: a handler sending to a client that does not
// read blocks, and returns once the client goes away.
func TestServerSendBackpressure(t *testing.T) {
	leakcheck.Check(t)
	var sent atomic.Int64
	handlerErr := make(chan error, 1)
	srv := serveGreeter(t, &funcGreeter{
		replies: func(ctx context.Context, in *greeterpb.HelloRequest, s greeterpb.Greeter_LotsOfRepliesHandlerStream) error {
			m := &greeterpb.HelloReply{Message: strings.Repeat("r", 1<<20)}
			for i := 0; i < 64; i++ {
				if err := s.Send(m); err != nil {
					handlerErr <- err
					return err
				}
				sent.Add(1)
			}
			handlerErr <- nil
			return nil
		},
	})
	g := greeterAt(newTestClient(t, client.WithMaxRecvMsgSize(2<<20)), srv.Address())
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	rs, err := g.LotsOfReplies(ctx, &greeterpb.HelloRequest{Name: "x"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := rs.Recv(); err != nil {
		t.Fatal(err)
	}
	stalled(t, g, sent.Load, handlerErr, "the handler's Send")
	select {
	case err := <-handlerErr:
		t.Fatalf("handler sent 64 MiB to a client that read 1 MiB (err %v): no backpressure", err)
	default:
	}
	if n := sent.Load(); n > 20 {
		t.Fatalf("handler sent %d MiB to a client that read 1 MiB", n)
	}
	cancel()
	select {
	case err := <-handlerErr:
		if err == nil {
			t.Fatal("handler's Send succeeded after the client cancelled")
		}
	case <-time.After(2 * time.Second):
		t.Fatal("handler blocked in Send did not return after the client cancelled")
	}
}

// TestMaxConcurrentStreamsFreshConnection: the stream limit holds from the
// first calls on a new connection, before the client could have read the
// server's SETTINGS: calls wait instead of being refused. Each handler
// holds its call until the test releases it, one at a time.
func TestMaxConcurrentStreamsFreshConnection(t *testing.T) {
	leakcheck.Check(t)
	var running atomic.Int32
	entered := make(chan int32)
	release := make(chan struct{})
	srv := serveGreeter(t, &funcGreeter{
		hello: func(ctx context.Context, in *greeterpb.HelloRequest, out *greeterpb.HelloReply) error {
			entered <- running.Add(1)
			<-release
			running.Add(-1)
			out.Message = in.Name
			return nil
		},
	}, server.WithMaxConcurrentStreams(1))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for round := 0; round < 3; round++ {
		g := greeterAt(newTestClient(t), srv.Address()) // a new connection each round
		var wg sync.WaitGroup
		errs := make(chan error, 4)
		for i := 0; i < 4; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if _, err := g.SayHello(ctx, &greeterpb.HelloRequest{Name: "c"}); err != nil {
					errs <- err
				}
			}()
		}
		for i := 0; i < 4; i++ {
			select {
			case n := <-entered:
				if n != 1 {
					t.Errorf("round %d: %d handlers ran at once on a 1-stream server", round, n)
				}
			case <-ctx.Done():
				t.Fatalf("round %d: call %d never reached its handler", round, i)
			}
			release <- struct{}{}
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Errorf("round %d: concurrent call on a fresh connection to a 1-stream server: %v", round, err)
		}
	}
}

// TestLargeMetadata: header blocks larger than a frame travel in
// CONTINUATION frames both ways; a request whose headers exceed the
// server's limit (raised here to 1 MiB) is refused with ResourceExhausted
// without harming the connection.
func TestLargeMetadata(t *testing.T) {
	leakcheck.Check(t)
	srv := serveGreeter(t, &funcGreeter{
		hello: func(ctx context.Context, in *greeterpb.HelloRequest, out *greeterpb.HelloReply) error {
			md, _ := metadata.FromIncomingContext(ctx)
			v := md.Value("x-big")
			server.SetHeader(ctx, metadata.Pairs("x-big", v))
			server.SetTrailer(ctx, metadata.Pairs("x-big-bin", v))
			out.Message = "ok"
			return nil
		},
	}, server.WithLimits(server.Limits{MaxHeaderListSize: 1 << 20}))
	g := greeterAt(newTestClient(t), srv.Address())
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	big := strings.Repeat("abcdefghij", 10<<10) // 100 KiB
	var hdr, trl metadata.MD
	_, err := g.SayHello(metadata.AppendToOutgoingContext(ctx, "x-big", big), &greeterpb.HelloRequest{Name: "m"},
		client.WithResponseHeader(&hdr), client.WithResponseTrailer(&trl))
	if err != nil {
		t.Fatal(err)
	}
	if hdr.Value("x-big") != big || trl.Value("x-big-bin") != big {
		t.Fatalf("large metadata did not round-trip: header %d bytes, trailer %d bytes", len(hdr.Value("x-big")), len(trl.Value("x-big-bin")))
	}

	huge := metadata.AppendToOutgoingContext(ctx, "x-a", strings.Repeat("a", 400<<10), "x-b", strings.Repeat("b", 400<<10), "x-c", strings.Repeat("c", 400<<10))
	_, err = g.SayHello(huge, &greeterpb.HelloRequest{Name: "m"})
	if status.CodeOf(err) != status.ResourceExhausted {
		t.Fatalf("1.2 MiB of request headers: %v, want ResourceExhausted", err)
	}
	if _, err := g.SayHello(ctx, &greeterpb.HelloRequest{Name: "after"}); err != nil {
		t.Fatalf("call after oversized headers: %v", err)
	}
}
