package cache

import (
	"fmt"

	"github.com/mycorrizal/mycorrizal/ports"
)

// NewStoreOneStripe is NewStore with a single read-buffer stripe per
// shard, so that one goroutine's recency is applied in exact order however
// its stack moves (the model test needs that).
func NewStoreOneStripe(cfg StoreConfig) (*Store, error) { return newStore(cfg, 1) }

// SweepOnce runs one sweeper tick now and returns the slots it examined and
// the entries it removed.
func (s *Store) SweepOnce() (examined, removed int) { return s.sweep() }

// ShardCount returns the number of shards.
func (s *Store) ShardCount() int { return len(s.shards) }

// ArenaLen returns the arena slots of every shard together in use or
// freed, and their capacity.
func (s *Store) ArenaLen() (used, capacity int) {
	for i := range s.shards {
		sh := &s.shards[i].shard
		sh.mu.Lock()
		used += sh.top - 1
		capacity += len(sh.nodes) - 1
		sh.mu.Unlock()
	}
	return used, capacity
}

// PeekAny returns key's entry, expired or not, without changing recency or
// counters.
func (s *Store) PeekAny(key string) (ports.Entry, bool) {
	sh, h := s.shardFor(key)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	i, _ := sh.lookup(key, h)
	if i == 0 {
		return ports.Entry{}, false
	}
	return sh.entry(i, key), true
}

// LRUOrder applies buffered accesses and returns each shard's keys from
// most to least recently used.
func (s *Store) LRUOrder() [][]string {
	out := make([][]string, len(s.shards))
	for si := range s.shards {
		sh := &s.shards[si].shard
		sh.mu.Lock()
		sh.drainReads()
		order := []string{}
		for i := sh.links[0].next; i != 0 && len(order) <= sh.top; i = sh.links[i].next {
			order = append(order, sh.nodes[i].hdr().key())
		}
		out[si] = order
		sh.mu.Unlock()
	}
	return out
}

// CheckInvariants checks the internal consistency of every shard (LRU
// links, free list, index, published layout, byte and writer accounting)
// and the store-wide totals.
func (s *Store) CheckInvariants() error {
	var entries, bytes int64
	for si := range s.shards {
		sh := &s.shards[si].shard
		sh.mu.Lock()
		err := sh.check()
		entries += int64(sh.live)
		bytes += sh.bytes
		sh.mu.Unlock()
		if err != nil {
			return fmt.Errorf("shard %d: %w", si, err)
		}
	}
	if got := s.entries.Load(); got != entries {
		return fmt.Errorf("store entries %d, shards hold %d", got, entries)
	}
	if got := s.bytes.Load(); got != bytes {
		return fmt.Errorf("store bytes %d, shards hold %d", got, bytes)
	}
	return nil
}

func (sh *shard) check() error {
	lay := sh.lay.Load()
	if &lay.nodes[0] != &sh.nodes[0] || len(lay.nodes) != len(sh.nodes) || &lay.slots[0] != &sh.slots[0] || lay.mask != sh.mask {
		return fmt.Errorf("published layout is not the current one")
	}
	if len(sh.links) != len(sh.nodes) || sh.top > len(sh.nodes) || sh.top < 1 {
		return fmt.Errorf("arena of %d nodes, %d links, top %d", len(sh.nodes), len(sh.links), sh.top)
	}
	// LRU list: every live slot once, links consistent both ways.
	seen := make(map[int32]bool)
	var bytes int64
	refs := map[*writerRef]int{}
	prev := int32(0)
	for i := sh.links[0].next; i != 0; i = sh.links[i].next {
		if seen[i] || len(seen) > sh.top || int(i) >= sh.top {
			return fmt.Errorf("LRU list revisits slot %d or leaves the arena", i)
		}
		seen[i] = true
		n := &sh.nodes[i]
		hd := n.hdr()
		if hd == nil {
			return fmt.Errorf("free slot %d on the LRU list", i)
		}
		if sh.links[i].prev != prev {
			return fmt.Errorf("slot %d prev %d, want %d", i, sh.links[i].prev, prev)
		}
		if n.seq&1 != 0 {
			return fmt.Errorf("slot %d left with an odd seq", i)
		}
		bytes += hd.size()
		if w := (*writerRef)(n.writer); w != nil {
			refs[w]++
		}
		if j, _ := sh.lookup(hd.key(), n.hash); j != i {
			return fmt.Errorf("index finds key %q at slot %d, it is at %d", hd.key(), j, i)
		}
		if j, found, _, _ := lay.find(hd.key(), n.hash); j != i || found != hd {
			return fmt.Errorf("lock-free find of key %q gives slot %d, it is at %d", hd.key(), j, i)
		}
		prev = i
	}
	if sh.links[0].prev != prev {
		return fmt.Errorf("sentinel prev %d, LRU end is %d", sh.links[0].prev, prev)
	}
	if len(seen) != sh.live {
		return fmt.Errorf("LRU list has %d entries, live %d", len(seen), sh.live)
	}
	if bytes != sh.bytes {
		return fmt.Errorf("entries hold %d bytes, shard counts %d", bytes, sh.bytes)
	}
	// Free list: every other slot below top once, all empty.
	free := 0
	for i := sh.free; i != 0; i = sh.links[i].next {
		if seen[i] || free > sh.top || int(i) >= sh.top {
			return fmt.Errorf("free list revisits slot %d, holds a live one or leaves the arena", i)
		}
		if sh.nodes[i].data != nil {
			return fmt.Errorf("free slot %d has data", i)
		}
		seen[i] = true
		free++
	}
	if sh.live+free != sh.top-1 {
		return fmt.Errorf("%d live and %d free slots below top %d", sh.live, free, sh.top)
	}
	for i := sh.top; i < len(sh.nodes); i++ {
		if sh.nodes[i].data != nil {
			return fmt.Errorf("unused slot %d has data", i)
		}
	}
	// Index: exactly the live slots plus tombstones, within the load limit.
	live, used := 0, 0
	for _, slot := range sh.slots {
		switch {
		case slot > 0:
			live++
			used++
			if sh.nodes[slot].data == nil {
				return fmt.Errorf("index points at free slot %d", slot)
			}
		case slot == tombstone:
			used++
		}
	}
	if live != sh.live || used != sh.used {
		return fmt.Errorf("index holds %d slots and %d positions used, shard counts %d and %d", live, used, sh.live, sh.used)
	}
	if used*4 > len(sh.slots)*3 {
		return fmt.Errorf("index of %d over the load limit with %d", len(sh.slots), used)
	}
	// Writers: reference counts match the entries, and the table holds
	// exactly the writers in use.
	for w, n := range refs {
		if w.refs != n || sh.w.byID[w.id] != w {
			return fmt.Errorf("writer %q has %d references, %d entries use it", w.id, w.refs, n)
		}
	}
	if len(sh.w.byID) != len(refs) {
		return fmt.Errorf("writer table holds %d IDs, %d in use", len(sh.w.byID), len(refs))
	}
	return nil
}

// Sampling reports whether Gets of key's shard sample their accesses.
func (s *Store) Sampling(key string) bool {
	sh, _ := s.shardFor(key)
	return sh.sampled.Load()
}
