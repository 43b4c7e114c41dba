package cache_test

import (
	"encoding/binary"
	"fmt"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mycorrizal/mycorrizal/core/cache"
	"github.com/mycorrizal/mycorrizal/ports"
)

const (
	storeBenchKeyLen   = 16
	storeBenchValueLen = 100
)

// storeBenchKey returns the 16-byte key of entry i.
func storeBenchKey(i int) string {
	var b [storeBenchKeyLen]byte
	copy(b[:], "key:")
	binary.BigEndian.PutUint64(b[8:], uint64(i)*0x9E3779B97F4A7C15)
	return string(b[:])
}

func storeBenchKeys(n int) []string {
	keys := make([]string, n)
	for i := range keys {
		keys[i] = storeBenchKey(i)
	}
	return keys
}

// filledTestStore returns a store holding n entries of 16-byte keys and
// 100-byte values, with a TTL an hour ahead when ttl is set.
func filledTestStore(b *testing.B, n int, ttl bool, cfg cache.StoreConfig) (*cache.Store, []string) {
	b.Helper()
	cfg.SweepInterval = -1
	s := newTestStore(b, cfg)
	keys := storeBenchKeys(n)
	value := make([]byte, storeBenchValueLen)
	var exp time.Time
	if ttl {
		exp = time.Now().Add(time.Hour)
	}
	for _, k := range keys {
		mustStoreSet(b, s, ports.Entry{Key: k, Value: value, ExpiresAt: exp})
	}
	return s, keys
}

var storeBenchSizes = []int{1 << 10, 1 << 20}

// BenchmarkGetHit reads present keys in a scattered order, on one
// goroutine and on GOMAXPROCS goroutines (RunParallel), from stores of 1K
// and 1M entries, without and with an expiry (which costs a clock read
// per Get).
func BenchmarkGetHit(b *testing.B) {
	for _, n := range storeBenchSizes {
		for _, ttl := range []bool{false, true} {
			name := fmt.Sprintf("entries=%d/ttl=%v", n, ttl)
			b.Run(name+"/seq", func(b *testing.B) {
				s, keys := filledTestStore(b, n, ttl, cache.StoreConfig{})
				mask := n - 1
				b.ReportAllocs()
				b.ResetTimer()
				for i := 0; b.Loop(); i++ {
					if _, ok := s.Get(keys[(i*7919)&mask]); !ok {
						b.Fatal("miss")
					}
				}
			})
			b.Run(name+"/parallel", func(b *testing.B) {
				s, keys := filledTestStore(b, n, ttl, cache.StoreConfig{})
				mask := n - 1
				var seed atomic.Int64
				b.ReportAllocs()
				b.ResetTimer()
				b.RunParallel(func(pb *testing.PB) {
					i := int(seed.Add(1)) * 104729
					for pb.Next() {
						if _, ok := s.Get(keys[(i*7919)&mask]); !ok {
							b.Fatal("miss")
						}
						i++
					}
				})
			})
		}
	}
}

// BenchmarkGetMiss reads absent keys.
func BenchmarkGetMiss(b *testing.B) {
	s, _ := filledTestStore(b, 1<<10, false, cache.StoreConfig{})
	keys := storeBenchKeys(2048)[1024:]
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		s.Get(keys[i&1023])
	}
}

// BenchmarkSet overwrites existing keys (update) and inserts new keys into
// a full store (each Set evicts one entry).
func BenchmarkSet(b *testing.B) {
	value := make([]byte, storeBenchValueLen)
	b.Run("update", func(b *testing.B) {
		s, keys := filledTestStore(b, 1<<16, false, cache.StoreConfig{})
		mask := len(keys) - 1
		b.ReportAllocs()
		for i := 0; b.Loop(); i++ {
			mustStoreSet(b, s, ports.Entry{Key: keys[(i*7919)&mask], Value: value})
		}
	})
	b.Run("evict", func(b *testing.B) {
		const n = 1 << 16
		s, _ := filledTestStore(b, n, false, cache.StoreConfig{MaxEntries: n})
		keys := storeBenchKeys(4 * n)
		b.ReportAllocs()
		for i := 0; b.Loop(); i++ {
			mustStoreSet(b, s, ports.Entry{Key: keys[i%len(keys)], Value: value})
		}
	})
	b.Run("update/parallel", func(b *testing.B) {
		s, keys := filledTestStore(b, 1<<16, false, cache.StoreConfig{})
		mask := len(keys) - 1
		var seed atomic.Int64
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			i := int(seed.Add(1)) * 104729
			for pb.Next() {
				if err := s.Set(ports.Entry{Key: keys[(i*7919)&mask], Value: value}); err != nil {
					b.Error(err)
					return
				}
				i++
			}
		})
	})
}

// storeOverheadPerEntry fills a store with n entries of 16-byte keys and
// 100-byte values and returns the live heap it added per entry beyond the
// 116 bytes of key and value, measured after a GC with the keys generated
// on the fly (so the test's own key strings are garbage by then).
func storeOverheadPerEntry(tb testing.TB, n int, cfg cache.StoreConfig) float64 {
	tb.Helper()
	cfg.SweepInterval = -1
	value := make([]byte, storeBenchValueLen)
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	s, err := cache.NewStore(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	for i := range n {
		if err := s.Set(ports.Entry{Key: storeBenchKey(i), Value: value, ExpiresAt: time.Now().Add(time.Hour), Version: uint64(i), Writer: "node-1"}); err != nil {
			tb.Fatal(err)
		}
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	if st := s.Stats(); st.Entries != n {
		tb.Fatalf("store holds %d entries, want %d", st.Entries, n)
	}
	runtime.KeepAlive(s)
	_ = s.Close()
	return float64(int64(after.HeapAlloc)-int64(before.HeapAlloc))/float64(n) - storeBenchKeyLen - storeBenchValueLen
}

// BenchmarkMemoryOverhead reports the heap bytes per entry beyond key and
// value for 1M entries of 100 B values and 16 B keys (each with an expiry,
// a version and a writer), as the metric overhead-B/entry.
func BenchmarkMemoryOverhead(b *testing.B) {
	for _, tc := range []struct {
		name string
		cfg  cache.StoreConfig
	}{
		{"unlimited", cache.StoreConfig{}},
		{"MaxEntries=1M", cache.StoreConfig{MaxEntries: 1 << 20}},
		{"shards=1", cache.StoreConfig{Shards: 1}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			var o float64
			for b.Loop() {
				o = storeOverheadPerEntry(b, 1<<20, tc.cfg)
			}
			b.ReportMetric(o, "overhead-B/entry")
		})
	}
}

// TestMemoryOverhead holds the store to the target of at most 80 bytes of
// heap per entry beyond key and value, with 1M entries of 100 B.
func TestMemoryOverhead(t *testing.T) {
	if testing.Short() || storeRaceEnabled {
		t.Skip("fills 1M entries; skipped with -short and -race")
	}
	o := storeOverheadPerEntry(t, 1<<20, cache.StoreConfig{})
	t.Logf("heap overhead %.1f bytes per entry beyond key and value (1M entries, 16 B keys, 100 B values)", o)
	if o > 80 {
		t.Fatalf("heap overhead %.1f bytes per entry, target at most 80", o)
	}
}
