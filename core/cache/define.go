package cache

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/mycorrizal/mycorrizal/ports"
)

// define creates the bucket on this node, or checks that an existing one
// has the same options.
func (c *Cache) define(name string, o BucketOptions) error {
	if err := o.validate(name); err != nil {
		return err
	}
	o = o.normalized()
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return fmt.Errorf("cache: %w", ports.ErrClosed)
	}
	if b, ok := c.buckets[name]; ok {
		if b.opts != o {
			return fmt.Errorf("cache: bucket %q has options %+v, not %+v: %w", name, b.opts, o, ErrBucketConflict)
		}
		return nil
	}
	if len(c.buckets) >= c.cfg.MaxBuckets {
		return fmt.Errorf("cache: bucket %q: this node already holds the maximum of %d buckets: %w", name, c.cfg.MaxBuckets, ports.ErrInvalidConfig)
	}
	if _, ok := c.cfg.Codecs[o.Codec]; !ok && len(c.cfg.Codecs) > 0 {
		return fmt.Errorf("cache: bucket %q: unknown codec %q: %w", name, o.Codec, ports.ErrInvalidConfig)
	}
	store, err := c.cfg.NewStore(name, o)
	if err != nil {
		return fmt.Errorf("cache: bucket %q: %w", name, err)
	}
	c.buckets[name] = &bucket{name: name, opts: o, store: store, tombs: newTombstones(c.cfg.TombstoneTTL, c.cfg.MaxTombstones, c.clock.wallNano), wall: c.clock.wallNano}
	return nil
}

// CreateBucket creates a cluster-wide bucket: on this node, then on every
// live node that hosts the cache (nodes that join later receive it when
// they join). Creating it again with the same options is a no-op; with
// other options it fails with an error wrapping ErrBucketConflict. A node
// that cannot be reached now learns the bucket later (on join, or when an
// operation for it reaches it).
func (c *Cache) CreateBucket(ctx context.Context, name string, o BucketOptions) error {
	if err := c.define(name, o); err != nil {
		return err
	}
	payload := appendRequest(nil, request{op: opDefine, value: appendOptions(nil, name, o.normalized())})
	var (
		mu        sync.Mutex
		conflicts []error
		wg        sync.WaitGroup
	)
	for _, peer := range c.app.Nodes() {
		wg.Go(func() {
			err := c.call(ctx, c.app, peer, payload, func(r response) error {
				if r.status == stConflict {
					return fmt.Errorf("%s: %s: %w", peer, r.body, ErrBucketConflict)
				}
				return nil
			})
			if err == nil {
				return
			}
			if errors.Is(err, ErrBucketConflict) {
				mu.Lock()
				conflicts = append(conflicts, err)
				mu.Unlock()
				return
			}
			c.log.Debug("bucket definition not delivered now; the peer learns it later", "bucket", name, "peer", string(peer), "err", err)
		})
	}
	wg.Wait()
	if len(conflicts) > 0 {
		return fmt.Errorf("cache: create bucket %q: %w", name, errors.Join(conflicts...))
	}
	return nil
}

// definitions encodes every bucket this node knows.
func (c *Cache) definitions() []byte {
	c.mu.RLock()
	defer c.mu.RUnlock()
	var out []byte
	for name, b := range c.buckets {
		out = appendOptions(out, name, b.opts)
	}
	return out
}

// adopt defines every bucket in an encoded list, logging conflicts.
func (c *Cache) adopt(from ports.NodeID, defs []byte) error {
	for len(defs) > 0 {
		name, o, rest, err := decodeOptions(defs)
		if err != nil {
			return err
		}
		defs = rest
		switch err := c.define(name, o); {
		case errors.Is(err, ports.ErrClosed):
			return err // shutting down: nothing to adopt, nothing differs
		case errors.Is(err, ErrBucketConflict):
			c.log.Error("bucket definitions differ between nodes", "bucket", name, "peer", string(from), "err", err)
		case err != nil:
			c.log.Error("bucket cannot be defined on this node", "bucket", name, "peer", string(from), "err", err)
		}
	}
	return nil
}

// syncWith pulls peer's bucket definitions and pushes ours.
func (c *Cache) syncWith(ctx context.Context, peer ports.NodeID) error {
	payload := appendRequest(nil, request{op: opBuckets, value: c.definitions()})
	return c.call(ctx, c.app, peer, payload, func(r response) error {
		if r.status != stOK {
			return fmt.Errorf("cache: bucket list from %s: status %d", peer, r.status)
		}
		return c.adopt(peer, r.body)
	})
}

// pushDefinition sends one bucket's definition to peer (used when the
// owner of a key did not know its bucket yet).
func (c *Cache) pushDefinition(ctx context.Context, peer ports.NodeID, b *bucket) error {
	payload := appendRequest(nil, request{op: opDefine, value: appendOptions(nil, b.name, b.opts)})
	return c.call(ctx, c.app, peer, payload, func(r response) error {
		if r.status == stConflict {
			return fmt.Errorf("cache: %s: %s: %w", peer, r.body, ErrBucketConflict)
		}
		return nil
	})
}
