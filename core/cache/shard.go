package cache

import (
	"sync"
	"sync/atomic"
	"unsafe"

	"github.com/mycorrizal/mycorrizal/ports"
)

// compactMin is the arena size below which a shard never compacts.
const compactMin = 1024

// shard is one independently locked partition of a Store. Writers (Set,
// Delete, SetExpiry, evictions, the sweeper, drains of the read buffer)
// hold mu; Get reads the first cache line's fields without it. The fields
// from mu on are the lock holder's, kept off that line so that taking the
// lock does not evict it from readers' caches.
type shard struct {
	lay     atomic.Pointer[layout] // published for readers
	sampled atomic.Bool            // Gets sample their accesses; see readbuf.go
	reads   readBuffer
	_       [cacheLine - 8 - 8 - 24]byte

	mu sync.Mutex

	nodes []node  // the arena to its capacity; slots [top, cap) are unused
	links []link  // LRU and free list links, parallel to nodes
	top   int     // slots in use or freed: [1, top)
	free  int32   // first free slot, 0 if none
	slots []int32 // the index
	mask  uint32
	used  int   // index positions not empty (live and tombstones)
	hint  int   // arena capacity to grow to first, from MaxEntries
	live  int   // entries held, expired or not
	bytes int64 // sum of their key and value lengths
	w     writerTable

	// Counters of the locked paths; Gets count in their read buffers.
	hits, misses, evictions, expirations uint64

	sweepPos int // the next slot the sweeper examines
	ranging  int // Range calls walking this shard; compaction waits for 0

	// Contention detection for sampling (see readbuf.go).
	lastRing     *ring // the ring the last Get-triggered drain emptied
	drains       int   // Get-triggered drains in the current window
	ringSwitches int   // of which emptied another ring than the one before
}

// paddedShard rounds a shard up to whole cache lines, so that in the
// Store's array every shard's reader line starts a cache line of its own.
type paddedShard struct {
	shard
	_ [(cacheLine - unsafe.Sizeof(shard{})%cacheLine) % cacheLine]byte
}

func (sh *shard) init(stripes, hint int) {
	size := 16
	if hint > 0 && hint < size {
		size = hint
	}
	sh.nodes = make([]node, size)
	sh.links = make([]link, len(sh.nodes))
	sh.top = 1
	sh.hint = hint
	sh.slots = make([]int32, minIndexSize)
	sh.mask = minIndexSize - 1
	sh.sweepPos = 1
	sh.reads.init(stripes)
	sh.publish()
}

// publish makes the current arena and index the ones readers use.
func (sh *shard) publish() {
	sh.lay.Store(&layout{nodes: sh.nodes, slots: sh.slots, mask: sh.mask})
}

// alloc returns a free slot, growing the arena if none is free.
func (sh *shard) alloc() int32 {
	if i := sh.free; i != 0 {
		sh.free = sh.links[i].next
		sh.links[i] = link{}
		return i
	}
	if sh.top == len(sh.nodes) {
		sh.grow()
	}
	sh.top++
	return int32(sh.top - 1)
}

// grow reallocates the arena: doubling while small, then by a quarter, and
// straight to the capacity MaxEntries suggests when that is next, so a
// store with a limit carries little slack.
func (sh *shard) grow() {
	c := len(sh.nodes)
	n := c * 2
	if c >= 4096 {
		n = c + c/4
	}
	if c < sh.hint && n > sh.hint {
		n = sh.hint
	}
	nodes := make([]node, n)
	copy(nodes, sh.nodes)
	links := make([]link, n)
	copy(links, sh.links)
	sh.nodes, sh.links = nodes, links
	sh.publish()
}

// pushFront links slot i in as the most recently used.
func (sh *shard) pushFront(i int32) {
	first := sh.links[0].next
	sh.links[i] = link{prev: 0, next: first}
	sh.links[first].prev = i
	sh.links[0].next = i
}

// unlink removes slot i from the LRU list.
func (sh *shard) unlink(i int32) {
	l := sh.links[i]
	sh.links[l.prev].next = l.next
	sh.links[l.next].prev = l.prev
}

// touch makes slot i the most recently used.
func (sh *shard) touch(i int32) {
	if sh.links[0].next != i {
		sh.unlink(i)
		sh.pushFront(i)
	}
}

// lru returns the least recently used slot, 0 if the shard is empty.
func (sh *shard) lru() int32 { return sh.links[0].prev }

// drainReads applies the buffered accesses of Gets, in order per stripe.
// An access whose slot has changed since (the entry was replaced or
// removed; the node's seq tells) is stale and skipped. (After a compaction
// renumbered the slots, or 65536 changes of one slot, a stale access may
// pass for a current one and mark another entry used: a harmless
// inaccuracy.)
func (sh *shard) drainReads() {
	for k := range sh.reads.rings {
		if r := sh.reads.rings[k].Load(); r != nil {
			r.drain(sh.applyRead)
		}
	}
}

// drainRing drains the ring a Get filled and watches for contention: drains
// that keep alternating between rings mean goroutines on several
// processors read the shard, and it switches Gets to sampling (or back).
func (sh *shard) drainRing(r *ring) {
	r.drain(sh.applyRead)
	if r != sh.lastRing {
		sh.ringSwitches++
		sh.lastRing = r
	}
	if sh.drains++; sh.drains == contentionDrain {
		// Hysteresis: on above contentionSwaps changes, off only when
		// one goroutine has had the shard to itself.
		switch sampled := sh.sampled.Load(); {
		case !sampled && sh.ringSwitches > contentionSwaps:
			sh.sampled.Store(true)
		case sampled && sh.ringSwitches <= 1:
			sh.sampled.Store(false)
		}
		sh.drains, sh.ringSwitches = 0, 0
	}
}

func (sh *shard) applyRead(seq uint16, slot int32) {
	if slot > 0 && int(slot) < sh.top {
		if n := &sh.nodes[slot]; uint16(n.seq) == seq && n.data != nil {
			sh.touch(slot)
		}
	}
}

// put stores hd under key (hash h) with writer id, as the most recently
// used, and returns its slot and the change in entries and bytes.
func (sh *shard) put(key string, h uint32, hd *header, writer ports.NodeID) (slot int32, dEntries, dBytes int64) {
	w := sh.w.acquire(writer)
	if i, _ := sh.lookup(key, h); i != 0 {
		n := &sh.nodes[i]
		old := n.hdr().size()
		sh.w.release((*writerRef)(n.writer))
		n.set(hd, w, h)
		sh.touch(i)
		dBytes = hd.size() - old
		sh.bytes += dBytes
		return i, 0, dBytes
	}
	sh.reserveIndex()
	i := sh.alloc()
	sh.nodes[i].set(hd, w, h)
	sh.indexInsert(i, h)
	sh.pushFront(i)
	sh.live++
	sh.bytes += hd.size()
	return i, 1, hd.size()
}

// removeAt removes the entry in slot i, found at index position pos, and
// returns its size in bytes.
func (sh *shard) removeAt(i int32, pos uint32) int64 {
	n := &sh.nodes[i]
	size := n.hdr().size()
	sh.w.release((*writerRef)(n.writer))
	sh.indexRemove(pos)
	n.set(nil, nil, 0)
	sh.unlink(i)
	sh.links[i] = link{next: sh.free}
	sh.free = i
	sh.live--
	sh.bytes -= size
	return size
}

// remove removes the entry in slot i and returns its size in bytes.
func (sh *shard) remove(i int32) int64 { return sh.removeAt(i, sh.position(i)) }

// entry returns the entry in slot i with the key the caller has.
func (sh *shard) entry(i int32, key string) ports.Entry {
	n := &sh.nodes[i]
	hd := n.hdr()
	return ports.Entry{
		Key:       key,
		Value:     hd.value(),
		ExpiresAt: expiryTime(hd.expires),
		Version:   hd.version,
		Writer:    (*writerRef)(n.writer).nodeID(),
	}
}

// maybeCompact rebuilds a mostly empty arena and index at the size of the
// live entries, returning memory after a mass expiry or deletion. Slots are
// renumbered in LRU order, so it never runs while a Range walks the shard
// by slot number, and the sweeper restarts at slot 1. Its O(live) cost is
// amortised over the three quarters of the arena removed before it.
func (sh *shard) maybeCompact() {
	if sh.top <= compactMin || sh.live*4 >= sh.top || sh.ranging > 0 {
		return
	}
	sh.drainReads() // apply what is buffered while the slot numbers hold
	size := sh.live + sh.live/4 + 16
	nodes := make([]node, size)
	links := make([]link, size)
	j := int32(0)
	for i := sh.links[0].next; i != 0; i = sh.links[i].next {
		j++
		old := &sh.nodes[i]
		nodes[j] = node{data: old.data, writer: old.writer, hash: old.hash}
		links[j] = link{prev: j - 1, next: j + 1}
	}
	links[j].next = 0
	links[0] = link{prev: j, next: min(j, 1)}
	sh.nodes, sh.links = nodes, links
	sh.top = int(j) + 1
	sh.free = 0
	sh.sweepPos = 1
	sh.rebuildIndex(sh.live) // publishes the new layout
}
