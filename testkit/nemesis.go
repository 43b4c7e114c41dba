package testkit

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"
)

// Nemesis runs a seeded schedule of faults on a Cluster, as Jepsen's nemesis
// does: crashes, graceful stops, restarts, joins of slots not started yet,
// partitions and heals, packet loss, delays and clock offsets. The schedule
// is derived from the seed and the configuration alone (see
// GenerateSchedule), so a failing seed replays the same faults in the same
// order; only their timing differs from run to run.
//
// A Nemesis only injects faults. Check invariants with a Checker (the
// cache's own), or with your application's code between Run and Settle and
// after Settle (see the package example).
type Nemesis struct {
	c        *Cluster
	cfg      NemesisConfig
	schedule []Fault

	mu     sync.Mutex
	start  time.Time
	events []FaultEvent
}

// NemesisConfig configures a Nemesis. The zero value (with a Seed) is a
// usable default: 12 faults about 1.5 s apart, at most one node down at
// once, clock offsets within ±2 s.
type NemesisConfig struct {
	// Seed derives the whole schedule.
	Seed uint64
	// Faults is the number of faults in the schedule (default 12).
	Faults int
	// MeanPause is the mean wait after a fault before the next (default
	// 1.5 s); a node crashed or stopped stays away one to several pauses.
	MeanPause time.Duration
	// MaxDown bounds the slots that have run and are crashed or stopped at
	// once (default 1). Slots never started do not count.
	MaxDown int
	// MinRunning is the least number of running nodes the nemesis leaves
	// (default 3, or the running count at the start if smaller).
	MinRunning int
	// MaxClockSkew bounds each node's clock offset, in either direction
	// (default 2 s). A negative value disables clock faults.
	MaxClockSkew time.Duration
	// WaitReplicated, when set, holds each crash and graceful stop until
	// every running node reports Synced with no replica writes pending
	// (see Replicated), so a fault never lands on a cluster still repairing
	// the previous one. It changes when faults happen, never which.
	WaitReplicated bool
	// GateTimeout bounds the WaitReplicated wait (default 30 s); the fault
	// is then injected anyway, with FaultEvent.Replicated false.
	GateTimeout time.Duration
	// Kinds restricts the schedule to these kinds (nil: all of them).
	// FaultRestart and FaultHeal are always allowed, to undo the others.
	Kinds []FaultKind
	// Logf receives one line per fault (default: the cluster's test log).
	Logf func(format string, args ...any)
	// BeforeFault, when set, is called just before each fault is applied
	// (after the WaitReplicated gate), from Run's goroutine.
	BeforeFault func(FaultEvent)
}

func (cfg NemesisConfig) withDefaults() NemesisConfig {
	if cfg.Faults <= 0 {
		cfg.Faults = 12
	}
	if cfg.MeanPause <= 0 {
		cfg.MeanPause = 1500 * time.Millisecond
	}
	if cfg.MaxDown <= 0 {
		cfg.MaxDown = 1
	}
	if cfg.MinRunning <= 0 {
		cfg.MinRunning = 3
	}
	if cfg.MaxClockSkew == 0 {
		cfg.MaxClockSkew = 2 * time.Second
	}
	if cfg.GateTimeout <= 0 {
		cfg.GateTimeout = 30 * time.Second
	}
	return cfg
}

// FaultEvent is one fault as Run applied it.
type FaultEvent struct {
	// Step is the fault's index in the schedule.
	Step int
	Fault
	// At is when the fault was applied; Elapsed is At from the start of Run
	// (Settle's steps have Step -1).
	At      time.Time
	Elapsed time.Duration
	// Took is how long applying it took (a Stop runs the node's whole
	// Shutdown, a Restart waits until the node is Ready).
	Took time.Duration
	// Replicated reports, for a crash or a stop, whether every running node
	// was Synced with no replica writes pending just before it.
	Replicated bool
	// Err is set when the fault could not be applied (a restart whose node
	// did not become Ready, a fault whose node was not in the expected
	// state because an earlier one failed).
	Err error
}

// String is the event as the nemesis logs it.
func (e FaultEvent) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "+%6.2fs #%d %v", e.Elapsed.Seconds(), e.Step, e.Fault)
	if e.Kind == FaultCrash || e.Kind == FaultStop {
		fmt.Fprintf(&b, " (replicated before: %v)", e.Replicated)
	}
	if e.Took > 100*time.Millisecond {
		fmt.Fprintf(&b, " took %v", e.Took.Round(time.Millisecond))
	}
	if e.Err != nil {
		fmt.Fprintf(&b, " FAILED: %v", e.Err)
	}
	return b.String()
}

// NewNemesis prepares the schedule for cfg.Seed on c, from the slots running
// now and the cluster's size. Nothing is injected before Run.
func NewNemesis(c *Cluster, cfg NemesisConfig) *Nemesis {
	cfg = cfg.withDefaults()
	if cfg.Logf == nil {
		cfg.Logf = c.t.Logf
	}
	running := make([]bool, c.Len())
	for i := range running {
		running[i] = c.Running(i)
	}
	return &Nemesis{c: c, cfg: cfg, schedule: GenerateSchedule(cfg, running)}
}

// Schedule returns the faults Run injects, in order.
func (n *Nemesis) Schedule() []Fault { return append([]Fault(nil), n.schedule...) }

// Events returns the faults applied so far, Settle's included.
func (n *Nemesis) Events() []FaultEvent {
	n.mu.Lock()
	defer n.mu.Unlock()
	return append([]FaultEvent(nil), n.events...)
}

// Replicated reports whether every running node of c is Synced and has no
// replica writes in flight (ReplicationStats().PendingWrites == 0): the
// state in which docs/CONSISTENCY.md says a crash of up to RF-1 replicas
// loses nothing.
func Replicated(c *Cluster) bool {
	for i := range c.Len() {
		if !c.Running(i) {
			continue
		}
		node := c.Node(i)
		if node == nil {
			return false
		}
		if s := node.Cache().ReplicationStats(); !s.Synced || s.PendingWrites != 0 {
			return false
		}
	}
	return true
}

// Run injects the schedule, waiting each fault's pause after it, and returns
// when it is done or ctx ends (ctx's error). Faults whose node is not in the
// expected state, because an earlier fault failed, are skipped and logged.
// Run does not undo the faults: call Settle.
func (n *Nemesis) Run(ctx context.Context) error {
	n.mu.Lock()
	n.start = time.Now()
	n.mu.Unlock()
	n.cfg.Logf("nemesis: seed %d, %d faults (replay: NEMESIS_SEED=%d)", n.cfg.Seed, len(n.schedule), n.cfg.Seed)
	for step, f := range n.schedule {
		if err := ctx.Err(); err != nil {
			return err
		}
		ev := FaultEvent{Step: step, Fault: f}
		if f.Kind == FaultCrash || f.Kind == FaultStop {
			ev.Replicated = n.gate(ctx)
		}
		n.apply(&ev)
		if err := sleepCtx(ctx, f.Pause); err != nil {
			return err
		}
	}
	return nil
}

// gate waits, with WaitReplicated, until Replicated holds (or the gate
// times out), and reports whether it holds.
func (n *Nemesis) gate(ctx context.Context) bool {
	if !n.cfg.WaitReplicated {
		return Replicated(n.c)
	}
	deadline := time.Now().Add(n.cfg.GateTimeout)
	for !Replicated(n.c) {
		if time.Now().After(deadline) || ctx.Err() != nil {
			n.cfg.Logf("nemesis: cluster not replicated after %v; injecting anyway", n.cfg.GateTimeout)
			return false
		}
		time.Sleep(20 * time.Millisecond)
	}
	return true
}

// apply injects one fault and records it.
func (n *Nemesis) apply(ev *FaultEvent) {
	c, f := n.c, ev.Fault
	ev.At = time.Now()
	n.mu.Lock()
	ev.Elapsed = ev.At.Sub(n.start)
	n.mu.Unlock()
	if n.cfg.BeforeFault != nil {
		n.cfg.BeforeFault(*ev)
	}
	switch f.Kind {
	case FaultCrash, FaultStop:
		if !c.Running(f.Node) {
			ev.Err = errors.New("skipped: node not running")
		} else if f.Kind == FaultCrash {
			c.Crash(f.Node)
		} else {
			c.Stop(f.Node)
		}
	case FaultRestart, FaultJoin:
		if c.Running(f.Node) {
			ev.Err = errors.New("skipped: node already running")
		} else {
			ev.Err = c.restart(f.Node, startTimeout)
		}
	case FaultPartition:
		c.Partition(f.Groups...)
	case FaultHeal:
		c.Heal()
	case FaultDrop:
		for _, l := range f.Links {
			c.Drop(l[0], l[1], f.P)
		}
	case FaultDelay:
		for _, l := range f.Links {
			c.DelayJitter(l[0], l[1], f.Delay, f.Jitter)
		}
	case FaultClock:
		c.SetClockOffset(f.Node, f.Offset)
	}
	ev.Took = time.Since(ev.At)
	n.mu.Lock()
	n.events = append(n.events, *ev)
	n.mu.Unlock()
	n.cfg.Logf("nemesis: %v", *ev)
}

// Settle undoes every fault: it heals the network, sets every clock offset
// back to 0, restarts every slot that has run and is down (retrying a
// restart that fails), then waits until membership has converged and every
// node is Synced with no replica writes pending. It returns an error saying
// what did not settle before ctx ended.
func (n *Nemesis) Settle(ctx context.Context) error {
	c := n.c
	n.mu.Lock()
	if n.start.IsZero() {
		n.start = time.Now()
	}
	n.mu.Unlock()
	n.apply(&FaultEvent{Step: -1, Fault: Fault{Kind: FaultHeal}})
	for i := range c.Len() {
		if c.ClockOffset(i) != 0 {
			n.apply(&FaultEvent{Step: -1, Fault: Fault{Kind: FaultClock, Node: i}})
		}
	}
	for i := range c.Len() {
		for attempt := 0; c.Started(i) && !c.Running(i) && attempt < 3 && ctx.Err() == nil; attempt++ {
			n.apply(&FaultEvent{Step: -1, Fault: Fault{Kind: FaultRestart, Node: i}})
		}
	}
	var missing []string
	for ctx.Err() == nil {
		missing = missing[:0]
		if !c.Converged() {
			missing = append(missing, "membership not converged")
		}
		if !Replicated(c) {
			missing = append(missing, "not every node Synced with no pending replica writes")
		}
		for i := range c.Len() {
			if c.Started(i) && !c.Running(i) {
				missing = append(missing, fmt.Sprintf("node %d down", i))
			}
		}
		if len(missing) == 0 {
			n.cfg.Logf("nemesis: settled")
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	return fmt.Errorf("nemesis: not settled: %s: %w", strings.Join(missing, "; "), ctx.Err())
}

// sleepCtx waits d or until ctx ends.
func sleepCtx(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
