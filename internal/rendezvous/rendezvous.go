// Package rendezvous is the rendezvous (highest random weight) hashing that
// the selector and the broker share.
package rendezvous

// Hash is 64-bit FNV-1a, finished with mix: the hash the selector's
// ConsistentHash and the broker give keys and nodes. It is fixed, unlike hash/maphash's seeded hashes,
// so every process maps a key to the same node.
func Hash(s string) uint64 {
	h := uint64(14695981039346656037)
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= 1099511628211
	}
	return mix(h)
}

// Score is a node's score for a key in rendezvous hashing, from their
// Hashes: the usable node with the highest score takes the key.
func Score(key, node uint64) uint64 { return mix(key ^ node) }

// mix is MurmurHash3's 64-bit finalizer: every input bit flips each output
// bit with probability about 1/2, so the scores of one key on different
// nodes are as good as independent.
func mix(h uint64) uint64 {
	h ^= h >> 33
	h *= 0xff51afd7ed558ccd
	h ^= h >> 33
	h *= 0xc4ceb9fe1a85ec53
	h ^= h >> 33
	return h
}
