package selector

import (
	"context"
	"math/rand/v2"
	"slices"

	"github.com/protoc-gen-micro/micro/internal/rendezvous"
)

// The pickers choose an index into a service's snapshot, or -1 when no
// node is usable. A node is usable when its address is not in exclude and,
// unless now is 0, it is not ejected at now. They neither lock nor
// allocate: the common case (nothing excluded, nothing ejected) touches
// one or two entries, except ConsistentHash, which scores every node.
// math/rand/v2's top-level functions use a per-thread source, so
// concurrent Selects share no random-number lock.

func (s *selector) pick(ctx context.Context, svc *service, nodes []entry, exclude []string, now int64) int {
	switch s.strategy {
	case RoundRobin:
		return pickRoundRobin(svc.rr.Add(1), nodes, exclude, now)
	case ConsistentHash:
		if key, ok := ctx.Value(hashKey{}).(string); ok {
			return pickHash(rendezvous.Hash(key), nodes, exclude, now)
		}
	case LeastRequest:
		return pickLeastRequest(nodes, exclude, now)
	}
	return pickRandom(nodes, exclude, now)
}

func usable(e *entry, exclude []string, now int64) bool {
	if now != 0 && e.state.until.Load() > now {
		return false
	}
	return len(exclude) == 0 || !slices.Contains(exclude, e.node.Address)
}

// count returns how many nodes are usable.
func count(nodes []entry, exclude []string, now int64) int {
	n := 0
	for i := range nodes {
		if usable(&nodes[i], exclude, now) {
			n++
		}
	}
	return n
}

// nth returns the index of the k-th usable node, counting from 0.
func nth(nodes []entry, exclude []string, now int64, k int) int {
	for i := range nodes {
		if usable(&nodes[i], exclude, now) {
			if k == 0 {
				return i
			}
			k--
		}
	}
	return -1
}

// pickRandom draws a node and keeps it if usable; otherwise it draws again
// among the usable ones only. Each usable node is chosen with probability
// 1/n·1 + (unusable/n)·1/usable = 1/usable: uniform.
func pickRandom(nodes []entry, exclude []string, now int64) int {
	if i := rand.IntN(len(nodes)); usable(&nodes[i], exclude, now) {
		return i
	}
	n := count(nodes, exclude, now)
	if n == 0 {
		return -1
	}
	return nth(nodes, exclude, now, rand.IntN(n))
}

// pickRoundRobin takes the next node in address order. When some nodes
// are not usable it rotates over the usable ones instead, so their load
// stays even rather than the next node taking a skipped node's turns.
func pickRoundRobin(next uint64, nodes []entry, exclude []string, now int64) int {
	if len(exclude) == 0 && now == 0 {
		return int(next % uint64(len(nodes)))
	}
	n := count(nodes, exclude, now)
	if n == 0 {
		return -1
	}
	return nth(nodes, exclude, now, int(next%uint64(n)))
}

// pickHash is rendezvous (highest random weight) hashing: each node scores
// the key, and the highest usable score wins. A node leaving moves only
// the keys it won; an excluded or ejected node's keys go to their
// runner-up, the same node for every caller.
func pickHash(key uint64, nodes []entry, exclude []string, now int64) int {
	best, top := -1, uint64(0)
	for i := range nodes {
		if !usable(&nodes[i], exclude, now) {
			continue
		}
		if score := rendezvous.Score(key, nodes[i].hash); best < 0 || score > top {
			best, top = i, score
		}
	}
	return best
}

// pickLeastRequest draws two different usable nodes and takes the one with
// fewer calls in flight. It draws from all nodes first and only when one
// of the two is unusable draws again among the usable ones; a pair is
// uniform among usable pairs either way.
func pickLeastRequest(nodes []entry, exclude []string, now int64) int {
	if len(nodes) == 1 {
		if usable(&nodes[0], exclude, now) {
			return 0
		}
		return -1
	}
	if i, j := two(len(nodes)); usable(&nodes[i], exclude, now) && usable(&nodes[j], exclude, now) {
		return lessLoaded(nodes, i, j)
	}
	switch n := count(nodes, exclude, now); n {
	case 0:
		return -1
	case 1:
		return nth(nodes, exclude, now, 0)
	default:
		i, j := two(n)
		return lessLoaded(nodes, nth(nodes, exclude, now, i), nth(nodes, exclude, now, j))
	}
}

// two returns two different numbers in [0, n), n ≥ 2.
func two(n int) (int, int) {
	i, j := rand.IntN(n), rand.IntN(n-1)
	if j >= i {
		j++
	}
	return i, j
}

func lessLoaded(nodes []entry, i, j int) int {
	if nodes[j].state.inflight.Load() < nodes[i].state.inflight.Load() {
		return j
	}
	return i
}
