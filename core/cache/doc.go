// Package cache is Mycorrizal's distributed cache (Mycel, the network of
// buckets). This part of it is the local storage engine: Store, the
// default ports.Store every bucket uses, an LRU cache with per-entry
// expiry (TTL) and limits on entry count and bytes.
//
// # Operations
//
// Get, Set, Delete and SetExpiry are O(1): a hash index finds the entry's
// slot and the slot's links move it within, or out of, an intrusive doubly
// linked LRU list, so no operation walks a list. Bytes are accounted as
// len(key)+len(value). Set evicts least recently used entries until both
// limits hold and refuses, with an error wrapping ports.ErrFrameTooLarge,
// an entry larger than MaxBytes on its own. An expired entry is never
// returned: Get checks the expiry against the store's clock and removes an
// expired entry it meets, counting an expiration; Range skips them.
//
// # Values
//
// Set copies the caller's key and value, so later changes to the caller's
// bytes do not leak in. Get and Range return the stored bytes themselves
// (zero-copy; a Get hit makes no allocation): callers must not modify
// them. Stored bytes are never written after Set, since an overwrite
// stores a new copy, so a returned value stays valid and unchanged for as
// long as the caller holds it.
//
// # Memory layout
//
// An entry is one allocation: a 24-byte header (expiry, version, lengths)
// followed by the key and the value, never changed after Set except for
// the expiry. Each shard addresses its entries through an arena, a slice
// of 24-byte nodes (the entry pointer, the interned writer ID, a seqlock
// counter and the key's hash) numbered by int32 slot, with a parallel
// slice of 8-byte LRU links and a free list for reuse. The index from keys
// to slots is an open-addressing table of int32 (about 8 bytes per
// entry). So the pointers the garbage collector traces are two per entry,
// both in the arena, and the heap overhead per entry beyond its key and
// value is about 70 bytes (BenchmarkMemoryOverhead). A shard whose entries
// fall below a quarter of its arena compacts it.
//
// # Concurrency
//
// The store is split into shards (StoreConfig.Shards), each with its own
// lock, arena, index and LRU list; a key's shard is chosen by hash. Writes
// (Set, Delete, SetExpiry, evictions, the sweeper) take the shard's lock.
// Get takes none: it reads the shard's published arena and index with
// atomic loads, through a per-node seqlock, so concurrent Gets write no
// shared memory and scale across cores. Since it cannot relink the entry
// it finds, Get records the access in a small per-goroutine-striped read
// buffer that the lock holder applies in order before it next evicts: the
// read-buffered promotion of otter and Caffeine. Without contention this
// is exact LRU. Under contention it is approximate: an access that finds
// its buffer full and the shard busy is dropped, and a shard whose Gets
// come from several processors at once records only a sample of them,
// since applying every access would move the LRU list's cache lines
// between processors on every Get (see readbuf.go).
//
// The limits are store-wide: a Set evicts from its own shard's LRU end
// first and, only when its shard holds nothing else, from the other shards
// in turn. LRU order is therefore exact within a shard and approximate
// across shards (the entry evicted is the least recently used of its
// shard, not necessarily of the store), the approximation every sharded
// cache makes; with keys spread by a good hash the difference is small
// once shards hold hundreds of entries each. The default shard count is
// chosen so they do, and a small store gets one shard and an exact LRU.
// The property tests check a one-shard store against a model of an exact
// LRU.
//
// # Sweeper
//
// NewStore starts a sweeper goroutine, stopped by Close, that each
// SweepInterval examines at most SweepBatch arena slots, resuming where
// the previous tick stopped, and removes the expired entries among them.
// It locks a shard for at most 128 slots at a time. It scans slots rather
// than keeping a heap or timing wheel of expiries, which would cost memory
// per entry and work on every Set; the price is that a full pass over n
// slots takes n/SweepBatch ticks. Expired entries are never returned in
// the meantime, and when the store is full LRU eviction reclaims their
// room.
package cache
