package cache

import (
	"slices"
	"strings"

	"github.com/mycorrizal/mycorrizal/core/placement"
	"github.com/mycorrizal/mycorrizal/ports"
)

// Dropping copies a node holds of keys it no longer owns (after a
// membership change), once every owner has pulled them from it.

// pullMark records that a peer pulled from this node with a view.
type pullMark struct {
	nodes string // the puller's member list, joined
	at    uint64 // this node's clock when the pull began
}

func nodesKey(ids []ports.NodeID) string {
	var sb strings.Builder
	for _, id := range ids {
		sb.WriteString(string(id))
		sb.WriteByte(0)
	}
	return sb.String()
}

// notePulled records a completed pull by a peer. A peer that pulls is not
// leaving (it may be back, restarted, with the same ID).
func (c *Cache) notePulled(from ports.NodeID, v *placement.View, at uint64) {
	if !c.view.Load().Contains(from) {
		return // not a member here (yet): nothing to record, and the table stays bounded by the view
	}
	c.pullMu.Lock()
	c.pulledBy[from] = pullMark{nodes: nodesKey(v.Nodes()), at: at}
	delete(c.leaving, from)
	c.pullGen++
	c.pullMu.Unlock()
	// Only the drop check: a pull served must not start a round of this
	// node's own, or two nodes would make each other pull forever.
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
	delete(c.pulledBy, p)
	delete(c.leaving, p)
	c.pullMu.Unlock()
}

// forgetPulls forgets the pulls and handoffs of nodes that are not in v: a
// node that left and comes back (with the same ID, as a restarted process
// does) has lost what it pulled and must pull again before this node drops
// anything.
func (c *Cache) forgetPulls(v *placement.View) {
	c.pullMu.Lock()
	defer c.pullMu.Unlock()
	for p := range c.pulledBy {
		if !v.Contains(p) {
			delete(c.pulledBy, p)
		}
	}
	for p := range c.leaving {
		if !v.Contains(p) {
			delete(c.leaving, p) // it left; if it comes back, it is new
		}
	}
}

// dropHorizon returns the clock reading before which every copy this node
// held was offered to every peer of view v, as each pulled with v, and the
// pull generation it reflects; ok is false while some peer has not pulled
// with v.
func (c *Cache) dropHorizon(v *placement.View) (horizon, gen uint64, ok bool) {
	key := nodesKey(v.Nodes())
	c.pullMu.Lock()
	defer c.pullMu.Unlock()
	any := false
	for _, p := range v.Nodes() {
		if p == c.self {
			continue
		}
		m, found := c.pulledBy[p]
		if !found || m.nodes != key {
			return 0, 0, false
		}
		if !any || m.at < horizon {
			horizon, any = m.at, true
		}
	}
	return horizon, c.pullGen, any
}

// maybeDropForeign removes the copies this node holds of keys it does not
// own, once their owners have pulled them (see dropHorizon). A copy this
// node would own once a peer that is handing off has left is kept.
func (c *Cache) maybeDropForeign() {
	v := c.view.Load()
	horizon, gen, ok := c.dropHorizon(v)
	if !ok || gen == c.lastDropGen {
		return
	}
	c.lastDropGen = gen
	keep := c.ownerView(v)
	dropped := 0
	for _, name := range c.Buckets() {
		b, err := c.bucket(name)
		if err != nil {
			return
		}
		rf, _, _ := b.opts.quorums(v.Len())
		krf, _, _ := b.opts.quorums(keep.Len())
		owners := make([]ports.NodeID, 0, rf+krf)
		b.store.Range(func(e ports.Entry) bool {
			if e.Version >= horizon {
				return true
			}
			kh := placement.KeyHash(name, e.Key)
			owners = v.Owners(owners[:0], kh, rf)
			if keep != v {
				owners = keep.Owners(owners, kh, krf)
			}
			if !slices.Contains(owners, c.self) {
				b.drop(e.Key, e.Version)
				dropped++
			}
			return c.ctx.Err() == nil
		})
	}
	if dropped > 0 {
		c.log.Info("dropped copies now held by their owners", "count", dropped, "view", v.Version())
	}
}
