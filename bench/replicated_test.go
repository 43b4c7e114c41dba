package bench

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/mycorrizal/mycorrizal"
	"github.com/mycorrizal/mycorrizal/core/cache"
)

// The replicated-throughput comparison: 10,000 keys of 16 bytes with
// 100-byte values, 64 callers, a 5-node cluster.
const (
	replicatedNodes   = 5
	replicatedKeys    = 10_000
	replicatedCallers = 64
	// idleWindow is how long an idle cluster is watched.
	idleWindow = 2 * time.Second
)

// replicatedConfigs are the buckets compared, one per replication set-up
// (R=1 in each: a Get on a node holding a copy is served locally).
var replicatedConfigs = []struct {
	name string
	opts cache.BucketOptions
}{
	{"rf1", cache.BucketOptions{Codec: "raw", Replicas: 1}},
	{"rf2w1", cache.BucketOptions{Codec: "raw", Replicas: 2, WriteQuorum: 1}},
	{"rf3w2", cache.BucketOptions{Codec: "raw", Replicas: 3, WriteQuorum: 2}},
}

// BenchmarkReplicated compares Get and Set of 100-byte values over 10,000
// keys from 64 concurrent callers between a 5-node Mycorrizal cluster in
// this process (QUIC with mutual TLS on loopback) with buckets of RF=1,
// RF=2/W=1 and RF=3/W=2 (R=1), and a Redis server started for the run
// (go-redis, pool of 64). Operation i uses key i mod 10,000 through node i
// mod 5, so the callers spread over the nodes. Every bucket and Redis hold
// the same keys before the first operation. Redis runs first, before the
// nodes start, so the cluster's background work does not share the
// machine with it; then the cluster starts once and its sub-benchmarks
// share it.
//
// op=idle reports the process's CPU use (cpu-%, 100 = one core) over 2 s
// with the cluster loaded and no operation running.
//
// Metrics: ops/s (operations acknowledged per second), p50/p99 latency,
// local-% (share of the operations driven through a node that holds a copy
// of the key: a Get served without a network hop), and for Mycorrizal's
// Set drain-ms (how long after the last acknowledged Set the replica writes
// still in flight, beyond the write quorum, took to finish) and
// sustained-ops/s (operations per second counting that drain: what the
// cluster absorbs with every copy written).
func BenchmarkReplicated(b *testing.B) {
	keys := cacheKeys(replicatedKeys)
	value := cacheValue()
	// Redis first, before any node starts: the cluster's background work
	// (sync, gossip) is its own cost and must not slow the peer down.
	redisSide := startRedisCache(b, keys, value)
	for _, op := range []string{"get", "set"} {
		b.Run(fmt.Sprintf("op=%s/sys=redis", op), func(b *testing.B) {
			if redisSide.skip != "" {
				b.Skip(redisSide.skip)
			}
			fn := redisSide.get
			if op == "set" {
				fn = redisSide.set
			}
			runOpsCPU(b, replicatedCallers, fn)
		})
	}
	c := newReplCluster(b, replicatedNodes)
	nodes := c.Running()
	for _, cfg := range replicatedConfigs {
		c.createBucket(cfg.name, cfg.opts)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	for _, cfg := range replicatedConfigs {
		if err := loadKeys(ctx, nodes, cfg.name, keys, value, replicatedCallers); err != nil {
			b.Fatal(err)
		}
		rf, _, _ := effectiveQuorums(cfg.opts, len(nodes))
		if _, ok := pollUntil(time.Minute, 10*time.Millisecond, func() bool {
			return totalEntries(nodes, cfg.name) == rf*len(keys) && pendingWrites(nodes) == 0
		}); !ok {
			b.Fatalf("bucket %s: %d copies of %d keys, want %d:%s", cfg.name, totalEntries(nodes, cfg.name), len(keys), rf*len(keys), describe(nodes, cfg.name))
		}
	}
	b.Run("op=idle/sys=mycorrizal", func(b *testing.B) {
		// The cluster's own CPU use with no operations: background work
		// (sync rounds, gossip) that the Mycorrizal measurements share
		// the machine with.
		for range b.N {
			before, start := processCPU(), time.Now()
			time.Sleep(idleWindow)
			b.ReportMetric(100*(processCPU()-before).Seconds()/time.Since(start).Seconds(), "cpu-%")
		}
	})
	for _, op := range []string{"get", "set"} {
		for _, cfg := range replicatedConfigs {
			b.Run(fmt.Sprintf("op=%s/sys=mycorrizal-%s", op, cfg.name), func(b *testing.B) {
				replicatedMycorrizal(b, nodes, cfg.name, op, keys, value)
			})
		}
	}
}

// replicatedMycorrizal runs one Mycorrizal sub-benchmark of
// BenchmarkReplicated.
func replicatedMycorrizal(b *testing.B, nodes []*mycorrizal.Node, bucket, op string, keys []string, value []byte) {
	var lastDone atomic.Int64
	fn := func(ctx context.Context, i int) error {
		c := nodes[i%len(nodes)].Cache()
		k := keys[i%len(keys)]
		if op == "set" {
			err := c.Set(ctx, bucket, k, value, 0)
			lastDone.Store(time.Now().UnixNano())
			return err
		}
		v, err := c.Get(ctx, bucket, k)
		if err != nil {
			return err
		}
		if len(v) != len(value) {
			return errShortReply
		}
		return nil
	}
	runOpsCPU(b, replicatedCallers, fn)
	b.ReportMetric(100*localShare(nodes, bucket, keys), "local-%")
	if op != "set" {
		return
	}
	drained, ok := pollUntil(time.Minute, time.Millisecond, func() bool { return pendingWrites(nodes) == 0 })
	if !ok {
		b.Fatalf("replica writes still in flight a minute after the last Set:%s", describe(nodes, bucket))
	}
	drain := max(0, drained.Sub(time.Unix(0, lastDone.Load())))
	b.ReportMetric(float64(drain.Microseconds())/1e3, "drain-ms")
	b.ReportMetric(float64(b.N)/(b.Elapsed()+drain).Seconds(), "sustained-ops/s")
}

// localShare is the share of the operations of BenchmarkReplicated
// (operation i: key i mod len(keys) through node i mod len(nodes)) whose
// node holds a copy of the key.
func localShare(nodes []*mycorrizal.Node, bucket string, keys []string) float64 {
	period := len(keys) * len(nodes)
	if len(keys)%len(nodes) == 0 {
		period = len(keys)
	}
	local := 0
	for i := range period {
		if _, _, _, found := nodes[i%len(nodes)].Cache().LocalRecord(bucket, keys[i%len(keys)]); found {
			local++
		}
	}
	return float64(local) / float64(period)
}

// effectiveQuorums mirrors cache.BucketOptions' defaults: RF capped at the
// cluster size, W a majority, R one.
func effectiveQuorums(o cache.BucketOptions, n int) (rf, w, r int) {
	rf = o.Replicas
	if rf == 0 {
		rf = cache.DefaultReplicas
	}
	rf = max(1, min(rf, n))
	w = o.WriteQuorum
	if w == 0 {
		w = rf/2 + 1
	}
	return rf, min(w, rf), max(1, min(o.ReadQuorum, rf))
}

// runOpsCPU is runOps that also reports the CPU time this process used
// while it ran, as a share of one core (cpu-%; the machine's limit is
// GOMAXPROCS×100): it tells a run bound by the processor from one bound by
// waiting. For Redis it counts the client side only (the server is another
// process).
//
// other-cpu-% is the CPU the rest of the machine used meanwhile (all
// processes but this one, from /proc/stat): for Redis its server, for
// Mycorrizal nothing on a quiet machine, so a high figure there means the
// run shared the machine with other work.
func runOpsCPU(b *testing.B, callers int, op operation) {
	before, machineBefore := processCPU(), machineCPU()
	runOps(b, callers, op)
	// The warm-up's CPU counts too: report only when it is negligible.
	if el := b.Elapsed(); el >= 200*time.Millisecond {
		own := processCPU() - before
		b.ReportMetric(100*own.Seconds()/el.Seconds(), "cpu-%")
		if machineBefore > 0 {
			other := max(0, machineCPU()-machineBefore-own)
			b.ReportMetric(100*other.Seconds()/el.Seconds(), "other-cpu-%")
		}
	}
}

// machineCPU returns the CPU time all processes have used (the busy time
// in /proc/stat), or 0 where there is none.
func machineCPU() time.Duration {
	data, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0
	}
	line, _, _ := strings.Cut(string(data), "\n")
	f := strings.Fields(line)
	if len(f) < 9 || f[0] != "cpu" {
		return 0
	}
	var busy int64
	for i, v := range f[1:9] {
		if i == 3 || i == 4 { // idle, iowait
			continue
		}
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return 0
		}
		busy += n
	}
	return time.Duration(busy) * time.Second / clockTicks
}

// clockTicks is USER_HZ, the unit of /proc/stat: 100 on Linux.
const clockTicks = 100

// processCPU returns the user plus system CPU time this process has used.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
