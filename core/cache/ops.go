package cache

import (
	"context"
	"fmt"
	"time"

	"github.com/mycorrizal/mycorrizal/core/mesh"
	"github.com/mycorrizal/mycorrizal/ports"
)

// Get returns the value of key in the named bucket, from this node if it
// owns the key, else from the owner. A missing or expired key gives an error
// wrapping ports.ErrNotFound. The returned slice belongs to the caller.
func (c *Cache) Get(ctx context.Context, bucketName, key string) ([]byte, error) {
	b, err := c.bucket(bucketName)
	if err != nil {
		return nil, err
	}
	if err := checkKey(bucketName, key); err != nil {
		return nil, err
	}
	var out []byte
	err = c.route(ctx, b, key, request{op: opGet, bucket: bucketName, key: key},
		func() error {
			e, ok := b.store.Get(key)
			if !ok {
				return notFound(bucketName, key)
			}
			out = append([]byte(nil), e.Value...)
			return nil
		},
		func(r response) error {
			switch r.status {
			case stOK:
				out = r.body
				return nil
			case stNotFound:
				return notFound(bucketName, key)
			}
			return statusErr(r)
		})
	return out, err
}

// Set stores value under key in the named bucket on the key's owner. ttl 0
// means the bucket's default TTL; a negative ttl is refused. A value that
// cannot fit (the bucket's byte limit, or the transport's frame limit) is
// refused before anything is sent. Set does not retain value.
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
	if limit := c.cfg.Mesh.MaxPayload() - requestOverhead - len(key); len(value) > limit {
		return fmt.Errorf("cache: set %q in bucket %q: value of %d bytes exceeds the %d-byte message limit: %w", key, bucketName, len(value), limit, ports.ErrFrameTooLarge)
	}
	return c.route(ctx, b, key, request{op: opSet, bucket: bucketName, key: key, ttl: ttl, value: value},
		func() error { return c.setLocal(b, key, value, ttl) },
		func(r response) error {
			if r.status == stOK {
				return nil
			}
			return statusErr(r)
		})
}

// Delete removes key from the named bucket; deleting a missing key is not
// an error.
func (c *Cache) Delete(ctx context.Context, bucketName, key string) error {
	b, err := c.bucket(bucketName)
	if err != nil {
		return err
	}
	if err := checkKey(bucketName, key); err != nil {
		return err
	}
	return c.route(ctx, b, key, request{op: opDelete, bucket: bucketName, key: key},
		func() error { b.store.Delete(key); return nil },
		func(r response) error {
			if r.status == stOK || r.status == stNotFound {
				return nil
			}
			return statusErr(r)
		})
}

// SetTTL changes key's time to live: it expires ttl from now, or never when
// ttl is 0. A missing key gives an error wrapping ports.ErrNotFound.
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
	return c.route(ctx, b, key, request{op: opSetTTL, bucket: bucketName, key: key, ttl: ttl},
		func() error {
			if !b.store.SetExpiry(key, expiry(ttl)) {
				return notFound(bucketName, key)
			}
			return nil
		},
		func(r response) error {
			switch r.status {
			case stOK:
				return nil
			case stNotFound:
				return notFound(bucketName, key)
			}
			return statusErr(r)
		})
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

func expiry(ttl time.Duration) time.Time {
	if ttl <= 0 {
		return time.Time{}
	}
	return time.Now().Add(ttl)
}

// setLocal stores a value on this node, applying the bucket's default TTL.
func (c *Cache) setLocal(b *bucket, key string, value []byte, ttl time.Duration) error {
	if ttl == 0 {
		ttl = b.opts.DefaultTTL
	}
	if err := b.store.Set(ports.Entry{Key: key, Value: value, ExpiresAt: expiry(ttl), Writer: c.self}); err != nil {
		return fmt.Errorf("cache: set %q in bucket %q: %w", key, b.name, err)
	}
	return nil
}

// route runs an operation where the key lives: locally when this node owns
// it, else on the owner, in one hop. When the owner answers that it does
// not own the key (its view differs), the view is refreshed and the
// operation retried once; when the owner does not know the bucket yet, the
// definition is pushed to it and the operation retried once.
func (c *Cache) route(ctx context.Context, b *bucket, key string, req request, local func() error, remote func(response) error) error {
	payload := appendRequest(nil, req)
	var lastErr error
	for attempt := 0; attempt < 2; attempt++ {
		owner := c.owner(b.name, key)
		if owner == c.self {
			return local()
		}
		var retry bool
		err := c.call(ctx, c.app, owner, payload, func(r response) error {
			switch r.status {
			case stNotMine:
				retry = true
				c.Refresh()
				return fmt.Errorf("cache: %s does not own %q in bucket %q in its view (version %d): %w", owner, key, b.name, r.version, ErrViewMismatch)
			case stUnknownBucket:
				retry = true
				if perr := c.pushDefinition(ctx, owner, b); perr != nil {
					return perr
				}
				return fmt.Errorf("cache: %s did not know bucket %q: %w", owner, b.name, ErrUnknownBucket)
			}
			return remote(r)
		})
		if !retry {
			return err
		}
		lastErr = err
	}
	return lastErr
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
	default:
		return fmt.Errorf("cache: unexpected response status %d: %w", r.status, ports.ErrMalformed)
	}
}
