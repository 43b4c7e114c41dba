package cache

import (
	"context"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/mycorrizal/mycorrizal/core/placement"
	"github.com/mycorrizal/mycorrizal/ports"
)

// Dropping the copies a node holds of keys it does not own (after a
// membership change, or a handoff it received early). The rule is per
// record: a copy goes only once every owner of its key in the current view
// has confirmed, in answer to an offer of that exact version, that it holds
// the version or a newer one (or has received it), and only if this node
// still holds that version then. No timing, pull bookkeeping or view
// agreement is trusted for it, so no sequence of joins, leaves and writes
// can make a node drop the last copy of a record.

// pullKey names the pulls of one bucket by one peer.
type pullKey struct {
	peer   ports.NodeID
	bucket string
}

func nodesKey(ids []ports.NodeID) string {
	var sb strings.Builder
	for _, id := range ids {
		sb.WriteString(string(id))
		sb.WriteByte(0)
	}
	return sb.String()
}

// notePulled records that peer completed a pull of bucket from this node
// with view v (ReplicationStats reports, from these marks, which owners
// have not pulled since the view changed). A peer that pulls is not
// leaving (it may be back, restarted, with the same ID).
func (c *Cache) notePulled(from ports.NodeID, bucket string, v *placement.View) {
	if !c.view.Load().Contains(from) {
		return // not a member here (yet): the table stays bounded by the view
	}
	c.pullMu.Lock()
	c.pulledBy[pullKey{from, bucket}] = nodesKey(v.Nodes())
	delete(c.leaving, from)
	c.pullMu.Unlock()
	c.kickDrop() // the puller now holds what this node offered: copies may go
}

// kickDrop asks the syncer for a drop pass soon.
func (c *Cache) kickDrop() {
	select {
	case c.dropKick <- struct{}{}:
	default:
	}
}

// forgetPeer forgets a peer's pulls and handoff: it joined anew (a node
// back after leaving or failing has lost what it held, even when the
// membership layer reported no departure in between).
func (c *Cache) forgetPeer(p ports.NodeID) {
	c.pullMu.Lock()
	defer c.pullMu.Unlock()
	for k := range c.pulledBy {
		if k.peer == p {
			delete(c.pulledBy, k)
		}
	}
	delete(c.leaving, p)
}

// forgetPulls forgets the pulls and handoffs of nodes that are not in v.
func (c *Cache) forgetPulls(v *placement.View) {
	c.pullMu.Lock()
	defer c.pullMu.Unlock()
	for k := range c.pulledBy {
		if !v.Contains(k.peer) {
			delete(c.pulledBy, k)
		}
	}
	for p := range c.leaving {
		if !v.Contains(p) {
			delete(c.leaving, p) // it left; if it comes back, it is new
		}
	}
}

// foreignCopy is a copy this node holds of a key it does not own, and how
// many of the key's owners have confirmed holding it.
type foreignCopy struct {
	rec       record
	owners    int
	confirmed int
}

// dropForeign offers every copy this node holds of a key it does not own
// (in the current view, nor in the view without peers that are handing
// off) to the key's owners, sends the ones they lack, and drops each copy
// every owner confirmed. It returns how many copies remain.
func (c *Cache) dropForeign(ctx context.Context) int {
	v := c.view.Load()
	if v.Len() <= 1 {
		return 0
	}
	keep := c.ownerView(v)
	remaining, dropped := 0, 0
	for _, name := range c.Buckets() {
		b, err := c.bucket(name)
		if err != nil {
			return remaining
		}
		copies, perPeer := c.foreignCopies(b, v, keep)
		if len(copies) == 0 {
			continue
		}
		byKey := make(map[string]int, len(copies))
		for i, fc := range copies {
			byKey[fc.rec.key] = i
		}
		var (
			mu sync.Mutex
			wg sync.WaitGroup
		)
		for p, idx := range perPeer {
			wg.Go(func() {
				bt := newBatcher(c, ctx, p, b)
				bt.onResult = func(batch []record, have []bool) {
					mu.Lock()
					defer mu.Unlock()
					for i, r := range batch {
						if j, ok := byKey[r.key]; ok && have[i] && copies[j].rec.version == r.version && copies[j].rec.writer == r.writer {
							copies[j].confirmed++
						}
					}
				}
				for _, j := range idx {
					if bt.add(copies[j].rec) != nil {
						break
					}
				}
				_ = bt.close()
			})
		}
		wg.Wait()
		for _, fc := range copies {
			if fc.confirmed >= fc.owners && b.dropRecord(fc.rec) {
				dropped++
			} else {
				remaining++
			}
		}
	}
	if dropped > 0 {
		c.log.Info("dropped copies now held by their owners", "count", dropped, "remaining", remaining, "view", v.Version())
	}
	return remaining
}

// foreignCopies lists the copies b holds of keys this node owns neither in
// v nor in keep, and for each owner the indexes of the copies it owns.
func (c *Cache) foreignCopies(b *bucket, v, keep *placement.View) ([]foreignCopy, map[ports.NodeID][]int) {
	rf, _, _ := b.opts.quorums(v.Len())
	krf, _, _ := b.opts.quorums(keep.Len())
	owners := make([]ports.NodeID, 0, max(rf, krf))
	var copies []foreignCopy
	perPeer := make(map[ports.NodeID][]int)
	b.eachItem(func(r record) bool {
		kh := placement.KeyHash(b.name, r.key)
		if keep != v && slices.Contains(keep.Owners(owners[:0], kh, krf), c.self) {
			return true
		}
		owners = v.Owners(owners[:0], kh, rf)
		if slices.Contains(owners, c.self) {
			return true
		}
		for _, o := range owners {
			perPeer[o] = append(perPeer[o], len(copies))
		}
		copies = append(copies, foreignCopy{rec: r, owners: len(owners)})
		return c.ctx.Err() == nil
	})
	return copies, perPeer
}

// dropRetry is how soon a drop pass that left copies runs again.
const dropRetry = 2 * time.Second
