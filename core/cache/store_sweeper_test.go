package cache_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/mycorrizal/mycorrizal/core/cache"
	"github.com/mycorrizal/mycorrizal/ports"
)

// The sweeper goroutine removes expired entries with no Get touching them.
func TestSweeperRemovesExpiredWithoutGet(t *testing.T) {
	clock := newStoreTestClock()
	s := newTestStore(t, cache.StoreConfig{Clock: clock.Now, SweepInterval: 2 * time.Millisecond, SweepBatch: 100, Shards: 4})
	for i := range 1000 {
		e := ports.Entry{Key: fmt.Sprint("ttl", i), Value: []byte("v"), ExpiresAt: clock.Now().Add(time.Minute)}
		mustStoreSet(t, s, e)
	}
	for i := range 10 {
		mustStoreSet(t, s, ports.Entry{Key: fmt.Sprint("keep", i), Value: []byte("v")})
	}
	time.Sleep(10 * time.Millisecond) // a few ticks: nothing has expired yet
	if st := s.Stats(); st.Entries != 1010 || st.Expirations != 0 {
		t.Fatalf("before expiry: %+v, want 1010 entries and no expirations", st)
	}
	clock.Advance(time.Minute)
	storeEventually(t, 5*time.Second, "sweeper removing 1000 expired entries", func() bool {
		return s.Stats().Entries == 10
	})
	st := s.Stats()
	if st.Expirations != 1000 || st.Hits != 0 || st.Misses != 0 {
		t.Fatalf("after the sweep: %+v, want 1000 expirations and no Get", st)
	}
	checkStoreInvariants(t, s)
}

// One tick examines at most SweepBatch slots, resumes where the previous
// one stopped, and a full pass removes every expired entry.
func TestSweepBatchBound(t *testing.T) {
	for _, shards := range []int{1, 4} {
		t.Run(fmt.Sprint("shards=", shards), func(t *testing.T) {
			clock := newStoreTestClock()
			const batch, n = 10, 200
			s := newTestStore(t, cache.StoreConfig{Clock: clock.Now, SweepInterval: -1, SweepBatch: batch, Shards: shards})
			for i := range n {
				e := ports.Entry{Key: fmt.Sprint(i), Value: []byte("v")}
				if i%2 == 0 {
					e.ExpiresAt = clock.Now().Add(time.Second)
				}
				mustStoreSet(t, s, e)
			}
			clock.Advance(time.Second)
			ticks, removedTotal := 0, 0
			for s.Stats().Entries > n/2 {
				examined, removed := s.SweepOnce()
				ticks++
				removedTotal += removed
				if examined > batch || removed > examined {
					t.Fatalf("tick %d examined %d slots and removed %d, batch %d", ticks, examined, removed, batch)
				}
				if ticks > 10*n/batch {
					t.Fatalf("%d ticks and %d entries still there", ticks, s.Stats().Entries)
				}
			}
			// Every slot is examined once per pass, so removing all n/2
			// expired entries takes at least (n/2)/batch ticks and, with
			// the arena of n slots, at most about n/batch plus one per
			// shard for the pass boundaries.
			if ticks < n/2/batch || ticks > n/batch+shards+1 {
				t.Fatalf("%d ticks to remove %d expired entries from %d slots with batch %d", ticks, n/2, n, batch)
			}
			if st := s.Stats(); removedTotal != n/2 || st.Expirations != n/2 || st.Hits+st.Misses != 0 {
				t.Fatalf("removed %d, stats %+v; want %d expirations and no Get", removedTotal, st, n/2)
			}
			checkStoreInvariants(t, s)
		})
	}
}

// A tick over a store with nothing to do stops after one round of the
// shards instead of spinning on its budget.
func TestSweepEmptyStore(t *testing.T) {
	s := newTestStore(t, cache.StoreConfig{SweepInterval: -1, Shards: 8})
	if examined, removed := s.SweepOnce(); examined != 0 || removed != 0 {
		t.Fatalf("SweepOnce on an empty store examined %d and removed %d", examined, removed)
	}
	mustStoreSet(t, s, ports.Entry{Key: "k", Value: []byte("v")})
	if examined, removed := s.SweepOnce(); examined != 1 || removed != 0 {
		t.Fatalf("SweepOnce on one live entry examined %d and removed %d", examined, removed)
	}
}

// Close stops the sweeper goroutine (goleak checks at the end of the
// package's tests) and the store stays usable.
func TestCloseStopsSweeper(t *testing.T) {
	s, err := cache.NewStore(cache.StoreConfig{SweepInterval: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(5 * time.Millisecond)
	for range 3 {
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
	mustStoreSet(t, s, ports.Entry{Key: "k", Value: []byte("v")})
	if _, ok := s.Get("k"); !ok {
		t.Fatal("Get after Close: missing")
	}
}
