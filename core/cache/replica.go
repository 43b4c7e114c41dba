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

// apply stores r if it is newer than what this replica holds for its key,
// and reports whether it did. An older or equal record is not an error:
// the replica already holds something at least as new.
func (b *bucket) apply(r record) (bool, error) {
	mu := b.stripe(r.key)
	mu.Lock()
	defer mu.Unlock()
	if v, w, _, ok := b.current(r.key); ok && !r.newerThan(v, w) {
		return false, nil
	}
	if r.tomb {
		b.store.Delete(r.key)
		b.tombs.put(r.key, r.version, r.writer)
		return true, nil
	}
	if r.expires != 0 && r.expires <= b.wall() {
		return false, nil // dead on arrival: nothing to keep
	}
	if err := b.store.Set(r.entry()); err != nil {
		return false, err
	}
	b.tombs.remove(r.key)
	return true, nil
}

// touch gives key's live entry a new expiry at a new version, keeping its
// value; found is false when this replica has no live entry for key.
func (b *bucket) touch(key string, version uint64, writer string, expires int64) (found bool, err error) {
	mu := b.stripe(key)
	mu.Lock()
	defer mu.Unlock()
	e, ok := b.peek(key)
	if !ok {
		return false, nil
	}
	if !newer(version, writer, e.Version, string(e.Writer)) {
		return true, nil // a newer write already replaced it
	}
	r := recordOf(e)
	r.value = append([]byte(nil), e.Value...)
	r.version, r.writer, r.expires = version, writer, expires
	if expires != 0 && expires <= b.wall() {
		b.store.Delete(key)
		return true, nil
	}
	return true, b.store.Set(r.entry())
}

// drop removes key if it still holds exactly version (handoff: a copy this
// node no longer owns, now held by its owners).
func (b *bucket) drop(key string, version uint64) {
	mu := b.stripe(key)
	mu.Lock()
	defer mu.Unlock()
	if e, ok := b.peek(key); ok && e.Version == version {
		b.store.Delete(key)
	}
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
