package cache

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/mycorrizal/mycorrizal/core/mesh"
	"github.com/mycorrizal/mycorrizal/core/placement"
	"github.com/mycorrizal/mycorrizal/ports"
)

// ErrClusterTooSmall is returned for a write on a node that sees fewer
// members than Config.MinClusterSize: the minority side of a partition
// refuses writes rather than diverge.
var ErrClusterTooSmall = errors.New("cluster smaller than MinClusterSize")

// ErrQuorum is returned when fewer replicas than the write or read quorum
// answered. A write that fails with it may still have been applied by some
// replicas (it was not acknowledged, not necessarily not done).
var ErrQuorum = errors.New("quorum not reached")

// Get returns the value of key in the named bucket, asking the bucket's
// read quorum R of the key's replicas and returning the newest version.
// With R=1 a node that holds a copy answers from it without a network hop.
// A missing, deleted or expired key gives an error wrapping
// ports.ErrNotFound. The returned slice belongs to the caller.
func (c *Cache) Get(ctx context.Context, bucketName, key string) ([]byte, error) {
	b, err := c.bucket(bucketName)
	if err != nil {
		return nil, err
	}
	if err := checkKey(bucketName, key); err != nil {
		return nil, err
	}
	rec, found, err := c.readKey(ctx, b, key)
	switch {
	case err != nil:
		return nil, err
	case !found || rec.tomb:
		return nil, notFound(bucketName, key)
	}
	return append([]byte(nil), rec.value...), nil
}

// Set stores value under key in the named bucket on the key's RF replicas
// and returns once W of them acknowledged. ttl 0 means the bucket's
// default TTL; a negative ttl is refused. A value that cannot fit (the
// bucket's byte limit, or the transport's frame limit) is refused before
// anything is sent. Set does not retain value.
func (c *Cache) Set(ctx context.Context, bucketName, key string, value []byte, ttl time.Duration) error {
	b, err := c.bucket(bucketName)
	if err != nil {
		return err
	}
	if err := checkKey(bucketName, key); err != nil {
		return err
	}
	if ttl < 0 {
		return fmt.Errorf("cache: set %q in bucket %q: negative TTL %v: %w", key, bucketName, ttl, ports.ErrInvalidConfig)
	}
	if size := int64(len(key) + len(value)); b.opts.MaxBytes > 0 && size > b.opts.MaxBytes {
		return fmt.Errorf("cache: set %q in bucket %q: %d bytes exceed the bucket's %d-byte limit: %w", key, bucketName, size, b.opts.MaxBytes, ports.ErrFrameTooLarge)
	}
	if limit := c.maxValue(key); len(value) > limit {
		return fmt.Errorf("cache: set %q in bucket %q: value of %d bytes exceeds the %d-byte message limit: %w", key, bucketName, len(value), limit, ports.ErrFrameTooLarge)
	}
	return c.put(ctx, b, key, value, ttl)
}

// maxValue is the largest value a key can have and still travel in one
// message, alone or in a sync batch.
func (c *Cache) maxValue(key string) int {
	return c.cfg.Mesh.MaxPayload() - requestOverhead - batchOverhead - len(key) - maxRecordOverhead
}

// put writes a value at a new version (the bucket's default TTL when ttl
// is 0).
func (c *Cache) put(ctx context.Context, b *bucket, key string, value []byte, ttl time.Duration) error {
	if ttl == 0 {
		ttl = b.opts.DefaultTTL
	}
	return c.writeRecord(ctx, b, record{key: key, value: value, version: c.clock.now(), writer: string(c.self), expires: c.expiresNano(ttl)}, nil)
}

// Delete removes key from the named bucket on its replicas, leaving a
// tombstone; deleting a missing key is not an error.
func (c *Cache) Delete(ctx context.Context, bucketName, key string) error {
	b, err := c.bucket(bucketName)
	if err != nil {
		return err
	}
	if err := checkKey(bucketName, key); err != nil {
		return err
	}
	return c.writeRecord(ctx, b, record{key: key, version: c.clock.now(), writer: string(c.self), tomb: true}, nil)
}

// SetTTL changes key's time to live on its replicas: it expires ttl from
// now, or never when ttl is 0. A key no replica holds gives an error
// wrapping ports.ErrNotFound.
//
// It is a read-modify-write: it reads the newest version from enough
// replicas to meet every write quorum (max(R, RF-W+1)), counting only
// owners synced for this node's view (while the key's replicas are still
// syncing after a membership change it fails with ErrQuorum: retry), then
// writes that
// value with the new expiry at a new version, on the condition that no
// replica holds a version newer than the one read; a write that came in
// between makes it read again, so SetTTL never brings back an older value.
func (c *Cache) SetTTL(ctx context.Context, bucketName, key string, ttl time.Duration) error {
	b, err := c.bucket(bucketName)
	if err != nil {
		return err
	}
	if err := checkKey(bucketName, key); err != nil {
		return err
	}
	if ttl < 0 {
		return fmt.Errorf("cache: set TTL of %q in bucket %q: negative TTL %v: %w", key, bucketName, ttl, ports.ErrInvalidConfig)
	}
	for attempt := 0; ; attempt++ {
		v, err := c.writableView(b.name)
		if err != nil {
			return err
		}
		kh := placement.KeyHash(b.name, key)
		rf, w, r := b.opts.quorums(v.Len())
		owners := v.Owners(nil, kh, rf)
		// Only owners synced for this view count: a value found on a
		// replica still receiving its data, or on a previous owner, may be
		// older than the last write, and SetTTL would bring it back.
		cur, found, err := c.readQuorum(ctx, b, key, owners, rf, max(r, rf-w+1), w, true)
		switch {
		case err != nil:
			return err
		case !found || cur.tomb:
			return notFound(b.name, key)
		}
		// The new version is the one read plus one: it supersedes what was
		// read and nothing written after it. A Set this read missed (on
		// nodes whose view differs, say) still wins when it reaches the
		// owners, and SetTTL never hides a later write behind an older value.
		next := record{key: key, value: cur.value, version: cur.version + 1, writer: string(c.self), expires: c.expiresNano(ttl)}
		err = c.writeRecord(ctx, b, next, &versionRef{cur.version, cur.writer})
		if !errors.Is(err, errConflict) || attempt == maxRestamps {
			return err
		}
	}
}

func checkKey(bucketName, key string) error {
	if len(key) > maxKeyLen {
		return fmt.Errorf("cache: key of %d bytes in bucket %q exceeds %d: %w", len(key), bucketName, maxKeyLen, ports.ErrInvalidConfig)
	}
	return nil
}

func notFound(bucketName, key string) error {
	return fmt.Errorf("cache: key %q in bucket %q: %w", key, bucketName, ports.ErrNotFound)
}

// writableView returns the current view, or an error when it has fewer
// members than MinClusterSize.
func (c *Cache) writableView(bucketName string) (*placement.View, error) {
	v := c.view.Load()
	if m := c.cfg.MinClusterSize; m > 0 && v.Len() < m {
		return nil, fmt.Errorf("cache: write to bucket %q refused: this node sees %d members, MinClusterSize is %d: %w", bucketName, v.Len(), m, ErrClusterTooSmall)
	}
	return v, nil
}

// callBucket is call for an operation on bucket b: when the peer does not
// know the bucket yet, the definition is pushed to it and the call retried
// once.
func (c *Cache) callBucket(ctx context.Context, app *mesh.App, peer ports.NodeID, b *bucket, payload []byte, handle func(response) error) error {
	for attempt := 0; ; attempt++ {
		var unknown bool
		err := c.call(ctx, app, peer, payload, func(r response) error {
			if r.status == stUnknownBucket && attempt == 0 {
				unknown = true
				return nil
			}
			return handle(r)
		})
		if !unknown {
			return err
		}
		if err := c.pushDefinition(ctx, peer, b); err != nil {
			return err
		}
	}
}

// goBackground runs fn in a goroutine the cache owns, with a context that
// ends at Close or after the replica timeout; false when the cache is
// closed.
func (c *Cache) goBackground(fn func(ctx context.Context)) bool {
	return c.goOwned(c.cfg.ReplicaTimeout, fn)
}

// goOwned runs fn in a goroutine Close waits for, with a context that ends
// at Close or after timeout; false when the cache is closed.
func (c *Cache) goOwned(timeout time.Duration, fn func(ctx context.Context)) bool {
	c.mu.RLock()
	if c.closed {
		c.mu.RUnlock()
		return false
	}
	c.wg.Add(1)
	c.mu.RUnlock()
	go func() {
		defer c.wg.Done()
		ctx, cancel := context.WithTimeout(c.ctx, timeout)
		defer cancel()
		fn(ctx)
	}()
	return true
}

// call sends a request to peer on app and hands the decoded response to
// handle.
func (c *Cache) call(ctx context.Context, app *mesh.App, peer ports.NodeID, payload []byte, handle func(response) error) error {
	raw, err := app.Request(ctx, peer, payload)
	if err != nil {
		return fmt.Errorf("cache: %w", err)
	}
	r, err := decodeResponse(raw)
	if err != nil {
		return fmt.Errorf("cache: from %s: %w", peer, err)
	}
	return handle(r)
}

// statusErr turns an error response into an error.
func statusErr(r response) error {
	switch r.status {
	case stError:
		return fmt.Errorf("cache: remote: %s: %w", r.body, ports.ErrRemote)
	case stConflict:
		return fmt.Errorf("cache: remote: %s: %w", r.body, ErrBucketConflict)
	case stUnknownBucket:
		return fmt.Errorf("cache: remote does not know the bucket: %w", ErrUnknownBucket)
	case stTooSmall:
		return fmt.Errorf("cache: remote: %s: %w", r.body, ErrClusterTooSmall)
	case stVersionAhead:
		return fmt.Errorf("cache: remote: %s: %w", r.body, ErrVersionAhead)
	default:
		return fmt.Errorf("cache: unexpected response status %d: %w", r.status, ports.ErrMalformed)
	}
}
