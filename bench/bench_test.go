package bench

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"testing"
	"time"

	"github.com/protoc-gen-micro/micro/bench/internal/echo"
	benchv1 "github.com/protoc-gen-micro/micro/bench/proto/bench/v1"
)

// A row is one kind of call. Unary rows count one call per op and run in
// parallel (b.RunParallel, parallelism goroutines per GOMAXPROCS), so ns/op
// is the inverse of throughput. The bidi row counts one ping-pong round trip
// on a single open stream per op, so ns/op is a round trip's latency. The
// server-stream row counts one received message per op, from calls of
// streamN messages each. SetBytes is the request payload for unary rows and
// the message payload for the streaming rows.
type row struct {
	name        string
	run         func(b *testing.B, c echo.Client)
	parallelism int // goroutines per GOMAXPROCS for unary rows
	probeSize   int // payload of a probing unary call; 0 for none
}

const streamN = 1000

var rows = []row{
	{name: "unary-16B", run: unary(16), parallelism: 8},
	{name: "unary-4KiB", run: unary(4 << 10), parallelism: 8},
	{name: "unary-1MiB", run: unary(1 << 20), parallelism: 1, probeSize: 1 << 20},
	{name: "bidi-16B", run: bidiPingPong(16)},
	{name: fmt.Sprintf("serverstream-%dx16B", streamN), run: serverStream(16)},
}

// BenchmarkServer drives each server with the same client, grpc-go's.
// Names read BenchmarkServer/rpc=ROW/impl=SERVER, so that benchstat can
// put the servers side by side (-col /impl).
// Each client keeps one connection for all rows.
func BenchmarkServer(b *testing.B) {
	clients := map[string]echo.Client{}
	for impl, srv := range startServers(b, echo.Impls) {
		clients[impl] = dial(b, "grpc", srv.Addr)
	}
	for _, r := range rows {
		for _, impl := range echo.Impls {
			b.Run("rpc="+r.name+"/impl="+impl, func(b *testing.B) { r.bench(b, clients[impl]) })
		}
	}
}

// BenchmarkClient drives the same server, grpc-go's, with each client.
func BenchmarkClient(b *testing.B) {
	srv := startServers(b, []string{"grpc"})["grpc"]
	clients := map[string]echo.Client{}
	for _, impl := range echo.Impls {
		clients[impl] = dial(b, impl, srv.Addr)
	}
	for _, r := range rows {
		for _, impl := range echo.Impls {
			b.Run("rpc="+r.name+"/impl="+impl, func(b *testing.B) { r.bench(b, clients[impl]) })
		}
	}
}

func (r row) bench(b *testing.B, c echo.Client) {
	probe(b, c, r)
	b.ReportAllocs()
	if r.parallelism > 0 {
		b.SetParallelism(r.parallelism)
	}
	r.run(b, c)
}

// probe makes one call of the row's size with a deadline, so that a pair
// that cannot complete it (a flow-control hang, say) is skipped, saying
// why, instead of hanging the whole run.
func probe(b *testing.B, c echo.Client, r row) {
	b.Helper()
	if r.probeSize == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := c.Unary(ctx, &benchv1.Msg{Payload: make([]byte, r.probeSize)}); err != nil {
		// Say so in the benchmark output too, which omits skips without -v.
		fmt.Fprintf(os.Stderr, "SKIP %s: a single %d-byte call fails: %v\n", b.Name(), r.probeSize, err)
		b.Skipf("a single %d-byte call fails: %v", r.probeSize, err)
	}
}

func startServers(b *testing.B, impls []string) map[string]*echo.Server {
	servers := map[string]*echo.Server{}
	for _, impl := range impls {
		s, err := echo.Serve(impl, "127.0.0.1:0")
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { s.Stop() })
		servers[impl] = s
	}
	return servers
}

func dial(b *testing.B, impl, addr string) echo.Client {
	c, err := echo.Dial(impl, addr)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { c.Close() })
	// Connect before timing.
	if _, err := c.Unary(context.Background(), &benchv1.Msg{}); err != nil {
		b.Fatal(err)
	}
	return c
}

func unary(size int) func(*testing.B, echo.Client) {
	return func(b *testing.B, c echo.Client) {
		payload := bytes.Repeat([]byte{'x'}, size)
		b.SetBytes(int64(size))
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			ctx := context.Background()
			in := &benchv1.Msg{Payload: payload}
			for pb.Next() {
				out, err := c.Unary(ctx, in)
				if err != nil {
					b.Error(err)
					return
				}
				if len(out.Payload) != size {
					b.Errorf("echoed %d bytes, want %d", len(out.Payload), size)
					return
				}
			}
		})
	}
}

func bidiPingPong(size int) func(*testing.B, echo.Client) {
	return func(b *testing.B, c echo.Client) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		s, err := c.Bidi(ctx)
		if err != nil {
			b.Fatal(err)
		}
		in := &benchv1.Msg{Payload: make([]byte, size)}
		b.SetBytes(int64(size))
		b.ResetTimer()
		for range b.N {
			if err := s.Send(in); err != nil {
				b.Fatal(err)
			}
			if _, err := s.Recv(); err != nil {
				b.Fatal(err)
			}
		}
		b.StopTimer()
		if err := s.CloseSend(); err != nil {
			b.Fatal(err)
		}
		if _, err := s.Recv(); err != io.EOF {
			b.Fatalf("after half-close: %v, want io.EOF", err)
		}
	}
}

func serverStream(size int) func(*testing.B, echo.Client) {
	return func(b *testing.B, c echo.Client) {
		ctx := context.Background()
		b.SetBytes(int64(size))
		b.ResetTimer()
		for left := b.N; left > 0; left -= streamN {
			n := min(left, streamN)
			s, err := c.ServerStream(ctx, &benchv1.Count{N: uint32(n), PayloadSize: uint32(size)})
			if err != nil {
				b.Fatal(err)
			}
			for got := 0; ; got++ {
				_, err := s.Recv()
				if err == io.EOF {
					if got != n {
						b.Fatalf("received %d messages, want %d", got, n)
					}
					break
				}
				if err != nil {
					b.Fatal(err)
				}
			}
		}
	}
}
