package testkit

import (
	"context"
	"testing"
	"time"
)

// ScheduleConfig configures RunSchedule.
type ScheduleConfig struct {
	// Seed derives the fault schedule and the clients' choices.
	Seed uint64
	// Nodes is the number of slots (default 6); InitialNodes of them start
	// with the cluster (default Nodes-1), the others join during the
	// schedule.
	Nodes, InitialNodes int
	// Warmup is how long the workload runs before the first fault
	// (default 1 s).
	Warmup time.Duration
	// SettleTimeout bounds Settle (default 90 s).
	SettleTimeout time.Duration
	// Nemesis and Checker configure those (their seeds are set from Seed).
	Nemesis NemesisConfig
	Checker CheckerConfig
	// Options are more NewCluster options.
	Options []Option
}

// RunSchedule runs one seeded fault schedule against the cache, the way
// TestFaultSchedules does: a cluster of Nodes slots, a Checker's workload
// on its buckets, a Nemesis injecting its schedule (observed by the
// checker), then the workload stops, the nemesis settles the cluster, and
// the checker checks. It returns the report; it fails t only when the run
// itself cannot proceed (the cluster does not start), never for a
// violation: the caller decides (see Report.OK and Report.Summary).
func RunSchedule(t testing.TB, cfg ScheduleConfig) *Report {
	t.Helper()
	if cfg.Nodes <= 0 {
		cfg.Nodes = 6
	}
	if cfg.InitialNodes <= 0 {
		cfg.InitialNodes = cfg.Nodes - 1
	}
	if cfg.Warmup <= 0 {
		cfg.Warmup = time.Second
	}
	if cfg.SettleTimeout <= 0 {
		cfg.SettleTimeout = 90 * time.Second
	}
	began := time.Now()
	opts := append([]Option{WithSeed(cfg.Seed), WithInitialNodes(cfg.InitialNodes)}, cfg.Options...)
	c := NewCluster(t, cfg.Nodes, opts...)

	cfg.Checker.Seed = cfg.Seed
	ch := NewChecker(c, cfg.Checker)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	if err := ch.Start(ctx); err != nil {
		t.Fatalf("testkit: %v", err)
	}
	defer ch.Stop()

	cfg.Nemesis.Seed = cfg.Seed
	user := cfg.Nemesis.BeforeFault
	cfg.Nemesis.BeforeFault = func(ev FaultEvent) {
		ch.Observe(ev)
		if user != nil {
			user(ev)
		}
	}
	nem := NewNemesis(c, cfg.Nemesis)
	_ = sleepCtx(ctx, cfg.Warmup)
	runErr := nem.Run(ctx)
	ch.Stop()
	sctx, scancel := context.WithTimeout(ctx, cfg.SettleTimeout)
	settleErr := nem.Settle(sctx)
	scancel()
	rep := ch.Check(ctx, nem.Events())
	rep.Seed = cfg.Seed
	for _, err := range []error{runErr, settleErr} {
		if err != nil {
			rep.Add(Violation{Kind: ViolationSettle, Node: -1, At: ch.since(), Expected: "the schedule runs and the cluster settles", Observed: err.Error()})
		}
	}
	for _, ev := range rep.Faults {
		if ev.Err != nil && ev.Kind == FaultRestart || ev.Err != nil && ev.Kind == FaultJoin {
			rep.Notes = append(rep.Notes, ev.String())
		}
	}
	rep.Took = time.Since(began)
	return rep
}
