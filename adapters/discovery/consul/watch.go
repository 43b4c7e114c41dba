package consul

import (
	"context"
	"slices"
	"time"
)

// minQueryInterval spaces the blocking queries of one WaitChange that
// return at once without a change (an index reset, an agent that does not
// block), as Consul's documentation asks of blocking clients, so they
// cannot turn into a busy loop.
const minQueryInterval = 100 * time.Millisecond

// WaitChange blocks until the set of passing instances differs from prev
// and returns it. It issues blocking queries starting from the index of
// the last answer Discover or WaitChange saw; when that answer already
// differs from prev, the first query does not block. It returns ctx's
// error when ctx ends first, and the query's error when the agent cannot
// be asked (the caller backs off and calls again). Safe for concurrent
// use.
func (c *Consul) WaitChange(ctx context.Context, prev []string) ([]string, error) {
	want := normalize(prev)
	index, last := c.last()
	index = nextIndex(0, index)
	if !slices.Equal(normalize(last), want) {
		index = 0 // the last answer already differs: ask without blocking
	}
	for {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		start := time.Now()
		addrs, next, err := c.query(ctx, index)
		if err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			return nil, err
		}
		if !slices.Equal(normalize(addrs), want) {
			return addrs, nil
		}
		index = nextIndex(index, next)
		if d := time.Since(start); d < minQueryInterval {
			if err := sleep(ctx, minQueryInterval-d); err != nil {
				return nil, err
			}
		}
	}
}

// nextIndex is the index of the next blocking query after one sent with
// prev returned got, following Consul's advice to blocking clients: an
// index of 0 is a server bug and becomes 1, which is always safe and
// blocks; an index that went backwards (a snapshot restore, a changed
// index scheme) restarts from 0, which does not block and yields the
// current index.
func nextIndex(prev, got uint64) uint64 {
	switch {
	case got == 0:
		return 1
	case got < prev:
		return 0
	default:
		return got
	}
}

// normalize returns addrs sorted and without duplicates, for comparing
// answers as sets.
func normalize(addrs []string) []string {
	return slices.Compact(slices.Sorted(slices.Values(addrs)))
}
