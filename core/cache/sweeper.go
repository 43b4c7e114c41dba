package cache

import "time"

// sweepChunk is the most slots the sweeper examines under one lock hold.
const sweepChunk = 128

// sweeper runs sweep every interval until Close.
func (s *Store) sweeper(interval time.Duration) {
	defer close(s.done)
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
			s.sweep()
		}
	}
}

// sweep is one tick of the sweeper: it examines at most sweepBatch arena
// slots, resuming where the previous tick stopped and going on shard after
// shard, and removes the expired entries among them, counting each as an
// expiration. It takes a shard's lock for at most sweepChunk slots at a
// time, so a tick never holds a lock for a whole pass, and it stops early
// once it has gone round every shard. It returns the slots examined and
// the entries removed.
//
// A full pass over a store of n slots takes about n/SweepBatch ticks;
// expired entries are never returned meanwhile, and LRU eviction reclaims
// their room when the store is full.
func (s *Store) sweep() (examined, removed int) {
	s.sweepMu.Lock()
	defer s.sweepMu.Unlock()
	for ends := 0; examined < s.sweepBatch && ends < len(s.shards); {
		sh := &s.shards[s.sweepShard].shard
		ex, rm, end := s.sweepShardChunk(sh, min(s.sweepBatch-examined, sweepChunk))
		examined += ex
		removed += rm
		if end {
			s.sweepShard = (s.sweepShard + 1) % len(s.shards)
			ends++
		}
	}
	return examined, removed
}

// sweepShardChunk examines up to limit slots of sh from its sweep position
// under one lock hold, and reports whether it reached the arena's end.
func (s *Store) sweepShardChunk(sh *shard, limit int) (examined, removed int, end bool) {
	now := s.now()
	sh.mu.Lock()
	defer sh.mu.Unlock()
	pos := sh.sweepPos
	for ; examined < limit && pos < sh.top; pos++ {
		examined++
		if hd := sh.nodes[pos].hdr(); hd != nil && hd.expired(now) {
			s.account(-1, -sh.remove(int32(pos)))
			sh.expirations++
			removed++
		}
	}
	end = pos >= sh.top
	if end {
		pos = 1
	}
	sh.sweepPos = pos
	if removed > 0 {
		sh.maybeCompact() // resets sweepPos if it compacts
	}
	return examined, removed, end
}
