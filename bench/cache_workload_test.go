package bench

import (
	"fmt"
	"math/rand/v2"
)

// The workload every cache comparison shares: keys of 16 bytes and values
// of 100 bytes, the same for each side.
const (
	cacheKeyLen   = 16
	cacheValueLen = 100
)

// cacheKey returns key i, "key:" and twelve decimal digits (16 bytes).
func cacheKey(i int) string { return fmt.Sprintf("key:%012d", i) }

// cacheKeys returns keys 0 to n-1.
func cacheKeys(n int) []string {
	keys := make([]string, n)
	for i := range keys {
		keys[i] = cacheKey(i)
	}
	return keys
}

// cacheValue returns a fresh 100-byte value.
func cacheValue() []byte {
	v := make([]byte, cacheValueLen)
	for i := range v {
		v[i] = byte('a' + i%26)
	}
	return v
}

// shuffled returns a copy of keys in a fixed pseudo-random order, so reads
// are scattered over the table rather than following insertion order.
func shuffled(keys []string) []string {
	out := append([]string(nil), keys...)
	rand.New(rand.NewPCG(1, 2)).Shuffle(len(out), func(i, j int) { out[i], out[j] = out[j], out[i] })
	return out
}
