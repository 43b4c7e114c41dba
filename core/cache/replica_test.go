package cache

import (
	"testing"
	"time"

	"pgregory.net/rapid"
)

func newTestBucket(t *testing.T) *bucket {
	t.Helper()
	s, err := NewStore(StoreConfig{SweepInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return &bucket{name: "b", store: s, tombs: newTombstones(time.Hour, 1000, func() int64 { return 0 }), wall: func() int64 { return time.Now().UnixNano() }}
}

// TestApplyConvergesInAnyOrder: replicas that receive the same writes
// (values and tombstones) in different orders, some more than once, end
// up holding the same thing: the newest version of each key.
func TestApplyConvergesInAnyOrder(t *testing.T) {
	rapid.Check(t, func(rt *rapid.T) {
		keys := []string{"a", "b", "c"}
		writers := []string{"n1", "n2", "n3"}
		n := rapid.IntRange(1, 30).Draw(rt, "writes")
		var recs []record
		type stamp struct {
			v uint64
			w string
		}
		used := map[stamp]bool{} // a writer's clock never gives one version twice
		for i := range n {
			r := record{
				key:     rapid.SampledFrom(keys).Draw(rt, "key"),
				version: rapid.Uint64Range(1, 8).Draw(rt, "version"), // collisions on purpose
				writer:  rapid.SampledFrom(writers).Draw(rt, "writer"),
				tomb:    rapid.Bool().Draw(rt, "tomb"),
			}
			if !r.tomb {
				r.value = []byte{byte(i)}
			}
			if used[stamp{r.version, r.writer}] {
				continue
			}
			used[stamp{r.version, r.writer}] = true
			recs = append(recs, r)
		}
		a, b := newTestBucket(t), newTestBucket(t)
		for _, r := range recs {
			if _, err := a.apply(r); err != nil {
				rt.Fatal(err)
			}
		}
		perm := rapid.Permutation(recs).Draw(rt, "order")
		dups := rapid.SliceOfN(rapid.SampledFrom(recs), 0, 5).Draw(rt, "duplicates")
		for _, r := range append(perm, dups...) {
			if _, err := b.apply(r); err != nil {
				rt.Fatal(err)
			}
		}
		for _, k := range keys {
			// The model: the newest record of k wins.
			var want *record
			for i := range recs {
				if recs[i].key == k && (want == nil || recs[i].newerThan(want.version, want.writer)) {
					want = &recs[i]
				}
			}
			for name, rep := range map[string]*bucket{"in order": a, "shuffled": b} {
				got, ok := rep.read(k)
				switch {
				case want == nil && ok:
					rt.Fatalf("%s: %s: holds %+v, never written", name, k, got)
				case want == nil:
				case !ok:
					rt.Fatalf("%s: %s: holds nothing, want %+v", name, k, *want)
				case got.version != want.version || got.writer != want.writer || got.tomb != want.tomb || string(got.value) != string(want.value):
					rt.Fatalf("%s: %s: holds %+v, want %+v", name, k, got, *want)
				}
			}
		}
	})
}

func TestHLCMonotonicAndObserves(t *testing.T) {
	var h hlc
	prev := h.now()
	for range 1000 {
		v := h.now()
		if v <= prev {
			t.Fatalf("hlc went from %d to %d", prev, v)
		}
		prev = v
	}
	ahead := prev + uint64(10*time.Second)
	h.observe(ahead)
	if v := h.now(); v <= ahead {
		t.Fatalf("after observing %d, now gave %d", ahead, v)
	}
	far := uint64(time.Now().Add(time.Hour).UnixNano())
	h.observe(far)
	if v := h.now(); v >= far {
		t.Fatal("a version an hour ahead dragged the clock along")
	}
}

func TestTombstonesAreBounded(t *testing.T) {
	ts := newTombstones(50*time.Millisecond, 3, func() int64 { return 0 })
	for i, k := range []string{"a", "b", "c", "d"} {
		ts.put(k, uint64(i), "n")
	}
	if ts.len() != 3 {
		t.Fatalf("%d tombstones kept, limit 3", ts.len())
	}
	if _, ok := ts.get("a"); ok {
		t.Fatal("the oldest tombstone was not the one forgotten")
	}
	if n := ts.expire(time.Now().Add(time.Second), 10); n != 3 || ts.len() != 0 {
		t.Fatalf("expired %d, %d left", n, ts.len())
	}
}
