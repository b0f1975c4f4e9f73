package health

import (
	"context"
	"sync"
	"testing"

	"github.com/protoc-gen-micro/micro/internal/grpcapi"
	"github.com/protoc-gen-micro/micro/runtime/status"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// TestStatusValues: the statuses are the schema's enum numbers.
func TestStatusValues(t *testing.T) {
	for st, want := range map[Status]protoreflect.EnumNumber{Unknown: grpcapi.StatusUnknown, Serving: grpcapi.StatusServing,
		NotServing: grpcapi.StatusNotServing, ServiceUnknown: grpcapi.StatusServiceUnknown} {
		if protoreflect.EnumNumber(st) != want {
			t.Errorf("%v is %d, the schema says %d", st, st, want)
		}
		enum := grpcapi.NewResponse(grpcapi.HealthCheck).Descriptor().Fields().ByName("status").Enum()
		if v := enum.Values().ByNumber(want); v == nil || string(v.Name()) != st.String() {
			t.Errorf("%v: the schema's value %d is %v", st, want, v)
		}
	}
}

// TestWatchersBound opens the default number of watchers, of distinct
// names, and one more: the one more is refused, and once a watcher ends
// there is room again. The Server holds nothing per name once its
// watchers are gone.
func TestWatchersBound(t *testing.T) {
	s := NewServer()
	if s.maxWatchers != 1000 {
		t.Fatalf("default bound %d, want 1000", s.maxWatchers)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	started := make(chan struct{}, s.maxWatchers)
	errs := make(chan error, s.maxWatchers)
	for i := 0; i < s.maxWatchers; i++ {
		wg.Add(1)
		go func(name string) {
			defer wg.Done()
			first := true
			errs <- s.watch(ctx, name, func(Status) error {
				if first {
					first = false
					started <- struct{}{}
				}
				return nil
			})
		}(string(rune('a'+i%26)) + string(rune(i)))
	}
	for i := 0; i < s.maxWatchers; i++ {
		<-started
	}
	err := s.watch(ctx, "one more", func(Status) error { return nil })
	if status.CodeOf(err) != status.ResourceExhausted {
		t.Fatalf("watcher %d: %v, want RESOURCE_EXHAUSTED", s.maxWatchers+1, err)
	}
	cancel()
	wg.Wait()
	close(errs)
	for err := range errs {
		if status.CodeOf(err) != status.Canceled {
			t.Fatalf("watcher ended with %v", err)
		}
	}
	s.mu.Lock()
	n, names := s.nwatchers, len(s.watchers)
	s.mu.Unlock()
	if n != 0 || names != 0 {
		t.Fatalf("after the watchers ended: %d watchers, %d names held", n, names)
	}
}

// TestSlowWatcher: a watcher that does not take what it is sent does not
// block SetServingStatus, and is sent only the latest status when it
// takes again.
func TestSlowWatcher(t *testing.T) {
	s := NewServer()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sent := make(chan Status)
	done := make(chan error, 1)
	go func() {
		done <- s.watch(ctx, "a", func(st Status) error { sent <- st; return nil })
	}()
	if st := <-sent; st != ServiceUnknown {
		t.Fatalf("first status %v", st)
	}
	// The watcher is now stuck on its first send of the loop below.
	for i := 0; i < 10000; i++ {
		s.SetServingStatus("a", Status(i%2+1))
	}
	s.SetServingStatus("a", NotServing)
	s.SetServingStatus("a", Serving)
	// At most one status was taken before the last; then the latest.
	got := <-sent
	if got != Serving {
		if got = <-sent; got != Serving {
			t.Fatalf("after the burst the watcher was sent %v, want SERVING", got)
		}
	}
	select {
	case st := <-sent:
		t.Fatalf("a stale status %v was queued", st)
	default:
	}
	cancel()
	if err := <-done; status.CodeOf(err) != status.Canceled {
		t.Fatal(err)
	}
}
