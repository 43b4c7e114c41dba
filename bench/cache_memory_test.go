package bench

import (
	"runtime"
	"testing"

	"github.com/maypok86/otter/v2"

	"github.com/mycorrizal/mycorrizal/core/cache"
	"github.com/mycorrizal/mycorrizal/ports"
)

// memoryEntries is how many entries the memory comparison stores.
const memoryEntries = 1_000_000

// BenchmarkMemoryPerEntry measures the heap a cache needs per entry beyond
// the entry's key and value bytes, with 1M entries of 16-byte keys and
// 100-byte values: the live heap (HeapAlloc after a full GC) before the
// cache is built and after it is filled, minus 116 bytes per entry held,
// divided by the entries held; reported as B/entry-overhead. Everything
// the cache keeps alive counts, including size-class rounding: Mycorrizal's
// store copies key and value into one allocation of its own; otter keeps
// the caller's key string and value slice, so each value is a fresh
// allocation, as it would be in an application. Each iteration builds and
// fills a new cache; ns/op is the time to fill it.
func BenchmarkMemoryPerEntry(b *testing.B) {
	systems := []struct {
		name string
		fill func(b *testing.B, n int) (held int, release func())
	}{
		{"mycorrizal", fillStore},
		{"otter", fillOtter},
	}
	for _, sys := range systems {
		b.Run("sys="+sys.name, func(b *testing.B) {
			var sum float64
			for range b.N {
				b.StopTimer()
				before := liveHeap()
				b.StartTimer()
				held, release := sys.fill(b, memoryEntries)
				b.StopTimer()
				after := liveHeap()
				release()
				if held < memoryEntries {
					b.Logf("%s holds %d of %d entries", sys.name, held, memoryEntries)
				}
				sum += (float64(after) - float64(before) - float64(held*(cacheKeyLen+cacheValueLen))) / float64(held)
				b.StartTimer()
			}
			b.ReportMetric(sum/float64(b.N), "B/entry-overhead")
		})
	}
}

// liveHeap returns the bytes of live heap objects after a full collection.
func liveHeap() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// fillStore fills Mycorrizal's default store, bounded to n entries.
func fillStore(b *testing.B, n int) (int, func()) {
	s, err := cache.NewStore(cache.StoreConfig{MaxEntries: n})
	if err != nil {
		b.Fatal(err)
	}
	value := cacheValue()
	for i := range n {
		if err := s.Set(ports.Entry{Key: cacheKey(i), Value: value}); err != nil {
			b.Fatal(err)
		}
	}
	held := int(s.Stats().Entries)
	return held, func() { _ = s.Close() }
}

// fillOtter fills an otter v2 cache bounded by MaximumSize n.
func fillOtter(b *testing.B, n int) (int, func()) {
	c := otter.Must(&otter.Options[string, []byte]{MaximumSize: n})
	for i := range n {
		c.Set(cacheKey(i), cacheValue())
	}
	c.CleanUp()
	held := c.EstimatedSize()
	return held, func() {
		c.StopAllGoroutines()
		runtime.KeepAlive(c)
	}
}
