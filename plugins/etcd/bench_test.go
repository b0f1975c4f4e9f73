package etcd_test

import (
	"context"
	"fmt"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/protoc-gen-micro/micro/plugins/etcd"
	"github.com/protoc-gen-micro/micro/runtime/registry"
	"github.com/protoc-gen-micro/micro/runtime/registry/registrytest"
)

// The figures of the README's etcd section:
//
//	cd plugins/etcd && go test -run '^$' -bench . -benchtime 1x .
//
// BenchmarkLookup is a throughput benchmark and takes the usual -benchtime.

// BenchmarkRegisterToWatch measures, over 100 registrations, the time from
// Register returning in one client to the Create reaching a watcher in
// another, and reports its median and 99th percentile.
func BenchmarkRegisterToWatch(b *testing.B) {
	p := testPrefix(b)
	writer := newRegistry(b, "", etcd.WithPrefix(p))
	reader := newRegistry(b, "", etcd.WithPrefix(p))
	ctx := context.Background()
	if _, err := reader.ListServices(ctx); err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		const runs = 100
		var lat []time.Duration
		for i := range runs {
			name := fmt.Sprint("svc", i)
			w := registrytest.Watch(b, reader, name)
			start := time.Now()
			if err := writer.Register(ctx, service(name, "v1", node(name, 8000)), 0); err != nil {
				b.Fatal(err)
			}
			expect(b, w, registry.Create, name)
			lat = append(lat, time.Since(start))
			w.Stop()
			if err := writer.Deregister(ctx, ref(name, "v1", name)); err != nil {
				b.Fatal(err)
			}
		}
		slices.Sort(lat)
		b.ReportMetric(float64(lat[runs/2].Microseconds()), "p50-µs")
		b.ReportMetric(float64(lat[runs*99/100].Microseconds()), "p99-µs")
	}
}

// BenchmarkLookup measures GetService answered from the cache: a service
// of three nodes, looked up from every CPU.
func BenchmarkLookup(b *testing.B) {
	p := testPrefix(b)
	r := newRegistry(b, "", etcd.WithPrefix(p))
	ctx := context.Background()
	if err := r.Register(ctx, service("svc", "v1", node("a", 1), node("b", 2), node("c", 3)), 0); err != nil {
		b.Fatal(err)
	}
	if _, err := r.GetService(ctx, "svc"); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := r.GetService(ctx, "svc"); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "lookups/s")
}

// BenchmarkDeadNode measures how long a node registered with a TTL of 2 s
// by a process that is then killed stays visible to a watcher.
func BenchmarkDeadNode(b *testing.B) {
	p := testPrefix(b)
	r := newRegistry(b, "", etcd.WithPrefix(p))
	for b.Loop() {
		w := registrytest.Watch(b, r, "svc")
		child := startHelper(b, shared.addr(), p, 2*time.Second)
		expect(b, w, registry.Create, "doomed")
		if err := child.Process.Signal(syscall.SIGKILL); err != nil {
			b.Fatal(err)
		}
		killed := time.Now()
		expect(b, w, registry.Delete, "doomed")
		b.ReportMetric(time.Since(killed).Seconds(), "s-to-disappear")
		w.Stop()
	}
}
