package client

import (
	"testing"
	"time"
)

func TestRetryBudgetTokens(t *testing.T) {
	clock := time.Unix(1000, 0)
	now := func() time.Time { return clock }
	drain := func(b *retryBudget) int {
		n := 0
		for n < 10000 && b.retry() {
			n++
		}
		return n
	}

	// A new client may retry minPerSecond times at once.
	b := newRetryBudget(0.2, 10, now)
	if n := drain(b); n != 10 {
		t.Fatalf("a new budget allowed %d retries, want 10", n)
	}
	// Each call adds a fifth of a retry.
	for range 50 {
		b.call()
	}
	if n := drain(b); n != 10 {
		t.Fatalf("50 calls at 20%% allowed %d retries, want 10", n)
	}
	// Time adds minPerSecond each second, fractions included.
	clock = clock.Add(1500 * time.Millisecond)
	if n := drain(b); n != 15 {
		t.Fatalf("1.5 s at 10/s allowed %d retries, want 15", n)
	}
	// Savings are capped, however long the quiet or busy spell.
	clock = clock.Add(24 * time.Hour)
	for range 100000 {
		b.call()
	}
	if n := drain(b); n != retryBurst {
		t.Fatalf("after a long spell, %d retries, want the burst of %d", n, retryBurst)
	}
	// A minimum above the burst raises the cap to one second's worth.
	if n := drain(newRetryBudget(0, 500, now)); n != 500 {
		t.Fatalf("WithRetryBudget(0, 500) allowed %d retries at once, want 500", n)
	}

	// WithRetryBudget(0, 0) allows none, ever.
	off := newRetryBudget(0, 0, now)
	for range 1000 {
		off.call()
	}
	clock = clock.Add(time.Hour)
	if off.retry() {
		t.Fatal("WithRetryBudget(0, 0) allowed a retry")
	}
}

func TestRetryBudgetCallDoesNotAllocate(t *testing.T) {
	b := newRetryBudget(0.2, 10, time.Now)
	if a := testing.AllocsPerRun(1000, b.call); a != 0 {
		t.Fatalf("call allocates %v", a)
	}
}
