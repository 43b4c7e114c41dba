package cache

import (
	"errors"
	"fmt"
	"sync"
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
	// Replicas is the replication factor RF: how many nodes hold each key
	// (0 means DefaultReplicas). With fewer nodes than RF, every node holds
	// every key.
	Replicas int
	// WriteQuorum W is how many of a key's replicas must acknowledge a
	// write before it succeeds (0 means a majority of the replicas). The
	// write goes to all of them either way.
	WriteQuorum int
	// ReadQuorum R is how many replicas a read asks, returning the newest
	// version (0 means 1: the nearest copy, this node's own when it holds
	// one). R+W > RF gives read-your-writes; see docs/CONSISTENCY.md.
	ReadQuorum int
}

// DefaultReplicas is the replication factor of a bucket that names none.
const DefaultReplicas = 3

// MaxReplicas bounds BucketOptions.Replicas.
const MaxReplicas = 16

// quorums returns the effective RF, W and R of a bucket on a cluster of n
// nodes: RF shrinks to n, and W and R to RF.
func (o BucketOptions) quorums(n int) (rf, w, r int) {
	rf = o.Replicas
	if rf == 0 {
		rf = DefaultReplicas
	}
	rf = max(1, min(rf, n))
	w = o.WriteQuorum
	if w == 0 {
		w = rf/2 + 1
	}
	r = max(1, o.ReadQuorum)
	return rf, min(w, rf), min(r, rf)
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
	case o.Replicas < 0 || o.Replicas > MaxReplicas:
		return fmt.Errorf("cache: bucket %q: Replicas %d is outside [0, %d]: %w", name, o.Replicas, MaxReplicas, ports.ErrInvalidConfig)
	case o.WriteQuorum < 0 || o.WriteQuorum > max(o.Replicas, DefaultReplicas):
		return fmt.Errorf("cache: bucket %q: WriteQuorum %d is outside [0, Replicas]: %w", name, o.WriteQuorum, ports.ErrInvalidConfig)
	case o.ReadQuorum < 0 || o.ReadQuorum > max(o.Replicas, DefaultReplicas):
		return fmt.Errorf("cache: bucket %q: ReadQuorum %d is outside [0, Replicas]: %w", name, o.ReadQuorum, ports.ErrInvalidConfig)
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
	tombs *tombstones
	wall  func() int64            // the node's wall clock, Unix nanoseconds
	locks [lockStripes]sync.Mutex // see stripe
}

// BucketStats are one bucket's counters on this node.
type BucketStats struct {
	Name string
	ports.StoreStats
}
