package cache

import (
	"runtime"
	"sync/atomic"
	"unsafe"
)

// node is one slot of a shard's arena, the part of an entry that Get reads
// without the lock. Nodes are addressed by int32 slot number; slot 0 is
// never an entry (it is the LRU list's sentinel), so 0 means "none" in the
// index, the links and the free list.
//
// seq makes the node a seqlock: the shard's writer (holding the lock) makes
// it odd, changes the fields, and makes it even again; a reader retries
// when it saw it odd or changed. That pairs data and writer consistently
// and detects a slot reused for another key mid-read. All fields are
// accessed atomically except by the lock holder, which may read them
// plainly.
type node struct {
	data   unsafe.Pointer // *header, nil for a free slot
	writer unsafe.Pointer // *writerRef, nil for no writer
	seq    uint32
	hash   uint32 // low 32 bits of the key's hash
}

// link is a slot's place in its shard's LRU list (a circular doubly linked
// list through the sentinel, slot 0), or in the free list (next only). Only
// the lock holder touches links, so they live apart from the nodes that
// readers share: relinking does not invalidate readers' cache lines.
type link struct {
	prev, next int32
}

// read returns the node's entry and writer as one consistent pair, nil if
// the slot is free, and the seq they were read at.
func (n *node) read() (*header, *writerRef, uint32) {
	for spins := 0; ; spins++ {
		s := atomic.LoadUint32(&n.seq)
		if s&1 == 0 {
			d := atomic.LoadPointer(&n.data)
			w := atomic.LoadPointer(&n.writer)
			if atomic.LoadUint32(&n.seq) == s {
				return (*header)(d), (*writerRef)(w), s
			}
		}
		if spins >= 64 {
			runtime.Gosched() // the writer holding the slot was descheduled
		}
	}
}

// set publishes an entry in the node (nil hd frees it). Lock holder only.
func (n *node) set(hd *header, w *writerRef, hash uint32) {
	atomic.AddUint32(&n.seq, 1)
	atomic.StorePointer(&n.data, unsafe.Pointer(hd))
	atomic.StorePointer(&n.writer, unsafe.Pointer(w))
	atomic.StoreUint32(&n.hash, hash)
	atomic.AddUint32(&n.seq, 1)
}

// hdr returns the node's entry. Lock holder only.
func (n *node) hdr() *header { return (*header)(n.data) }

// layout is what a reader needs to find a key: the arena and the index.
// The lock holder publishes a new layout whenever either is reallocated
// (growth, index rebuild, compaction) and changes the published one in
// place otherwise, always atomically. A reader that loaded an older
// layout reads a frozen, self-consistent past state, as of the moment it
// was replaced: a result a Get overlapping that replacement may return.
type layout struct {
	nodes []node  // the whole arena, to its capacity
	slots []int32 // the index; see index.go
	mask  uint32
}

// find returns the slot, entry, writer and node seq of key, or a nil
// entry. It takes no lock.
func (l *layout) find(key string, h uint32) (int32, *header, *writerRef, uint32) {
	for pos := h & l.mask; ; pos = (pos + 1) & l.mask {
		i := atomic.LoadInt32(&l.slots[pos])
		if i == 0 {
			return 0, nil, nil, 0
		}
		if i < 0 || int(i) >= len(l.nodes) {
			continue // a tombstone, or a slot past an older arena
		}
		n := &l.nodes[i]
		if atomic.LoadUint32(&n.hash) != h {
			continue
		}
		if hd, w, seq := n.read(); hd != nil && hd.key() == key {
			return i, hd, w, seq
		}
	}
}
