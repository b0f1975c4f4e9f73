package direct_test

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"

	"github.com/protoc-gen-micro/micro/internal/leakcheck"
	"github.com/protoc-gen-micro/micro/runtime/broker"
	"github.com/protoc-gen-micro/micro/runtime/broker/direct"
	"github.com/protoc-gen-micro/micro/runtime/registry"
	"github.com/protoc-gen-micro/micro/runtime/registry/memory"
)

// capture is a slog.Handler that keeps every record.
type capture struct {
	mu      sync.Mutex
	records []slog.Record
}

func (c *capture) Enabled(context.Context, slog.Level) bool { return true }
func (c *capture) Handle(_ context.Context, r slog.Record) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.records = append(c.records, r.Clone())
	return nil
}
func (c *capture) WithAttrs([]slog.Attr) slog.Handler { return c }
func (c *capture) WithGroup(string) slog.Handler      { return c }

// noSubscriber returns the attributes of the INFO records saying a topic
// had no subscriber, by topic.
func (c *capture) noSubscriber() map[string][]map[string]string {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := map[string][]map[string]string{}
	for _, r := range c.records {
		if r.Level != slog.LevelInfo || !strings.Contains(r.Message, "no subscriber") {
			continue
		}
		attrs := map[string]string{}
		r.Attrs(func(a slog.Attr) bool {
			attrs[a.Key] = a.Value.String()
			return true
		})
		out[attrs["topic"]] = append(out[attrs["topic"]], attrs)
	}
	return out
}

// Publishing to a topic nobody subscribes to is said once per topic at
// INFO, with the registry asked and, for the memory registry, the hint
// that subscribers in other processes are invisible to it; publishing
// again says nothing more.
func TestNoSubscriberLoggedOncePerTopic(t *testing.T) {
	leakcheck.Check(t)
	logs := &capture{}
	defer slog.SetDefault(slog.Default())
	slog.SetDefault(slog.New(logs))

	b := direct.NewBroker(direct.WithRegistry(memory.NewRegistry()), direct.WithAddress("127.0.0.1:0"))
	defer b.Disconnect()
	ctx := context.Background()
	for i := range 50 {
		for _, topic := range []string{"orders", "audit"} {
			if err := b.Publish(ctx, topic, &broker.Message{Body: []byte{byte(i)}}); err != nil {
				t.Fatal(err)
			}
		}
	}
	got := logs.noSubscriber()
	if len(got) != 2 {
		t.Fatalf("records by topic: %v, want one for each of orders and audit", got)
	}
	for _, topic := range []string{"orders", "audit"} {
		recs := got[topic]
		if len(recs) != 1 {
			t.Fatalf("topic %s: %d records, want 1: %v", topic, len(recs), recs)
		}
		if r := recs[0]; r["registry"] != "memory" || !strings.Contains(r["hint"], "subscribers in other processes are invisible") {
			t.Errorf("topic %s: %v, want registry memory and the per-process hint", topic, r)
		}
	}
	if n := direct.StatsOf(b).NoSubscribers; n != 100 {
		t.Fatalf("Stats().NoSubscribers = %d, want 100", n)
	}
}

// renamed is a registry under another name.
type renamed struct{ registry.Registry }

func (renamed) String() string { return "shared" }

// With another registry the record carries what its lookup said and the
// hint that both sides must share it.
func TestNoSubscriberLogCarriesLookup(t *testing.T) {
	leakcheck.Check(t)
	logs := &capture{}
	defer slog.SetDefault(slog.Default())
	slog.SetDefault(slog.New(logs))

	b := direct.NewBroker(direct.WithRegistry(renamed{memory.NewRegistry()}), direct.WithAddress("127.0.0.1:0"))
	defer b.Disconnect()
	for range 3 {
		if err := b.Publish(context.Background(), "orders", &broker.Message{}); err != nil {
			t.Fatal(err)
		}
	}
	recs := logs.noSubscriber()["orders"]
	if len(recs) != 1 {
		t.Fatalf("%d records, want 1: %v", len(recs), recs)
	}
	r := recs[0]
	if r["registry"] != "shared" || !strings.Contains(r["lookup"], `service "micro.broker.orders" not found`) || !strings.Contains(r["hint"], "same registry") {
		t.Fatalf("record %v, want registry shared, its lookup's error and the shared-registry hint", r)
	}
}
