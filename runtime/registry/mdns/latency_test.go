package mdns_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/protoc-gen-micro/micro/internal/leakcheck"
	"github.com/protoc-gen-micro/micro/runtime/registry"
	"github.com/protoc-gen-micro/micro/runtime/registry/registrytest"
)

// TestLatency measures, over 100 runs, the time from Register on one
// registry to the Create at another registry's watcher, and from
// Deregister (the goodbye) to the Delete. It prints the figures and
// asserts nothing about them:
//
//	go test -run TestLatency -v ./runtime/registry/mdns
func TestLatency(t *testing.T) {
	leakcheck.Check(t)
	ctx := context.Background()
	a, b := newRegistry(t), newRegistry(t)
	w := registrytest.Watch(t, b, "latency")
	registrytest.Watch(t, a, "") // opens a's sockets: the figures are for running registries
	const runs = 100
	var created, deleted []time.Duration
	for i := range runs {
		s := service("latency", "v1", node(fmt.Sprintf("latency-%03d", i), ":7100"))
		start := time.Now()
		if err := a.Register(ctx, s, 0); err != nil {
			t.Fatal(err)
		}
		expect(t, w, registry.Create, s.Nodes[0].ID)
		created = append(created, time.Since(start))

		start = time.Now()
		if err := a.Deregister(ctx, s); err != nil {
			t.Fatal(err)
		}
		expect(t, w, registry.Delete, s.Nodes[0].ID)
		deleted = append(deleted, time.Since(start))
	}
	t.Logf("Register → Create:   p50 %v  p99 %v  max %v (%d runs)", pct(created, 50), pct(created, 99), pct(created, 100), runs)
	t.Logf("Deregister → Delete: p50 %v  p99 %v  max %v (%d runs)", pct(deleted, 50), pct(deleted, 99), pct(deleted, 100), runs)
}

// pct returns the p-th percentile (nearest rank).
func pct(ds []time.Duration, p int) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	i := (p*len(s)+99)/100 - 1
	return s[max(i, 0)].Round(time.Microsecond)
}
