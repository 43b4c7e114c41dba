package cache_test

import (
	"errors"
	"fmt"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"pgregory.net/rapid"

	"github.com/mycorrizal/mycorrizal/core/cache"
	"github.com/mycorrizal/mycorrizal/ports"
)

// lruModelEntry is what the lruModel keeps per key.
type lruModelEntry struct {
	value   string
	expires int64 // Unix nanoseconds; 0 means never
	version uint64
	writer  ports.NodeID
}

// lruModel is the reference a one-shard Store is checked against: a map, a
// recency-ordered key slice (most recent first) and the counters, with
// every rule of the Store written out plainly.
type lruModel struct {
	now        int64
	entries    map[string]lruModelEntry
	order      []string
	maxEntries int
	maxBytes   int64
	stats      ports.StoreStats
}

func (m *lruModel) expired(e lruModelEntry) bool { return e.expires != 0 && m.now >= e.expires }

func (m *lruModel) front(key string) {
	m.order = slices.DeleteFunc(m.order, func(k string) bool { return k == key })
	m.order = slices.Insert(m.order, 0, key)
}

func (m *lruModel) remove(key string) {
	e := m.entries[key]
	delete(m.entries, key)
	m.order = slices.DeleteFunc(m.order, func(k string) bool { return k == key })
	m.stats.Entries--
	m.stats.Bytes -= int64(len(key) + len(e.value))
}

func (m *lruModel) over() bool {
	return (m.maxEntries > 0 && m.stats.Entries > m.maxEntries) ||
		(m.maxBytes > 0 && m.stats.Bytes > m.maxBytes)
}

func (m *lruModel) set(key string, e lruModelEntry) error {
	size := int64(len(key) + len(e.value))
	if m.maxBytes > 0 && size > m.maxBytes {
		return ports.ErrFrameTooLarge
	}
	_, present := m.entries[key]
	if m.expired(e) {
		if present {
			m.remove(key)
		}
		return nil
	}
	if present {
		m.remove(key)
	}
	m.entries[key] = e
	m.stats.Entries++
	m.stats.Bytes += size
	m.front(key)
	for m.over() && m.order[len(m.order)-1] != key {
		m.remove(m.order[len(m.order)-1])
		m.stats.Evictions++
	}
	return nil
}

func (m *lruModel) get(key string) (lruModelEntry, bool) {
	e, ok := m.entries[key]
	switch {
	case !ok:
		m.stats.Misses++
		return lruModelEntry{}, false
	case m.expired(e):
		m.remove(key)
		m.stats.Expirations++
		m.stats.Misses++
		return lruModelEntry{}, false
	}
	m.stats.Hits++
	m.front(key)
	return e, true
}

func (m *lruModel) del(key string) bool {
	e, ok := m.entries[key]
	if !ok {
		return false
	}
	m.remove(key)
	if m.expired(e) {
		m.stats.Expirations++
		return false
	}
	return true
}

func (m *lruModel) setExpiry(key string, expires int64) bool {
	e, ok := m.entries[key]
	switch {
	case !ok:
		return false
	case m.expired(e):
		m.remove(key)
		m.stats.Expirations++
		return false
	case expires != 0 && m.now >= expires:
		m.remove(key)
		m.stats.Expirations++
		return true
	}
	e.expires = expires
	m.entries[key] = e
	return true
}

var (
	lruModelKeys    = []string{"", "a", "b", "c", "d", "e", "f", "g", "h", "long-key-0123456789"}
	lruModelWriters = []ports.NodeID{"", "n1", "n2", "n3"}
	lruModelEpoch   = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano()
)

// TestStoreMatchesModel drives a one-shard Store with no sweeper goroutine
// and the lruModel through the same random operations (Set, Get, Delete,
// SetExpiry, clock advances, sweeper ticks) and after every step compares
// the LRU order, every entry's fields, all counters, both limits and the
// store's internal invariants. It runs rapid's default number of checks
// ten times over (about a second under -race), since the interesting
// interleavings (a clock advance landing on an expiry between a Set and a
// Get of the same key) are sparse.
func TestStoreMatchesModel(t *testing.T) {
	for i := range 10 {
		t.Run(fmt.Sprint(i), func(t *testing.T) { rapid.Check(t, checkStoreAgainstLRUModel) })
	}
}

func checkStoreAgainstLRUModel(t *rapid.T) {
	m := &lruModel{
		now:        lruModelEpoch,
		entries:    map[string]lruModelEntry{},
		maxEntries: rapid.IntRange(0, 6).Draw(t, "maxEntries"),
		maxBytes:   int64(rapid.SampledFrom([]int{0, 0, 20, 40, 100, 200}).Draw(t, "maxBytes")),
	}
	var now atomic.Int64
	now.Store(m.now)
	s, err := cache.NewStoreOneStripe(cache.StoreConfig{
		MaxEntries:    m.maxEntries,
		MaxBytes:      m.maxBytes,
		Clock:         func() time.Time { return time.Unix(0, now.Load()) },
		SweepInterval: -1,
		SweepBatch:    rapid.IntRange(1, 12).Draw(t, "sweepBatch"),
		Shards:        1,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()

	key := rapid.SampledFrom(lruModelKeys)
	// expiry draws a zero (never) or a time from 1 s ago to 4 s
	// ahead, in half seconds so that clock advances often land on an
	// expiry exactly.
	const step = int64(500 * time.Millisecond)
	expiry := func(t *rapid.T, label string) int64 {
		if rapid.Bool().Draw(t, label+"Never") {
			return 0
		}
		return m.now + int64(rapid.IntRange(-2, 8).Draw(t, label+"Steps"))*step
	}
	toTime := func(ns int64) time.Time {
		if ns == 0 {
			return time.Time{}
		}
		return time.Unix(0, ns)
	}

	t.Repeat(map[string]func(*rapid.T){
		"Set": func(t *rapid.T) {
			k := key.Draw(t, "key")
			e := lruModelEntry{
				value:   string(make([]byte, rapid.IntRange(0, 60).Draw(t, "valueLen"))),
				expires: expiry(t, "expiry"),
				version: rapid.Uint64Range(0, 3).Draw(t, "version"),
				writer:  rapid.SampledFrom(lruModelWriters).Draw(t, "writer"),
			}
			e.value = fmt.Sprintf("%s=%x", k, len(e.value)) + e.value[min(len(e.value), len(k)+3):]
			wantErr := m.set(k, e)
			err := s.Set(ports.Entry{Key: k, Value: []byte(e.value), ExpiresAt: toTime(e.expires), Version: e.version, Writer: e.writer})
			if !errors.Is(err, wantErr) || (err == nil) != (wantErr == nil) {
				t.Fatalf("Set(%q, %d bytes) error %v, lruModel says %v", k, len(k)+len(e.value), err, wantErr)
			}
		},
		"Get": func(t *rapid.T) {
			k := key.Draw(t, "key")
			want, wantOK := m.get(k)
			got, ok := s.Get(k)
			if ok != wantOK {
				t.Fatalf("Get(%q) found %v, lruModel says %v", k, ok, wantOK)
			}
			if ok && (got.Key != k || string(got.Value) != want.value || !got.ExpiresAt.Equal(toTime(want.expires)) ||
				got.Version != want.version || got.Writer != want.writer) {
				t.Fatalf("Get(%q) = %+v, lruModel has %+v", k, got, want)
			}
		},
		"Delete": func(t *rapid.T) {
			k := key.Draw(t, "key")
			if got, want := s.Delete(k), m.del(k); got != want {
				t.Fatalf("Delete(%q) = %v, lruModel says %v", k, got, want)
			}
		},
		"SetExpiry": func(t *rapid.T) {
			k := key.Draw(t, "key")
			exp := expiry(t, "expiry")
			if got, want := s.SetExpiry(k, toTime(exp)), m.setExpiry(k, exp); got != want {
				t.Fatalf("SetExpiry(%q) = %v, lruModel says %v", k, got, want)
			}
		},
		"Advance": func(t *rapid.T) {
			m.now += int64(rapid.IntRange(0, 4).Draw(t, "steps")) * step
			now.Store(m.now)
		},
		"AdvanceToExpiry": func(t *rapid.T) {
			// Land exactly on an entry's expiry: it expires at that
			// instant, as ports.Entry.Expired says.
			k := key.Draw(t, "key")
			if e, ok := m.entries[k]; ok && e.expires > m.now {
				m.now = e.expires
				now.Store(m.now)
			}
		},
		"Sweep": func(t *rapid.T) {
			// Which expired entries a tick reaches depends on slot
			// order; the lruModel checks that only expired ones went and
			// that they were counted.
			_, removed := s.SweepOnce()
			gone := 0
			for k, e := range m.entries {
				if _, ok := s.PeekAny(k); !ok {
					if !m.expired(e) {
						t.Fatalf("sweep removed live entry %q", k)
					}
					m.remove(k)
					m.stats.Expirations++
					gone++
				}
			}
			if gone != removed {
				t.Fatalf("sweep reported %d removals, %d entries went", removed, gone)
			}
		},
		"": func(t *rapid.T) {
			if err := s.CheckInvariants(); err != nil {
				t.Fatal(err)
			}
			if got := s.LRUOrder()[0]; !slices.Equal(got, m.order) {
				t.Fatalf("LRU order %q, lruModel %q", got, m.order)
			}
			for k, want := range m.entries {
				got, _ := s.PeekAny(k)
				if string(got.Value) != want.value || !got.ExpiresAt.Equal(toTime(want.expires)) ||
					got.Version != want.version || got.Writer != want.writer {
					t.Fatalf("entry %q = %+v, lruModel has %+v", k, got, want)
				}
			}
			if got := s.Stats(); got != m.stats {
				t.Fatalf("Stats() = %+v, lruModel %+v", got, m.stats)
			}
			if m.over() {
				t.Fatalf("lruModel over its limits: %+v", m.stats)
			}
		},
	})
}
