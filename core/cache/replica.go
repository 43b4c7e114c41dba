package cache

import (
	"hash/maphash"
	"sync"

	"github.com/mycorrizal/mycorrizal/ports"
)

// Replica-side storage of versioned records: every write a replica
// receives, from a coordinator, a sync or a read repair, goes through
// apply, which keeps the newer of what it holds and what it received (last
// write wins by hybrid-logical-clock version, then writer ID). Deletes
// leave tombstones, so an older value arriving later is refused.

// lockStripes is the number of per-key locks of a bucket that serialise
// compare-and-apply on one key.
const lockStripes = 256

// peeker is implemented by stores that can look an entry up without
// counting a hit or refreshing its recency (the default Store does).
type peeker interface {
	Peek(key string) (ports.Entry, bool)
}

var stripeSeed = maphash.MakeSeed()

func (b *bucket) stripe(key string) *sync.Mutex {
	return &b.locks[maphash.String(stripeSeed, key)%lockStripes]
}

// peek returns the live entry for key without touching its recency where
// the store allows.
func (b *bucket) peek(key string) (ports.Entry, bool) {
	if p, ok := b.store.(peeker); ok {
		return p.Peek(key)
	}
	return b.store.Get(key)
}

// current returns the version this replica holds for key: its live entry's
// or its tombstone's, whichever is newer; ok is false when it has neither.
func (b *bucket) current(key string) (version uint64, writer string, tomb, ok bool) {
	if e, found := b.peek(key); found {
		version, writer, ok = e.Version, string(e.Writer), true
	}
	if ts, found := b.tombs.get(key); found && (!ok || newer(ts.version, ts.writer, version, writer)) {
		version, writer, tomb, ok = ts.version, ts.writer, true, true
	}
	return version, writer, tomb, ok
}

// outcome is what a replica did with a record it was sent.
type outcome uint8

const (
	applied outcome = iota // stored: it was newer than what the replica held
	held                   // the replica holds this very version already
	stale                  // the replica holds a newer version (or, for a conditional write, one newer than its base)
)

// apply stores r if it is newer than what this replica holds for its key,
// and reports whether it did. An older or equal record is not an error:
// the replica already holds something at least as new.
func (b *bucket) apply(r record) (bool, error) {
	out, _, err := b.applyIf(r, nil)
	return out == applied, err
}

// applyIf stores r if it is newer than what this replica holds and, when
// base is set, the replica holds nothing newer than base (a conditional
// write: SetTTL rewrites the value it read only if no other write came
// since). It returns the outcome and, when stale, the version held.
func (b *bucket) applyIf(r record, base *versionRef) (outcome, versionRef, error) {
	mu := b.stripe(r.key)
	mu.Lock()
	defer mu.Unlock()
	if v, w, _, ok := b.current(r.key); ok {
		cur := versionRef{v, w}
		switch {
		case v == r.version && w == r.writer:
			return held, cur, nil
		case !r.newerThan(v, w):
			return stale, cur, nil
		case base != nil && newer(v, w, base.version, base.writer):
			return stale, cur, nil
		}
	}
	if r.tomb {
		b.store.Delete(r.key)
		b.tombs.put(r.key, r.version, r.writer)
		return applied, versionRef{}, nil
	}
	if r.expires != 0 && r.expires <= b.wall() {
		b.store.Delete(r.key) // dead on arrival: nothing older stays either
		return applied, versionRef{}, nil
	}
	if err := b.store.Set(r.entry()); err != nil {
		return held, versionRef{}, err
	}
	b.tombs.remove(r.key)
	return applied, versionRef{}, nil
}

// dropRecord removes r (a value or a tombstone) if this replica still
// holds exactly its version, and reports whether it did.
func (b *bucket) dropRecord(r record) bool {
	mu := b.stripe(r.key)
	mu.Lock()
	defer mu.Unlock()
	if r.tomb {
		if ts, ok := b.tombs.get(r.key); ok && ts.version == r.version && ts.writer == r.writer {
			b.tombs.remove(r.key)
			return true
		}
		return false
	}
	if e, ok := b.peek(r.key); ok && e.Version == r.version && string(e.Writer) == r.writer {
		b.store.Delete(r.key)
		return true
	}
	return false
}

// read returns what this replica holds for key as a record (a tombstone
// when it holds the key's deletion).
func (b *bucket) read(key string) (record, bool) {
	e, found := b.store.Get(key)
	ts, tok := b.tombs.get(key)
	switch {
	case found && (!tok || newer(e.Version, string(e.Writer), ts.version, ts.writer)):
		return recordOf(e), true
	case tok:
		return record{key: key, version: ts.version, writer: ts.writer, tomb: true}, true
	}
	return record{}, false
}
