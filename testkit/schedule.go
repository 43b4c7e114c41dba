package testkit

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"time"
)

// FaultKind is one kind of fault a Nemesis injects.
type FaultKind int

// The kinds of fault.
const (
	// FaultCrash kills a node with no leave (Cluster.Crash).
	FaultCrash FaultKind = iota + 1
	// FaultStop shuts a node down gracefully (Cluster.Stop): it hands its
	// keys off and leaves.
	FaultStop
	// FaultRestart starts a crashed or stopped slot again.
	FaultRestart
	// FaultJoin starts a slot that has never run: a new node joins.
	FaultJoin
	// FaultPartition splits the running nodes into Groups.
	FaultPartition
	// FaultHeal removes the partition and every drop and delay rule.
	FaultHeal
	// FaultDrop loses gossip packets on Links with probability P.
	FaultDrop
	// FaultDelay delays every packet and stream chunk on Links by Delay ±
	// Jitter.
	FaultDelay
	// FaultClock sets a node's clock Offset.
	FaultClock
)

var faultNames = map[FaultKind]string{
	FaultCrash: "crash", FaultStop: "stop", FaultRestart: "restart", FaultJoin: "join",
	FaultPartition: "partition", FaultHeal: "heal", FaultDrop: "drop", FaultDelay: "delay", FaultClock: "clock",
}

// String returns the kind's name ("crash", "stop", ...).
func (k FaultKind) String() string {
	if s, ok := faultNames[k]; ok {
		return s
	}
	return fmt.Sprintf("fault(%d)", int(k))
}

// Fault is one step of a schedule.
type Fault struct {
	Kind FaultKind
	// Node is the slot of a Crash, Stop, Restart, Join or Clock fault.
	Node int
	// Groups are a Partition's groups of slots.
	Groups [][]int
	// Links are the directed links (from, to) of a Drop or Delay.
	Links [][2]int
	// P is a Drop's loss probability.
	P float64
	// Delay and Jitter are a Delay's.
	Delay, Jitter time.Duration
	// Offset is a Clock fault's new offset.
	Offset time.Duration
	// Pause is how long the nemesis waits after this fault.
	Pause time.Duration
}

// String describes the fault ("crash node 2", "partition [[1] [0 2 3]]").
func (f Fault) String() string {
	switch f.Kind {
	case FaultCrash, FaultStop, FaultRestart, FaultJoin:
		return fmt.Sprintf("%v node %d", f.Kind, f.Node)
	case FaultPartition:
		return fmt.Sprintf("partition %v", f.Groups)
	case FaultDrop:
		return fmt.Sprintf("drop %.2f on %v", f.P, f.Links)
	case FaultDelay:
		return fmt.Sprintf("delay %v±%v on %v", f.Delay, f.Jitter, f.Links)
	case FaultClock:
		return fmt.Sprintf("clock node %d offset %v", f.Node, f.Offset)
	}
	return f.Kind.String()
}

// slotState is a slot as the schedule generator models it.
type slotState int

const (
	slotEmpty slotState = iota // never started
	slotUp
	slotDown // crashed or stopped
)

// GenerateSchedule derives a schedule of cfg.Faults faults from cfg.Seed,
// for a cluster whose slots are running as given (false: not started yet).
// It depends on nothing else, so a seed always gives the same faults in the
// same order. It models which slots are up to respect MaxDown and
// MinRunning, undoes what it did (restarts, heals) as it goes, and favours
// kinds it has not used yet so that each schedule mixes them.
func GenerateSchedule(cfg NemesisConfig, running []bool) []Fault {
	cfg = cfg.withDefaults()
	rng := rand.New(rand.NewPCG(cfg.Seed, cfg.Seed^0x6e656d65736973))
	state := make([]slotState, len(running))
	downFor := make([]int, len(running)) // faults since the slot went down
	for i, r := range running {
		if r {
			state[i] = slotUp
		}
	}
	allowed := func(k FaultKind) bool {
		return cfg.Kinds == nil || k == FaultRestart || k == FaultHeal || slices.Contains(cfg.Kinds, k)
	}
	if cfg.MaxClockSkew < 0 {
		allowed = func(k FaultKind) bool {
			return k != FaultClock && (cfg.Kinds == nil || k == FaultRestart || k == FaultHeal || slices.Contains(cfg.Kinds, k))
		}
	}
	used := map[FaultKind]bool{}
	partitioned, netFaults := false, false
	var out []Fault
	for len(out) < cfg.Faults {
		var up, down, empty []int
		for i, s := range state {
			switch s {
			case slotUp:
				up = append(up, i)
			case slotDown:
				down = append(down, i)
			default:
				empty = append(empty, i)
			}
		}
		type cand struct {
			kind   FaultKind
			weight int
		}
		var cands []cand
		add := func(k FaultKind, w int) {
			if !allowed(k) || w <= 0 {
				return
			}
			if !used[k] && k != FaultRestart && k != FaultHeal {
				w *= 4
			}
			cands = append(cands, cand{k, w})
		}
		minRunning := min(cfg.MinRunning, len(up))
		if !partitioned && len(down) < cfg.MaxDown && len(up)-1 >= max(minRunning, 1) {
			add(FaultCrash, 3)
			add(FaultStop, 3)
		}
		restartWeight := 0
		for _, i := range down {
			restartWeight += 2 + 3*downFor[i]
		}
		add(FaultRestart, restartWeight)
		if !partitioned && len(empty) > 0 {
			add(FaultJoin, 3)
		}
		if !partitioned && len(up) >= 3 {
			add(FaultPartition, 2)
		}
		if partitioned {
			add(FaultHeal, 5)
		} else if netFaults {
			add(FaultHeal, 2)
		}
		if len(up) >= 2 {
			add(FaultDrop, 2)
			add(FaultDelay, 2)
		}
		if cfg.MaxClockSkew > 0 {
			add(FaultClock, 2)
		}
		if len(cands) == 0 {
			break
		}
		total := 0
		for _, c := range cands {
			total += c.weight
		}
		pick := rng.IntN(total)
		var kind FaultKind
		for _, c := range cands {
			if pick < c.weight {
				kind = c.kind
				break
			}
			pick -= c.weight
		}
		pause := cfg.MeanPause/2 + time.Duration(rng.Int64N(int64(cfg.MeanPause)))
		f := Fault{Kind: kind}
		switch kind {
		case FaultCrash, FaultStop:
			f.Node = up[rng.IntN(len(up))]
			// Long enough away for writes, deletes and re-sets of its keys
			// to happen elsewhere before it comes back.
			pause = cfg.MeanPause + time.Duration(rng.Int64N(int64(2*cfg.MeanPause)))
		case FaultRestart:
			pick := rng.IntN(restartWeight)
			for _, i := range down {
				w := 2 + 3*downFor[i]
				if pick < w {
					f.Node = i
					break
				}
				pick -= w
			}
		case FaultJoin:
			f.Node = empty[rng.IntN(len(empty))]
		case FaultPartition:
			shuffled := slices.Clone(up)
			rng.Shuffle(len(shuffled), func(a, b int) { shuffled[a], shuffled[b] = shuffled[b], shuffled[a] })
			k := 1 + rng.IntN(max(1, (len(up)-1)/2))
			minority, majority := slices.Clone(shuffled[:k]), slices.Clone(shuffled[k:])
			slices.Sort(minority)
			slices.Sort(majority)
			f.Groups = [][]int{minority, majority}
		case FaultDrop, FaultDelay:
			from := up[rng.IntN(len(up))]
			others := slices.DeleteFunc(slices.Clone(up), func(i int) bool { return i == from })
			rng.Shuffle(len(others), func(a, b int) { others[a], others[b] = others[b], others[a] })
			for _, to := range others[:1+rng.IntN(len(others))] {
				f.Links = append(f.Links, [2]int{from, to}, [2]int{to, from})
			}
			if kind == FaultDrop {
				f.P = float64(10+rng.IntN(41)) / 100
			} else {
				f.Delay = time.Duration(2+rng.IntN(29)) * time.Millisecond
				f.Jitter = f.Delay / 2
			}
		case FaultClock:
			f.Node = rng.IntN(len(state))
			if rng.IntN(4) > 0 {
				ms := int64(cfg.MaxClockSkew / time.Millisecond)
				f.Offset = time.Duration(rng.Int64N(2*ms+1)-ms) * time.Millisecond
			}
		}
		f.Pause = pause
		for i := range downFor {
			if state[i] == slotDown {
				downFor[i]++
			}
		}
		switch kind {
		case FaultCrash, FaultStop:
			state[f.Node], downFor[f.Node] = slotDown, 0
		case FaultRestart, FaultJoin:
			state[f.Node] = slotUp
		case FaultPartition:
			partitioned = true
		case FaultHeal:
			partitioned, netFaults = false, false
		case FaultDrop, FaultDelay:
			netFaults = true
		}
		used[kind] = true
		out = append(out, f)
	}
	return out
}
