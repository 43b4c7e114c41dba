package ports

import "time"

// Entry is one key of a cache bucket as a Store holds it.
type Entry struct {
	// Key is the entry's key within its bucket.
	Key string
	// Value is the stored bytes. A Store returns its own copy or a slice
	// the caller must not modify; it documents which.
	Value []byte
	// ExpiresAt is when the entry expires; the zero time means never.
	ExpiresAt time.Time
	// Version orders writes to the same key (hybrid logical clock); higher
	// wins. Zero for stores of a single writer.
	Version uint64
	// Writer is the node that wrote this version, the tie-breaker when two
	// versions are equal.
	Writer NodeID
}

// Expired reports whether the entry has expired at now.
func (e Entry) Expired(now time.Time) bool {
	return !e.ExpiresAt.IsZero() && !now.Before(e.ExpiresAt)
}

// StoreStats are a Store's counters.
type StoreStats struct {
	Hits, Misses, Evictions, Expirations uint64
	Entries                              int
	Bytes                                int64
}

// Store is one cache bucket's local storage engine. The default, an LRU with
// TTL and limits on entries and bytes, lives in the core. All methods are
// safe for concurrent use, never block on I/O, and never return an entry
// that has expired.
type Store interface {
	// Get returns the entry for key if present and not expired, and marks it
	// recently used.
	Get(key string) (Entry, bool)

	// Set stores e, evicting least recently used entries as needed to stay
	// within the store's limits. It fails with an error wrapping
	// ErrFrameTooLarge if e alone exceeds the byte limit.
	Set(e Entry) error

	// Delete removes key and reports whether it was present.
	Delete(key string) bool

	// SetExpiry changes key's expiry (the zero time means never) and
	// reports whether the key was present.
	SetExpiry(key string, expiresAt time.Time) bool

	// Range calls fn for each live entry until fn returns false. It does
	// not hold a lock across calls to fn, so fn may call the Store; entries
	// changed during Range may or may not be seen.
	Range(fn func(Entry) bool)

	// Stats returns the store's counters.
	Stats() StoreStats

	// Close releases the store's resources (such as a sweeper goroutine).
	Close() error
}
