// Package storetest is the conformance suite for ports.Store
// implementations, the storage engines of cache buckets. Every store's
// tests call Run, as slogtest.Run is called for a slog.Handler:
//
//	func TestConformance(t *testing.T) {
//		storetest.Run(t, func(t *testing.T, l storetest.Limits, clock *storetest.FakeClock) ports.Store {
//			s, err := mystore.New(mystore.Config{MaxEntries: l.MaxEntries, MaxBytes: l.MaxBytes, Now: clock.Now})
//			if err != nil {
//				t.Fatal(err)
//			}
//			return s
//		})
//	}
//
// Beyond what ports.Store documents, the suite requires that
//
//   - the store reads the time from the FakeClock it is given;
//   - LRU order is exact for the small limits of the subtests that check it
//     (at most 4 entries or 100 bytes), used from one goroutine: a sharded
//     store must use one shard there;
//   - Set copies the caller's value, and a value returned by Get does not
//     change when the key is written again;
//   - an entry expires at its ExpiresAt, as ports.Entry.Expired says;
//   - Range does not change recency, and an entry is live for Range and Get
//     alike.
//
// Run checks, in subtests: set, get, delete and overwrite with every Entry
// field; Set copies its input; expired entries are never returned, before
// any sweep; SetExpiry extends, shortens and clears an expiry; the zero
// ExpiresAt never expires; LRU eviction order under MaxEntries; eviction
// under MaxBytes with key and value bytes counted; an oversize entry is
// refused with ports.ErrFrameTooLarge and changes nothing; the Stats
// counters; Range sees live entries only, stops when told and lets fn call
// the store; concurrent mixed operations (run with -race) keep the limits;
// Close is idempotent. The suite closes every store it makes.
package storetest

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/mycorrizal/mycorrizal/ports"
)

// Limits are the limits a store under test is made with; 0 means
// unlimited.
type Limits struct {
	MaxEntries int
	MaxBytes   int64
}

// Factory makes a fresh store with the given limits whose clock is clock.
// It fails t if it cannot. The suite closes the store.
type Factory func(t *testing.T, l Limits, clock *FakeClock) ports.Store

// Run runs the conformance suite against the stores newStore makes.
func Run(t *testing.T, newStore Factory) {
	t.Helper()
	h := &harness{newStore: newStore}
	tests := []struct {
		name string
		fn   func(*testing.T)
	}{
		{"SetGetDelete", h.testSetGetDelete},
		{"SetCopiesInput", h.testSetCopiesInput},
		{"ExpiredNeverReturned", h.testExpiredNeverReturned},
		{"SetExpiry", h.testSetExpiry},
		{"ZeroTimeNeverExpires", h.testZeroTimeNeverExpires},
		{"LRUEvictionOrder", h.testLRUEvictionOrder},
		{"ByteLimit", h.testByteLimit},
		{"OversizeRefused", h.testOversizeRefused},
		{"Stats", h.testStats},
		{"Range", h.testRange},
		{"RangeCallsStore", h.testRangeCallsStore},
		{"Concurrent", h.testConcurrent},
		{"CloseIdempotent", h.testCloseIdempotent},
	}
	for _, tt := range tests {
		t.Run(tt.name, tt.fn)
	}
}

type harness struct {
	newStore Factory
}

// store makes a store with limits l and a fresh clock, closed at cleanup.
func (h *harness) store(t *testing.T, l Limits) (ports.Store, *FakeClock) {
	t.Helper()
	clock := NewFakeClock()
	s := h.newStore(t, l, clock)
	if s == nil {
		t.Fatal("storetest: factory returned a nil store")
	}
	t.Cleanup(func() { _ = s.Close() })
	return s, clock
}

func set(t *testing.T, s ports.Store, key, value string) {
	t.Helper()
	if err := s.Set(ports.Entry{Key: key, Value: []byte(value)}); err != nil {
		t.Fatalf("Set(%q): %v", key, err)
	}
}

func setEntry(t *testing.T, s ports.Store, e ports.Entry) {
	t.Helper()
	if err := s.Set(e); err != nil {
		t.Fatalf("Set(%q): %v", e.Key, err)
	}
}

// wantValue checks that key is live with value.
func wantValue(t *testing.T, s ports.Store, key, value string) {
	t.Helper()
	e, ok := s.Get(key)
	if !ok {
		t.Fatalf("Get(%q): missing, want %q", key, value)
	}
	if e.Key != key || string(e.Value) != value {
		t.Fatalf("Get(%q) = key %q value %q, want value %q", key, e.Key, e.Value, value)
	}
}

func wantMissing(t *testing.T, s ports.Store, key string) {
	t.Helper()
	if e, ok := s.Get(key); ok {
		t.Fatalf("Get(%q) = %q, want missing", key, e.Value)
	}
}

// keys returns the sorted keys Range reports.
func keys(s ports.Store) []string {
	var ks []string
	s.Range(func(e ports.Entry) bool {
		ks = append(ks, e.Key)
		return true
	})
	slices.Sort(ks)
	return ks
}

func wantKeys(t *testing.T, s ports.Store, want ...string) {
	t.Helper()
	slices.Sort(want)
	if got := keys(s); !slices.Equal(got, want) {
		t.Fatalf("Range keys = %q, want %q", got, want)
	}
}

func wantStats(t *testing.T, s ports.Store, want ports.StoreStats) {
	t.Helper()
	if got := s.Stats(); got != want {
		t.Fatalf("Stats() = %+v, want %+v", got, want)
	}
}

func (h *harness) testSetGetDelete(t *testing.T) {
	s, clock := h.store(t, Limits{})
	wantMissing(t, s, "a")
	exp := clock.Now().Add(time.Hour)
	setEntry(t, s, ports.Entry{Key: "a", Value: []byte("one"), ExpiresAt: exp, Version: 7, Writer: "n1"})
	e, ok := s.Get("a")
	if !ok {
		t.Fatal("Get after Set: missing")
	}
	if e.Key != "a" || string(e.Value) != "one" || !e.ExpiresAt.Equal(exp) || e.Version != 7 || e.Writer != "n1" {
		t.Fatalf("Get = %+v, want key a, value one, expiry %v, version 7, writer n1", e, exp)
	}

	// Overwrite replaces every field.
	setEntry(t, s, ports.Entry{Key: "a", Value: []byte("second"), Version: 8, Writer: "n2"})
	e, _ = s.Get("a")
	if string(e.Value) != "second" || !e.ExpiresAt.IsZero() || e.Version != 8 || e.Writer != "n2" {
		t.Fatalf("Get after overwrite = %+v, want value second, no expiry, version 8, writer n2", e)
	}
	if st := s.Stats(); st.Entries != 1 || st.Bytes != int64(len("a")+len("second")) {
		t.Fatalf("Stats after overwrite: entries %d bytes %d, want 1 and %d", st.Entries, st.Bytes, len("a")+len("second"))
	}

	set(t, s, "b", "two")
	if !s.Delete("a") {
		t.Fatal("Delete(a) = false for a present key")
	}
	wantMissing(t, s, "a")
	if s.Delete("a") {
		t.Fatal("second Delete(a) = true")
	}
	wantValue(t, s, "b", "two")

	// The empty key and the empty value are ordinary.
	set(t, s, "", "empty key")
	set(t, s, "empty value", "")
	wantValue(t, s, "", "empty key")
	wantValue(t, s, "empty value", "")
	wantKeys(t, s, "", "b", "empty value")
	if st := s.Stats(); st.Entries != 3 {
		t.Fatalf("Stats().Entries = %d, want 3", st.Entries)
	}
}

func (h *harness) testSetCopiesInput(t *testing.T) {
	s, _ := h.store(t, Limits{})
	v := []byte("original")
	setEntry(t, s, ports.Entry{Key: "k", Value: v})
	copy(v, "CHANGED!")
	wantValue(t, s, "k", "original")

	// A value already returned does not change when the key is written
	// again, even by a store that returns aliases.
	got, _ := s.Get("k")
	set(t, s, "k", "replaced")
	if string(got.Value) != "original" {
		t.Fatalf("value returned before an overwrite changed to %q", got.Value)
	}
	wantValue(t, s, "k", "replaced")
}

func (h *harness) testExpiredNeverReturned(t *testing.T) {
	s, clock := h.store(t, Limits{})
	exp := clock.Now().Add(10 * time.Second)
	setEntry(t, s, ports.Entry{Key: "a", Value: []byte("1"), ExpiresAt: exp})
	setEntry(t, s, ports.Entry{Key: "b", Value: []byte("2"), ExpiresAt: exp})
	set(t, s, "forever", "3")

	clock.Advance(10*time.Second - time.Nanosecond)
	e, ok := s.Get("a")
	if !ok || !e.ExpiresAt.Equal(exp) {
		t.Fatalf("Get(a) a nanosecond before expiry = %+v, %v; want live with ExpiresAt %v", e, ok, exp)
	}
	wantKeys(t, s, "a", "b", "forever")

	clock.Advance(time.Nanosecond) // now == ExpiresAt: expired
	wantKeys(t, s, "forever")      // before any Get touched b
	wantMissing(t, s, "a")
	wantMissing(t, s, "b")
	wantValue(t, s, "forever", "3")

	// An entry that is dead on arrival is never returned either.
	setEntry(t, s, ports.Entry{Key: "past", Value: []byte("x"), ExpiresAt: clock.Now().Add(-time.Second)})
	wantMissing(t, s, "past")
	wantKeys(t, s, "forever")
	if st := s.Stats(); st.Expirations < 2 {
		t.Fatalf("Stats().Expirations = %d after two entries expired, want at least 2", st.Expirations)
	}
}

func (h *harness) testSetExpiry(t *testing.T) {
	s, clock := h.store(t, Limits{})
	if s.SetExpiry("missing", clock.Now().Add(time.Hour)) {
		t.Fatal("SetExpiry of a missing key = true")
	}

	t.Run("Extend", func(t *testing.T) {
		setEntry(t, s, ports.Entry{Key: "ext", Value: []byte("v"), ExpiresAt: clock.Now().Add(10 * time.Second)})
		exp := clock.Now().Add(20 * time.Second)
		if !s.SetExpiry("ext", exp) {
			t.Fatal("SetExpiry = false for a present key")
		}
		clock.Advance(15 * time.Second)
		e, ok := s.Get("ext")
		if !ok || !e.ExpiresAt.Equal(exp) {
			t.Fatalf("Get after extending = %+v, %v; want live with ExpiresAt %v", e, ok, exp)
		}
		clock.Advance(5 * time.Second)
		wantMissing(t, s, "ext")
		if s.SetExpiry("ext", time.Time{}) {
			t.Fatal("SetExpiry of an expired key = true")
		}
	})
	t.Run("Shorten", func(t *testing.T) {
		setEntry(t, s, ports.Entry{Key: "short", Value: []byte("v"), ExpiresAt: clock.Now().Add(time.Hour)})
		if !s.SetExpiry("short", clock.Now().Add(time.Second)) {
			t.Fatal("SetExpiry = false for a present key")
		}
		wantValue(t, s, "short", "v")
		clock.Advance(time.Second)
		wantMissing(t, s, "short")
	})
	t.Run("Clear", func(t *testing.T) {
		setEntry(t, s, ports.Entry{Key: "clear", Value: []byte("v"), ExpiresAt: clock.Now().Add(time.Second)})
		if !s.SetExpiry("clear", time.Time{}) {
			t.Fatal("SetExpiry = false for a present key")
		}
		clock.Advance(24 * time.Hour)
		e, ok := s.Get("clear")
		if !ok || !e.ExpiresAt.IsZero() {
			t.Fatalf("Get after clearing the expiry = %+v, %v; want live with zero ExpiresAt", e, ok)
		}
	})
	t.Run("Past", func(t *testing.T) {
		set(t, s, "past", "v")
		if !s.SetExpiry("past", clock.Now().Add(-time.Second)) {
			t.Fatal("SetExpiry = false for a present key")
		}
		wantMissing(t, s, "past")
		if slices.Contains(keys(s), "past") {
			t.Fatal("Range reports an entry whose expiry was set in the past")
		}
	})
}

func (h *harness) testZeroTimeNeverExpires(t *testing.T) {
	s, clock := h.store(t, Limits{})
	setEntry(t, s, ports.Entry{Key: "k", Value: []byte("v"), ExpiresAt: time.Time{}})
	clock.Advance(100 * 365 * 24 * time.Hour)
	wantValue(t, s, "k", "v")
	wantKeys(t, s, "k")
}

func (h *harness) testLRUEvictionOrder(t *testing.T) {
	s, _ := h.store(t, Limits{MaxEntries: 4})
	for _, k := range []string{"a", "b", "c", "d"} {
		set(t, s, k, k)
	}
	wantKeys(t, s, "a", "b", "c", "d")
	wantValue(t, s, "a", "a") // recency, most recent first: a d c b
	set(t, s, "e", "e")       // evicts b: e a d c
	wantKeys(t, s, "a", "c", "d", "e")
	set(t, s, "c", "c2")   // an overwrite is a use: c e a d
	wantMissing(t, s, "b") // a miss changes nothing
	set(t, s, "f", "f")    // evicts d: f c e a
	wantKeys(t, s, "a", "c", "e", "f")
	wantValue(t, s, "a", "a") // a f c e
	wantValue(t, s, "e", "e") // e a f c
	set(t, s, "g", "g")       // evicts c: g e a f
	wantKeys(t, s, "a", "e", "f", "g")
	if !s.Delete("e") {
		t.Fatal("Delete(e) = false")
	}
	set(t, s, "h", "h") // room freed by the delete: no eviction
	wantKeys(t, s, "a", "f", "g", "h")
	if st := s.Stats(); st.Evictions != 3 || st.Entries != 4 {
		t.Fatalf("Stats() evictions %d entries %d, want 3 and 4", st.Evictions, st.Entries)
	}
}

func (h *harness) testByteLimit(t *testing.T) {
	s, _ := h.store(t, Limits{MaxBytes: 100})
	v28 := string(bytes.Repeat([]byte("x"), 28))
	for _, k := range []string{"k0", "k1", "k2"} {
		set(t, s, k, v28) // 30 bytes each
	}
	if st := s.Stats(); st.Bytes != 90 || st.Entries != 3 {
		t.Fatalf("Stats() bytes %d entries %d, want 90 and 3", st.Bytes, st.Entries)
	}
	set(t, s, "k3", v28) // 120 > 100: evicts k0
	wantKeys(t, s, "k1", "k2", "k3")
	if st := s.Stats(); st.Bytes != 90 || st.Evictions != 1 {
		t.Fatalf("Stats() bytes %d evictions %d, want 90 and 1", st.Bytes, st.Evictions)
	}

	// Growing a value evicts others, least recently used first, never
	// the entry itself.
	set(t, s, "k1", string(bytes.Repeat([]byte("y"), 68))) // 70 + 30 + 30: evicts k2
	wantKeys(t, s, "k1", "k3")
	if st := s.Stats(); st.Bytes != 100 {
		t.Fatalf("Stats().Bytes = %d, want 100", st.Bytes)
	}

	// The key's bytes count: a long key with a short value.
	longKey := string(bytes.Repeat([]byte("K"), 60))
	set(t, s, longKey, "0123456789") // 70: evicts k3 (LRU), then k1
	wantKeys(t, s, longKey)
	if st := s.Stats(); st.Bytes != 70 || st.Evictions != 4 {
		t.Fatalf("Stats() bytes %d evictions %d, want 70 and 4", st.Bytes, st.Evictions)
	}

	// An entry of exactly MaxBytes fits, alone.
	set(t, s, "big", string(bytes.Repeat([]byte("z"), 97)))
	wantKeys(t, s, "big")
	if st := s.Stats(); st.Bytes != 100 || st.Entries != 1 {
		t.Fatalf("Stats() bytes %d entries %d, want 100 and 1", st.Bytes, st.Entries)
	}
}

func (h *harness) testOversizeRefused(t *testing.T) {
	s, _ := h.store(t, Limits{MaxBytes: 100})
	set(t, s, "k", "old")
	set(t, s, "other", "kept")
	before := s.Stats()
	for _, key := range []string{"k", "new"} {
		err := s.Set(ports.Entry{Key: key, Value: bytes.Repeat([]byte("v"), 101-len(key))})
		if !errors.Is(err, ports.ErrFrameTooLarge) {
			t.Fatalf("Set(%q) of 101 bytes with MaxBytes 100: error %v, want ErrFrameTooLarge", key, err)
		}
	}
	wantStats(t, s, before)
	wantValue(t, s, "k", "old")
	wantValue(t, s, "other", "kept")
	wantMissing(t, s, "new")
}

func (h *harness) testStats(t *testing.T) {
	s, clock := h.store(t, Limits{MaxEntries: 2})
	wantStats(t, s, ports.StoreStats{})
	wantMissing(t, s, "a")
	set(t, s, "a", "1")
	wantValue(t, s, "a", "1")
	wantStats(t, s, ports.StoreStats{Hits: 1, Misses: 1, Entries: 1, Bytes: 2})
	set(t, s, "b", "22")
	set(t, s, "c", "333")                                                                                 // evicts a
	setEntry(t, s, ports.Entry{Key: "d", Value: []byte("4444"), ExpiresAt: clock.Now().Add(time.Second)}) // evicts b
	wantStats(t, s, ports.StoreStats{Hits: 1, Misses: 1, Evictions: 2, Entries: 2, Bytes: 4 + 5})
	clock.Advance(time.Second)
	wantMissing(t, s, "d") // removed here, or by a sweeper just before
	wantValue(t, s, "c", "333")
	wantStats(t, s, ports.StoreStats{Hits: 2, Misses: 2, Evictions: 2, Expirations: 1, Entries: 1, Bytes: 4})
	if !s.Delete("c") {
		t.Fatal("Delete(c) = false")
	}
	wantStats(t, s, ports.StoreStats{Hits: 2, Misses: 2, Evictions: 2, Expirations: 1})
}

func (h *harness) testRange(t *testing.T) {
	s, clock := h.store(t, Limits{})
	const n = 300 // more than one batch of a batching Range
	want := map[string]string{}
	for i := range n {
		k, v := fmt.Sprintf("key-%03d", i), fmt.Sprintf("value-%d", i)
		e := ports.Entry{Key: k, Value: []byte(v)}
		if i%3 == 0 {
			e.ExpiresAt = clock.Now().Add(time.Minute)
		} else {
			want[k] = v
		}
		setEntry(t, s, e)
	}
	clock.Advance(time.Minute)
	got := map[string]string{}
	s.Range(func(e ports.Entry) bool {
		if _, dup := got[e.Key]; dup {
			t.Errorf("Range reported %q twice", e.Key)
		}
		if e.Expired(clock.Now()) {
			t.Errorf("Range reported expired entry %q", e.Key)
		}
		got[e.Key] = string(e.Value)
		return true
	})
	if len(got) != len(want) {
		t.Fatalf("Range reported %d entries, want the %d live ones", len(got), len(want))
	}
	for k, v := range want {
		if got[k] != v {
			t.Fatalf("Range: %q = %q, want %q", k, got[k], v)
		}
	}

	calls := 0
	s.Range(func(ports.Entry) bool {
		calls++
		return false
	})
	if calls != 1 {
		t.Fatalf("Range called fn %d times after it returned false, want 1", calls)
	}
}

func (h *harness) testRangeCallsStore(t *testing.T) {
	s, _ := h.store(t, Limits{})
	for i := range 300 {
		set(t, s, fmt.Sprintf("k%d", i), "v")
	}
	within(t, 10*time.Second, "Range with fn calling the store", func() {
		s.Range(func(e ports.Entry) bool {
			if _, ok := s.Get(e.Key); !ok {
				t.Errorf("Get(%q) from Range's fn: missing", e.Key)
			}
			_ = s.SetExpiry(e.Key, time.Time{})
			_ = s.Set(ports.Entry{Key: "new-" + e.Key, Value: []byte("w")})
			_ = s.Delete("new-" + e.Key)
			if !s.Delete(e.Key) {
				t.Errorf("Delete(%q) from Range's fn = false", e.Key)
			}
			_ = s.Stats()
			return true
		})
	})
	if st := s.Stats(); st.Entries != 0 {
		t.Fatalf("after deleting every entry from Range's fn, Stats().Entries = %d", st.Entries)
	}
}

// within runs f and fails t if it has not returned after d, as a deadlock
// would.
func within(t *testing.T, d time.Duration, what string, f func()) {
	t.Helper()
	done := make(chan struct{})
	go func() {
		defer close(done)
		f()
	}()
	select {
	case <-done:
	case <-time.After(d):
		t.Fatalf("%s did not return within %v (deadlock?)", what, d)
	}
}

func (h *harness) testCloseIdempotent(t *testing.T) {
	s, _ := h.store(t, Limits{})
	set(t, s, "k", "v")
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := s.Close(); err != nil && !errors.Is(err, ports.ErrClosed) {
		t.Fatalf("second Close: %v, want nil or ErrClosed", err)
	}
}
