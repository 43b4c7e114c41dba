package mycorrizal

import (
	"math/rand/v2"
	"sync"
	"time"

	"github.com/mycorrizal/mycorrizal/ports"
)

// maxReconnect bounds how many failed members are remembered for
// reconnection; the table is fed from the network, so it must be bounded.
const maxReconnect = 1024

// reconnector remembers members that failed (not ones that left), so the
// join loop can try to reach them again: after a partition heals, gossip
// alone does not bring the sides back together.
type reconnector struct {
	interval, timeout time.Duration
	limit             int

	mu     sync.Mutex
	failed map[ports.NodeID]failedMember
}

type failedMember struct {
	addr string
	at   time.Time
}

func newReconnector(interval, timeout time.Duration, limit int) *reconnector {
	return &reconnector{interval: interval, timeout: timeout, limit: limit, failed: make(map[ports.NodeID]failedMember)}
}

// observe records a failure, and forgets a member that joined or left.
func (r *reconnector) observe(ev ports.MemberEvent) {
	r.mu.Lock()
	defer r.mu.Unlock()
	id := ev.Member.ID
	switch ev.Type {
	case ports.MemberFailed:
		if ev.Member.GossipAddr == "" {
			return
		}
		if _, ok := r.failed[id]; !ok && len(r.failed) >= r.limit {
			r.evictOldest()
		}
		r.failed[id] = failedMember{addr: ev.Member.GossipAddr, at: time.Now()}
	case ports.MemberJoined, ports.MemberUpdated, ports.MemberLeft:
		delete(r.failed, id)
	}
}

func (r *reconnector) evictOldest() {
	var oldest ports.NodeID
	var at time.Time
	for id, f := range r.failed {
		if at.IsZero() || f.at.Before(at) {
			oldest, at = id, f.at
		}
	}
	delete(r.failed, oldest)
}

// pick forgets members that failed longer ago than the timeout and returns
// one of the others at random.
func (r *reconnector) pick(now time.Time) (string, ports.NodeID, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	var ids []ports.NodeID
	for id, f := range r.failed {
		if now.Sub(f.at) > r.timeout {
			delete(r.failed, id)
			continue
		}
		ids = append(ids, id)
	}
	if len(ids) == 0 {
		return "", "", false
	}
	id := ids[rand.IntN(len(ids))]
	return r.failed[id].addr, id, true
}
