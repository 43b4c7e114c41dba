package cache

import (
	"math"
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
// lifetime and count: a deletion is forgotten TTL after its version (a
// hybrid-logical-clock reading in Unix nanoseconds), and beyond the limit
// the deletions nearest their deadline are forgotten first. A replica that
// was away longer than the TTL may bring back a key deleted meanwhile,
// which docs/CONSISTENCY.md states.
//
// Because the deadline derives from the version, a deletion re-applied by
// anti-entropy or replication lives no longer than the first copy did, and
// one already past its deadline is not stored at all.
//
// Deletions are filed by deadline in slots of width ttl/256 (a calendar
// queue): each slot is a list in insertion order, so put, remove and a
// re-delete (which moves the entry to its new slot) are O(1), and expiry
// takes whole slots from the oldest, O(1) amortised per deletion. Every
// entry in the order is a held deletion: the structure is exactly as large
// as the table.
type tombstones struct {
	count atomic.Int64 // len(m), read without the lock by get's fast path
	mu    sync.Mutex
	ttl   time.Duration
	limit int
	now   func() int64 // the bucket's wall clock, Unix nanoseconds
	width int64        // nanoseconds of deadline per slot
	m     map[string]*tombEntry
	slots map[int64]*tombSlot // by deadline/width; only non-empty slots
	low   int64               // no slot below this index holds an entry
}

// tombEntry is one held deletion, linked into its deadline slot.
type tombEntry struct {
	key        string
	d          deletion
	slot       int64
	prev, next *tombEntry
}

// tombSlot lists the deletions whose deadlines share a slot, oldest first.
type tombSlot struct{ head, tail *tombEntry }

// tombSlotsPerTTL is how many slots one TTL spans: a deletion may outlive
// its deadline by up to ttl/tombSlotsPerTTL before expire takes it.
const tombSlotsPerTTL = 256

// newTombstones returns an empty table remembering deletions for ttl, at
// most limit of them, reading the time from now (Unix nanoseconds; nil
// means the system clock).
func newTombstones(ttl time.Duration, limit int, now func() int64) *tombstones {
	if now == nil {
		now = func() int64 { return time.Now().UnixNano() }
	}
	return &tombstones{
		ttl: ttl, limit: max(limit, 1), now: now,
		width: max(int64(ttl/tombSlotsPerTTL), int64(time.Millisecond)),
		m:     make(map[string]*tombEntry), slots: make(map[int64]*tombSlot),
	}
}

// deadlineOf is when a deletion at version may be forgotten: version+ttl,
// saturating (a version far in the future never wraps into the past).
func (t *tombstones) deadlineOf(version uint64) int64 {
	ttl := uint64(max(t.ttl, 0))
	if version > math.MaxInt64 || version+ttl > math.MaxInt64 {
		return math.MaxInt64
	}
	return int64(version + ttl)
}

// get returns key's deletion if it has one that has not been forgotten.
func (t *tombstones) get(key string) (deletion, bool) {
	if t.count.Load() == 0 {
		return deletion{}, false
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if e := t.m[key]; e != nil {
		return e.d, true
	}
	return deletion{}, false
}

// put records key's deletion at (version, writer), replacing any deletion
// key had, and reports whether it was stored: a deletion whose deadline
// (version + TTL) has already passed is not, and key then holds none.
func (t *tombstones) put(key string, version uint64, writer string) bool {
	deadline := t.deadlineOf(version)
	now := t.now()
	t.mu.Lock()
	defer t.mu.Unlock()
	e := t.m[key]
	if e != nil {
		t.unlinkLocked(e)
	}
	if deadline <= now {
		if e != nil {
			delete(t.m, key)
			t.count.Store(int64(len(t.m)))
		}
		return false
	}
	if e == nil {
		e = &tombEntry{key: key}
		t.m[key] = e
	}
	e.d = deletion{version: version, writer: writer, deadline: deadline}
	t.linkLocked(e)
	for len(t.m) > t.limit {
		t.popOldestLocked()
	}
	t.count.Store(int64(len(t.m)))
	return true
}

// remove forgets key's deletion (a newer value replaced it).
func (t *tombstones) remove(key string) {
	if t.count.Load() == 0 {
		return
	}
	t.mu.Lock()
	if e := t.m[key]; e != nil {
		t.unlinkLocked(e)
		delete(t.m, key)
		t.count.Store(int64(len(t.m)))
	}
	t.mu.Unlock()
}

// expire forgets tombstones past their deadline, examining at most budget
// slots and deletions, and reports how many it forgot.
func (t *tombstones) expire(now time.Time, budget int) int {
	t.mu.Lock()
	defer t.mu.Unlock()
	n, ns := 0, now.UnixNano()
	target := ns / t.width
	for budget > 0 && len(t.m) > 0 && t.low <= target {
		s := t.slots[t.low]
		if s == nil {
			// Empty slots are stepped over one by one while that is the
			// cheaper way to the next entry, else found by one scan.
			if target-t.low > int64(len(t.slots)) {
				budget -= len(t.slots)
				t.low = t.minSlotLocked()
			} else {
				budget--
				t.low++
			}
			continue
		}
		e := s.head
		if e.d.deadline > ns {
			break // only the slot of now itself can hold one not yet due
		}
		budget--
		t.unlinkLocked(e)
		delete(t.m, e.key)
		n++
	}
	t.count.Store(int64(len(t.m)))
	return n
}

// popOldestLocked forgets the deletion nearest its deadline (the oldest of
// the lowest slot).
func (t *tombstones) popOldestLocked() {
	s := t.slots[t.low]
	if s == nil {
		t.low = t.minSlotLocked()
		s = t.slots[t.low]
	}
	e := s.head
	t.unlinkLocked(e)
	delete(t.m, e.key)
}

// minSlotLocked returns the lowest non-empty slot's index; the table must
// not be empty.
func (t *tombstones) minSlotLocked() int64 {
	low := int64(math.MaxInt64)
	for i := range t.slots {
		low = min(low, i)
	}
	return low
}

// linkLocked files e at the end of its deadline's slot.
func (t *tombstones) linkLocked(e *tombEntry) {
	e.slot = e.d.deadline / t.width
	if len(t.m) == 1 || e.slot < t.low {
		t.low = e.slot // e is the only entry, or the clock went back
	}
	s := t.slots[e.slot]
	if s == nil {
		s = &tombSlot{}
		t.slots[e.slot] = s
	}
	e.prev, e.next = s.tail, nil
	if s.tail != nil {
		s.tail.next = e
	} else {
		s.head = e
	}
	s.tail = e
}

// unlinkLocked takes e out of its slot, dropping the slot once empty.
func (t *tombstones) unlinkLocked(e *tombEntry) {
	s := t.slots[e.slot]
	if e.prev != nil {
		e.prev.next = e.next
	} else {
		s.head = e.next
	}
	if e.next != nil {
		e.next.prev = e.prev
	} else {
		s.tail = e.prev
	}
	e.prev, e.next = nil, nil
	if s.head == nil {
		delete(t.slots, e.slot)
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
	for k, e := range t.m {
		snap = append(snap, entry{k, e.d})
	}
	t.mu.Unlock()
	for _, e := range snap {
		if !fn(e.key, e.ts) {
			return
		}
	}
}
