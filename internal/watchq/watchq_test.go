package watchq

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/protoc-gen-micro/micro/runtime/registry"
)

func result(i int) *registry.Result {
	return &registry.Result{Action: registry.Create, Service: &registry.Service{Name: fmt.Sprint("svc", i)}}
}

// Results come out in the order they were pushed, however many queue
// before anyone reads: the pusher never blocks and nothing is dropped.
func TestOrderWithoutBound(t *testing.T) {
	w := New("", nil)
	const n = 10000
	for i := range n {
		w.Push(result(i))
	}
	for i := range n {
		r, err := w.Next()
		if err != nil {
			t.Fatal(err)
		}
		if r.Service.Name != fmt.Sprint("svc", i) {
			t.Fatalf("result %d is %s", i, r.Service.Name)
		}
	}
}

// Next blocks until a result arrives, and Stop unblocks it.
func TestNextBlocksUntilPushOrStop(t *testing.T) {
	w := New("", nil)
	got := make(chan error, 2)
	go func() {
		_, err := w.Next()
		got <- err
		_, err = w.Next()
		got <- err
	}()
	select {
	case err := <-got:
		t.Fatalf("Next returned %v with nothing queued", err)
	case <-time.After(20 * time.Millisecond):
	}
	w.Push(result(1))
	if err := <-got; err != nil {
		t.Fatal(err)
	}
	w.Stop()
	select {
	case err := <-got:
		if !errors.Is(err, registry.ErrWatcherStopped) {
			t.Fatalf("Next after Stop: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Stop did not unblock Next")
	}
}

// Stop drops what is queued, runs onStop once however often it is called,
// and Push afterwards does nothing. End stops without onStop.
func TestStopAndEnd(t *testing.T) {
	var stops atomic.Int32
	w := New("", func(*Watcher) { stops.Add(1) })
	w.Push(result(1))
	w.Stop()
	w.Stop()
	w.Push(result(2))
	if _, err := w.Next(); !errors.Is(err, registry.ErrWatcherStopped) {
		t.Fatalf("Next after Stop with results queued: %v", err)
	}
	if n := stops.Load(); n != 1 {
		t.Fatalf("onStop ran %d times", n)
	}
	e := New("", func(*Watcher) { t.Error("End ran onStop") })
	if !e.End() || e.End() {
		t.Fatal("End does not report whether the watch was running")
	}
	e.Stop()
}

// StopOnDone ends the watch when its context ends.
func TestStopOnDone(t *testing.T) {
	stopped := make(chan struct{})
	w := New("", func(*Watcher) { close(stopped) })
	ctx, cancel := context.WithCancel(context.Background())
	w.StopOnDone(ctx)
	cancel()
	select {
	case <-stopped:
	case <-time.After(5 * time.Second):
		t.Fatal("the context ended and the watch did not")
	}
	if _, err := w.Next(); !errors.Is(err, registry.ErrWatcherStopped) {
		t.Fatalf("Next: %v", err)
	}
}

func TestWants(t *testing.T) {
	if all := New("", nil); !all.Wants("a") || !all.Wants("b") {
		t.Error("a watch of every service does not want one")
	}
	if one := New("a", nil); !one.Wants("a") || one.Wants("b") {
		t.Error("a watch of service a wants the wrong services")
	}
}
