package cache

import (
	"fmt"
	"hash/maphash"
	"math"
	"math/bits"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mycorrizal/mycorrizal/ports"
)

// Store is the default ports.Store: an LRU cache with per-entry expiry and
// limits on the number of entries and on their bytes. See the package
// comment for its design. All methods are safe for concurrent use and none
// blocks on I/O. Close stops its sweeper goroutine; a Store dropped
// without Close leaks that goroutine.
type Store struct {
	// Read-only after NewStore.
	shards     []paddedShard
	nshards    uint64
	seed       maphash.Seed
	clock      func() time.Time // nil: the monotonic clock below
	base       time.Time        // NewStore's time, with its monotonic reading
	baseNano   int64            // base as Unix nanoseconds
	maxEntries int64
	maxBytes   int64
	sweepBatch int

	_ [cacheLine]byte // keeps the counters below off the read-only fields' line

	// entries and bytes are the store-wide totals the limits are checked
	// against. They change only under the lock of the shard whose entries
	// changed.
	entries atomic.Int64
	bytes   atomic.Int64
	spill   atomic.Uint64 // where the next spill eviction starts

	sweepMu    sync.Mutex // serialises sweeps
	sweepShard int        // the shard the sweeper resumes in; guarded by sweepMu

	stop      chan struct{} // closed by Close; nil without a sweeper
	done      chan struct{} // closed when the sweeper has returned
	closeOnce sync.Once
}

var _ ports.Store = (*Store)(nil)

// NewStore returns a Store configured by cfg and starts its sweeper (unless
// cfg.SweepInterval is negative). Invalid configuration is reported with an
// error wrapping ports.ErrInvalidConfig that names the field.
func NewStore(cfg StoreConfig) (*Store, error) {
	return newStore(cfg, 0)
}

// newStore is NewStore with a given number of read-buffer stripes per
// shard (0: the default). Tests use one stripe, for which a single
// goroutine's recency is exact whatever its stack does.
func newStore(cfg StoreConfig, stripes int) (*Store, error) {
	clock := cfg.Clock
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	if stripes == 0 {
		stripes = defaultStripes()
	}
	now := time.Now()
	s := &Store{
		shards:     make([]paddedShard, cfg.Shards),
		nshards:    uint64(cfg.Shards),
		seed:       maphash.MakeSeed(),
		clock:      clock,
		base:       now,
		baseNano:   now.UnixNano(),
		maxEntries: int64(cfg.MaxEntries),
		maxBytes:   cfg.MaxBytes,
		sweepBatch: cfg.SweepBatch,
	}
	hint := 0
	if cfg.MaxEntries > 0 {
		per := cfg.MaxEntries / cfg.Shards
		hint = per + per/16 + 16 + 1 // the share, hashing's imbalance, the sentinel
	}
	for i := range s.shards {
		s.shards[i].init(stripes, hint)
	}
	if cfg.SweepInterval > 0 {
		s.stop = make(chan struct{})
		s.done = make(chan struct{})
		go s.sweeper(cfg.SweepInterval)
	}
	return s, nil
}

// shardFor returns key's shard and the low 32 bits of its hash. The shard
// is chosen by the hash's high bits (a multiply-shift, so any shard count
// works) and the index probes with the low bits.
func (s *Store) shardFor(key string) (*shard, uint32) {
	h := maphash.String(s.seed, key)
	hi, _ := bits.Mul64(h, s.nshards)
	return &s.shards[hi].shard, uint32(h)
}

// now returns the time expiries are judged against, in Unix nanoseconds:
// StoreConfig.Clock's if set, else NewStore's wall time advanced by the
// monotonic clock (half the cost of time.Now, and immune to steps of the
// wall clock).
func (s *Store) now() int64 {
	if s.clock != nil {
		return s.clock().UnixNano()
	}
	return s.baseNano + int64(time.Since(s.base))
}

// account applies a change to the store-wide totals.
func (s *Store) account(dEntries, dBytes int64) {
	if dEntries != 0 {
		s.entries.Add(dEntries)
	}
	if dBytes != 0 {
		s.bytes.Add(dBytes)
	}
}

// over reports whether the store holds more than one of its limits allows.
func (s *Store) over() bool {
	return (s.maxEntries > 0 && s.entries.Load() > s.maxEntries) ||
		(s.maxBytes > 0 && s.bytes.Load() > s.maxBytes)
}

// Get returns the entry for key if it is present and not expired, and marks
// it most recently used. It takes no lock and, once its goroutine's read
// buffer exists, makes no allocation. The entry's Value aliases the
// store's copy: the caller must not modify it. It stays valid and
// unchanged after later writes to the key, which store new copies. An
// expired entry found here is removed and counted as an expiration and a
// miss.
func (s *Store) Get(key string) (ports.Entry, bool) {
	sh, h := s.shardFor(key)
	r := sh.reads.ring()
	i, hd, w, seq := sh.lay.Load().find(key, h)
	if hd == nil {
		r.misses.Add(1)
		return ports.Entry{}, false
	}
	exp := hd.loadExpires()
	if exp != 0 && s.now() >= exp {
		return s.getLocked(sh, key, h)
	}
	s.recordRead(sh, r, seq, i)
	return ports.Entry{
		Key:       key,
		Value:     hd.value(),
		ExpiresAt: expiryTime(exp),
		Version:   hd.version,
		Writer:    w.nodeID(),
	}, true
}

// recordRead buffers a Get's access to slot i, counting the hit. A Get
// that fills the buffer, or finds it full, drains it if the shard's lock
// is free; an access that finds the buffer full and the lock taken, or
// loses the race for its position to another goroutine on the same
// stripe, is dropped. A sampling shard buffers one access in sampleEvery.
func (s *Store) recordRead(sh *shard, r *ring, seq uint32, i int32) {
	if sh.sampled.Load() && rand.Uint32()%sampleEvery != 0 {
		r.skipped.Add(1) // rand's state is per thread: no shared write
		return
	}
	switch r.add(seq, i) {
	case ringAdded:
		return
	case ringAddedFull:
		if sh.mu.TryLock() {
			sh.drainRing(r)
			sh.mu.Unlock()
		}
		return
	case ringFull:
		if sh.mu.TryLock() {
			sh.drainRing(r)
			res := r.add(seq, i) // the drain made room, unless a record is unpublished
			sh.mu.Unlock()
			if res == ringAdded || res == ringAddedFull {
				return
			}
		}
	}
	r.dropped.Add(1)
}

// getLocked is Get under the shard's lock, for an entry found expired: it
// removes the entry if it is still there and still expired.
func (s *Store) getLocked(sh *shard, key string, h uint32) (ports.Entry, bool) {
	sh.mu.Lock()
	defer sh.mu.Unlock()
	i, pos := sh.lookup(key, h)
	if i == 0 {
		sh.misses++
		return ports.Entry{}, false
	}
	if sh.nodes[i].hdr().expired(s.now()) {
		s.account(-1, -sh.removeAt(i, pos))
		sh.expirations++
		sh.misses++
		sh.maybeCompact()
		return ports.Entry{}, false
	}
	sh.touch(i)
	sh.hits++
	return sh.entry(i, key), true
}

// Set stores a copy of e's key and value (later changes to the caller's
// bytes do not reach the store), marks it most recently used, and then
// evicts least recently used entries until both limits hold again. An
// entry whose len(Key)+len(Value) exceeds MaxBytes is refused with an
// error wrapping ports.ErrFrameTooLarge, and nothing changes. An entry
// that has already expired by the store's clock is not stored: Set then
// removes any entry the key had, as a write of a dead value would.
//
// With more than one shard, eviction takes the least recently used entries
// of e's own shard first and, only if that shard holds nothing else, those
// of the other shards in turn. The limits hold whenever no Set is in
// progress; while Sets run concurrently the totals may exceed them
// briefly.
func (s *Store) Set(e ports.Entry) error {
	size := int64(len(e.Key)) + int64(len(e.Value))
	if s.maxBytes > 0 && size > s.maxBytes {
		return fmt.Errorf("cache: entry %.64q of %d bytes exceeds the store's limit of %d bytes: %w",
			e.Key, size, s.maxBytes, ports.ErrFrameTooLarge)
	}
	if uint64(len(e.Key)) > math.MaxUint32 || uint64(len(e.Value)) > math.MaxUint32 {
		return fmt.Errorf("cache: entry %.64q of %d bytes: key or value longer than 4 GiB: %w",
			e.Key, size, ports.ErrFrameTooLarge)
	}
	expires := unixNano(e.ExpiresAt)
	sh, h := s.shardFor(e.Key)
	if expires != 0 && s.now() >= expires {
		sh.mu.Lock()
		if i, pos := sh.lookup(e.Key, h); i != 0 {
			s.account(-1, -sh.removeAt(i, pos))
			sh.maybeCompact()
		}
		sh.mu.Unlock()
		return nil
	}
	hd := newHeader(e.Key, e.Value, expires, e.Version) // allocate and copy outside the lock

	sh.mu.Lock()
	sh.drainReads()
	i, dEntries, dBytes := sh.put(e.Key, h, hd, e.Writer)
	s.account(dEntries, dBytes)
	for s.over() {
		victim := sh.lru()
		if victim == 0 || victim == i {
			break
		}
		s.account(-1, -sh.remove(victim))
		sh.evictions++
	}
	sh.mu.Unlock()
	if s.over() {
		s.spillEvict(sh)
	}
	return nil
}

// spillEvict evicts the least recently used entry of each other shard in
// turn, one lock at a time, while the store is over a limit. Set calls it
// when its own shard has nothing left to evict: a large entry, or a store
// whose entries sit in other shards.
func (s *Store) spillEvict(own *shard) {
	n := uint64(len(s.shards))
	j := s.spill.Add(1)
	for idle := uint64(0); idle < n && s.over(); j++ {
		sh := &s.shards[j%n].shard
		evicted := false
		if sh != own {
			sh.mu.Lock()
			sh.drainReads()
			if victim := sh.lru(); victim != 0 && s.over() {
				s.account(-1, -sh.remove(victim))
				sh.evictions++
				evicted = true
			}
			sh.mu.Unlock()
		}
		if evicted {
			idle = 0
		} else {
			idle++
		}
	}
}

// Delete removes key and reports whether a live entry was present. An
// expired entry is removed too, counted as an expiration, and reported as
// absent.
func (s *Store) Delete(key string) bool {
	sh, h := s.shardFor(key)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	i, pos := sh.lookup(key, h)
	if i == 0 {
		return false
	}
	hd := sh.nodes[i].hdr()
	live := hd.expires == 0 || !hd.expired(s.now())
	s.account(-1, -sh.removeAt(i, pos))
	if !live {
		sh.expirations++
	}
	sh.maybeCompact()
	return live
}

// SetExpiry changes key's expiry (the zero time means never) and reports
// whether a live entry was present. It does not change the entry's
// recency. An expiry at or before the store's clock removes the entry at
// once, counted as an expiration; an entry found already expired is
// removed the same way and reported as absent.
func (s *Store) SetExpiry(key string, expiresAt time.Time) bool {
	expires := unixNano(expiresAt)
	sh, h := s.shardFor(key)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	i, pos := sh.lookup(key, h)
	if i == 0 {
		return false
	}
	hd := sh.nodes[i].hdr()
	if hd.expires == 0 && expires == 0 {
		return true
	}
	now := s.now()
	wasLive := !hd.expired(now)
	if wasLive && (expires == 0 || now < expires) {
		hd.storeExpires(expires)
		return true
	}
	s.account(-1, -sh.removeAt(i, pos))
	sh.expirations++
	sh.maybeCompact()
	return wasLive
}

// Stats returns the store's counters. Entries and Bytes count what the
// store holds, including expired entries that no Get, sweep or eviction
// has removed yet. Each shard is read under its lock, one at a time.
func (s *Store) Stats() ports.StoreStats {
	var st ports.StoreStats
	for i := range s.shards {
		sh := &s.shards[i].shard
		sh.mu.Lock()
		st.Hits += sh.hits
		st.Misses += sh.misses
		st.Evictions += sh.evictions
		st.Expirations += sh.expirations
		st.Entries += sh.live
		st.Bytes += sh.bytes
		sh.mu.Unlock()
		for k := range sh.reads.rings {
			if r := sh.reads.rings[k].Load(); r != nil {
				st.Hits += r.hits()
				st.Misses += r.misses.Load()
			}
		}
	}
	return st
}

// Close stops the sweeper and waits for it to return. It is idempotent and
// always returns nil. The store's data stays usable after Close; only
// background expiry stops.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		if s.stop != nil {
			close(s.stop)
			<-s.done
		}
	})
	return nil
}

var (
	minUnixNano = time.Unix(0, math.MinInt64)
	maxUnixNano = time.Unix(0, math.MaxInt64)
)

// unixNano converts an expiry to the stored representation: 0 for the
// zero time (never), Unix nanoseconds otherwise, clamped to the int64
// range, with the instant of the Unix epoch itself moved a nanosecond
// earlier so it does not read as "never".
func unixNano(t time.Time) int64 {
	switch {
	case t.IsZero():
		return 0
	case t.Before(minUnixNano):
		return math.MinInt64
	case t.After(maxUnixNano):
		return math.MaxInt64
	}
	if n := t.UnixNano(); n != 0 {
		return n
	}
	return -1
}

// Peek is Get without its side effects: it neither counts a hit or a miss
// nor refreshes the entry's recency. Replication uses it to compare
// versions.
func (s *Store) Peek(key string) (ports.Entry, bool) {
	sh, h := s.shardFor(key)
	_, hd, w, _ := sh.lay.Load().find(key, h)
	if hd == nil || hd.expired(s.now()) {
		return ports.Entry{}, false
	}
	return ports.Entry{
		Key:       key,
		Value:     hd.value(),
		ExpiresAt: expiryTime(hd.loadExpires()),
		Version:   hd.version,
		Writer:    w.nodeID(),
	}, true
}
