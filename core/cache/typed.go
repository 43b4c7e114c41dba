package cache

import (
	"context"
	"fmt"
	"time"

	"github.com/mycorrizal/mycorrizal/ports"
)

// Bucket is a typed handle on a bucket: values of type T are encoded with
// the bucket's codec (GOB unless the bucket names another).
type Bucket[T any] struct {
	c     *Cache
	name  string
	codec ports.Codec
}

// Typed returns a typed handle on the named bucket, which must exist.
func Typed[T any](c *Cache, name string) (*Bucket[T], error) {
	b, err := c.bucket(name)
	if err != nil {
		return nil, err
	}
	codec, ok := c.cfg.Codecs[b.opts.Codec]
	if !ok {
		return nil, fmt.Errorf("cache: bucket %q: codec %q is not available: %w", name, b.opts.Codec, ports.ErrInvalidConfig)
	}
	return &Bucket[T]{c: c, name: name, codec: codec}, nil
}

// Name returns the bucket's name.
func (b *Bucket[T]) Name() string { return b.name }

// Get returns the value of key, decoded.
func (b *Bucket[T]) Get(ctx context.Context, key string) (T, error) {
	var v T
	raw, err := b.c.Get(ctx, b.name, key)
	if err != nil {
		return v, err
	}
	if err := b.codec.Unmarshal(raw, &v); err != nil {
		return v, fmt.Errorf("cache: decode %q in bucket %q: %w", key, b.name, err)
	}
	return v, nil
}

// Set encodes v and stores it under key (ttl 0 = the bucket's default).
func (b *Bucket[T]) Set(ctx context.Context, key string, v T, ttl time.Duration) error {
	raw, err := b.codec.Marshal(v)
	if err != nil {
		return fmt.Errorf("cache: encode %q for bucket %q: %w", key, b.name, err)
	}
	return b.c.Set(ctx, b.name, key, raw, ttl)
}

// Delete removes key.
func (b *Bucket[T]) Delete(ctx context.Context, key string) error {
	return b.c.Delete(ctx, b.name, key)
}

// GetOrLoad returns key's value, loading it with loader on a miss, with the
// cluster-wide single-flight of Cache.GetOrLoad.
func (b *Bucket[T]) GetOrLoad(ctx context.Context, key string, loader func(ctx context.Context) (T, time.Duration, error)) (T, error) {
	var v T
	raw, err := b.c.GetOrLoad(ctx, b.name, key, func(ctx context.Context) ([]byte, time.Duration, error) {
		val, ttl, err := loader(ctx)
		if err != nil {
			return nil, 0, err
		}
		raw, err := b.codec.Marshal(val)
		return raw, ttl, err
	})
	if err != nil {
		return v, err
	}
	if err := b.codec.Unmarshal(raw, &v); err != nil {
		return v, fmt.Errorf("cache: decode %q in bucket %q: %w", key, b.name, err)
	}
	return v, nil
}
