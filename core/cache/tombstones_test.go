package cache

import (
	"fmt"
	"math"
	"runtime"
	"testing"
	"time"

	"pgregory.net/rapid"
)

// TestTombstoneReDeleteMovesItsSlot: deleting a key again moves its
// deletion to its new place in the expiry order, so a deletion due earlier
// behind it still expires on time.
func TestTombstoneReDeleteMovesItsSlot(t *testing.T) {
	const ttl = 200 * time.Millisecond
	ts := newTombstones(ttl, 100, nil)
	v := func() uint64 { return uint64(time.Now().UnixNano()) }
	ts.put("a", v(), "n")
	ts.put("b", v(), "n")
	time.Sleep(ttl / 2)
	ts.put("a", v(), "n") // a delete-again of a: due half a TTL later
	// Past b's deadline, before a's new one.
	ts.expire(time.Now().Add(ttl/2+ttl/4), 100)
	if _, ok := ts.get("b"); ok {
		t.Fatal("b outlived its deadline behind the re-deleted a")
	}
	if _, ok := ts.get("a"); !ok {
		t.Fatal("the re-deleted a expired at its first deadline")
	}
}

// TestTombstoneOrderBoundedCacheAside: a cache-aside workload (delete,
// then set again, of the same few keys) leaves the table's memory where
// its live tombstones put it.
func TestTombstoneOrderBoundedCacheAside(t *testing.T) {
	ts := newTombstones(time.Hour, 1_000_000, nil)
	keys := make([]string, 8)
	for i := range keys {
		keys[i] = fmt.Sprintf("key-%d", i)
	}
	heap := func() uint64 {
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return ms.HeapAlloc
	}
	cycle := func(n int) {
		for i := range n {
			k := keys[i%len(keys)]
			v := uint64(time.Now().UnixNano())
			ts.put(k, v, "n")   // invalidate
			ts.put(k, v+1, "n") // invalidate again before repopulating
			ts.remove(k)        // repopulate: a newer value replaces it
		}
	}
	cycle(1000)
	before := heap()
	cycle(300_000)
	after := heap()
	runtime.KeepAlive(ts)
	if ts.len() != 0 {
		t.Fatalf("%d tombstones held, want 0", ts.len())
	}
	if grew := int64(after) - int64(before); grew > 1<<20 {
		t.Fatalf("the table grew by %d bytes over 300,000 delete-and-set cycles with no tombstone left", grew)
	}
}

// TestTombstoneDeadlineFromVersion: a deletion lives TTL after its
// version, however late it arrives: one re-applied after it was forgotten
// is not stored again, and a version far in the future does not wrap its
// deadline into the past.
func TestTombstoneDeadlineFromVersion(t *testing.T) {
	const ttl = time.Minute
	now := int64(1_000) * int64(time.Hour)
	ts := newTombstones(ttl, 100, func() int64 { return now })
	v := uint64(now)
	if !ts.put("k", v, "n") {
		t.Fatal("a fresh deletion was not stored")
	}
	if d, _ := ts.get("k"); d.deadline != now+int64(ttl) {
		t.Fatalf("deadline %d, want version+ttl %d", d.deadline, now+int64(ttl))
	}
	now += int64(ttl / 2)
	if !ts.put("k", v, "n") {
		t.Fatal("re-applying a live deletion was refused")
	}
	if d, _ := ts.get("k"); d.deadline != int64(v)+int64(ttl) {
		t.Fatalf("re-applying extended the deadline to %d, want %d", d.deadline, int64(v)+int64(ttl))
	}
	now += int64(ttl)
	if n := ts.expire(time.Unix(0, now), 100); n != 1 {
		t.Fatalf("expired %d, want 1", n)
	}
	// Anti-entropy brings the forgotten deletion back from a peer.
	if ts.put("k", v, "n") {
		t.Fatal("a deletion past its deadline was stored again")
	}
	if _, ok := ts.get("k"); ok || ts.len() != 0 {
		t.Fatal("a deletion past its deadline is held")
	}
	// An expired deletion replaces (and so removes) an older one.
	ts.put("j", uint64(now), "n")
	if ts.put("j", v, "n") {
		t.Fatal("stored an expired deletion")
	}
	if _, ok := ts.get("j"); ok {
		t.Fatal("an expired put left the key's previous deletion")
	}
	if !ts.put("far", math.MaxUint64, "n") {
		t.Fatal("a far-future deletion was not stored")
	}
	if d, _ := ts.get("far"); d.deadline != math.MaxInt64 {
		t.Fatalf("far-future deadline %d, want it saturated", d.deadline)
	}
	if n := ts.expire(time.Unix(0, now+int64(24*time.Hour)), 1000); n != 0 {
		t.Fatalf("a far-future deletion expired (%d)", n)
	}
}

// checkTombInvariants checks the expiry order against the table: it holds
// exactly the table's entries, each in its deadline's slot, none below low.
func checkTombInvariants(t interface{ Fatalf(string, ...any) }, ts *tombstones) {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	n := 0
	for i, s := range ts.slots {
		if s.head == nil {
			t.Fatalf("empty slot %d kept", i)
		}
		if i < ts.low {
			t.Fatalf("slot %d below low %d", i, ts.low)
		}
		var prev *tombEntry
		for e := s.head; e != nil; e = e.next {
			n++
			if e.prev != prev || e.slot != i || e.d.deadline/ts.width != i || ts.m[e.key] != e {
				t.Fatalf("entry %q misfiled in slot %d", e.key, i)
			}
			prev = e
		}
		if s.tail != prev {
			t.Fatalf("slot %d tail is not its last entry", i)
		}
	}
	if n != len(ts.m) || ts.count.Load() != int64(len(ts.m)) {
		t.Fatalf("order holds %d entries, table %d, count %d", n, len(ts.m), ts.count.Load())
	}
}

// TestTombstonesModel runs random operations against a plain map of
// deletions with deadline version+TTL.
func TestTombstonesModel(t *testing.T) {
	rapid.Check(t, func(rt *rapid.T) {
		const ttl = 10 * time.Second
		limit := rapid.IntRange(1, 8).Draw(rt, "limit")
		now := int64(1_000) * int64(time.Hour)
		ts := newTombstones(ttl, limit, func() int64 { return now })
		model := map[string]deletion{}
		keys := []string{"a", "b", "c", "d", "e", "f", "g", "h", "i", "j"}
		slotOf := func(deadline int64) int64 { return deadline / ts.width }

		for range rapid.IntRange(1, 200).Draw(rt, "ops") {
			switch rapid.IntRange(0, 5).Draw(rt, "op") {
			case 0, 1: // put
				k := rapid.SampledFrom(keys).Draw(rt, "key")
				v := uint64(now + rapid.Int64Range(-2*int64(ttl), int64(ttl)).Draw(rt, "age"))
				w := rapid.SampledFrom([]string{"n1", "n2"}).Draw(rt, "writer")
				d := deletion{version: v, writer: w, deadline: int64(v) + int64(ttl)}
				got := ts.put(k, v, w)
				if want := d.deadline > now; got != want {
					rt.Fatalf("put %s v%d at %d: stored %v, want %v", k, v, now, got, want)
				}
				if got {
					model[k] = d
				} else {
					delete(model, k)
				}
				if len(model) > limit {
					// The one forgotten must be in the lowest slot.
					low := int64(math.MaxInt64)
					for _, md := range model {
						low = min(low, slotOf(md.deadline))
					}
					var gone []string
					for mk, md := range model {
						if _, ok := ts.get(mk); !ok {
							gone = append(gone, mk)
							if slotOf(md.deadline) != low {
								rt.Fatalf("over the limit forgot %s (slot %d), not one of the lowest slot %d", mk, slotOf(md.deadline), low)
							}
						}
					}
					if len(gone) != len(model)-limit {
						rt.Fatalf("over the limit forgot %v, want %d forgotten", gone, len(model)-limit)
					}
					for _, mk := range gone {
						delete(model, mk)
					}
				}
			case 2: // remove
				k := rapid.SampledFrom(keys).Draw(rt, "key")
				ts.remove(k)
				delete(model, k)
			case 3: // time passes (and sometimes steps back a little)
				now += rapid.Int64Range(-int64(time.Second), int64(ttl)).Draw(rt, "step")
			case 4: // expire
				n := ts.expire(time.Unix(0, now), math.MaxInt32)
				forgot := 0
				for mk, md := range model {
					_, held := ts.get(mk)
					switch {
					case md.deadline > now && !held:
						rt.Fatalf("expire at %d forgot %s due at %d", now, mk, md.deadline)
					case md.deadline <= now && held && slotOf(md.deadline) != slotOf(now):
						rt.Fatalf("expire at %d kept %s due at %d, an older slot", now, mk, md.deadline)
					case !held:
						delete(model, mk)
						forgot++
					}
				}
				if n != forgot {
					rt.Fatalf("expire reported %d, forgot %d", n, forgot)
				}
			case 5: // read everything
				for _, k := range keys {
					got, ok := ts.get(k)
					want, wok := model[k]
					if ok != wok || got != want {
						rt.Fatalf("get %s: %+v %v, want %+v %v", k, got, ok, want, wok)
					}
				}
				seen := 0
				ts.each(func(k string, d deletion) bool {
					seen++
					if model[k] != d {
						rt.Fatalf("each %s: %+v, want %+v", k, d, model[k])
					}
					return true
				})
				if seen != len(model) || ts.len() != len(model) {
					rt.Fatalf("each saw %d, len %d, model %d", seen, ts.len(), len(model))
				}
			}
			checkTombInvariants(rt, ts)
		}
	})
}
