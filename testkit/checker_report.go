package testkit

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"
)

// The kinds of Violation a Checker reports.
const (
	// ViolationPhantom: a read returned a value no write of the key carried.
	ViolationPhantom = "phantom read"
	// ViolationFalseMiss: during the schedule, a Get missed a key whose
	// last write, acknowledged at least MissGrace earlier with no write in
	// flight, was a value, in a situation where docs/CONSISTENCY.md
	// promises no miss.
	ViolationFalseMiss = "false miss"
	// ViolationStale: during the schedule, a read of a key of a bucket
	// with R+W>RF (RF=1 included) returned an older value than the last
	// write, acknowledged at least MissGrace earlier with no write in
	// flight, left (in a situation where the documentation promises it).
	ViolationStale = "stale read"
	// ViolationLost: after settling, a read through some node missed a key
	// whose acknowledged write should be there.
	ViolationLost = "acknowledged write lost"
	// ViolationWrongValue: after settling, a read returned a value other
	// than the last acknowledged write's (or a later write's whose outcome
	// is unknown), a deleted key included.
	ViolationWrongValue = "wrong final value"
	// ViolationReadError: after settling, a read failed.
	ViolationReadError = "final read error"
	// ViolationCopies: after settling, an owner of a key does not hold its
	// latest version.
	ViolationCopies = "missing copy"
	// ViolationForeign: after settling, a node that does not own a key
	// still holds a record of it (value or tombstone).
	ViolationForeign = "foreign copy"
	// ViolationViews: after settling, two nodes disagree on a key's
	// replicas.
	ViolationViews = "views differ"
	// ViolationLinearizability: the history of a key of a bucket with
	// R+W>RF fails porcupine's check against a register.
	ViolationLinearizability = "not linearizable"
	// ViolationSettle: the cluster did not settle (RunSchedule).
	ViolationSettle = "did not settle"
)

// The kinds of Report.Excused: what happened that the documentation allows,
// counted so that it is seen.
const (
	// ExcusedLoss: a key lost its acknowledged write (or read as absent or
	// older) after a crash of its only copy (RF=1) or of RF replicas (W
	// before background writes finished) at once.
	ExcusedLoss = "lost by an allowed crash"
	// ExcusedMiss: a false miss, by the definition above, outside what
	// the documentation promises (during or just after a partition, a
	// crash with background writes pending, packet loss on an RF=1 key).
	ExcusedMiss = "miss outside the promises"
	// ExcusedCrashMiss: a miss of a key an allowed crash may have lost.
	ExcusedCrashMiss = "miss after an allowed crash"
	// ExcusedStale: a read at least MissGrace after the key's last
	// acknowledged write returned an older value where the documentation
	// allows it (R+W<=RF, or outside the promises as for misses).
	ExcusedStale = "stale read allowed"
	// ExcusedNonLinearizable: a key's history is not linearizable where
	// the documentation allows it (see Checker.Check).
	ExcusedNonLinearizable = "not linearizable, allowed"
)

// Violation is one broken invariant.
type Violation struct {
	Kind        string
	Bucket, Key string
	// Node is the slot the read went through (-1 when none).
	Node int
	// At is when it was seen, from the start of the workload.
	At time.Duration
	// Expected and Observed describe the states.
	Expected, Observed string
	// Faults lists the faults around At (or since the key's last write).
	Faults string
	// History lists the key's operations, for the violations of its final
	// state.
	History string
}

// String is the violation on one line.
func (v Violation) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s: bucket %s key %s", v.Kind, v.Bucket, v.Key)
	if v.Node >= 0 {
		fmt.Fprintf(&b, " via node %d", v.Node)
	}
	fmt.Fprintf(&b, " at +%.2fs: expected %s, observed %s", v.At.Seconds(), v.Expected, v.Observed)
	if v.Faults != "" {
		fmt.Fprintf(&b, " [faults: %s]", v.Faults)
	}
	if v.History != "" {
		fmt.Fprintf(&b, "\n      history: %s", v.History)
	}
	return b.String()
}

// Report is what a Checker found.
type Report struct {
	// Seed is the nemesis seed (RunSchedule sets it).
	Seed uint64
	// Faults are the faults injected, Settle's included.
	Faults []FaultEvent
	// Ops counts operations by "kind outcome" ("set ok", "get notfound").
	Ops map[string]int
	// Keys is the number of keys written.
	Keys int
	// Violations are the broken invariants.
	Violations []Violation
	// Excused counts what the documentation allows, by kind.
	Excused map[string]int
	// Notes are remarks that are not violations (a check that timed out).
	Notes []string
	// Took is the schedule's duration, workload to checks.
	Took time.Duration
}

// OK reports whether no invariant was broken.
func (r *Report) OK() bool { return len(r.Violations) == 0 }

// Count returns the number of violations of a kind.
func (r *Report) Count(kind string) int {
	n := 0
	for _, v := range r.Violations {
		if v.Kind == kind {
			n++
		}
	}
	return n
}

// Add records a violation.
func (r *Report) Add(v Violation) { r.Violations = append(r.Violations, v) }

func (r *Report) excuse(kind string) {
	if r.Excused == nil {
		r.Excused = map[string]int{}
	}
	r.Excused[kind]++
}

// ByKind counts the violations by kind.
func (r *Report) ByKind() map[string]int {
	out := map[string]int{}
	for _, v := range r.Violations {
		out[v.Kind]++
	}
	return out
}

// Summary describes the schedule: seed, faults, operations, excused
// events and violations (at most maxShown of them, by kind in turn; all
// when maxShown <= 0).
func (r *Report) Summary(maxShown int) string {
	var b strings.Builder
	fmt.Fprintf(&b, "schedule seed %d: %d keys, %v\n", r.Seed, r.Keys, r.Took.Round(100*time.Millisecond))
	fmt.Fprintf(&b, "  faults (%d):\n", len(r.Faults))
	for _, f := range r.Faults {
		fmt.Fprintf(&b, "    %v\n", f)
	}
	fmt.Fprintf(&b, "  operations:")
	for _, k := range slices.Sorted(maps.Keys(r.Ops)) {
		fmt.Fprintf(&b, " %s=%d", k, r.Ops[k])
	}
	b.WriteString("\n")
	if len(r.Excused) > 0 {
		fmt.Fprintf(&b, "  allowed by the documentation:")
		for _, k := range slices.Sorted(maps.Keys(r.Excused)) {
			fmt.Fprintf(&b, " %s=%d", k, r.Excused[k])
		}
		b.WriteString("\n")
	}
	for _, n := range r.Notes {
		fmt.Fprintf(&b, "  note: %s\n", n)
	}
	kinds := r.ByKind()
	if len(kinds) == 0 {
		b.WriteString("  violations: none\n")
		return b.String()
	}
	fmt.Fprintf(&b, "  violations (%d):", len(r.Violations))
	for _, k := range slices.Sorted(maps.Keys(kinds)) {
		fmt.Fprintf(&b, " %s=%d", k, kinds[k])
	}
	buckets := map[string]int{}
	for _, v := range r.Violations {
		if v.Bucket != "" {
			buckets[v.Bucket]++
		}
	}
	b.WriteString("; by bucket:")
	for _, k := range slices.Sorted(maps.Keys(buckets)) {
		fmt.Fprintf(&b, " %s=%d", k, buckets[k])
	}
	b.WriteString("\n")
	// Show some of each kind, so that a flood of one kind does not hide
	// the others.
	shown := map[string]int{}
	perKind := len(r.Violations)
	if maxShown > 0 {
		perKind = max(1, maxShown/len(kinds))
	}
	for _, v := range r.Violations {
		if shown[v.Kind] < perKind {
			shown[v.Kind]++
			fmt.Fprintf(&b, "    %v\n", v)
		}
	}
	return b.String()
}
