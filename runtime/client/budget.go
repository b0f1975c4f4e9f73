package client

import (
	"sync"
	"sync/atomic"
	"time"
)

// retryBurst is how many retries a client can save up, so that a quiet
// spell does not bank an unbounded burst for the next outage.
const retryBurst = 100

// retryBudget is a token bucket shared by a client's calls: each call adds
// ratio of a token, each retry takes a whole one, and perSecond tokens
// trickle in whatever the traffic, so that a client making few calls can
// still fail over. Retries therefore stay below ratio × calls + perSecond
// per second, plus a saved-up burst: an outage cannot multiply the load.
// Tokens are counted in thousandths.
type retryBudget struct {
	tokens  atomic.Int64
	deposit int64 // per call
	refill  int64 // per second
	max     int64

	mu   sync.Mutex // serializes time-based refills
	last time.Time  // refilled up to then
	now  func() time.Time
}

func newRetryBudget(ratio float64, perSecond int, now func() time.Time) *retryBudget {
	b := &retryBudget{
		deposit: int64(max(ratio, 0) * 1000),
		refill:  int64(max(perSecond, 0)) * 1000,
		now:     now,
		last:    now(),
	}
	b.max = max(retryBurst*1000, b.refill)
	b.tokens.Store(b.refill) // a new client can fail over at once
	return b
}

// call records a call. Once the bucket is full it only reads the count, so
// concurrent calls do not contend on it.
func (b *retryBudget) call() {
	if b.deposit > 0 && b.tokens.Load() < b.max {
		b.tokens.Add(b.deposit)
	}
}

// retry takes a token for a retry, reporting false when there is none.
// Retries are rare, so crediting the time-based tokens first, under a
// lock, costs little; crediting them only when the bucket is empty would
// let a bucket full of deposits be topped up by time a second time over.
func (b *retryBudget) retry() bool {
	if b.refill > 0 {
		b.mu.Lock()
		now := b.now()
		// Beyond this long the bucket would be full anyway; the bound
		// keeps the product below from overflowing.
		full := time.Duration(b.max/b.refill+1) * time.Second
		elapsed := min(now.Sub(b.last), full)
		if add := int64(elapsed) * b.refill / int64(time.Second); add > 0 {
			b.last = now
			for {
				t := b.tokens.Load()
				if b.tokens.CompareAndSwap(t, min(t+add, max(t, b.max))) {
					break
				}
			}
		}
		b.mu.Unlock()
	}
	return b.take()
}

func (b *retryBudget) take() bool {
	for {
		t := b.tokens.Load()
		if t < 1000 {
			return false
		}
		if b.tokens.CompareAndSwap(t, t-1000) {
			return true
		}
	}
}
