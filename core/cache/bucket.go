package cache

import (
	"errors"
	"fmt"
	"time"

	"github.com/mycorrizal/mycorrizal/ports"
)

// ErrUnknownBucket is returned for an operation on a bucket that was never
// created; the error names the bucket.
var ErrUnknownBucket = errors.New("unknown bucket")

// ErrBucketConflict is returned by CreateBucket when the bucket exists with
// other options (on this node or on another).
var ErrBucketConflict = errors.New("bucket exists with other options")

// BucketOptions configure a bucket. A bucket is cluster-wide: created on one
// node it exists on every node, with the same options. Limits apply to each
// node's share of the bucket.
type BucketOptions struct {
	// DefaultTTL applies to a Set that gives no TTL; 0 means entries do not
	// expire unless a Set says so.
	DefaultTTL time.Duration
	// MaxEntries and MaxBytes bound each node's share (0 = unlimited);
	// least recently used entries are evicted beyond them. Bytes count key
	// plus value.
	MaxEntries int
	MaxBytes   int64
	// Codec names the codec typed helpers use for values ("gob" or "raw";
	// empty means gob).
	Codec string
}

func (o BucketOptions) validate(name string) error {
	switch {
	case name == "" || len(name) > maxBucketName:
		return fmt.Errorf("cache: bucket name %q must be 1 to %d bytes: %w", name, maxBucketName, ports.ErrInvalidConfig)
	case o.DefaultTTL < 0:
		return fmt.Errorf("cache: bucket %q: DefaultTTL %v is negative: %w", name, o.DefaultTTL, ports.ErrInvalidConfig)
	case o.MaxEntries < 0:
		return fmt.Errorf("cache: bucket %q: MaxEntries %d is negative: %w", name, o.MaxEntries, ports.ErrInvalidConfig)
	case o.MaxBytes < 0:
		return fmt.Errorf("cache: bucket %q: MaxBytes %d is negative: %w", name, o.MaxBytes, ports.ErrInvalidConfig)
	case len(o.Codec) > 64:
		return fmt.Errorf("cache: bucket %q: codec name too long: %w", name, ports.ErrInvalidConfig)
	}
	return nil
}

func (o BucketOptions) normalized() BucketOptions {
	if o.Codec == "" {
		o.Codec = "gob"
	}
	return o
}

// bucket is this node's share of a bucket.
type bucket struct {
	name  string
	opts  BucketOptions
	store ports.Store
}

// BucketStats are one bucket's counters on this node.
type BucketStats struct {
	Name string
	ports.StoreStats
}
