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

// Handing off before a graceful leave. The leaving node marks itself
// leaving first; from then on every record it applies (a replica write, a
// read repair, a sync batch) is forwarded to the key's owners in the view
// without it before it is acknowledged, and it scans its store only after
// the mark, so every record is either in the scan or forwarded: nothing
// written to it during the handoff or the Leave that follows is lost. While
// leaving it defers every sync offer, so no peer drops a copy because this
// node holds it, and it pulls nothing.

// leavingFor is how long a peer that announced its handoff counts as gone
// for dropping, should it not leave after all.
const leavingFor = 2 * time.Minute

// handoffRetry is how soon a handoff offers again the records a peer
// deferred to another peer's promise.
const handoffRetry = 50 * time.Millisecond

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

// afterView is this node's view without itself and without the peers
// handing off too: the owners once they have left.
func (c *Cache) afterView() *placement.View {
	keep := c.ownerView(c.view.Load())
	return placement.NewView(0, slices.DeleteFunc(slices.Clone(keep.Nodes()), func(id ports.NodeID) bool { return id == c.self }))
}

// isLeaving reports whether peer announced its handoff.
func (c *Cache) isLeaving(peer ports.NodeID) bool {
	c.pullMu.Lock()
	defer c.pullMu.Unlock()
	_, ok := c.leaving[peer]
	return ok
}

// applyReplica applies r to this node's replica of b (conditionally on
// base, when set; see applyIf) and, while this node is leaving, forwards
// it to the owners of its key once this node is gone (all but from, a
// node known to hold it already, or ""), returning only when they hold
// it.
func (c *Cache) applyReplica(ctx context.Context, b *bucket, r record, base *versionRef, from ports.NodeID) (outcome, versionRef, error) {
	out, cur, err := b.applyIf(r, base)
	if err != nil || out != applied || !c.selfLeaving.Load() {
		return out, cur, err
	}
	return out, cur, c.forward(ctx, b, r, from)
}

// forward writes r to its key's owners in the view without this node,
// except skip.
func (c *Cache) forward(ctx context.Context, b *bucket, r record, skip ports.NodeID) error {
	after := c.afterView()
	if after.Len() == 0 {
		return nil
	}
	rf, _, _ := b.opts.quorums(after.Len())
	payload := appendRequest(nil, request{op: opPut, bucket: b.name, key: r.key, value: appendRecord(nil, r)})
	var errs []error
	for _, o := range after.Owners(nil, placement.KeyHash(b.name, r.key), rf) {
		if o == skip {
			continue
		}
		if err := c.replicate(ctx, b, o, payload); err != nil {
			errs = append(errs, fmt.Errorf("cache: forward %q in bucket %q to %s while leaving: %w", r.key, b.name, o, err))
		}
	}
	return errors.Join(errs...)
}

// Handoff hands every key this node holds to the nodes that own it once
// this node is gone, before a graceful shutdown: it pushes to each peer,
// as a sync would, the keys the peer owns in the view without this node,
// until each peer holds every record offered, and from its start forwards
// whatever this node is written (see applyReplica). It is bounded by ctx
// and returns the first error; keys not handed off remain on their other
// replicas. Close the cache after the node has left.
func (c *Cache) Handoff(ctx context.Context) error {
	c.selfLeaving.Store(true)
	after := c.afterView()
	rest := after.Nodes()
	if len(rest) == 0 {
		return nil
	}
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
				if err := c.handTo(ctx, p, b, after); err != nil {
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

// handTo pushes to peer every record of b it owns in after, offering again
// those it deferred to another peer's promise until it holds them all.
func (c *Cache) handTo(ctx context.Context, peer ports.NodeID, b *bucket, after *placement.View) error {
	var (
		mu      sync.Mutex
		pending []record
	)
	collect := func(recs []record, have []bool) {
		mu.Lock()
		defer mu.Unlock()
		for i, r := range recs {
			if !have[i] {
				pending = append(pending, r)
			}
		}
	}
	if err := c.pushTo(ctx, peer, b, after, nil, collect); err != nil {
		return err
	}
	for len(pending) > 0 {
		if c.isLeaving(peer) {
			return nil // it is handing off too: it will own nothing
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%d records deferred: %w", len(pending), ctx.Err())
		case <-time.After(handoffRetry):
		}
		again := pending
		pending = nil
		bt := newBatcher(c, ctx, peer, b)
		bt.onResult = collect
		for _, r := range again {
			if cur, ok := b.read(r.key); ok && cur.version == r.version && cur.writer == r.writer {
				if err := bt.add(cur); err != nil {
					break
				}
			}
		}
		if err := bt.close(); err != nil {
			return err
		}
	}
	return nil
}
