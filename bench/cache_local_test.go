package bench

import (
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/golang-lru/v2/expirable"
	"github.com/maypok86/otter/v2"

	"github.com/mycorrizal/mycorrizal/core/cache"
	"github.com/mycorrizal/mycorrizal/ports"
)

// localEntries is how many entries each local cache holds; it is also each
// cache's capacity, so every read hits.
const localEntries = 100_000

// lruTTL is the TTL golang-lru's expirable LRU is built with (it expires
// every entry); it is far beyond the benchmark's duration.
const lruTTL = time.Hour

// sink keeps the compiler from discarding the reads.
var sink atomic.Int64

// BenchmarkLocalGet measures a local hit Get of a raw []byte value at the
// same capacity in three caches holding the same keys and values:
// Mycorrizal's default store (cache.Store, what a bucket uses on each
// node), otter v2 and golang-lru v2's expirable LRU. Reads are scattered
// over all the keys in one fixed order. mode=seq reads on one goroutine;
// mode=parallel on GOMAXPROCS goroutines (RunParallel), each starting at
// another point of the order. The read loops are written out per system
// (no indirect call) so each side pays only for its own Get. The systems
// run in turn within each mode, so a change in the machine's load between
// runs touches the compared figures alike.
func BenchmarkLocalGet(b *testing.B) {
	keys := cacheKeys(localEntries)
	reads := shuffled(keys)
	value := cacheValue()
	systems := []struct {
		name string
		run  func(b *testing.B, keys, reads []string, value []byte, parallel bool)
	}{
		{"mycorrizal", localGetStore},
		{"otter", localGetOtter},
		{"lru", localGetLRU},
	}
	for _, mode := range []string{"seq", "parallel"} {
		for _, sys := range systems {
			b.Run(fmt.Sprintf("sys=%s/mode=%s", sys.name, mode), func(b *testing.B) {
				sys.run(b, keys, reads, value, mode == "parallel")
			})
		}
	}
}

// localGetStore reads from cache.Store with no expiry on the entries.
func localGetStore(b *testing.B, keys, reads []string, value []byte, parallel bool) {
	s, err := cache.NewStore(cache.StoreConfig{MaxEntries: len(keys)})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = s.Close() })
	for _, k := range keys {
		if err := s.Set(ports.Entry{Key: k, Value: value}); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	if !parallel {
		n, j := 0, 0
		for range b.N {
			e, ok := s.Get(reads[j])
			if !ok {
				b.Fatalf("miss on %q", reads[j])
			}
			n += len(e.Value)
			if j++; j == len(reads) {
				j = 0
			}
		}
		sink.Add(int64(n))
		return
	}
	var workers, misses atomic.Int64
	b.RunParallel(func(pb *testing.PB) {
		n, miss, j := 0, 0, parallelStart(&workers, len(reads))
		for pb.Next() {
			e, ok := s.Get(reads[j])
			if !ok {
				miss++
			}
			n += len(e.Value)
			if j++; j == len(reads) {
				j = 0
			}
		}
		sink.Add(int64(n))
		misses.Add(int64(miss))
	})
	checkMisses(b, misses.Load())
}

// localGetOtter reads from an otter v2 cache bounded by MaximumSize.
func localGetOtter(b *testing.B, keys, reads []string, value []byte, parallel bool) {
	c := otter.Must(&otter.Options[string, []byte]{MaximumSize: len(keys)})
	for _, k := range keys {
		c.Set(k, value)
	}
	b.ReportAllocs()
	b.ResetTimer()
	if !parallel {
		n, j := 0, 0
		for range b.N {
			v, ok := c.GetIfPresent(reads[j])
			if !ok {
				b.Fatalf("miss on %q", reads[j])
			}
			n += len(v)
			if j++; j == len(reads) {
				j = 0
			}
		}
		sink.Add(int64(n))
		return
	}
	var workers, misses atomic.Int64
	b.RunParallel(func(pb *testing.PB) {
		n, miss, j := 0, 0, parallelStart(&workers, len(reads))
		for pb.Next() {
			v, ok := c.GetIfPresent(reads[j])
			if !ok {
				miss++
			}
			n += len(v)
			if j++; j == len(reads) {
				j = 0
			}
		}
		sink.Add(int64(n))
		misses.Add(int64(miss))
	})
	checkMisses(b, misses.Load())
}

// localGetLRU reads from golang-lru's expirable LRU, sized to the keys,
// with a TTL of an hour. Its expiry goroutine cannot be stopped (v2.0.7
// has no Close); it wakes every 36 s.
func localGetLRU(b *testing.B, keys, reads []string, value []byte, parallel bool) {
	c := expirable.NewLRU[string, []byte](len(keys), nil, lruTTL)
	for _, k := range keys {
		c.Add(k, value)
	}
	b.ReportAllocs()
	b.ResetTimer()
	if !parallel {
		n, j := 0, 0
		for range b.N {
			v, ok := c.Get(reads[j])
			if !ok {
				b.Fatalf("miss on %q", reads[j])
			}
			n += len(v)
			if j++; j == len(reads) {
				j = 0
			}
		}
		sink.Add(int64(n))
		return
	}
	var workers, misses atomic.Int64
	b.RunParallel(func(pb *testing.PB) {
		n, miss, j := 0, 0, parallelStart(&workers, len(reads))
		for pb.Next() {
			v, ok := c.Get(reads[j])
			if !ok {
				miss++
			}
			n += len(v)
			if j++; j == len(reads) {
				j = 0
			}
		}
		sink.Add(int64(n))
		misses.Add(int64(miss))
	})
	checkMisses(b, misses.Load())
}

// parallelStart returns where in the read order the next RunParallel
// goroutine starts, so goroutines do not read the same keys in step.
func parallelStart(workers *atomic.Int64, n int) int {
	return int(workers.Add(1)-1) * 7919 % n
}

func checkMisses(b *testing.B, misses int64) {
	b.Helper()
	if misses > 0 {
		b.Fatalf("%d reads missed; every key should be present", misses)
	}
}
