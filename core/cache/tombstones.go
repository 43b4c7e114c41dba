package cache

import (
	"sync"
	"sync/atomic"
	"time"
)

// deletion records that a key was deleted at a version, so that a
// replica holding an older value cannot bring the key back.
type deletion struct {
	version  uint64
	writer   string
	deadline int64 // Unix nanoseconds after which it may be forgotten
}

// tombstones is a bucket's table of recent deletes. It is bounded in both
// lifetime (a deletion is forgotten after its TTL) and count (beyond the
// limit the oldest are forgotten first): a replica that was away longer
// than the TTL may bring back a key deleted meanwhile, which
// docs/CONSISTENCY.md states.
type tombstones struct {
	count atomic.Int64 // len(m), read without the lock by get's fast path
	mu    sync.Mutex
	ttl   time.Duration
	limit int
	m     map[string]deletion
	order []string // insertion order, for expiry and the count limit
	head  int
}

func newTombstones(ttl time.Duration, limit int) *tombstones {
	return &tombstones{ttl: ttl, limit: limit, m: make(map[string]deletion)}
}

// get returns key's deletion if it has one that has not been forgotten.
func (t *tombstones) get(key string) (deletion, bool) {
	if t.count.Load() == 0 {
		return deletion{}, false
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	ts, ok := t.m[key]
	return ts, ok
}

// put records key's deletion at (version, writer).
func (t *tombstones) put(key string, version uint64, writer string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if _, ok := t.m[key]; !ok {
		t.order = append(t.order, key)
	}
	t.m[key] = deletion{version: version, writer: writer, deadline: time.Now().Add(t.ttl).UnixNano()}
	for len(t.m) > t.limit {
		t.popLocked()
	}
	t.count.Store(int64(len(t.m)))
}

// remove forgets key's deletion (a newer value replaced it).
func (t *tombstones) remove(key string) {
	if t.count.Load() == 0 {
		return
	}
	t.mu.Lock()
	delete(t.m, key) // its slot in order is skipped when reached
	t.count.Store(int64(len(t.m)))
	t.mu.Unlock()
}

// expire forgets tombstones past their deadline, examining at most budget
// slots, and reports how many it forgot.
func (t *tombstones) expire(now time.Time, budget int) int {
	t.mu.Lock()
	defer t.mu.Unlock()
	n, ns := 0, now.UnixNano()
	for ; budget > 0 && t.head < len(t.order); budget-- {
		key := t.order[t.head]
		ts, ok := t.m[key]
		if ok && ts.deadline > ns {
			break
		}
		t.popLocked()
		if ok {
			n++
		}
	}
	t.count.Store(int64(len(t.m)))
	return n
}

// popLocked forgets the oldest slot.
func (t *tombstones) popLocked() {
	key := t.order[t.head]
	t.order[t.head] = ""
	t.head++
	delete(t.m, key)
	if t.head > 1024 && t.head*2 > len(t.order) {
		t.order = append([]string(nil), t.order[t.head:]...)
		t.head = 0
	}
}

// len returns how many tombstones are held.
func (t *tombstones) len() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.m)
}

// each calls fn for each deletion (a snapshot taken under the lock).
func (t *tombstones) each(fn func(key string, ts deletion) bool) {
	type entry struct {
		key string
		ts  deletion
	}
	t.mu.Lock()
	snap := make([]entry, 0, len(t.m))
	for k, ts := range t.m {
		snap = append(snap, entry{k, ts})
	}
	t.mu.Unlock()
	for _, e := range snap {
		if !fn(e.key, e.ts) {
			return
		}
	}
}
