package cache

import (
	"strings"

	"github.com/mycorrizal/mycorrizal/ports"
)

// writerRef is one interned writer node ID. A cluster has few writers, so
// a shard keeps one writerRef per distinct ID and its nodes point to it:
// 8 bytes per entry instead of a 16-byte string header, and no copy of the
// ID per entry. The ID never changes, so a reader that loaded the pointer
// may use it after the shard dropped it; refs is the lock holder's.
type writerRef struct {
	id   ports.NodeID
	refs int
}

func (w *writerRef) nodeID() ports.NodeID {
	if w == nil {
		return ""
	}
	return w.id
}

// writerTable interns a shard's writer IDs, dropping each when its last
// entry goes, so it is bounded by the live entries however node IDs churn.
// Lock holder only.
type writerTable struct {
	byID map[ports.NodeID]*writerRef
	last *writerRef // the most recently acquired, a fast path
}

// acquire returns id's writerRef with a reference added, nil for "".
func (t *writerTable) acquire(id ports.NodeID) *writerRef {
	if id == "" {
		return nil
	}
	if w := t.last; w != nil && w.id == id {
		w.refs++
		return w
	}
	w := t.byID[id]
	if w == nil {
		if t.byID == nil {
			t.byID = make(map[ports.NodeID]*writerRef)
		}
		// Clone so an ID sliced from a large network buffer does not keep
		// the buffer alive.
		w = &writerRef{id: ports.NodeID(strings.Clone(string(id)))}
		t.byID[w.id] = w
	}
	w.refs++
	t.last = w
	return w
}

// release drops a reference to w.
func (t *writerTable) release(w *writerRef) {
	if w == nil {
		return
	}
	w.refs--
	if w.refs == 0 {
		delete(t.byID, w.id)
		if t.last == w {
			t.last = nil
		}
	}
}
