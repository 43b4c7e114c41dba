package cache

import "sync/atomic"

// The index maps a key's hash to its arena slot: open addressing with
// linear probing over a power-of-two table of int32 (0 empty, -1 a
// tombstone, else a slot number), 4 bytes per table slot and no pointers.
//
// Readers probe it without the lock, so the lock holder never moves an
// entry within a published table: a deletion leaves a tombstone, which
// lookups step over and inserts reuse, and only a rebuild (into a new
// table, published with a new layout) clears tombstones. A reader's probe
// therefore never misses a key that stays present throughout it. The
// table is rebuilt when live entries plus tombstones would pass three
// quarters of it, to the smallest size that keeps the live ones at most
// 60%, which also shrinks it after mass removals.

const (
	tombstone    = -1
	minIndexSize = 16
)

// indexSizeFor returns the table size a rebuild for n live entries uses.
func indexSizeFor(n int) int {
	size := minIndexSize
	for n*5 > size*3 {
		size *= 2
	}
	return size
}

// lookup returns key's slot and index position, or slot 0. Lock holder only.
func (sh *shard) lookup(key string, h uint32) (int32, uint32) {
	for pos := h & sh.mask; ; pos = (pos + 1) & sh.mask {
		i := sh.slots[pos]
		if i == 0 {
			return 0, pos
		}
		if i > 0 {
			n := &sh.nodes[i]
			if n.hash == h && n.hdr().key() == key {
				return i, pos
			}
		}
	}
}

// position returns the index position holding slot i. Lock holder only.
func (sh *shard) position(i int32) uint32 {
	pos := sh.nodes[i].hash & sh.mask
	for sh.slots[pos] != i {
		pos = (pos + 1) & sh.mask
	}
	return pos
}

// reserveIndex rebuilds the index if one more entry would pass its load
// limit. Call it before the new entry's node is set, as a rebuild indexes
// every set node.
func (sh *shard) reserveIndex() {
	if (sh.used+1)*4 > len(sh.slots)*3 {
		sh.rebuildIndex(sh.live + 1)
	}
}

// indexInsert adds slot i, whose key (hash h) is not in the index, after
// reserveIndex.
func (sh *shard) indexInsert(i int32, h uint32) {
	for pos := h & sh.mask; ; pos = (pos + 1) & sh.mask {
		if v := sh.slots[pos]; v <= 0 {
			if v == 0 {
				sh.used++
			}
			atomic.StoreInt32(&sh.slots[pos], i)
			return
		}
	}
}

// indexRemove turns index position pos into a tombstone.
func (sh *shard) indexRemove(pos uint32) {
	atomic.StoreInt32(&sh.slots[pos], tombstone)
}

// rebuildIndex builds a new table for n entries from the live slots of
// the arena and publishes it.
func (sh *shard) rebuildIndex(n int) {
	size := indexSizeFor(n)
	sh.slots = make([]int32, size)
	sh.mask = uint32(size - 1)
	sh.used = 0
	for i := 1; i < sh.top; i++ {
		if n := &sh.nodes[i]; n.data != nil {
			pos := n.hash & sh.mask
			for sh.slots[pos] != 0 {
				pos = (pos + 1) & sh.mask
			}
			sh.slots[pos] = int32(i)
			sh.used++
		}
	}
	sh.publish()
}
