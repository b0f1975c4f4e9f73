package client_test

import (
	"context"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/protoc-gen-micro/micro/examples/greeter/greeterpb"
	"github.com/protoc-gen-micro/micro/internal/leakcheck"
	"github.com/protoc-gen-micro/micro/runtime/client"
	"github.com/protoc-gen-micro/micro/runtime/status"
	"golang.org/x/net/http2"
)

// fakeServer is a hand-driven HTTP/2 server that never answers a call; it
// reports the streams the client opens and the RST_STREAMs it sends.
type fakeServer struct {
	// closeOnHeaders makes the server drop the connection as soon as a
	// stream opens, as a crashing node would.
	closeOnHeaders bool

	ln      net.Listener
	opened  chan uint32
	resets  chan *http2.RSTStreamFrame
	mu      sync.Mutex
	conns   []net.Conn
	stopped sync.WaitGroup
}

func startFakeServer(t *testing.T, closeOnHeaders bool) *fakeServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	fs := &fakeServer{
		closeOnHeaders: closeOnHeaders,
		ln:             ln,
		opened:         make(chan uint32, 16),
		resets:         make(chan *http2.RSTStreamFrame, 16),
	}
	fs.stopped.Add(1)
	go fs.accept()
	t.Cleanup(fs.close)
	return fs
}

func (fs *fakeServer) accept() {
	defer fs.stopped.Done()
	for {
		c, err := fs.ln.Accept()
		if err != nil {
			return
		}
		fs.mu.Lock()
		fs.conns = append(fs.conns, c)
		fs.mu.Unlock()
		fs.stopped.Add(1)
		go fs.serve(c)
	}
}

func (fs *fakeServer) serve(c net.Conn) {
	defer fs.stopped.Done()
	preface := make([]byte, len(http2.ClientPreface))
	if _, err := io.ReadFull(c, preface); err != nil || string(preface) != http2.ClientPreface {
		c.Close()
		return
	}
	fr := http2.NewFramer(c, c)
	if err := fr.WriteSettings(); err != nil {
		return
	}
	for {
		f, err := fr.ReadFrame()
		if err != nil {
			return
		}
		switch f := f.(type) {
		case *http2.SettingsFrame:
			if !f.IsAck() {
				fr.WriteSettingsAck()
			}
		case *http2.HeadersFrame:
			if fs.closeOnHeaders {
				c.Close()
				return
			}
			fs.opened <- f.StreamID
		case *http2.RSTStreamFrame:
			rst := *f
			fs.resets <- &rst
		}
	}
}

func (fs *fakeServer) close() {
	fs.ln.Close()
	fs.mu.Lock()
	for _, c := range fs.conns {
		c.Close()
	}
	fs.mu.Unlock()
	fs.stopped.Wait()
}

// TestClientSendsRSTCancel checks on the wire that cancelling a call's
// context resets its stream with CANCEL, whether or not the client has
// finished sending.
func TestClientSendsRSTCancel(t *testing.T) {
	leakcheck.Check(t)
	fs := startFakeServer(t, false)
	g := greeterAt(newTestClient(t), fs.ln.Addr().String())

	for _, tc := range []struct {
		name string
		// start begins a call with ctx and returns its result.
		start func(ctx context.Context) error
	}{
		{"unary", func(ctx context.Context) error {
			_, err := g.SayHello(ctx, &greeterpb.HelloRequest{Name: "x"})
			return err
		}},
		{"server-stream", func(ctx context.Context) error {
			rs, err := g.LotsOfReplies(ctx, &greeterpb.HelloRequest{Name: "x"})
			if err != nil {
				return err
			}
			_, err = rs.Recv()
			return err
		}},
		{"bidi-open", func(ctx context.Context) error {
			bs, err := g.Chat(ctx)
			if err != nil {
				return err
			}
			if err := bs.Send(&greeterpb.HelloRequest{Name: "x"}); err != nil {
				return err
			}
			<-ctx.Done() // nobody reads: the stream must reset itself
			return ctx.Err()
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			errc := make(chan error, 1)
			go func() { errc <- tc.start(ctx) }()
			var id uint32
			select {
			case id = <-fs.opened:
			case <-time.After(5 * time.Second):
				t.Fatal("the client never opened a stream")
			}
			cancel()
			if err := <-errc; status.CodeOf(err) != status.Canceled {
				t.Errorf("call returned %v, want Canceled", err)
			}
			select {
			case rst := <-fs.resets:
				if rst.StreamID != id || rst.ErrCode != http2.ErrCodeCancel {
					t.Fatalf("got RST_STREAM(%d, %v), want RST_STREAM(%d, CANCEL)", rst.StreamID, rst.ErrCode, id)
				}
			case <-time.After(time.Second):
				t.Fatalf("no RST_STREAM for stream %d after the context was cancelled", id)
			}
		})
	}
}

// TestRetryIdempotentAfterConnectionLoss: spec.Method documents that the
// client uses Idempotency to retry, on another node, a call that may have
// reached a handler. SayHello is NO_SIDE_EFFECTS, so a call whose
// connection drops after the request was sent must be retried elsewhere.
func TestRetryIdempotentAfterConnectionLoss(t *testing.T) {
	leakcheck.Check(t)
	fs := startFakeServer(t, true)
	srv := serveGreeter(t, nil)
	reg := registryOf(fs.ln.Addr().String(), srv.Address())
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	failed := 0
	for i := 0; i < 16; i++ {
		c := newTestClient(t, client.WithRegistry(reg))
		_, err := greeterpb.NewGreeterService("greeter", c).SayHello(ctx, &greeterpb.HelloRequest{Name: "i"})
		if err != nil {
			failed++
			if status.CodeOf(err) != status.Unavailable {
				t.Fatalf("unexpected error: %v", err)
			}
		}
	}
	if failed > 0 {
		t.Fatalf("%d of 16 NO_SIDE_EFFECTS calls failed when one of two nodes dropped the connection after the request was sent; spec.Idempotency says they may be retried on another node", failed)
	}
}

// TestConnectionClosedWhileCallStarts: a server that drops each connection
// right after it opens races the client's first call on it. Whichever
// wins, the call must fail promptly with Unavailable; a call whose stream
// is opened just as the connection closes must not be left waiting for
// its deadline (or forever, without one).
func TestConnectionClosedWhileCallStarts(t *testing.T) {
	leakcheck.Check(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			// Read the preface and answer with SETTINGS, so that Dial
			// succeeds, then drop the connection.
			b := make([]byte, len(http2.ClientPreface))
			c.SetReadDeadline(time.Now().Add(time.Second))
			io.ReadFull(c, b)
			http2.NewFramer(c, nil).WriteSettings()
			c.Close()
		}
	}()
	t.Cleanup(func() { ln.Close(); wg.Wait() })

	for i := 0; i < 300; i++ {
		c := client.NewClient()
		// The deadline only stops a hang; a loaded machine must not turn
		// a prompt Unavailable into DeadlineExceeded.
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_, err := greeterAt(c, ln.Addr().String()).SayHello(ctx, &greeterpb.HelloRequest{Name: "x"}, client.WithRetries(0))
		cancel()
		c.(io.Closer).Close()
		if status.CodeOf(err) != status.Unavailable {
			t.Fatalf("call %d on a connection the server closed at once: %v, want Unavailable", i, err)
		}
	}
}
