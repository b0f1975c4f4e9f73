package selector_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/protoc-gen-micro/micro/runtime/registry/memory"
	"github.com/protoc-gen-micro/micro/runtime/selector"
)

// BenchmarkSelect measures a Select and its Mark from a warm cache, for
// each strategy and a small and a large service.
func BenchmarkSelect(b *testing.B) {
	for _, st := range strategies {
		for _, size := range []int{3, 100} {
			s := newSelector(b, memory.NewRegistry(memory.WithServices(service(addrs(size)...))), st)
			ctx := selector.WithHashKey(context.Background(), "user-1234")
			pick(b, s, ctx)
			b.Run(fmt.Sprintf("%v/%d", st, size), func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					n, err := s.Select(ctx, "svc", nil)
					if err != nil {
						b.Fatal(err)
					}
					s.Mark("svc", n, nil)
				}
			})
			b.Run(fmt.Sprintf("%v/%d/parallel", st, size), func(b *testing.B) {
				b.ReportAllocs()
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						n, err := s.Select(ctx, "svc", nil)
						if err != nil {
							b.Error(err)
							return
						}
						s.Mark("svc", n, nil)
					}
				})
			})
		}
	}
}

// BenchmarkSelectExclude is a retry's Select: one node excluded.
func BenchmarkSelectExclude(b *testing.B) {
	for _, st := range strategies {
		for _, size := range []int{3, 100} {
			s := newSelector(b, memory.NewRegistry(memory.WithServices(service(addrs(size)...))), st)
			ctx := selector.WithHashKey(context.Background(), "user-1234")
			exclude := []string{addrs(size)[1]}
			pick(b, s, ctx)
			b.Run(fmt.Sprintf("%v/%d", st, size), func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					n, err := s.Select(ctx, "svc", exclude)
					if err != nil {
						b.Fatal(err)
					}
					s.Mark("svc", n, nil)
				}
			})
		}
	}
}
