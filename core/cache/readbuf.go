package cache

import (
	"runtime"
	"sync/atomic"
	"unsafe"
)

// Read buffers: how Gets mark entries used without taking the lock.
//
// Get does not take the shard's lock, so it cannot relink the entry it
// found to the front of the LRU list. It records the access instead in a
// read buffer, and the lock holder applies the records in order before it
// next evicts (every Set drains its shard first), or the Get that fills a
// buffer applies them if the lock is free at that moment (TryLock). This
// is the design of otter and Caffeine.
//
// Each shard has several buffers (stripes), and a goroutine uses the one
// its stack address hashes to, so goroutines on different processors
// usually write to different cache lines. A buffer also carries the hit
// and miss counters of the Gets that use it, for the same reason, and a
// Get that fills its buffer drains only that one, so readers on different
// processors do not write each other's buffers.
//
// Without contention the order is exact: one goroutine's accesses go to
// one buffer and are applied in the order made. The fine print: if the
// runtime moves the goroutine's stack (to grow or shrink it) between two
// accesses, the later ones go to another buffer and a drain may apply the
// two buffers in the other order; and an access that finds its buffer
// full while another goroutine (the sweeper, say) holds the lock is
// dropped. The store's model tests therefore use one buffer per shard and
// no sweeper goroutine.
//
// Under contention LRU order is approximate. Accesses are dropped when a
// buffer is full and the shard busy. And applying every access would cost
// too much: relinking writes list links that the other processors' drains
// write too, so those cache lines would move between processors on every
// Get and reads would not scale. So a shard whose drains keep alternating
// between buffers (more than contentionSwaps changes of buffer in a
// window of contentionDrain drains) makes its Gets sample: only one access
// in sampleEvery, chosen at random, is buffered. Entries read often are
// still marked used often. The shard records every access again once a
// window shows at most one change of buffer. (memcached, for the same
// reason, does not relink an item read again within a minute.)

const (
	ringSize   = 16
	ringMask   = ringSize - 1
	cacheLine  = 64
	maxStripes = 64

	sampleEvery     = 8  // a sampling shard buffers one access in this many
	contentionDrain = 32 // drains per window of contention detection
	contentionSwaps = 4  // ring changes in a window that mean contention
)

// A record is one buffered access packed in a uint64: the position it was
// written at, plus one (low 16 bits, which tells a published record from
// the one ringSize positions earlier, so the consumer never has to clear
// records, and from the zero value of a buffer slot not yet written),
// the low 16 bits of the node's seq when the Get read it (which tells
// whether the slot still holds that entry), and the slot.
func packRecord(pos uint64, seq uint32, slot int32) uint64 {
	return (pos+1)&0xffff<<48 | uint64(seq&0xffff)<<32 | uint64(uint32(slot))
}

// unpackRecord returns a record's fields; mark is its position plus one.
func unpackRecord(rec uint64) (mark uint16, seq uint16, slot int32) {
	return uint16(rec >> 48), uint16(rec >> 32), int32(uint32(rec))
}

// ring is one stripe: a bounded multi-producer, single-consumer buffer of
// records. Its producers' hits are counted by the tail, which counts
// every record ever claimed, plus dropped, which counts the accesses it
// could not take, plus skipped, which counts those sampling passed over;
// misses has its own counter.
type ring struct {
	tail    atomic.Uint64 // next position producers claim
	dropped atomic.Uint64
	skipped atomic.Uint64
	misses  atomic.Uint64
	_       [cacheLine - 32]byte
	head    atomic.Uint64 // next position the consumer reads (lock holder)
	_       [cacheLine - 8]byte
	recs    [ringSize]atomic.Uint64
}

// Results of ring.add.
const (
	ringAdded     = iota // buffered
	ringAddedFull        // buffered, and the buffer is now full: drain it
	ringFull             // not buffered: the buffer is full
	ringContended        // not buffered: another producer on the stripe won the position
)

// add buffers an access.
func (r *ring) add(seq uint32, slot int32) int {
	head := r.head.Load()
	tail := r.tail.Load()
	if tail-head >= ringSize {
		return ringFull
	}
	if !r.tail.CompareAndSwap(tail, tail+1) {
		return ringContended
	}
	r.recs[tail&ringMask].Store(packRecord(tail, seq, slot))
	if tail+1-head >= ringSize {
		return ringAddedFull
	}
	return ringAdded
}

// hits returns the hits counted by the ring.
func (r *ring) hits() uint64 { return r.tail.Load() + r.dropped.Load() + r.skipped.Load() }

// drain passes the published records to apply in order. Lock holder only.
func (r *ring) drain(apply func(seq uint16, slot int32)) {
	head := r.head.Load()
	tail := r.tail.Load()
	for ; head != tail; head++ {
		mark, seq, slot := unpackRecord(r.recs[head&ringMask].Load())
		if mark != uint16(head+1) {
			break // claimed but not yet published: next drain
		}
		apply(seq, slot)
	}
	r.head.Store(head)
}

// readBuffer is a shard's stripes.
type readBuffer struct {
	rings []atomic.Pointer[ring] // power-of-two length
}

func (b *readBuffer) init(stripes int) {
	b.rings = make([]atomic.Pointer[ring], stripes)
}

// ring returns the calling goroutine's stripe, allocating it on first use.
func (b *readBuffer) ring() *ring {
	p := &b.rings[stripeHint()&uint32(len(b.rings)-1)]
	if r := p.Load(); r != nil {
		return r
	}
	p.CompareAndSwap(nil, new(ring))
	return p.Load()
}

// stripeHint returns a hash of the calling goroutine's stack address:
// stable while the goroutine runs (unless its stack moves), and different
// for goroutines running at the same time, so it spreads them over stripes
// without per-goroutine state. (otter's xruntime.StackHash does the same.)
func stripeHint() uint32 {
	var x byte
	addr := uint64(uintptr(unsafe.Pointer(&x))) >> 11 // drop bits within a minimum-size stack
	return uint32((addr * 0x9E3779B97F4A7C15) >> 32)
}

// defaultStripes is the number of stripes per shard: eight per processor,
// rounded up to a power of two, at most maxStripes, so that two goroutines
// running at once rarely share one. A stripe's ring (256 bytes) is
// allocated when a goroutine first uses it.
func defaultStripes() int {
	n := 1
	for n < 8*runtime.GOMAXPROCS(0) && n < maxStripes {
		n *= 2
	}
	return n
}
