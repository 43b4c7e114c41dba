package cache_test

import (
	"fmt"

	"sync"
	"sync/atomic"
	"testing"

	"github.com/mycorrizal/mycorrizal/core/cache"
	"github.com/mycorrizal/mycorrizal/ports"
)

// Lock-free Gets racing writers that grow, rebuild and compact the shard
// under them always see an entry whose fields belong together: the value
// names the writer and version it was set with. Run with -race.
func TestConcurrentReadsSeeConsistentEntries(t *testing.T) {
	s := newTestStore(t, cache.StoreConfig{Shards: 2, SweepInterval: -1})
	const keys = 4000
	rounds := 6
	if storeRaceEnabled {
		rounds = 3
	}
	var stop atomic.Bool
	var reads, hits atomic.Int64
	var wg sync.WaitGroup
	for r := range 3 {
		wg.Go(func() {
			for i := r; !stop.Load(); i += 7 {
				k := fmt.Sprint("k", i%keys)
				reads.Add(1)
				e, ok := s.Get(k)
				if !ok {
					continue
				}
				hits.Add(1)
				want := fmt.Sprintf("%s|%s|%d", k, e.Writer, e.Version)
				if string(e.Value) != want {
					t.Errorf("Get(%q) = value %q with writer %q version %d: fields from different writes", k, e.Value, e.Writer, e.Version)
					return
				}
			}
		})
	}
	for round := range rounds {
		// Fill from empty (the arena grows and the index is rebuilt under
		// the readers), overwrite with other writers, then delete almost
		// everything (the shards compact).
		for pass := range 3 {
			for i := range keys {
				k := fmt.Sprint("k", i)
				w := ports.NodeID(fmt.Sprint("node-", (i+pass+round)%5))
				v := uint64(round*10 + pass)
				mustStoreSet(t, s, ports.Entry{Key: k, Value: fmt.Appendf(nil, "%s|%s|%d", k, w, v), Writer: w, Version: v})
			}
		}
		for i := range keys {
			if i%50 != 0 {
				s.Delete(fmt.Sprint("k", i))
			}
		}
	}
	stop.Store(true)
	wg.Wait()
	checkStoreInvariants(t, s)
	if hits.Load() == 0 {
		t.Fatalf("no Get hit in %d reads", reads.Load())
	}
	t.Logf("%d reads, %d hits", reads.Load(), hits.Load())
	_, capacity := s.ArenaLen()
	if st := s.Stats(); capacity > 4*st.Entries+2*1024 {
		t.Fatalf("arena capacity %d for %d entries after the deletes", capacity, st.Entries)
	}
	if st := s.Stats(); uint64(reads.Load()) != st.Hits+st.Misses {
		t.Fatalf("%d Gets, stats count %d hits and %d misses", reads.Load(), st.Hits, st.Misses)
	}
}

// Concurrent Gets of hot keys keep them in a full store while Sets of new
// keys evict the cold ones: the buffered recency reaches the LRU lists.
func TestConcurrentRecencyProtectsHotKeys(t *testing.T) {
	s := newTestStore(t, cache.StoreConfig{MaxEntries: 1000, Shards: 4, SweepInterval: -1})
	hot := make([]string, 50)
	for i := range hot {
		hot[i] = fmt.Sprint("hot", i)
		mustStoreSet(t, s, ports.Entry{Key: hot[i], Value: []byte("v")})
	}
	var stop atomic.Bool
	var wg sync.WaitGroup
	for r := range 2 {
		wg.Go(func() {
			for i := r; !stop.Load(); i++ {
				s.Get(hot[i%len(hot)])
			}
		})
	}
	// Each Set drains the reads buffered so far; between the readers'
	// passes over the 50 hot keys the writer inserts far fewer than the
	// ~250 entries a shard holds, so a hot key reaches no LRU end.
	for i := range 20000 {
		mustStoreSet(t, s, ports.Entry{Key: fmt.Sprint("cold", i), Value: []byte("v")})
		if i%10 == 0 {
			for _, k := range hot {
				s.Get(k)
			}
		}
	}
	stop.Store(true)
	wg.Wait()
	lost := 0
	for _, k := range hot {
		if _, ok := s.PeekAny(k); !ok {
			lost++
		}
	}
	if lost > 0 {
		t.Fatalf("%d of %d hot keys evicted", lost, len(hot))
	}
	if st := s.Stats(); st.Entries != 1000 {
		t.Fatalf("store holds %d entries, want 1000", st.Entries)
	}
	checkStoreInvariants(t, s)
}

// Gets from goroutines taking turns on a shard switch it to sampling, and
// Gets from one goroutine switch it back; hits are counted exactly either
// way.
func TestSamplingFollowsContention(t *testing.T) {
	s := newTestStore(t, cache.StoreConfig{Shards: 1, SweepInterval: -1})
	for i := range 100 {
		mustStoreSet(t, s, ports.Entry{Key: fmt.Sprint(i), Value: []byte("v")})
	}
	const readers = 4
	turns := make([]chan struct{}, readers)
	done := make(chan struct{})
	var wg sync.WaitGroup
	for r := range readers {
		turns[r] = make(chan struct{})
		wg.Go(func() {
			for range turns[r] {
				for i := range 16 { // fill this goroutine's buffer once
					s.Get(fmt.Sprint(i))
				}
				done <- struct{}{}
			}
		})
	}
	gets := 0
	for round := 0; round < 200 && !s.Sampling("0"); round++ {
		for r := range readers {
			turns[r] <- struct{}{}
			<-done
			gets += 16
		}
	}
	for r := range readers {
		close(turns[r])
	}
	wg.Wait()
	if !s.Sampling("0") {
		t.Fatal("Gets from goroutines taking turns did not switch the shard to sampling")
	}
	for i := 0; i < 100000 && s.Sampling("0"); i++ {
		s.Get(fmt.Sprint(i % 100))
		gets++
	}
	if s.Sampling("0") {
		t.Fatal("Gets from one goroutine did not switch the shard back")
	}
	if st := s.Stats(); st.Hits != uint64(gets) || st.Misses != 0 {
		t.Fatalf("%d Gets, stats count %d hits and %d misses", gets, st.Hits, st.Misses)
	}
}
