package cache

import "github.com/mycorrizal/mycorrizal/ports"

// rangeBatch is how many entries Range copies out under one lock hold.
const rangeBatch = 128

// Range calls fn for each live entry, shard by shard in slot order (not in
// LRU order), until fn returns false. It copies up to 128 entries at a
// time under the shard's lock and calls fn with no lock held, so fn may
// call any method of the store. Entries set, deleted or expiring during
// Range may or may not be seen, and a key deleted and set again may be
// seen twice; an entry left alone throughout is seen exactly once. Range
// does not change recency or counters. As with Get, each Value aliases the
// store's copy and must not be modified.
func (s *Store) Range(fn func(ports.Entry) bool) {
	batch := make([]ports.Entry, 0, rangeBatch)
	for i := range s.shards {
		if !s.rangeShard(&s.shards[i].shard, fn, batch) {
			return
		}
	}
}

// rangeShard walks one shard for Range, reporting whether to go on. While
// it runs, the shard does not compact, so slot numbers stay stable.
func (s *Store) rangeShard(sh *shard, fn func(ports.Entry) bool, batch []ports.Entry) bool {
	sh.mu.Lock()
	sh.ranging++
	sh.mu.Unlock()
	defer func() {
		sh.mu.Lock()
		sh.ranging--
		sh.mu.Unlock()
	}()
	for pos := 1; ; {
		batch = batch[:0]
		now := s.now()
		sh.mu.Lock()
		for ; pos < sh.top && len(batch) < rangeBatch; pos++ {
			hd := sh.nodes[pos].hdr()
			if hd == nil || hd.expired(now) {
				continue
			}
			batch = append(batch, sh.entry(int32(pos), hd.key()))
		}
		done := pos >= sh.top
		sh.mu.Unlock()
		for _, e := range batch {
			if !fn(e) {
				return false
			}
		}
		if done {
			return true
		}
	}
}
