package cache_test

import (
	"fmt"
	"testing"
	"time"

	"pgregory.net/rapid"

	"github.com/mycorrizal/mycorrizal/core/cache"
	"github.com/mycorrizal/mycorrizal/ports"
)

// TestShardedStoreProperties checks a store of several shards, where
// eviction order is per shard and so not modelled, against what still
// holds exactly: a Get returns the last value set for the key, or nothing;
// a deleted or expired key is never returned; both limits hold after every
// step; and the internal invariants (including the store-wide totals the
// shards share) hold.
func TestShardedStoreProperties(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		clock := newStoreTestClock()
		maxEntries := rapid.IntRange(0, 30).Draw(t, "maxEntries")
		maxBytes := int64(rapid.SampledFrom([]int{0, 100, 300, 1000}).Draw(t, "maxBytes"))
		s, err := cache.NewStore(cache.StoreConfig{
			MaxEntries:    maxEntries,
			MaxBytes:      maxBytes,
			Clock:         clock.Now,
			SweepInterval: -1,
			SweepBatch:    rapid.IntRange(1, 20).Draw(t, "sweepBatch"),
			Shards:        rapid.IntRange(2, 8).Draw(t, "shards"),
		})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()

		type last struct {
			value   string
			expires time.Time
			gone    bool // deleted since
		}
		lruModel := map[string]last{}
		key := rapid.Custom(func(t *rapid.T) string { return fmt.Sprint("k", rapid.IntRange(0, 40).Draw(t, "k")) })

		t.Repeat(map[string]func(*rapid.T){
			"Set": func(t *rapid.T) {
				k := key.Draw(t, "key")
				v := fmt.Sprintf("%s:%d", k, rapid.IntRange(0, 1<<20).Draw(t, "v"))
				v += string(make([]byte, rapid.IntRange(0, 120).Draw(t, "pad")))
				var exp time.Time
				if rapid.Bool().Draw(t, "ttl") {
					exp = clock.Now().Add(time.Duration(rapid.IntRange(1, 5).Draw(t, "s")) * time.Second)
				}
				err := s.Set(ports.Entry{Key: k, Value: []byte(v), ExpiresAt: exp})
				if maxBytes > 0 && int64(len(k)+len(v)) > maxBytes {
					if err == nil {
						t.Fatalf("oversize Set(%q) accepted", k)
					}
					return
				}
				if err != nil {
					t.Fatal(err)
				}
				lruModel[k] = last{value: v, expires: exp}
				if _, ok := s.PeekAny(k); !ok {
					t.Fatalf("Set(%q) evicted the entry it set", k)
				}
			},
			"Get": func(t *rapid.T) {
				k := key.Draw(t, "key")
				e, ok := s.Get(k)
				if !ok {
					return
				}
				m, known := lruModel[k]
				switch {
				case !known || m.gone:
					t.Fatalf("Get(%q) returned a key deleted or never set", k)
				case string(e.Value) != m.value:
					t.Fatalf("Get(%q) = %q, last set %q", k, e.Value, m.value)
				case e.Expired(clock.Now()):
					t.Fatalf("Get(%q) returned an expired entry", k)
				}
			},
			"Delete": func(t *rapid.T) {
				k := key.Draw(t, "key")
				s.Delete(k)
				if m, ok := lruModel[k]; ok {
					m.gone = true
					lruModel[k] = m
				}
			},
			"Advance": func(t *rapid.T) {
				clock.Advance(time.Duration(rapid.IntRange(0, 3).Draw(t, "s")) * time.Second)
			},
			"Sweep": func(t *rapid.T) { s.SweepOnce() },
			"": func(t *rapid.T) {
				if err := s.CheckInvariants(); err != nil {
					t.Fatal(err)
				}
				st := s.Stats()
				if (maxEntries > 0 && st.Entries > maxEntries) || (maxBytes > 0 && st.Bytes > maxBytes) {
					t.Fatalf("%+v over the limits %d entries, %d bytes", st, maxEntries, maxBytes)
				}
			},
		})
	})
}
