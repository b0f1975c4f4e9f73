package etcd

import (
	"context"
	"sync"

	"github.com/protoc-gen-micro/micro/runtime/registry"
)

// watcher queues results for one watch without bound, in the order the
// cache pushes them: a slow reader costs memory and never a lost event,
// and the cache never blocks on a reader. (It is this module's copy of the
// core registries' internal queue, which a plug-in module cannot import.)
type watcher struct {
	service string
	onStop  func(*watcher)

	mu      sync.Mutex
	cond    sync.Cond // signalled on push and end; L is &mu
	queue   []*registry.Result
	stopped bool
	stopCtx func() bool
}

func newWatcher(service string, onStop func(*watcher)) *watcher {
	w := &watcher{service: service, onStop: onStop}
	w.cond.L = &w.mu
	return w
}

// stopOnDone ends the watch when ctx ends, without a goroutine per watch.
func (w *watcher) stopOnDone(ctx context.Context) {
	stop := context.AfterFunc(ctx, w.Stop)
	w.mu.Lock()
	w.stopCtx = stop
	w.mu.Unlock()
}

func (w *watcher) wants(name string) bool { return w.service == "" || w.service == name }

func (w *watcher) push(r *registry.Result) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.stopped {
		w.queue = append(w.queue, r)
		w.cond.Signal()
	}
}

// Next returns the next result, or registry.ErrWatcherStopped once the
// watch has ended.
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

// Stop ends the watch; it may be called more than once.
func (w *watcher) Stop() {
	if w.end() && w.onStop != nil {
		w.onStop(w)
	}
}

// end ends the watch without telling the registry and reports whether it
// was running.
func (w *watcher) end() bool {
	w.mu.Lock()
	if w.stopped {
		w.mu.Unlock()
		return false
	}
	w.stopped = true
	w.queue = nil
	stop := w.stopCtx
	w.cond.Broadcast()
	w.mu.Unlock()
	if stop != nil {
		stop()
	}
	return true
}
