package cache

import (
	"sync"
	"time"

	"github.com/mycorrizal/mycorrizal/ports"
)

// promises deduplicate sync transfers: when several peers offer this node
// the same version of a key at once (a new node pulls from every peer in
// parallel, and each holds a copy), the first offer it accepts is promised
// and the others are declined, so each value crosses the network once. A
// promise is kept until the promised record arrives, or for promiseTTL
// should the sender fail (the next sync round then asks again). The table
// is bounded; when full, offers are accepted without a promise.
type promises struct {
	mu    sync.Mutex
	limit int
	m     map[promiseKey]promise
}

type promiseKey struct{ bucket, key string }

type promise struct {
	from    ports.NodeID
	version uint64
	writer  string
	until   time.Time
}

const promiseTTL = 30 * time.Second

func newPromises(limit int) *promises {
	return &promises{limit: limit, m: make(map[promiseKey]promise)}
}

// claim reports whether this node wants r from peer: true unless another
// peer has promised the same or a newer version that has not arrived yet.
// When it wants r, it records peer's promise.
func (p *promises) claim(bucket string, r record, peer ports.NodeID, now time.Time) bool {
	k := promiseKey{bucket, r.key}
	p.mu.Lock()
	defer p.mu.Unlock()
	if pr, ok := p.m[k]; ok && pr.from != peer && now.Before(pr.until) && !r.newerThan(pr.version, pr.writer) {
		return false
	}
	if len(p.m) >= p.limit {
		p.sweepLocked(now)
		if len(p.m) >= p.limit {
			return true // no room: take it without a promise
		}
	}
	p.m[k] = promise{from: peer, version: r.version, writer: r.writer, until: now.Add(promiseTTL)}
	return true
}

// fulfil drops the promise of peer for key (its record arrived).
func (p *promises) fulfil(bucket, key string, peer ports.NodeID) {
	k := promiseKey{bucket, key}
	p.mu.Lock()
	if pr, ok := p.m[k]; ok && pr.from == peer {
		delete(p.m, k)
	}
	p.mu.Unlock()
}

// sweepLocked drops expired promises.
func (p *promises) sweepLocked(now time.Time) {
	for k, pr := range p.m {
		if !now.Before(pr.until) {
			delete(p.m, k)
		}
	}
}

// pending counts the promises not yet fulfilled nor expired.
func (p *promises) pending(now time.Time) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.sweepLocked(now)
	return len(p.m)
}
