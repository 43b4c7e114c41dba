package cache

import (
	"errors"
	"sync/atomic"
	"time"
)

// hlc is a hybrid logical clock in nanoseconds: each reading is the later
// of the wall clock and one past the previous reading, and observing a
// version from another node moves the clock past it. Versions it gives are
// therefore unique per node, increase on each node, and are later than
// every version this node has seen: a write that follows another it knows
// of wins against it, whatever the clocks say. Between writes that do not
// know of each other, the wall clocks decide (last write wins, the writer's
// node ID breaking ties).
type hlc struct {
	last atomic.Uint64
	wall func() time.Time // the node's wall clock; nil means time.Now
}

// wallNano is the wall clock's reading in Unix nanoseconds.
func (h *hlc) wallNano() int64 {
	if h.wall != nil {
		return h.wall().UnixNano()
	}
	return time.Now().UnixNano()
}

// maxClockLead bounds how far ahead of this node's wall clock an observed
// version may move the clock, so one node with a broken clock cannot drag
// every other node's versions into the far future.
const maxClockLead = time.Minute

// now returns a new version, later than any this clock gave or observed.
func (h *hlc) now() uint64 {
	wall := uint64(h.wallNano())
	for {
		last := h.last.Load()
		next := max(last+1, wall)
		if h.last.CompareAndSwap(last, next) {
			return next
		}
	}
}

// observe moves the clock past v, unless v is implausibly far ahead.
func (h *hlc) observe(v uint64) {
	if h.ahead(v) {
		return
	}
	for {
		last := h.last.Load()
		if v <= last || h.last.CompareAndSwap(last, v) {
			return
		}
	}
}

// ErrVersionAhead is returned by a replica for a record whose version is
// further ahead of the replica's clock than maxClockLead (a writer with a
// broken clock, or a faulty peer): storing it would make every later write
// of the key lose to it.
var ErrVersionAhead = errors.New("version too far ahead of this node's clock")

// ahead reports whether version v is beyond the bound this clock accepts.
func (h *hlc) ahead(v uint64) bool { return v > uint64(h.wallNano()+int64(maxClockLead)) }

// newer reports whether version (v1, w1) wins against (v2, w2): the higher
// clock reading, then the higher writer ID.
func newer(v1 uint64, w1 string, v2 uint64, w2 string) bool {
	if v1 != v2 {
		return v1 > v2
	}
	return w1 > w2
}
