package testkit_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mycorrizal/mycorrizal"
	"github.com/mycorrizal/mycorrizal/core/cache"
	"github.com/mycorrizal/mycorrizal/ports"
	"github.com/mycorrizal/mycorrizal/testkit"
)

// replicated is the bucket the replication tests use: RF=3, W=2.
var replicated = cache.BucketOptions{Replicas: 3, WriteQuorum: 2}

func createEverywhere(t *testing.T, c *testkit.Cluster, from int, name string, o cache.BucketOptions) {
	t.Helper()
	if err := c.Node(from).Cache().CreateBucket(ctxT(t, 10*time.Second), name, o); err != nil {
		t.Fatal(err)
	}
	c.Eventually(10*time.Second, "bucket "+name+" on every running node", func() bool {
		for i := range c.Len() {
			if c.Running(i) && !slices.Contains(c.Node(i).Cache().Buckets(), name) {
				return false
			}
		}
		return true
	})
}

// writeKeys writes n keys from the running nodes in turn, 8 at a time.
func writeKeys(t *testing.T, c *testkit.Cluster, bucket string, n int) {
	t.Helper()
	ctx := ctxT(t, 60*time.Second)
	var running []int
	for i := range c.Len() {
		if c.Running(i) {
			running = append(running, i)
		}
	}
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for w := range 8 {
		wg.Go(func() {
			for k := w; k < n; k += 8 {
				node := c.Node(running[k%len(running)])
				if err := node.Cache().Set(ctx, bucket, key(k), value(k), 0); err != nil {
					errs <- fmt.Errorf("set %s: %w", key(k), err)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

func key(k int) string   { return fmt.Sprintf("key-%05d", k) }
func value(k int) []byte { return fmt.Appendf(nil, "value-%d", k) }

// waitReplicated waits until no running node has replica writes in flight.
func waitReplicated(t *testing.T, c *testkit.Cluster) {
	t.Helper()
	c.Eventually(20*time.Second, "background replica writes done", func() bool {
		for i := range c.Len() {
			if c.Running(i) && c.Node(i).Cache().ReplicationStats().PendingWrites != 0 {
				return false
			}
		}
		return true
	})
}

// copies counts the entries of bucket held by the running nodes.
func copies(c *testkit.Cluster, bucket string) int {
	total := 0
	for i := range c.Len() {
		if c.Running(i) {
			s, _ := c.Node(i).Cache().Stats(bucket)
			total += s.Entries
		}
	}
	return total
}

func TestReplicationSurvivesTwoCrashes(t *testing.T) {
	const n = 10000
	c := testkit.NewCluster(t, 5)
	createEverywhere(t, c, 0, "data", replicated)
	writeKeys(t, c, "data", n)
	waitReplicated(t, c)
	if got := copies(c, "data"); got != 3*n {
		t.Fatalf("%d copies before the crash, want %d", got, 3*n)
	}

	c.Crash(1)
	c.Crash(3)
	c.Eventually(15*time.Second, "crashes detected", func() bool {
		for _, i := range []int{0, 2, 4} {
			if c.Sees(i, 1) || c.Sees(i, 3) {
				return false
			}
		}
		return true
	})
	ctx := ctxT(t, 60*time.Second)
	survivors := []int{0, 2, 4}
	for k := range n {
		i := survivors[k%3]
		v, err := c.Node(i).Cache().Get(ctx, "data", key(k))
		if err != nil || string(v) != string(value(k)) {
			t.Fatalf("acknowledged write %s lost after two crashes: node %d read %q, %v", key(k), i, v, err)
		}
	}
	start := time.Now()
	c.Eventually(30*time.Second, "three copies of every key again", func() bool {
		return copies(c, "data") == 3*n
	})
	t.Logf("RF restored (%d copies on 3 survivors) %v after the reads", 3*n, time.Since(start).Round(time.Millisecond))
	for _, i := range survivors {
		if s := c.Node(i).Cache().ReplicationStats(); !s.Synced || s.UnderReplicated != 0 {
			t.Errorf("node %d: %+v", i, s)
		}
	}
}

// reader reads random keys of [0, n) from random running nodes until stop
// is closed, counting false misses (a present key reported missing).
type reader struct {
	misses, reads, errs atomic.Int64
	lastMiss            atomic.Value
}

func (r *reader) run(t *testing.T, c *testkit.Cluster, bucket string, present func() int, stop <-chan struct{}) {
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 7))
	for {
		select {
		case <-stop:
			return
		default:
		}
		limit := present()
		if limit == 0 {
			time.Sleep(time.Millisecond)
			continue
		}
		i := rng.IntN(c.Len())
		if !c.Running(i) {
			continue
		}
		k := rng.IntN(limit)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		v, err := c.Node(i).Cache().Get(ctx, bucket, key(k))
		cancel()
		r.reads.Add(1)
		switch {
		case errors.Is(err, ports.ErrNotFound):
			r.misses.Add(1)
			st := c.Node(i).Cache().ReplicationStats()
			_, err2 := c.Node(i).Cache().Get(context.Background(), bucket, key(k))
			var holders []int
			for j := range c.Len() {
				if c.Running(j) {
					if _, _, _, ok := c.Node(j).Cache().LocalRecord(bucket, key(k)); ok {
						holders = append(holders, j)
					}
				}
			}
			r.lastMiss.Store(fmt.Sprintf("node %d missed %s (synced %v members %d, again: %v, holders %v, owner %v)", i, key(k), st.Synced, st.Members, err2, holders, c.Node(i).Cache().Owner(bucket, key(k))))
		case err != nil:
			r.errs.Add(1) // the node shutting down, or a view change in flight
		case string(v) != string(value(k)):
			r.misses.Add(1)
			r.lastMiss.Store(fmt.Sprintf("node %d read %q for %s", i, v, key(k)))
		}
	}
}

func TestRollingRestartLosesNothing(t *testing.T) {
	const n = 10000
	c := testkit.NewCluster(t, 5)
	createEverywhere(t, c, 0, "data", replicated)
	writeKeys(t, c, "data", n)
	waitReplicated(t, c)

	stop := make(chan struct{})
	var r reader
	var wg sync.WaitGroup
	for range 2 {
		wg.Go(func() { r.run(t, c, "data", func() int { return n }, stop) })
	}
	for i := range 5 {
		c.Stop(i)
		c.Restart(i) // returns once the node is Ready: it holds its data
		c.WaitConverged(20 * time.Second)
	}
	close(stop)
	wg.Wait()
	t.Logf("during the roll: %d reads, %d misses, %d errors", r.reads.Load(), r.misses.Load(), r.errs.Load())
	if m := r.misses.Load(); m != 0 {
		t.Fatalf("%d Gets missed a present key during the roll (last: %v)", m, r.lastMiss.Load())
	}
	ctx := ctxT(t, 60*time.Second)
	for k := range n {
		if v, err := c.Node(k%5).Cache().Get(ctx, "data", key(k)); err != nil || string(v) != string(value(k)) {
			t.Fatalf("%s lost by the rolling restart: %q, %v", key(k), v, err)
		}
	}
	if got := copies(c, "data"); got != 3*n {
		shown := 0
		for k := 0; k < n && shown < 5; k++ {
			var holders []int
			for j := range 5 {
				if _, _, _, ok := c.Node(j).Cache().LocalRecord("data", key(k)); ok {
					holders = append(holders, j)
				}
			}
			if len(holders) != 3 {
				shown++
				t.Logf("%s: holders %v, replicas %v", key(k), holders, c.Node(0).Cache().Replicas("data", key(k)))
			}
		}
		for j := range 5 {
			t.Logf("node %d: %+v", j, c.Node(j).Cache().ReplicationStats())
		}
	}
	c.Eventually(30*time.Second, "three copies of every key", func() bool { return copies(c, "data") == 3*n })
}

func TestJoinUnderLoadLosesNothing(t *testing.T) {
	c := testkit.NewCluster(t, 5)
	c.Stop(3)
	c.Stop(4)
	c.Eventually(10*time.Second, "the 3 remaining nodes see only each other", func() bool {
		for i := range 3 {
			if len(c.Node(i).Members()) != 3 {
				return false
			}
		}
		return true
	})
	// R=2: with W=2 and RF=3, R+W > RF, so a key whose Set returned is read
	// back on any node; a miss is then a real loss, not replication lag.
	opts := replicated
	opts.ReadQuorum = 2
	createEverywhere(t, c, 0, "data", opts)
	// RF=2: some keys move to two new owners at once, so only nodes that no
	// longer own them hold them while they move.
	createEverywhere(t, c, 0, "pairs", cache.BucketOptions{Replicas: 2, WriteQuorum: 2})
	writeKeys(t, c, "pairs", 1000)

	var acked atomic.Int64 // keys [0, acked) are acknowledged
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var writeErr atomic.Value
	wg.Go(func() {
		for k := 0; ; k++ {
			select {
			case <-stop:
				return
			default:
			}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			err := c.Node(k%3).Cache().Set(ctx, "data", key(k), value(k), 0)
			cancel()
			if err != nil {
				writeErr.Store(err)
				return
			}
			acked.Store(int64(k + 1))
		}
	})
	var r reader
	for range 2 {
		wg.Go(func() { r.run(t, c, "data", func() int { return int(acked.Load()) }, stop) })
	}
	time.Sleep(300 * time.Millisecond)
	c.Restart(3)
	c.Restart(4)
	c.WaitConverged(20 * time.Second)
	time.Sleep(500 * time.Millisecond)
	close(stop)
	wg.Wait()
	if err := writeErr.Load(); err != nil {
		t.Fatalf("write failed during the join: %v", err)
	}
	n := int(acked.Load())
	t.Logf("%d acknowledged writes; %d reads, %d misses, %d errors during the join", n, r.reads.Load(), r.misses.Load(), r.errs.Load())
	if m := r.misses.Load(); m != 0 {
		t.Fatalf("%d false misses during the join (last: %v)", m, r.lastMiss.Load())
	}
	ctx := ctxT(t, 60*time.Second)
	for k := range n {
		if v, err := c.Node(k%5).Cache().Get(ctx, "data", key(k)); err != nil || string(v) != string(value(k)) {
			t.Fatalf("acknowledged %s lost: %q, %v", key(k), v, err)
		}
	}
	for k := range 1000 {
		if v, err := c.Node(k%5).Cache().Get(ctx, "pairs", key(k)); err != nil || string(v) != string(value(k)) {
			t.Fatalf("RF=2 key %s lost by the join: %q, %v", key(k), v, err)
		}
	}
	c.Eventually(30*time.Second, "three copies of every key, on their owners", func() bool {
		if copies(c, "data") != 3*n || copies(c, "pairs") != 2*1000 {
			return false
		}
		for i := range 5 {
			if s := c.Node(i).Cache().ReplicationStats(); s.Foreign != 0 || !s.Synced {
				return false
			}
		}
		return true
	})
}

func TestMinClusterSizeRefusesMinorityWrites(t *testing.T) {
	c := testkit.NewCluster(t, 5, testkit.WithNodeOptions(func(int) []mycorrizal.Option {
		return []mycorrizal.Option{mycorrizal.WithMinClusterSize(3), mycorrizal.WithAntiEntropy(time.Second, -1)}
	}))
	createEverywhere(t, c, 0, "data", replicated)
	ctx := ctxT(t, 60*time.Second)
	for k := range 100 {
		if err := c.Node(k%5).Cache().Set(ctx, "data", key(k), []byte("before"), 0); err != nil {
			t.Fatal(err)
		}
	}
	c.Partition([]int{0, 1}, []int{2, 3, 4})
	c.Eventually(15*time.Second, "both sides see the partition", func() bool {
		for i := range 5 {
			if want := map[bool]int{true: 2, false: 3}[i < 2]; len(c.Node(i).Members()) != want {
				return false
			}
		}
		return true
	})
	for k := range 100 {
		err := c.Node(k%2).Cache().Set(ctx, "data", key(k), []byte("minority"), 0)
		if !errors.Is(err, cache.ErrClusterTooSmall) {
			t.Fatalf("minority write of %s: %v, want ErrClusterTooSmall", key(k), err)
		}
	}
	for k := range 100 {
		if err := c.Node(2+k%3).Cache().Set(ctx, "data", key(k), []byte("majority"), 0); err != nil {
			t.Fatalf("majority write of %s: %v", key(k), err)
		}
	}
	c.Heal()
	c.WaitConverged(30 * time.Second)
	c.Eventually(30*time.Second, "every node agrees on every key", func() bool {
		for i := range 5 {
			for k := range 100 {
				v, err := c.Node(i).Cache().Get(ctx, "data", key(k))
				if err != nil || string(v) != "majority" {
					return false
				}
			}
		}
		return true
	})
}

// TestHandoffKeepsSingleCopyKeys: with RF=1 each key lives on one node, so
// only the handoff can save a leaving node's keys.
func TestHandoffKeepsSingleCopyKeys(t *testing.T) {
	const n = 2000
	c := testkit.NewCluster(t, 5)
	createEverywhere(t, c, 0, "single", cache.BucketOptions{Replicas: 1})
	writeKeys(t, c, "single", n)
	held, _ := c.Node(2).Cache().Stats("single")
	if held.Entries == 0 {
		t.Fatal("node 2 holds no key; the test would prove nothing")
	}
	c.Stop(2)
	c.Eventually(10*time.Second, "the others see node 2 gone", func() bool {
		for _, i := range []int{0, 1, 3, 4} {
			if c.Sees(i, 2) {
				return false
			}
		}
		return true
	})
	ctx := ctxT(t, 60*time.Second)
	for k := range n {
		i := []int{0, 1, 3, 4}[k%4]
		if v, err := c.Node(i).Cache().Get(ctx, "single", key(k)); err != nil || string(v) != string(value(k)) {
			t.Fatalf("%s lost when node 2 left (it held %d keys): %q, %v", key(k), held.Entries, v, err)
		}
	}
	if got := copies(c, "single"); got != n {
		t.Fatalf("%d copies after the handoff, want %d", got, n)
	}
	t.Logf("node 2 handed off %d keys; all %d readable", held.Entries, n)
}

// TestAntiEntropyHealsUnreadDivergence: records that reached only one
// replica (written straight into node 0's store, as if every replica write
// from it had been lost, with no membership change to start a sync) are
// spread by the periodic anti-entropy sync, without any read touching them.
func TestAntiEntropyHealsUnreadDivergence(t *testing.T) {
	const n = 500
	var (
		mu    sync.Mutex
		store ports.Store
	)
	c := testkit.NewCluster(t, 3, testkit.WithNodeOptions(func(i int) []mycorrizal.Option {
		opts := []mycorrizal.Option{mycorrizal.WithAntiEntropy(300*time.Millisecond, -1)}
		if i == 0 {
			opts = append(opts, mycorrizal.WithStore(func(bucket string, o cache.BucketOptions) (ports.Store, error) {
				s, err := cache.NewStore(cache.StoreConfig{MaxEntries: o.MaxEntries, MaxBytes: o.MaxBytes})
				if err == nil && bucket == "ae" {
					mu.Lock()
					store = s
					mu.Unlock()
				}
				return s, err
			}))
		}
		return opts
	}))
	createEverywhere(t, c, 1, "ae", cache.BucketOptions{Replicas: 3})
	c.Eventually(10*time.Second, "synced", func() bool {
		for i := range 3 {
			if !c.Node(i).Cache().Synced() {
				return false
			}
		}
		return true
	})
	mu.Lock()
	s := store
	mu.Unlock()
	if s == nil {
		t.Fatal("node 0's store for the bucket was not built")
	}
	for k := range n {
		e := ports.Entry{Key: key(k), Value: value(k), Version: uint64(time.Now().UnixNano()), Writer: c.ID(0)}
		if err := s.Set(e); err != nil {
			t.Fatal(err)
		}
	}
	if got := copies(c, "ae"); got != n {
		t.Fatalf("%d copies before anti-entropy, want %d (only node 0's)", got, n)
	}
	start := time.Now()
	c.Eventually(30*time.Second, "every replica holds every key", func() bool {
		return copies(c, "ae") == 3*n
	})
	t.Logf("anti-entropy spread %d records to 2 replicas in %v", n, time.Since(start).Round(time.Millisecond))
}
