package cache_test

import (
	"bytes"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mycorrizal/mycorrizal/core/cache"
	"github.com/mycorrizal/mycorrizal/ports"
)

func TestConfigValidation(t *testing.T) {
	for _, tc := range []struct {
		field string
		cfg   cache.StoreConfig
	}{
		{"MaxEntries", cache.StoreConfig{MaxEntries: -1}},
		{"MaxBytes", cache.StoreConfig{MaxBytes: -1}},
		{"SweepBatch", cache.StoreConfig{SweepBatch: -5}},
		{"Shards", cache.StoreConfig{Shards: -1}},
		{"Shards", cache.StoreConfig{Shards: cache.MaxShards + 1}},
	} {
		s, err := cache.NewStore(tc.cfg)
		if !errors.Is(err, ports.ErrInvalidConfig) || !strings.Contains(err.Error(), tc.field) {
			t.Errorf("NewStore(%+v) = %v, %v; want an ErrInvalidConfig naming %s", tc.cfg, s, err, tc.field)
		}
	}
}

func TestDefaultShards(t *testing.T) {
	procs := runtime.GOMAXPROCS(0)
	full := 8
	for full < 8*procs {
		full *= 2
	}
	full = min(full, 256)
	for _, tc := range []struct {
		cfg  cache.StoreConfig
		want int
	}{
		{cache.StoreConfig{}, full},
		{cache.StoreConfig{MaxEntries: 100}, 1},
		{cache.StoreConfig{MaxBytes: 1000}, 1},
		{cache.StoreConfig{MaxEntries: 1024}, min(full, 4)},
		{cache.StoreConfig{MaxEntries: 1 << 20, MaxBytes: 256 << 10}, min(full, 4)},
		{cache.StoreConfig{Shards: 3, MaxEntries: 10}, 3},
	} {
		s := newTestStore(t, tc.cfg)
		if got := s.ShardCount(); got != tc.want {
			t.Errorf("NewStore(%+v) has %d shards, want %d (GOMAXPROCS %d)", tc.cfg, got, tc.want, procs)
		}
	}
}

// With several shards the limits are still store-wide and exact once Sets
// return.
func TestShardedLimits(t *testing.T) {
	s := newTestStore(t, cache.StoreConfig{MaxEntries: 50, MaxBytes: 4000, Shards: 8, SweepInterval: -1})
	for i := range 1000 {
		mustStoreSet(t, s, ports.Entry{Key: fmt.Sprintf("key%04d", i), Value: bytes.Repeat([]byte("v"), i%100)})
		st := s.Stats()
		if st.Entries > 50 || st.Bytes > 4000 {
			t.Fatalf("after Set %d: %+v over the limits", i, st)
		}
	}
	checkStoreInvariants(t, s)
	// The most recent entry is always kept.
	if _, ok := s.Get("key0999"); !ok {
		t.Fatal("the entry just set was evicted")
	}
}

// An entry larger than its shard's share of MaxBytes is accepted: it
// evicts from the other shards.
func TestShardedLargeEntry(t *testing.T) {
	s := newTestStore(t, cache.StoreConfig{MaxBytes: 10000, Shards: 8, SweepInterval: -1})
	for i := range 100 {
		mustStoreSet(t, s, ports.Entry{Key: fmt.Sprintf("k%02d", i), Value: bytes.Repeat([]byte("v"), 47)}) // 50 bytes
	}
	mustStoreSet(t, s, ports.Entry{Key: "big", Value: bytes.Repeat([]byte("B"), 9997)})
	st := s.Stats()
	if st.Entries != 1 || st.Bytes != 10000 || st.Evictions != 100 {
		t.Fatalf("after a MaxBytes-sized Set: %+v, want only it left and 100 evictions", st)
	}
	if e, ok := s.Get("big"); !ok || len(e.Value) != 9997 {
		t.Fatal("the large entry is missing")
	}
	checkStoreInvariants(t, s)
}

// Within a shard the order is exact: with MaxEntries per shard reached,
// the shard evicts its own least recently used entry.
func TestShardedLRUWithinShard(t *testing.T) {
	s := newTestStore(t, cache.StoreConfig{MaxEntries: 400, Shards: 4, SweepInterval: -1})
	for i := range 400 {
		mustStoreSet(t, s, ports.Entry{Key: fmt.Sprint(i), Value: []byte("v")})
	}
	before := s.LRUOrder()
	mustStoreSet(t, s, ports.Entry{Key: "new", Value: []byte("v")})
	after := s.LRUOrder()
	for i := range after {
		if !slices.Contains(after[i], "new") {
			if !slices.Equal(before[i], after[i]) {
				t.Fatalf("shard %d without the new key changed", i)
			}
			continue
		}
		want := append([]string{"new"}, before[i][:len(before[i])-1]...)
		if !slices.Equal(after[i], want) {
			t.Fatalf("shard %d: order %q, want %q", i, after[i], want)
		}
	}
}

// After most entries go, the arena and index shrink; the survivors keep
// their values and LRU order.
func TestCompaction(t *testing.T) {
	clock := newStoreTestClock()
	s := newTestStore(t, cache.StoreConfig{Shards: 1, SweepInterval: -1, SweepBatch: 1 << 20, Clock: clock.Now})
	const n = 20000
	for i := range n {
		e := ports.Entry{Key: fmt.Sprint(i), Value: []byte(fmt.Sprint("value", i)), Writer: ports.NodeID(fmt.Sprint("n", i%3))}
		if i%10 != 0 {
			e.ExpiresAt = clock.Now().Add(time.Second)
		}
		mustStoreSet(t, s, e)
	}
	for i := 0; i < n; i += 70 {
		s.Get(fmt.Sprint(i)) // shuffle recency a little
	}
	if got, _ := s.ArenaLen(); got < n {
		t.Fatalf("arena of %d slots for %d entries", got, n)
	}
	var order []string
	for _, k := range s.LRUOrder()[0] {
		var i int
		fmt.Sscan(k, &i)
		if i%10 == 0 {
			order = append(order, k)
		}
	}
	clock.Advance(time.Second)
	s.SweepOnce()
	if st := s.Stats(); st.Entries != n/10 {
		t.Fatalf("after the sweep: %+v, want %d entries", st, n/10)
	}
	// A shard compacts when its live entries fall below a quarter of its
	// arena, so the arena ends below four times the live entries.
	if got, _ := s.ArenaLen(); got > n/10*4 {
		t.Fatalf("arena of %d slots for %d entries after compaction", got, n/10)
	}
	checkStoreInvariants(t, s)
	if got := s.LRUOrder()[0]; !slices.Equal(got, order) {
		t.Fatal("LRU order changed by compaction")
	}
	for i := 0; i < n; i += 10 {
		e, ok := s.Get(fmt.Sprint(i))
		if !ok || string(e.Value) != fmt.Sprint("value", i) || e.Writer != ports.NodeID(fmt.Sprint("n", i%3)) {
			t.Fatalf("Get(%d) after compaction = %+v, %v", i, e, ok)
		}
	}
}

// Range sees every entry left alone exactly once, even when fn deletes
// most of the others (which would compact the shard outside a Range).
func TestRangeStableWhileDeleting(t *testing.T) {
	s := newTestStore(t, cache.StoreConfig{Shards: 2, SweepInterval: -1})
	const n = 5000
	for i := range n {
		mustStoreSet(t, s, ports.Entry{Key: fmt.Sprint(i), Value: []byte("v")})
	}
	seen := map[string]int{}
	first := true
	s.Range(func(e ports.Entry) bool {
		seen[e.Key]++
		if first {
			first = false
			for i := range n {
				if i%8 != 0 && fmt.Sprint(i) != e.Key {
					s.Delete(fmt.Sprint(i))
				}
			}
		}
		return true
	})
	for i := 0; i < n; i += 8 {
		if c := seen[fmt.Sprint(i)]; c != 1 {
			t.Fatalf("Range saw untouched key %d %d times", i, c)
		}
	}
	checkStoreInvariants(t, s)
	// Once Range is done, the next removal in each shard may compact it.
	for i := 0; i < 100; i += 8 {
		s.Delete(fmt.Sprint(i))
	}
	checkStoreInvariants(t, s)
	if got, _ := s.ArenaLen(); got > 4*s.Stats().Entries {
		t.Fatalf("arena of %d slots for %d entries after Range ended", got, s.Stats().Entries)
	}
}

// Expiry times outside the int64 nanosecond range are clamped: the far
// past is expired, the far future lives.
func TestExtremeExpiry(t *testing.T) {
	s := newTestStore(t, cache.StoreConfig{SweepInterval: -1})
	mustStoreSet(t, s, ports.Entry{Key: "past", Value: []byte("v"), ExpiresAt: time.Date(1000, 1, 1, 0, 0, 0, 0, time.UTC)})
	mustStoreSet(t, s, ports.Entry{Key: "epoch", Value: []byte("v"), ExpiresAt: time.Unix(0, 0)})
	mustStoreSet(t, s, ports.Entry{Key: "future", Value: []byte("v"), ExpiresAt: time.Date(3000, 1, 1, 0, 0, 0, 0, time.UTC)})
	for _, k := range []string{"past", "epoch"} {
		if _, ok := s.Get(k); ok {
			t.Errorf("Get(%q) of an entry expired long ago: found", k)
		}
	}
	if _, ok := s.Get("future"); !ok {
		t.Error("Get(future): missing")
	}
}

// Get returns the stored bytes without allocating; the alias cannot be
// appended into the store.
func TestGetAliasAndAllocs(t *testing.T) {
	s := newTestStore(t, cache.StoreConfig{SweepInterval: -1})
	mustStoreSet(t, s, ports.Entry{Key: "k", Value: []byte("value"), ExpiresAt: time.Now().Add(time.Hour), Writer: "n1"})
	mustStoreSet(t, s, ports.Entry{Key: "k2", Value: []byte("other")})
	e, _ := s.Get("k")
	if cap(e.Value) != len(e.Value) {
		t.Fatalf("returned value has spare capacity %d", cap(e.Value)-len(e.Value))
	}
	_ = append(e.Value, "XXXX"...)
	if e2, _ := s.Get("k2"); string(e2.Value) != "other" {
		t.Fatalf("append to a returned value changed another entry: %q", e2.Value)
	}
	if storeRaceEnabled {
		t.Skip("allocation counts differ under -race")
	}
	if a := testing.AllocsPerRun(1000, func() { s.Get("k") }); a != 0 {
		t.Fatalf("Get hit allocates %v times", a)
	}
	if a := testing.AllocsPerRun(1000, func() { s.Get("missing") }); a != 0 {
		t.Fatalf("Get miss allocates %v times", a)
	}
}
