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
	srv := serveGreeter(t, &funcGreeter{
		chat: func(ctx context.Context, s greeterpb.Greeter_ChatHandlerStream) error {
			if _, err := s.Recv(); err != nil {
				return err
			}
			<-ctx.Done() // stop reading
			handlerDone <- ctx.Err()
			return ctx.Err()
		},
	}, server.MaxRecvMsgSize(2<<20))
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
	time.Sleep(300 * time.Millisecond)
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
	g := greeterAt(newTestClient(t, client.MaxRecvMsgSize(2<<20)), srv.Address())
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	rs, err := g.LotsOfReplies(ctx, &greeterpb.HelloRequest{Name: "x"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := rs.Recv(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond)
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
// server's SETTINGS: calls wait instead of being refused.
func TestMaxConcurrentStreamsFreshConnection(t *testing.T) {
	leakcheck.Check(t)
	srv := serveGreeter(t, &funcGreeter{
		hello: func(ctx context.Context, in *greeterpb.HelloRequest, out *greeterpb.HelloReply) error {
			time.Sleep(20 * time.Millisecond)
			out.Message = in.Name
			return nil
		},
	}, server.MaxConcurrentStreams(1))
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
		client.Header(&hdr), client.Trailer(&trl))
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
