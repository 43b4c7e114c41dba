package cache

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/mycorrizal/mycorrizal/core/placement"
	"github.com/mycorrizal/mycorrizal/ports"
)

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

// leavingFor is how long a peer that announced its handoff counts as gone
// for dropping, should it not leave after all.
const leavingFor = 2 * time.Minute

// noteLeaving records that peer is handing its keys off before leaving.
func (c *Cache) noteLeaving(peer ports.NodeID) {
	if !c.view.Load().Contains(peer) {
		return
	}
	c.pullMu.Lock()
	defer c.pullMu.Unlock()
	c.leaving[peer] = time.Now().Add(leavingFor)
}

// ownerView is the view copies are kept for: the current view without the
// peers handing off, whose keys this node may just have received as their
// next owner, before the peer has left the view.
func (c *Cache) ownerView(v *placement.View) *placement.View {
	c.pullMu.Lock()
	defer c.pullMu.Unlock()
	now := time.Now()
	var gone []ports.NodeID
	for p, until := range c.leaving {
		switch {
		case now.After(until) || !v.Contains(p):
			delete(c.leaving, p)
		default:
			gone = append(gone, p)
		}
	}
	if len(gone) == 0 {
		return v
	}
	return placement.NewView(v.Version(), slices.DeleteFunc(slices.Clone(v.Nodes()), func(id ports.NodeID) bool {
		return slices.Contains(gone, id)
	}))
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

// Handoff hands every key this node holds to the nodes that own it once
// this node is gone, before a graceful shutdown: it pushes to each peer,
// as a sync would, the keys the peer owns in the view without this node.
// It is bounded by ctx and returns the first error; keys not handed off
// remain on their other replicas.
func (c *Cache) Handoff(ctx context.Context) error {
	v := c.view.Load()
	rest := slices.DeleteFunc(slices.Clone(v.Nodes()), func(id ports.NodeID) bool { return id == c.self })
	if len(rest) == 0 {
		return nil
	}
	after := placement.NewView(0, rest)
	start := time.Now()
	// Tell the peers first, so none drops what it receives as a copy it
	// does not own yet.
	for _, p := range rest {
		_ = c.call(ctx, c.syncApp, p, appendRequest(nil, request{op: opLeaving}), func(response) error { return nil })
	}
	var (
		mu   sync.Mutex
		errs []error
		wg   sync.WaitGroup
	)
	for _, name := range c.Buckets() {
		b, err := c.bucket(name)
		if err != nil {
			return err
		}
		for _, p := range rest {
			wg.Go(func() {
				if err := c.pushTo(ctx, p, b, after, nil); err != nil {
					mu.Lock()
					errs = append(errs, fmt.Errorf("bucket %q to %s: %w", name, p, err))
					mu.Unlock()
				}
			})
		}
		wg.Wait()
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("cache: handoff: %w", err)
	}
	c.log.Info("handed off keys before leaving", "peers", len(rest), "took", time.Since(start).Round(time.Millisecond))
	return nil
}

// limiter bounds the bytes per second sync sends (a token bucket).
type limiter struct {
	mu     sync.Mutex
	rate   float64 // bytes per second; 0 = unlimited
	tokens float64
	last   time.Time
}

// wait blocks until n bytes may be sent, or ctx ends.
func (l *limiter) wait(ctx context.Context, n int) error {
	if l.rate <= 0 {
		return nil
	}
	l.mu.Lock()
	now := time.Now()
	burst := l.rate / 4
	l.tokens = min(burst, l.tokens+now.Sub(l.last).Seconds()*l.rate)
	l.last = now
	l.tokens -= float64(n)
	deficit := -l.tokens
	l.mu.Unlock()
	if deficit <= 0 {
		return nil
	}
	t := time.NewTimer(time.Duration(deficit / l.rate * float64(time.Second)))
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
