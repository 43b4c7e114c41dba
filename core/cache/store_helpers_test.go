package cache_test

import (
	"sync/atomic"
	"testing"
	"time"

	"github.com/mycorrizal/mycorrizal/core/cache"
	"github.com/mycorrizal/mycorrizal/ports"
)

// storeTestClock is a settable clock for StoreConfig.Clock.
type storeTestClock struct{ ns atomic.Int64 }

func newStoreTestClock() *storeTestClock {
	c := &storeTestClock{}
	c.ns.Store(time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano())
	return c
}

func (c *storeTestClock) Now() time.Time          { return time.Unix(0, c.ns.Load()) }
func (c *storeTestClock) Advance(d time.Duration) { c.ns.Add(int64(d)) }

// newStore makes a store closed at cleanup, failing tb on error.
func newTestStore(tb testing.TB, cfg cache.StoreConfig) *cache.Store {
	tb.Helper()
	s, err := cache.NewStore(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = s.Close() })
	return s
}

func mustStoreSet(tb testing.TB, s *cache.Store, e ports.Entry) {
	tb.Helper()
	if err := s.Set(e); err != nil {
		tb.Fatalf("Set(%q): %v", e.Key, err)
	}
}

func checkStoreInvariants(tb testing.TB, s *cache.Store) {
	tb.Helper()
	if err := s.CheckInvariants(); err != nil {
		tb.Fatal(err)
	}
}

// eventually polls cond every few milliseconds until it holds or d passes.
func storeEventually(tb testing.TB, d time.Duration, what string, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("%s: not within %v", what, d)
		}
		time.Sleep(2 * time.Millisecond)
	}
}
