package client_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/protoc-gen-micro/micro/examples/greeter/greeterpb"
	"github.com/protoc-gen-micro/micro/internal/leakcheck"
	"github.com/protoc-gen-micro/micro/runtime/server"
	"github.com/protoc-gen-micro/micro/runtime/status"
)

// TestManyConcurrentCalls runs thousands of unary calls and a few bidi
// streams at once on one client: every reply must match its request, all
// over a single connection.
func TestManyConcurrentCalls(t *testing.T) {
	leakcheck.Check(t)
	var peers sync.Map
	srv := serveGreeter(t, &funcGreeter{
		hello: func(ctx context.Context, in *greeterpb.HelloRequest, out *greeterpb.HelloReply) error {
			if a, ok := server.PeerFromContext(ctx); ok {
				peers.Store(a.Addr.String(), true)
			}
			out.Message = "Hello " + in.Name
			return nil
		},
	})
	g := greeterAt(newTestClient(t), srv.Address())
	ctx, cancel := context.WithTimeout(context.Background(), 25*time.Second)
	defer cancel()

	workers, calls := 200, 50
	if testing.Short() {
		workers, calls = 50, 20
	}
	const streams, perStream = 8, 200
	errs := make(chan error, workers+streams)
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < calls; i++ {
				name := fmt.Sprintf("w%d-c%d-%s", w, i, strings.Repeat("p", (w*31+i)%200))
				rsp, err := g.SayHello(ctx, &greeterpb.HelloRequest{Name: name})
				if err != nil {
					errs <- fmt.Errorf("worker %d call %d: %w", w, i, err)
					return
				}
				if rsp.Message != "Hello "+name {
					errs <- fmt.Errorf("worker %d call %d: got %q for %q", w, i, rsp.Message, name)
					return
				}
			}
		}()
	}
	for s := 0; s < streams; s++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			bs, err := g.Chat(ctx)
			if err != nil {
				errs <- err
				return
			}
			defer bs.Close()
			// Send everything from one goroutine while receiving on this
			// one, so both directions are busy at once.
			sent := make(chan error, 1)
			go func() {
				for i := 0; i < perStream; i++ {
					if err := bs.Send(&greeterpb.HelloRequest{Name: fmt.Sprintf("s%d-%d", s, i)}); err != nil {
						sent <- err
						return
					}
				}
				sent <- bs.CloseSend()
			}()
			for i := 0; i < perStream; i++ {
				m, err := bs.Recv()
				if err != nil {
					errs <- fmt.Errorf("stream %d message %d: %w", s, i, err)
					return
				}
				if want := fmt.Sprintf("Hello s%d-%d", s, i); m.Message != want {
					errs <- fmt.Errorf("stream %d: got %q, want %q", s, m.Message, want)
					return
				}
			}
			if _, err := bs.Recv(); err != io.EOF {
				errs <- fmt.Errorf("stream %d end: %v", s, err)
			}
			if err := <-sent; err != nil {
				errs <- fmt.Errorf("stream %d send: %w", s, err)
			}
		}()
	}
	wg.Wait()
	close(errs)
	n := 0
	for err := range errs {
		if n++; n <= 5 {
			t.Error(err)
		}
	}
	count := 0
	peers.Range(func(k, v any) bool { count++; return true })
	if count != 1 {
		t.Errorf("calls used %d connections, want 1", count)
	}
}

// TestStreamingHandlerPanic: a panic in a streaming handler ends the call
// with Internal, whether or not it had sent messages, and the server keeps
// serving.
func TestStreamingHandlerPanic(t *testing.T) {
	leakcheck.Check(t)
	quietLogs(t)
	srv := serveGreeter(t, &funcGreeter{
		replies: func(ctx context.Context, in *greeterpb.HelloRequest, s greeterpb.Greeter_LotsOfRepliesHandlerStream) error {
			if err := s.Send(&greeterpb.HelloReply{Message: "before"}); err != nil {
				return err
			}
			panic("replies exploded")
		},
		chat: func(ctx context.Context, s greeterpb.Greeter_ChatHandlerStream) error {
			if _, err := s.Recv(); err != nil {
				return err
			}
			panic(fmt.Errorf("chat exploded"))
		},
	})
	g := greeterAt(newTestClient(t), srv.Address())
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	for round := 0; round < 3; round++ {
		rs, err := g.LotsOfReplies(ctx, &greeterpb.HelloRequest{Name: "p"})
		if err != nil {
			t.Fatal(err)
		}
		if m, err := rs.Recv(); err != nil || m.Message != "before" {
			t.Fatalf("message before the panic: %v %v", m, err)
		}
		if _, err := rs.Recv(); status.CodeOf(err) != status.Internal || !strings.Contains(err.Error(), "replies exploded") {
			t.Fatalf("server-stream panic: %v", err)
		}

		bs, err := g.Chat(ctx)
		if err != nil {
			t.Fatal(err)
		}
		bs.Send(&greeterpb.HelloRequest{Name: "p"})
		if _, err := bs.Recv(); status.CodeOf(err) != status.Internal || !strings.Contains(err.Error(), "chat exploded") {
			t.Fatalf("bidi panic: %v", err)
		}
		bs.Close()

		if rsp, err := g.SayHello(ctx, &greeterpb.HelloRequest{Name: "alive"}); err != nil || rsp.Message != "Hello alive" {
			t.Fatalf("unary after panics: %v %v", rsp, err)
		}
	}
}

// quietLogs drops slog output, such as the server's panic reports, until
// the test ends.
func quietLogs(t *testing.T) {
	old := slog.Default()
	slog.SetDefault(slog.New(slog.DiscardHandler))
	t.Cleanup(func() { slog.SetDefault(old) })
}
