package cache

import (
	"sync"

	"github.com/mycorrizal/mycorrizal/ports"
)

// budgets bound the replica writes in flight in the background to each
// peer, in count and bytes, so one live but slow replica cannot take the
// request slots and memory that writes to the other peers need. A write
// that finds its replica's budget spent is not sent there (it counts as
// that replica failing: the write quorum decides, and sync repairs the
// replica later).
type budgets struct {
	mu       sync.Mutex
	maxCount int
	maxBytes int64
	m        map[ports.NodeID]*budget // peers with writes in flight only
}

type budget struct {
	count int
	bytes int64
}

func newBudgets(maxCount int, maxBytes int64) *budgets {
	return &budgets{maxCount: maxCount, maxBytes: maxBytes, m: make(map[ports.NodeID]*budget)}
}

// acquire takes room for one write of n bytes to peer, if there is room.
func (b *budgets) acquire(peer ports.NodeID, n int) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	u := b.m[peer]
	if u == nil {
		u = &budget{}
		b.m[peer] = u
	}
	if u.count >= b.maxCount || (u.count > 0 && u.bytes+int64(n) > b.maxBytes) {
		return false
	}
	u.count++
	u.bytes += int64(n)
	return true
}

// release returns what acquire took.
func (b *budgets) release(peer ports.NodeID, n int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	u := b.m[peer]
	if u == nil {
		return
	}
	u.count--
	u.bytes -= int64(n)
	if u.count <= 0 {
		delete(b.m, peer)
	}
}
