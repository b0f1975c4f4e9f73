package echo

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"testing"
	"time"

	benchv1 "github.com/protoc-gen-micro/micro/bench/proto/bench/v1"
	"github.com/protoc-gen-micro/micro/internal/leakcheck"
)

// TestEcho calls every server through every client.
func TestEcho(t *testing.T) {
	leakcheck.Check(t)
	for _, srvImpl := range Impls {
		srv, err := Serve(srvImpl, "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			if err := srv.Stop(); err != nil {
				t.Errorf("stop %s server: %v", srvImpl, err)
			}
		})
		for _, cliImpl := range Impls {
			t.Run(fmt.Sprintf("server=%s/client=%s", srvImpl, cliImpl), func(t *testing.T) {
				c, err := Dial(cliImpl, srv.Addr)
				if err != nil {
					t.Fatal(err)
				}
				defer c.Close()
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				checkEcho(ctx, t, c)
			})
		}
		if got := srv.Counters.RPCs.Load(); got != uint64(len(Impls)*5) {
			t.Errorf("%s server counted %d calls, want %d", srvImpl, got, len(Impls)*5)
		}
	}
}

func checkEcho(ctx context.Context, t *testing.T, c Client) {
	for _, size := range []int{0, 16, 4 << 10} {
		in := &benchv1.Msg{Payload: bytes.Repeat([]byte{'x'}, size)}
		out, err := c.Unary(ctx, in)
		if err != nil {
			t.Fatalf("unary %d B: %v", size, err)
		}
		if !bytes.Equal(out.Payload, in.Payload) {
			t.Fatalf("unary %d B: echoed %d bytes", size, len(out.Payload))
		}
	}

	bidi, err := c.Bidi(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		want := fmt.Sprintf("ping %d", i)
		if err := bidi.Send(&benchv1.Msg{Payload: []byte(want)}); err != nil {
			t.Fatalf("bidi send: %v", err)
		}
		m, err := bidi.Recv()
		if err != nil {
			t.Fatalf("bidi recv: %v", err)
		}
		if string(m.Payload) != want {
			t.Fatalf("bidi echoed %q, want %q", m.Payload, want)
		}
	}
	if err := bidi.CloseSend(); err != nil {
		t.Fatal(err)
	}
	if _, err := bidi.Recv(); err != io.EOF {
		t.Fatalf("bidi after half-close: %v, want io.EOF", err)
	}

	ss, err := c.ServerStream(ctx, &benchv1.Count{N: 5, PayloadSize: 16})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		m, err := ss.Recv()
		if err != nil {
			t.Fatalf("server stream message %d: %v", i, err)
		}
		if len(m.Payload) != 16 {
			t.Fatalf("server stream message %d has %d bytes, want 16", i, len(m.Payload))
		}
	}
	if _, err := ss.Recv(); err != io.EOF {
		t.Fatalf("server stream after 5 messages: %v, want io.EOF", err)
	}
}

// TestLargeMessages echoes a message larger than any client's initial
// stream window, so a server must go on sending a response after its
// handler returned, as the client grants more window.
func TestLargeMessages(t *testing.T) {
	leakcheck.Check(t)
	for _, srvImpl := range Impls {
		for _, cliImpl := range Impls {
			t.Run(fmt.Sprintf("server=%s/client=%s", srvImpl, cliImpl), func(t *testing.T) {
				srv, err := Serve(srvImpl, "127.0.0.1:0")
				if err != nil {
					t.Fatal(err)
				}
				defer srv.Stop()
				c, err := Dial(cliImpl, srv.Addr)
				if err != nil {
					t.Fatal(err)
				}
				defer c.Close()
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				in := &benchv1.Msg{Payload: bytes.Repeat([]byte{'x'}, 2<<20)}
				out, err := c.Unary(ctx, in)
				if err != nil {
					t.Fatalf("unary 2 MiB: %v", err)
				}
				if !bytes.Equal(out.Payload, in.Payload) {
					t.Fatalf("unary 2 MiB: echoed %d bytes", len(out.Payload))
				}
				ss, err := c.ServerStream(ctx, &benchv1.Count{N: 1, PayloadSize: 2 << 20})
				if err != nil {
					t.Fatal(err)
				}
				if m, err := ss.Recv(); err != nil || len(m.Payload) != 2<<20 {
					t.Fatalf("server stream of one 2 MiB message: %v", err)
				}
				if _, err := ss.Recv(); err != io.EOF {
					t.Fatalf("server stream after its message: %v, want io.EOF", err)
				}
			})
		}
	}
}

func TestUnknownImpl(t *testing.T) {
	if _, err := Serve("nope", "127.0.0.1:0"); err == nil {
		t.Error("Serve accepted an unknown implementation")
	}
	if _, err := Dial("nope", "127.0.0.1:1"); err == nil {
		t.Error("Dial accepted an unknown implementation")
	}
}
