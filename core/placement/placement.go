// Package placement decides which nodes own a key, by rendezvous (highest
// random weight) hashing: every node scores every (namespace, key) and the
// highest scores win. Adding or removing a node moves only the keys that
// node wins or loses, and every node that sees the same member set computes
// the same owners without talking to anyone.
//
// The cache (Mycel) places bucket keys with it, and service routing (Hypha)
// will place keyed calls with it.
//
// Keys are encoded unambiguously before hashing: the namespace is length-
// prefixed, so ("ab", "c") and ("a", "bc") never collide (a defect of the
// predecessor, which joined bucket and key). The hash is 64-bit FNV-1a over
// that encoding, finished with a strong mixer per node; it is deterministic
// across processes and machines, as placement must be.
package placement

import (
	"encoding/binary"
	"slices"

	"github.com/mycorrizal/mycorrizal/ports"
)

const (
	fnvOffset = 14695981039346656037
	fnvPrime  = 1099511628211
)

// KeyHash returns the placement hash of key within namespace.
func KeyHash(namespace, key string) uint64 {
	var lenBuf [binary.MaxVarintLen64]byte
	n := binary.PutUvarint(lenBuf[:], uint64(len(namespace)))
	h := uint64(fnvOffset)
	for _, b := range lenBuf[:n] {
		h = (h ^ uint64(b)) * fnvPrime
	}
	for i := 0; i < len(namespace); i++ {
		h = (h ^ uint64(namespace[i])) * fnvPrime
	}
	for i := 0; i < len(key); i++ {
		h = (h ^ uint64(key[i])) * fnvPrime
	}
	return h
}

// nodeHash is a node ID's hash, computed once per view.
func nodeHash(id ports.NodeID) uint64 {
	h := uint64(fnvOffset)
	for i := 0; i < len(id); i++ {
		h = (h ^ uint64(id[i])) * fnvPrime
	}
	return mix(h)
}

// mix is the splitmix64 finalizer: it spreads every input bit over the
// output, so scores of one key on different nodes are independent.
func mix(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}

// View is an immutable set of nodes with a version, the unit placement is
// computed against. Build a new View on every membership change; a View is
// safe for concurrent use.
type View struct {
	version     uint64
	nodes       []ports.NodeID // sorted
	hashes      []uint64       // hashes[i] = nodeHash(nodes[i])
	fingerprint uint64
}

// NewView returns a view of the given nodes (duplicates removed) with a
// version number the caller increments on every change.
func NewView(version uint64, nodes []ports.NodeID) *View {
	ns := slices.Clone(nodes)
	slices.Sort(ns)
	ns = slices.Compact(ns)
	hs := make([]uint64, len(ns))
	fp := uint64(len(ns))
	for i, id := range ns {
		hs[i] = nodeHash(id)
		fp = mix(fp*0x9e3779b97f4a7c15 ^ hs[i])
	}
	return &View{version: version, nodes: ns, hashes: hs, fingerprint: fp}
}

// Fingerprint identifies the view's set of nodes: views of the same nodes
// have the same fingerprint on every node, whatever their versions, and so
// the same owners for every key.
func (v *View) Fingerprint() uint64 { return v.fingerprint }

// Version returns the view's version.
func (v *View) Version() uint64 { return v.version }

// Nodes returns the view's nodes, sorted. The caller must not modify it.
func (v *View) Nodes() []ports.NodeID { return v.nodes }

// Len returns the number of nodes.
func (v *View) Len() int { return len(v.nodes) }

// Contains reports whether id is in the view.
func (v *View) Contains(id ports.NodeID) bool {
	_, ok := slices.BinarySearch(v.nodes, id)
	return ok
}

// Owner returns the node that owns the key with hash kh: the highest score.
// Ties (astronomically unlikely) go to the smaller node ID. It returns false
// for an empty view. O(nodes), no allocation.
func (v *View) Owner(kh uint64) (ports.NodeID, bool) {
	if len(v.nodes) == 0 {
		return "", false
	}
	best, bestScore := 0, mix(kh^v.hashes[0])
	for i := 1; i < len(v.hashes); i++ {
		if s := mix(kh ^ v.hashes[i]); s > bestScore {
			best, bestScore = i, s
		}
	}
	return v.nodes[best], true
}

// Owners appends to dst the n nodes that own the key with hash kh, highest
// score first (the primary, then its replicas), and returns it. Fewer are
// returned when the view is smaller than n.
func (v *View) Owners(dst []ports.NodeID, kh uint64, n int) []ports.NodeID {
	n = min(n, len(v.nodes))
	if n <= 0 {
		return dst
	}
	if n == 1 {
		id, _ := v.Owner(kh)
		return append(dst, id)
	}
	type scored struct {
		score uint64
		i     int
	}
	var stack [8]scored
	top := stack[:0]
	for i, h := range v.hashes {
		s := scored{mix(kh ^ h), i}
		pos := len(top)
		for pos > 0 && (top[pos-1].score < s.score || (top[pos-1].score == s.score && v.nodes[top[pos-1].i] > v.nodes[i])) {
			pos--
		}
		if pos >= n {
			continue
		}
		if len(top) < n {
			top = append(top, scored{})
		}
		copy(top[pos+1:], top[pos:len(top)-1])
		top[pos] = s
	}
	for _, s := range top {
		dst = append(dst, v.nodes[s.i])
	}
	return dst
}
