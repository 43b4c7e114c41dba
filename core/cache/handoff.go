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

// notePulled records a completed pull by a peer.
func (c *Cache) notePulled(from ports.NodeID, v *placement.View, at uint64) {
	c.pullMu.Lock()
	c.pulledBy[from] = pullMark{nodes: nodesKey(v.Nodes()), at: at}
	c.pullMu.Unlock()
	c.kickSync()
}

// forgetPulls forgets the pulls of nodes that are not in v: a node that
// left and comes back (with the same ID, as a restarted process does) has
// lost what it pulled and must pull again before this node drops anything.
func (c *Cache) forgetPulls(v *placement.View) {
	c.pullMu.Lock()
	defer c.pullMu.Unlock()
	for p := range c.pulledBy {
		if !v.Contains(p) {
			delete(c.pulledBy, p)
		}
	}
}

// dropHorizon returns the clock reading before which every copy this node
// holds has been offered to every peer of view v, as each pulled with v;
// ok is false while some peer has not.
func (c *Cache) dropHorizon(v *placement.View) (uint64, bool) {
	key := nodesKey(v.Nodes())
	c.pullMu.Lock()
	defer c.pullMu.Unlock()
	horizon, any := uint64(0), false
	for _, p := range v.Nodes() {
		if p == c.self {
			continue
		}
		m, ok := c.pulledBy[p]
		if !ok || m.nodes != key {
			return 0, false
		}
		if !any || m.at < horizon {
			horizon, any = m.at, true
		}
	}
	return horizon, any
}

// maybeDropForeign removes the copies this node holds of keys it does not
// own, once their owners have pulled them (see dropHorizon).
func (c *Cache) maybeDropForeign() {
	v := c.view.Load()
	horizon, ok := c.dropHorizon(v)
	if !ok || horizon <= c.lastDrop {
		return
	}
	c.lastDrop = horizon
	dropped := 0
	for _, name := range c.Buckets() {
		b, err := c.bucket(name)
		if err != nil {
			return
		}
		rf, _, _ := b.opts.quorums(v.Len())
		owners := make([]ports.NodeID, 0, rf)
		b.store.Range(func(e ports.Entry) bool {
			if e.Version >= horizon {
				return true
			}
			if !slices.Contains(v.Owners(owners[:0], placement.KeyHash(name, e.Key), rf), c.self) {
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
