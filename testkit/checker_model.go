package testkit

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"
)

// keyState is one state a key can be in: a value, or absent (never
// written, or deleted).
type keyState struct {
	absent bool
	value  string
}

func (s keyState) String() string {
	if s.absent {
		return "<absent>"
	}
	return fmt.Sprintf("%q", s.value)
}

// stateSet is a set of possible states.
type stateSet map[keyState]bool

func (s stateSet) String() string {
	var parts []string
	for st := range s {
		parts = append(parts, st.String())
	}
	slices.Sort(parts)
	if len(parts) == 0 {
		return "{}"
	}
	return "{" + strings.Join(parts, " ") + "}"
}

// versionSlop covers the hybrid logical clock's own steps on top of the
// wall clock when comparing two writes' possible versions.
const versionSlop = 2 * time.Millisecond

// mayOutrank reports whether a's version can be higher than b's, b being a
// later write of the same key by the same (sequential) writer. Versions are
// last-write-wins, stamped by each coordinator's hybrid logical clock: a
// node's versions only grow, so a later write through the same node
// incarnation always wins; otherwise b's version is at least its
// coordinator's wall clock at its start, and a's at most the highest clock
// any node had by a's end (a clock pushed ahead by a version it saw). With
// no clock offsets, a ends before b starts and cannot outrank it; with
// offsets, docs/CONSISTENCY.md says it can.
func mayOutrank(a, b *op) bool {
	if a.inc != nil && a.inc == b.inc {
		return false
	}
	return a.end+a.maxOffset+versionSlop > b.start+b.minOffset
}

// possibleStates returns the states a key may hold once its writes ws[:n]
// have all taken effect (those not acknowledged may or may not have): the
// effect of every write that may have been applied and may outrank every
// later acknowledged write, or absent when no write was acknowledged.
func possibleStates(ws []*op, n int) stateSet {
	memo := map[int]stateSet{}
	var states func(n int) stateSet
	states = func(n int) stateSet {
		if s, ok := memo[n]; ok {
			return s
		}
		out := stateSet{}
		acked := false
		for j := range n {
			acked = acked || ws[j].acked()
		}
		if !acked {
			out[keyState{absent: true}] = true
		}
		for j := range n {
			a := ws[j]
			winner := true
			for m := j + 1; m < n && winner; m++ {
				if ws[m].acked() && !mayOutrank(a, ws[m]) {
					winner = false
				}
			}
			if !winner {
				continue
			}
			switch a.kind {
			case OpSet, OpGetOrLoad:
				out[keyState{value: a.value}] = true
			case OpDelete:
				out[keyState{absent: true}] = true
			case OpSetTTL:
				// SetTTL restamps the value a replica holds: whatever the
				// writes before it left there (never a missing key).
				for st := range states(j) {
					if !st.absent {
						out[st] = true
					}
				}
			}
		}
		memo[n] = out
		return out
	}
	return states(n)
}

// lastAcked returns the index of the last acknowledged write in ws[:n], or
// -1.
func lastAcked(ws []*op, n int) int {
	for j := n - 1; j >= 0; j-- {
		if ws[j].acked() {
			return j
		}
	}
	return -1
}

// exposed reports whether a crash between the start of the key's last
// acknowledged write in ws[:n] and before may have lost it as the
// documentation allows, and returns the crash's time.
func (h *keyHistory) exposed(n int, before time.Duration) (time.Duration, bool) {
	j := lastAcked(h.writes, n)
	from := time.Duration(-1)
	if j >= 0 {
		from = h.writes[j].start
	}
	for _, e := range h.exposures {
		if e > from && e < before {
			return e, true
		}
	}
	return 0, false
}

// lossStates is what a key may hold when a crash lost its latest copies:
// absent, or any value written before the crash.
func (h *keyHistory) lossStates(n int, crash time.Duration) stateSet {
	out := stateSet{{absent: true}: true}
	for _, w := range h.writes[:n] {
		if (w.kind == OpSet || w.kind == OpGetOrLoad) && w.start < crash {
			out[keyState{value: w.value}] = true
		}
	}
	return out
}

// writtenBy returns the values the writes ws[:n] carried.
func writtenBy(ws []*op, n int) map[string]bool {
	out := map[string]bool{}
	for _, w := range ws[:n] {
		if w.kind == OpSet || w.kind == OpGetOrLoad {
			out[w.value] = true
		}
	}
	return out
}

// union returns a ∪ b.
func union(a, b stateSet) stateSet {
	out := maps.Clone(a)
	maps.Copy(out, b)
	return out
}
