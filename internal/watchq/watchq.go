// Package watchq is the registry.Watcher the registry implementations
// share: results queue without bound, in the order the registry pushes
// them, so a slow reader costs memory and never a lost event, and the
// registry never blocks on a reader. It decides nothing about what changed;
// each registry pushes its own results.
package watchq

import (
	"context"
	"sync"

	"github.com/protoc-gen-micro/micro/runtime/registry"
)

// Watcher queues results for one watch.
type Watcher struct {
	service string
	onStop  func(*Watcher)

	mu      sync.Mutex
	cond    sync.Cond // signalled on Push and end; L is &mu
	queue   []*registry.Result
	stopped bool
	stopCtx func() bool // stops the context.AfterFunc that calls Stop
}

// New returns a watcher of one service's results (all services when
// service is empty). onStop runs once when Stop ends the watch, without the
// watcher's lock held, so the registry can forget it under its own lock.
func New(service string, onStop func(*Watcher)) *Watcher {
	w := &Watcher{service: service, onStop: onStop}
	w.cond.L = &w.mu
	return w
}

// StopOnDone ends the watch when ctx ends. Call it once the registry knows
// the watcher, so that onStop finds it. context.AfterFunc runs nothing
// until ctx ends: no goroutine per watch.
func (w *Watcher) StopOnDone(ctx context.Context) {
	stop := context.AfterFunc(ctx, w.Stop)
	w.mu.Lock()
	w.stopCtx = stop
	w.mu.Unlock()
}

// Wants reports whether results about the named service concern the watch.
func (w *Watcher) Wants(name string) bool { return w.service == "" || w.service == name }

// Push queues a result; after the watch ended it does nothing.
func (w *Watcher) Push(r *registry.Result) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.stopped {
		return
	}
	w.queue = append(w.queue, r)
	w.cond.Signal()
}

// Next returns the next result, blocking until there is one, or
// registry.ErrWatcherStopped once the watch has ended.
func (w *Watcher) Next() (*registry.Result, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for !w.stopped && len(w.queue) == 0 {
		w.cond.Wait()
	}
	if w.stopped {
		return nil, registry.ErrWatcherStopped
	}
	res := w.queue[0]
	w.queue[0] = nil
	w.queue = w.queue[1:]
	return res, nil
}

// Stop ends the watch, drops queued results, unblocks Next and tells the
// registry. It may be called more than once.
func (w *Watcher) Stop() {
	if w.End() && w.onStop != nil {
		w.onStop(w)
	}
}

// End ends the watch like Stop without telling the registry (which is
// ending it), and reports whether it was running.
func (w *Watcher) End() bool {
	w.mu.Lock()
	if w.stopped {
		w.mu.Unlock()
		return false
	}
	w.stopped = true
	w.queue = nil
	stopCtx := w.stopCtx
	w.cond.Broadcast()
	w.mu.Unlock()
	if stopCtx != nil {
		stopCtx() // release ctx's reference to w
	}
	return true
}
