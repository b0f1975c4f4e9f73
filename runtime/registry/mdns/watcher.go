package mdns

import (
	"sync"

	"github.com/protoc-gen-micro/micro/runtime/registry"
)

// watcher queues results without bound: the registry appends under its own
// lock, so every watcher sees changes in the order they happened, and a slow
// reader never makes the registry block or drop a result.
type watcher struct {
	registry *Registry
	service  string // only this service's results; all when empty

	mu      sync.Mutex
	stopCtx func() bool // stops the context.AfterFunc that calls Stop
	cond    sync.Cond   // signalled on push and Stop; L is &mu
	queue   []*registry.Result
	stopped bool
}

// Next returns the next result, blocking until there is one, or
// registry.ErrWatcherStopped once the watch has ended.
func (w *watcher) Next() (*registry.Result, error) {
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

// Stop ends the watch, drops queued results and unblocks Next. It may be
// called more than once.
func (w *watcher) Stop() {
	if !w.end() {
		return
	}
	// Not under w.mu: the registry locks its mutex before a watcher's.
	w.registry.mu.Lock()
	delete(w.registry.watchers, w)
	w.registry.mu.Unlock()
}

// end marks the watcher stopped and reports whether it was running.
func (w *watcher) end() bool {
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

func (w *watcher) push(r *registry.Result) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.stopped {
		return
	}
	w.queue = append(w.queue, r)
	w.cond.Signal()
}
