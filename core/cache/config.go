package cache

import (
	"fmt"
	"math/bits"
	"runtime"
	"time"

	"github.com/mycorrizal/mycorrizal/ports"
)

// Defaults applied by NewStore to zero fields of StoreConfig.
const (
	// DefaultSweepInterval is how often the sweeper runs.
	DefaultSweepInterval = time.Second
	// DefaultSweepBatch is how many arena slots the sweeper examines per
	// tick.
	DefaultSweepBatch = 1024
	// MaxShards is the largest accepted StoreConfig.Shards.
	MaxShards = 1 << 12
)

// The default shard count is lowered until every shard's share of a limit
// is at least this large, so small stores keep an exact LRU (one shard) and
// large ones an LRU whose per-shard approximation is statistically close
// to the global order.
const (
	minShardEntries = 256
	minShardBytes   = 64 << 10
	maxDefaultShard = 256
)

// StoreConfig configures a Store. The zero value is a valid unlimited store
// with a sweeper running every second.
type StoreConfig struct {
	// MaxEntries bounds the number of entries held; 0 means unlimited.
	MaxEntries int

	// MaxBytes bounds the sum of len(key)+len(value) over the entries held;
	// 0 means unlimited. An entry larger than MaxBytes on its own is
	// refused.
	MaxBytes int64

	// Clock returns the current time; expiry is judged against it. Nil
	// means the system clock, read as NewStore's wall time advanced by the
	// monotonic clock (cheaper than time.Now, and not stepped by wall
	// clock adjustments). Tests inject a fake clock here.
	Clock func() time.Time

	// SweepInterval is the period of the background sweeper that removes
	// expired entries. 0 means DefaultSweepInterval; a negative value
	// disables the sweeper (expired entries are then removed only when a
	// Get, Delete or SetExpiry meets them, or by LRU eviction).
	SweepInterval time.Duration

	// SweepBatch is the most arena slots (live entries or free slots) the
	// sweeper examines per tick, resuming at the next tick where it left
	// off. 0 means DefaultSweepBatch.
	SweepBatch int

	// Shards is the number of independently locked partitions of the
	// store, keys spread among them by hash. 0 picks a default: eight per
	// processor (GOMAXPROCS, rounded up to a power of two), at most 256,
	// halved until each shard's share of MaxEntries is at least 256 and of
	// MaxBytes at least 64 KiB. A small store therefore has one shard and
	// an exact LRU; see the package comment for what sharding changes.
	// At most MaxShards.
	Shards int
}

// withDefaults validates c and returns it with defaults filled in.
func (c StoreConfig) withDefaults() (StoreConfig, error) {
	switch {
	case c.MaxEntries < 0:
		return c, fmt.Errorf("cache: StoreConfig.MaxEntries %d is negative: %w", c.MaxEntries, ports.ErrInvalidConfig)
	case c.MaxBytes < 0:
		return c, fmt.Errorf("cache: StoreConfig.MaxBytes %d is negative: %w", c.MaxBytes, ports.ErrInvalidConfig)
	case c.SweepBatch < 0:
		return c, fmt.Errorf("cache: StoreConfig.SweepBatch %d is negative: %w", c.SweepBatch, ports.ErrInvalidConfig)
	case c.Shards < 0 || c.Shards > MaxShards:
		return c, fmt.Errorf("cache: StoreConfig.Shards %d is outside [0, %d]: %w", c.Shards, MaxShards, ports.ErrInvalidConfig)
	}
	if c.SweepInterval == 0 {
		c.SweepInterval = DefaultSweepInterval
	}
	if c.SweepBatch == 0 {
		c.SweepBatch = DefaultSweepBatch
	}
	if c.Shards == 0 {
		c.Shards = defaultShards(c.MaxEntries, c.MaxBytes)
	}
	return c, nil
}

func defaultShards(maxEntries int, maxBytes int64) int {
	procs := uint(runtime.GOMAXPROCS(0))
	n := 8 << bits.Len(procs-1) // 8 × GOMAXPROCS rounded up to a power of two
	if n > maxDefaultShard {
		n = maxDefaultShard
	}
	for n > 1 && ((maxEntries > 0 && maxEntries/n < minShardEntries) ||
		(maxBytes > 0 && maxBytes/int64(n) < minShardBytes)) {
		n /= 2
	}
	return n
}
