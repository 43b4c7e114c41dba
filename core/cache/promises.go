package cache

import (
	"sync"
	"time"

	"github.com/mycorrizal/mycorrizal/ports"
)

// promises deduplicate sync transfers: when several peers offer this node
// the same version of a key at once (a new node pulls from every peer in
// parallel, and each holds a copy), the first offer it accepts is promised
// and the others are deferred, so each value crosses the network once.
//
// A promise ends when its record arrives (fulfil), when the pull it belongs
// to ends (release: a pull's batches all complete before its answer, so a
// record promised by that peer and not arrived by then never will; the
// round that ran the pull then fails and the next round asks again), or
// after promiseTTL should neither happen. The table is bounded; when full,
// offers are accepted without a promise.
type promises struct {
	mu     sync.Mutex
	limit  int
	m      map[promiseKey]promise
	byPeer map[peerBucket]map[string]struct{} // the keys each peer promised, per bucket
}

type promiseKey struct{ bucket, key string }

type peerBucket struct {
	peer   ports.NodeID
	bucket string
}

type promise struct {
	from    ports.NodeID
	version uint64
	writer  string
	until   time.Time
}

const promiseTTL = 30 * time.Second

func newPromises(limit int) *promises {
	return &promises{limit: limit, m: make(map[promiseKey]promise), byPeer: make(map[peerBucket]map[string]struct{})}
}

// claim reports whether this node wants r from peer now: true unless
// another peer has promised the same or a newer version that has not
// arrived yet. When it wants r, it records peer's promise.
func (p *promises) claim(bucket string, r record, peer ports.NodeID, now time.Time) bool {
	k := promiseKey{bucket, r.key}
	p.mu.Lock()
	defer p.mu.Unlock()
	if pr, ok := p.m[k]; ok && pr.from != peer && now.Before(pr.until) && !r.newerThan(pr.version, pr.writer) {
		return false
	}
	if pr, ok := p.m[k]; ok {
		p.unindexLocked(k, pr.from)
	} else if len(p.m) >= p.limit {
		p.sweepLocked(now)
		if len(p.m) >= p.limit {
			return true // no room: take it without a promise
		}
	}
	p.m[k] = promise{from: peer, version: r.version, writer: r.writer, until: now.Add(promiseTTL)}
	pb := peerBucket{peer, bucket}
	keys := p.byPeer[pb]
	if keys == nil {
		keys = make(map[string]struct{})
		p.byPeer[pb] = keys
	}
	keys[r.key] = struct{}{}
	return true
}

// fulfil drops the promise of peer for key (its record arrived).
func (p *promises) fulfil(bucket, key string, peer ports.NodeID) {
	k := promiseKey{bucket, key}
	p.mu.Lock()
	if pr, ok := p.m[k]; ok && pr.from == peer {
		delete(p.m, k)
		p.unindexLocked(k, peer)
	}
	p.mu.Unlock()
}

// release ends every promise peer made for bucket and returns how many had
// not been fulfilled.
func (p *promises) release(bucket string, peer ports.NodeID) int {
	pb := peerBucket{peer, bucket}
	p.mu.Lock()
	defer p.mu.Unlock()
	keys := p.byPeer[pb]
	delete(p.byPeer, pb)
	for key := range keys {
		delete(p.m, promiseKey{bucket, key})
	}
	return len(keys)
}

func (p *promises) unindexLocked(k promiseKey, peer ports.NodeID) {
	pb := peerBucket{peer, k.bucket}
	if keys := p.byPeer[pb]; keys != nil {
		delete(keys, k.key)
		if len(keys) == 0 {
			delete(p.byPeer, pb)
		}
	}
}

// sweepLocked drops expired promises.
func (p *promises) sweepLocked(now time.Time) {
	for k, pr := range p.m {
		if !now.Before(pr.until) {
			delete(p.m, k)
			p.unindexLocked(k, pr.from)
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
