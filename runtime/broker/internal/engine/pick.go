package engine

import (
	"math/rand/v2"
	"slices"
	"time"

	"github.com/protoc-gen-micro/micro/internal/rendezvous"
	"github.com/protoc-gen-micro/micro/runtime/selector"
)

// Ejection bounds, as the selector's: a member that cannot be reached is
// passed over for minEject, twice as long after each failure once the
// ejection has ended, up to maxEject; an acknowledgement forgets it.
const (
	minEject = time.Second
	maxEject = 30 * time.Second
)

// pick chooses the member of g a message goes to: never one in tried; one
// other than avoid and not ejected if there is such a member, else avoid,
// else an ejected one (one that may have recovered beats giving up). It
// returns nil when every member was tried.
func (p *Publisher) pick(g *Group, tried []string, avoid, key string) *Target {
	if g == nil || len(g.Members) == 0 {
		return nil
	}
	var now int64
	if p.ejected.Load() > 0 {
		now = time.Now().UnixNano()
	}
	for pass := 0; pass < 3; pass++ {
		ok := func(t *Target) bool {
			if len(tried) > 0 && slices.Contains(tried, t.ID) {
				return false
			}
			if pass == 0 && t.ID == avoid && avoid != "" {
				return false
			}
			return pass == 2 || now == 0 || t.st.until.Load() <= now
		}
		if t := p.choose(g, key, ok); t != nil {
			return t
		}
	}
	return nil
}

// choose applies the strategy to the members ok accepts.
func (p *Publisher) choose(g *Group, key string, ok func(*Target) bool) *Target {
	ms := g.Members
	n := 0
	for _, t := range ms {
		if ok(t) {
			n++
		}
	}
	if n == 0 {
		return nil
	}
	nth := func(k int) *Target {
		for _, t := range ms {
			if ok(t) {
				if k == 0 {
					return t
				}
				k--
			}
		}
		return nil
	}
	strategy := p.cfg.Strategy
	if key != "" {
		strategy = selector.ConsistentHash
	}
	switch strategy {
	case selector.RoundRobin:
		return nth(int(g.rr.Add(1) % uint64(n)))
	case selector.ConsistentHash:
		if key == "" {
			break
		}
		// Rendezvous hashing, as the selector's: the highest score of
		// the key wins, so a member leaving moves only its own keys.
		kh := rendezvous.Hash(key)
		var best *Target
		var top uint64
		for _, t := range ms {
			if ok(t) {
				if s := rendezvous.Score(kh, t.hash); best == nil || s > top {
					best, top = t, s
				}
			}
		}
		return best
	case selector.LeastRequest:
		if n == 1 {
			return nth(0)
		}
		i, j := rand.IntN(n), rand.IntN(n-1)
		if j >= i {
			j++
		}
		a, b := nth(i), nth(j)
		if b.st.inflight.Load() < a.st.inflight.Load() {
			return b
		}
		return a
	}
	return nth(rand.IntN(n))
}

// eject passes over t for a while after it could not be reached.
func (p *Publisher) eject(t *Target) {
	st := t.st
	st.mu.Lock()
	defer st.mu.Unlock()
	now := time.Now().UnixNano()
	switch until := st.until.Load(); {
	case until == 0:
		st.backoff = minEject
		p.ejected.Add(1)
	case now < until:
		return // failures of messages already in flight do not lengthen it
	default:
		st.backoff = min(2*st.backoff, maxEject)
	}
	st.until.Store(now + int64(st.backoff))
}

// recovered forgets t's ejection once it has acknowledged a message.
func (p *Publisher) recovered(t *Target) {
	st := t.st
	if st.until.Load() == 0 {
		return
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.until.Load() != 0 {
		st.until.Store(0)
		st.backoff = 0
		p.ejected.Add(-1)
	}
}
