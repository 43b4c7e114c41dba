package bench

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime/pprof"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/mycorrizal/mycorrizal"
	"github.com/mycorrizal/mycorrizal/core/cache"
	"github.com/mycorrizal/mycorrizal/ports"
)

// The rebalance benchmark's bucket: RF=3, W=2, raw 100-byte values.
const (
	rebalanceBucket  = "rebalance"
	rebalanceRF      = 3
	rebalanceCallers = 64
	rebalanceTimeout = 5 * time.Minute // per phase
)

var rebalanceOptions = cache.BucketOptions{Codec: "raw", Replicas: rebalanceRF, WriteQuorum: 2}

// rebalanceSizes are the key counts of BenchmarkRebalance: 10,000 always,
// 100,000 and 1,000,000 with MYCORRIZAL_BENCH_LARGE=1 (1,000,000 not with
// -short).
var rebalanceSizes = []struct {
	name  string
	keys  int
	large bool
}{
	{"10k", 10_000, false},
	{"100k", 100_000, true},
	{"1M", 1_000_000, true},
}

// BenchmarkRebalance measures how fast the replicated cache moves data
// when the membership changes, on real nodes over QUIC with mutual TLS on
// loopback (memberlist gossip on its LAN profile, as a deployment runs
// it), with one bucket of RF=3, W=2 and 100-byte values.
//
// Each iteration starts 4 nodes and loads the keys through them from 64
// concurrent callers (s/load: until every key has its 3 copies), then:
//
//   - join: starts a 5th node and measures, from its Start, the time until
//     every node is synced, no node holds a copy of a key it does not own
//     (Foreign == 0) and the 5 nodes hold 3 copies of each key in all
//     (s/rebalance); s/join-ready is the new node's Start plus Ready;
//   - crash: kills one of the 5 (gossip stopped without a leave, QUIC
//     transport closed, no handoff) and measures, from the kill, the time
//     until the 4 survivors hold 3 copies of each key again and are synced
//     (s/restore); s/detect is the part until every survivor has dropped
//     the dead node from its view (memberlist's failure detection), and
//     s/restore-after-detect the rest.
//
// After the load, the 4 nodes are watched idle for 2 s: idle-cpu-% is the
// process's CPU use then (100 = one core) and idle-rounds/s the sync
// rounds each node ran per second (a stable cluster needs none between
// anti-entropy ticks, every 30 s).
//
// The timer covers the whole iteration (ns/op); the figures are the custom
// metrics, averaged over b.N iterations (run with -benchtime=1x).
func BenchmarkRebalance(b *testing.B) {
	for _, size := range rebalanceSizes {
		b.Run("keys="+size.name, func(b *testing.B) {
			switch {
			case size.large && !largeRuns():
				b.Skipf("set %s=1 to run the %s-key case", envLarge, size.name)
			case size.keys >= 1_000_000 && testing.Short():
				b.Skip("the 1M-key case does not run with -short")
			}
			keys := cacheKeys(size.keys)
			value := cacheValue()
			var sum rebalanceResult
			for range b.N {
				r := rebalanceOnce(b, keys, value)
				sum.add(r)
			}
			n := float64(b.N)
			b.ReportMetric(sum.load.Seconds()/n, "s/load")
			b.ReportMetric(float64(len(keys))*n/sum.load.Seconds(), "keys/s-load")
			b.ReportMetric(sum.joinReady.Seconds()/n, "s/join-ready")
			b.ReportMetric(sum.rebalance.Seconds()/n, "s/rebalance")
			b.ReportMetric(sum.detect.Seconds()/n, "s/detect")
			b.ReportMetric(sum.restore.Seconds()/n, "s/restore")
			b.ReportMetric((sum.restore-sum.detect).Seconds()/n, "s/restore-after-detect")
			b.ReportMetric(sum.idleCPU/n, "idle-cpu-%")
			b.ReportMetric(sum.idleRounds/n, "idle-rounds/s")
		})
	}
}

type rebalanceResult struct {
	load, joinReady, rebalance, detect, restore time.Duration
	// idleCPU (% of one core) and idleRounds (sync rounds per node per
	// second) are measured over 2 s after the load, with nothing running.
	idleCPU, idleRounds float64
}

func (r *rebalanceResult) add(o rebalanceResult) {
	r.load += o.load
	r.joinReady += o.joinReady
	r.rebalance += o.rebalance
	r.detect += o.detect
	r.restore += o.restore
	r.idleCPU += o.idleCPU
	r.idleRounds += o.idleRounds
}

// rebalanceOnce runs one iteration of BenchmarkRebalance on a new cluster
// and shuts it down.
func rebalanceOnce(b *testing.B, keys []string, value []byte) rebalanceResult {
	b.Helper()
	var r rebalanceResult
	want := rebalanceRF * len(keys)
	c := newReplCluster(b, 4)
	defer c.Close()
	c.createBucket(rebalanceBucket, rebalanceOptions)

	// Load through the 4 nodes until every key has its RF copies.
	nodes := c.Running()
	ctx, cancel := context.WithTimeout(context.Background(), rebalanceTimeout)
	defer cancel()
	stop := profilePhase(b, "load", len(keys))
	start := time.Now()
	if err := loadKeys(ctx, nodes, rebalanceBucket, keys, value, rebalanceCallers); err != nil {
		b.Fatal(err)
	}
	done, ok := pollUntil(rebalanceTimeout, 10*time.Millisecond, func() bool {
		return totalEntries(nodes, rebalanceBucket) == want && pendingWrites(nodes) == 0
	})
	if !ok {
		b.Fatalf("load: %d copies of %d keys, want %d:%s", totalEntries(nodes, rebalanceBucket), len(keys), want, describe(nodes, rebalanceBucket))
	}
	r.load = done.Sub(start)
	stop()

	// Idle: what the loaded cluster does with no operation running.
	rounds := func() (sum uint64) {
		for _, n := range nodes {
			sum += n.Cache().ReplicationStats().Rounds
		}
		return sum
	}
	r0, cpu0, t0 := rounds(), processCPU(), time.Now()
	time.Sleep(idleWindow)
	el := time.Since(t0).Seconds()
	r.idleCPU = 100 * (processCPU() - cpu0).Seconds() / el
	r.idleRounds = float64(rounds()-r0) / float64(len(nodes)) / el

	// Join: a 5th node.
	stop = profilePhase(b, "join", len(keys))
	start = time.Now()
	if _, err := c.Start("e"); err != nil {
		b.Fatal(err)
	}
	r.joinReady = time.Since(start)
	nodes = c.Running()
	done, ok = pollUntil(rebalanceTimeout, 20*time.Millisecond, func() bool {
		return rebalanced(nodes, want)
	})
	if !ok {
		b.Fatalf("join: not rebalanced within %v:%s", rebalanceTimeout, describe(nodes, rebalanceBucket))
	}
	r.rebalance = done.Sub(start)
	stop()
	b.Logf("keys=%d: load %v, join: ready %v, rebalanced %v", len(keys), r.load.Round(time.Millisecond), r.joinReady.Round(time.Millisecond), r.rebalance.Round(time.Millisecond))

	// Crash: node "b" dies.
	dead := nodes[1].ID()
	stop = profilePhase(b, "crash", len(keys))
	start = time.Now()
	c.Crash(1)
	survivors := c.Running()
	var detected time.Time
	done, ok = pollUntil(rebalanceTimeout, 20*time.Millisecond, func() bool {
		if detected.IsZero() {
			for _, n := range survivors {
				if slices.ContainsFunc(n.Members(), func(m ports.Member) bool { return m.ID == dead }) {
					return false
				}
			}
			detected = time.Now()
		}
		return restored(survivors, want)
	})
	if !ok {
		b.Fatalf("crash: RF not restored within %v (detected: %v):%s", rebalanceTimeout, !detected.IsZero(), describe(survivors, rebalanceBucket))
	}
	r.detect = detected.Sub(start)
	r.restore = done.Sub(start)
	stop()
	b.Logf("keys=%d: crash: detected %v, RF restored %v", len(keys), r.detect.Round(time.Millisecond), r.restore.Round(time.Millisecond))
	return r
}

// rebalanced reports whether every node is synced, the nodes hold want
// copies in all and none holds a copy of a key it does not own. The cheap
// checks go first: counting foreign copies walks every entry.
func rebalanced(nodes []*mycorrizal.Node, want int) bool {
	for _, n := range nodes {
		if !n.Synced() {
			return false
		}
	}
	if totalEntries(nodes, rebalanceBucket) != want {
		return false
	}
	for _, n := range nodes {
		if s := n.Cache().ReplicationStats(); !s.Synced || s.Foreign != 0 || s.Members != len(nodes) {
			return false
		}
	}
	return totalEntries(nodes, rebalanceBucket) == want
}

// restored reports whether the survivors all see only each other, are
// synced and hold want copies in all.
func restored(nodes []*mycorrizal.Node, want int) bool {
	for _, n := range nodes {
		if !n.Synced() || len(n.Members()) != len(nodes) {
			return false
		}
	}
	return totalEntries(nodes, rebalanceBucket) == want
}

// envProfile names a directory; when set, BenchmarkRebalance writes a CPU
// profile of each phase there (load-<keys>.pprof, join-…, crash-…).
const envProfile = "MYCORRIZAL_BENCH_PROFILE"

// profilePhase starts a CPU profile of one phase when envProfile is set and
// returns the function that stops it.
func profilePhase(b *testing.B, phase string, keys int) func() {
	dir := os.Getenv(envProfile)
	if dir == "" {
		return func() {}
	}
	f, err := os.Create(filepath.Join(dir, fmt.Sprintf("%s-%d.pprof", phase, keys)))
	if err != nil {
		b.Fatal(err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		_ = f.Close()
		b.Fatal(err)
	}
	var once sync.Once
	stop := func() {
		once.Do(func() {
			pprof.StopCPUProfile()
			_ = f.Close()
		})
	}
	b.Cleanup(stop) // when the phase fails
	return stop
}
