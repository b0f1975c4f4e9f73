package direct_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/protoc-gen-micro/micro/runtime/broker"
	"github.com/protoc-gen-micro/micro/runtime/registry"
	"github.com/protoc-gen-micro/micro/runtime/registry/memory"
)

// BenchmarkPublish measures one publication from one broker to a
// subscription of another over loopback: "serial" publishes synchronously
// from one goroutine (the latency of an acknowledged delivery), "parallel"
// from 16 goroutines, "async" without waiting; allocs/op counts both sides.
func BenchmarkPublish(b *testing.B) {
	for _, mode := range []string{"serial", "parallel", "async"} {
		b.Run(mode, func(b *testing.B) {
			reg := memory.NewRegistry()
			pub, sub := newBenchBroker(b, reg), newBenchBroker(b, reg)
			var got atomic.Int64
			done := make(chan struct{}, 1)
			var want atomic.Int64
			want.Store(-1)
			if _, err := sub.Subscribe("bench", func(context.Context, *broker.Message) error {
				if got.Add(1) == want.Load() {
					done <- struct{}{}
				}
				return nil
			}); err != nil {
				b.Fatal(err)
			}
			body := make([]byte, 128)
			ctx := context.Background()
			if err := pub.Publish(ctx, "bench", &broker.Message{Body: body}); err != nil {
				b.Fatal(err)
			}
			got.Store(0)
			b.SetBytes(int64(len(body)))
			b.ReportAllocs()
			b.ResetTimer()
			switch mode {
			case "serial":
				for range b.N {
					if err := pub.Publish(ctx, "bench", &broker.Message{Body: body}); err != nil {
						b.Fatal(err)
					}
				}
			case "parallel":
				b.SetParallelism(8)
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						if err := pub.Publish(ctx, "bench", &broker.Message{Body: body}); err != nil {
							b.Error(err)
							return
						}
					}
				})
			case "async":
				want.Store(int64(b.N))
				async := broker.WithAsync(nil)
				for range b.N {
					if err := pub.Publish(ctx, "bench", &broker.Message{Body: body}, async); err != nil {
						b.Fatal(err)
					}
				}
				if got.Load() < int64(b.N) {
					select {
					case <-done:
					case <-time.After(30 * time.Second):
						b.Fatalf("%d of %d delivered", got.Load(), b.N)
					}
				}
			}
		})
	}
}

func newBenchBroker(b *testing.B, reg registry.Registry) broker.Broker {
	br := newBrokerTB(b, reg)
	return br
}
