package transport

import (
	"sync"
	"sync/atomic"
)

// memBudget bounds the request bytes a whole server holds: the messages
// too large for a stream's initial window, which are admitted one by one,
// and the header lists of open streams. A message that does not fit waits
// in FIFO order, with its stream window closed, until earlier ones are
// consumed; a header list that does not fit refuses its stream.
//
// A nil *memBudget admits everything at once (the client's case: it chose
// whom to call and how many calls to make).
type memBudget struct {
	limit int64
	used  atomic.Int64
	peak  atomic.Int64 // the most ever reserved, for tests and the soak
	// waiting is set while waiters is not empty, so release stays a
	// single atomic add on the common path.
	waiting atomic.Bool

	mu      sync.Mutex
	waiters []budgetWaiter
}

// budgetWaiter is a stream waiting to admit a message of n bytes.
type budgetWaiter struct {
	r   *recvBuffer
	n   int64
	seq uint64 // which of r's messages: a late admission of an earlier one is refused
}

func newMemBudget(limit int64) *memBudget { return &memBudget{limit: limit} }

// reserve takes n bytes for r's message seq, or queues r behind earlier
// waiters. It reports whether the bytes were taken now; otherwise
// r.admit(n, seq) runs once they are.
func (b *memBudget) reserve(r *recvBuffer, n int64, seq uint64) bool {
	if b == nil {
		return true
	}
	if !b.waiting.Load() {
		if u := b.used.Add(n); u <= b.limit {
			b.notePeak(u)
			return true
		}
		b.used.Add(-n)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.waiters = append(b.waiters, budgetWaiter{r, n, seq})
	b.waiting.Store(true)
	// A release between our failed add and the append above saw no
	// waiters, so nobody may be woken for the room it made: look again.
	// The caller holds r's lock, and another stream's admit must not run
	// under it (two readers could wait on each other), so others are
	// admitted from a goroutine of their own; this path is rare.
	if len(b.waiters) == 1 {
		if u := b.used.Add(n); u <= b.limit {
			b.notePeak(u)
			b.waiters = b.waiters[:0]
			b.waiting.Store(false)
			return true
		}
		b.used.Add(-n)
	}
	if head := b.waiters[0]; b.used.Load()+head.n <= b.limit {
		go b.wake()
	}
	return false
}

// cancel removes r from the queue; it reports false if r was not queued
// (it was admitted meanwhile, or never waited).
func (b *memBudget) cancel(r *recvBuffer) bool {
	if b == nil {
		return false
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	for i, w := range b.waiters {
		if w.r == r {
			b.waiters = append(b.waiters[:i], b.waiters[i+1:]...)
			b.waiting.Store(len(b.waiters) > 0)
			return true
		}
	}
	return false
}

// release returns n bytes and admits the waiters that now fit.
func (b *memBudget) release(n int64) {
	if b == nil || n == 0 {
		return
	}
	b.used.Add(-n)
	if b.waiting.Load() {
		b.wake()
	}
}

// wake admits waiters from the head of the queue while they fit. It
// reserves under the lock and calls admit outside it.
func (b *memBudget) wake() {
	b.mu.Lock()
	admitted := b.admitLocked()
	b.mu.Unlock()
	for _, w := range admitted {
		w.r.admit(w.n, w.seq)
	}
}

// admitLocked reserves for the waiters at the head of the queue that fit
// and returns them.
func (b *memBudget) admitLocked() (admitted []budgetWaiter) {
	for len(b.waiters) > 0 {
		w := b.waiters[0]
		u := b.used.Add(w.n)
		if u > b.limit {
			b.used.Add(-w.n)
			break
		}
		b.notePeak(u)
		b.waiters[0] = budgetWaiter{}
		b.waiters = b.waiters[1:]
		admitted = append(admitted, w)
	}
	b.waiting.Store(len(b.waiters) > 0)
	return admitted
}

func (b *memBudget) notePeak(u int64) {
	for {
		p := b.peak.Load()
		if u <= p || b.peak.CompareAndSwap(p, u) {
			return
		}
	}
}

// inUse reports the bytes currently reserved (for tests and soak output).
func (b *memBudget) inUse() int64 { return b.used.Load() }
