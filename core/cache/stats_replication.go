package cache

import (
	"slices"

	"github.com/mycorrizal/mycorrizal/core/placement"
	"github.com/mycorrizal/mycorrizal/ports"
)

// ReplicationStats describe this node's part in replication.
type ReplicationStats struct {
	// Synced is true when this node has pulled, from every peer of its
	// current view, the keys it owns.
	Synced bool
	// Members is the size of this node's current view.
	Members int
	// PendingWrites counts replica writes still in flight after their
	// write quorum answered.
	PendingWrites int64
	// UnderReplicated counts the records this node holds that some owner
	// in the current view may still lack: copies of keys this node does
	// not own (until every owner confirmed holding them; they are then
	// dropped), and records of keys it owns that a fellow owner has not
	// pulled from it with the current view. It is 0 in a settled cluster;
	// with Synced and PendingWrites == 0 on every node, every key has its
	// RF copies.
	UnderReplicated int
	// Foreign counts copies this node holds of keys it does not own in its
	// current view (kept until their owners have pulled them).
	Foreign int
	// Received counts records sync brought to this node; Repairs counts
	// read repairs this node made.
	Received, Repairs uint64
	// Rounds counts completed sync rounds.
	Rounds uint64
	// Shed counts background replica writes not sent because their
	// replica already had too many in flight (sync repairs them).
	Shed uint64
	// Tombstones counts the deletes remembered, over all buckets.
	Tombstones int
}

// ReplicationStats computes this node's replication counters. It walks
// every bucket, so call it for monitoring, not on a hot path.
func (c *Cache) ReplicationStats() ReplicationStats {
	v := c.view.Load()
	s := ReplicationStats{
		Synced:        c.synced.Load(),
		Members:       v.Len(),
		PendingWrites: c.pendingReplicas.Load(),
		Received:      c.received.Load(),
		Repairs:       c.repairs.Load(),
		Rounds:        c.rounds.Load(),
		Shed:          c.shed.Load(),
	}
	key := nodesKey(v.Nodes())
	c.pullMu.Lock()
	pulled := make(map[pullKey]bool, len(c.pulledBy))
	for p, nodes := range c.pulledBy {
		pulled[p] = nodes == key
	}
	c.pullMu.Unlock()
	for _, name := range c.Buckets() {
		b, err := c.bucket(name)
		if err != nil {
			continue
		}
		s.Tombstones += b.tombs.len()
		rf, _, _ := b.opts.quorums(v.Len())
		owners := make([]ports.NodeID, 0, rf)
		b.store.Range(func(e ports.Entry) bool {
			owners = v.Owners(owners[:0], placement.KeyHash(name, e.Key), rf)
			if !slices.Contains(owners, c.self) {
				s.Foreign++
				s.UnderReplicated++
				return true
			}
			for _, o := range owners {
				if o != c.self && !pulled[pullKey{o, name}] {
					s.UnderReplicated++
					break
				}
			}
			return true
		})
	}
	return s
}

// LocalRecord reports what this node's own replica holds for key, without
// asking any other node: its version and writer, and whether it is a
// tombstone. It is a diagnostic (tests and debugging use it to count
// copies); found is false when this node holds neither value nor
// tombstone.
func (c *Cache) LocalRecord(bucketName, key string) (version uint64, writer ports.NodeID, tomb, found bool) {
	b, err := c.bucket(bucketName)
	if err != nil {
		return 0, "", false, false
	}
	v, w, tomb, ok := b.current(key)
	return v, ports.NodeID(w), tomb, ok
}

// Replicas returns the nodes that hold key's replicas in this node's
// current view, primary first.
func (c *Cache) Replicas(bucketName, key string) []ports.NodeID {
	b, err := c.bucket(bucketName)
	if err != nil {
		return nil
	}
	v := c.view.Load()
	rf, _, _ := b.opts.quorums(v.Len())
	return v.Owners(nil, placement.KeyHash(bucketName, key), rf)
}
