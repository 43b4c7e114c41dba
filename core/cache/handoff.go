package cache

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/mycorrizal/mycorrizal/core/placement"
	"github.com/mycorrizal/mycorrizal/ports"
)

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
