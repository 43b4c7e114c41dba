package bench

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mycorrizal/mycorrizal"
	"github.com/mycorrizal/mycorrizal/core/cache"
	"github.com/mycorrizal/mycorrizal/ports"
)

// The remote comparison's workload: 10,000 keys of 16 bytes with values of
// 100 bytes in one bucket, driven through one node of three.
const (
	remoteKeys   = 10_000
	remoteNodes  = 3
	remoteBucket = "bench"
)

// remoteCallers are the caller counts of the remote comparison: one
// (sequential latency) and 64 (throughput).
var remoteCallers = []int{1, 64}

// remoteSide is one system of the remote comparison: its Get and Set of
// key i%remoteKeys for the operation with sequence number i.
type remoteSide struct {
	get, set operation
	// remoteShare is the share of the keys the driving node does not own
	// (reported for Mycorrizal; 0 for a server every key is remote on).
	remoteShare float64
	// skip, when set, is why the side cannot run here.
	skip string
}

// BenchmarkRemote compares Get and Set of 100-byte values over 10,000 keys
// between a 3-node Mycorrizal cluster in this process (QUIC with mutual
// TLS on loopback, one bucket, driven through the first node so about two
// thirds of the keys are owned elsewhere) and a Redis server started for
// the run on loopback, driven by go-redis v9 with a pool of 64 from this
// process. Both hold the same keys and values before the first operation;
// each sub-benchmark runs its operations over the keys in turn, spread
// over its callers. Both sides are started once and shared by the
// sub-benchmarks, interleaved per operation and caller count.
func BenchmarkRemote(b *testing.B) {
	keys := cacheKeys(remoteKeys)
	value := cacheValue()
	systems := []struct {
		name string
		side remoteSide
	}{
		{"mycorrizal", startMycorrizalCache(b, keys, value)},
		{"redis", startRedisCache(b, keys, value)},
	}
	for _, op := range []string{"get", "set"} {
		for _, callers := range remoteCallers {
			for _, sys := range systems {
				b.Run(fmt.Sprintf("op=%s/callers=%d/sys=%s", op, callers, sys.name), func(b *testing.B) {
					if sys.side.skip != "" {
						b.Skip(sys.side.skip)
					}
					fn := sys.side.get
					if op == "set" {
						fn = sys.side.set
					}
					runOps(b, callers, fn)
					if sys.side.remoteShare > 0 {
						b.ReportMetric(100*sys.side.remoteShare, "remote-%")
					}
				})
			}
		}
	}
}

// startMycorrizalCache starts three nodes, creates the bucket (raw codec,
// one replica per key: Replicas 1, so two thirds of the keys stay remote
// now that buckets replicate by default) through the first, waits until
// every node places every key on the same owner, preloads the keys, and
// returns the first node's Get and Set.
func startMycorrizalCache(b *testing.B, keys []string, value []byte) remoteSide {
	b.Helper()
	nodes := startMycorrizalNodes(b, remoteNodes, cache.AppName, nil)
	c := nodes[0].Cache()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := c.CreateBucket(ctx, remoteBucket, cache.BucketOptions{Codec: "raw", Replicas: 1}); err != nil {
		b.Fatal(err)
	}
	waitPlacement(b, nodes, keys)
	set := func(ctx context.Context, i int) error {
		return c.Set(ctx, remoteBucket, keys[i%len(keys)], value, 0)
	}
	if err := preload(ctx, len(keys), set); err != nil {
		b.Fatal(err)
	}
	remote := 0
	for _, k := range keys {
		if c.Owner(remoteBucket, k) != nodes[0].ID() {
			remote++
		}
	}
	return remoteSide{
		get: func(ctx context.Context, i int) error {
			v, err := c.Get(ctx, remoteBucket, keys[i%len(keys)])
			if err != nil {
				return err
			}
			if len(v) != len(value) {
				return errShortReply
			}
			return nil
		},
		set:         set,
		remoteShare: float64(remote) / float64(len(keys)),
	}
}

// waitPlacement waits until every node's cache places each key on the
// same owner and the owners include every node.
func waitPlacement(b *testing.B, nodes []*mycorrizal.Node, keys []string) {
	b.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		owners, agreed := map[ports.NodeID]bool{}, true
		for _, k := range keys {
			o := nodes[0].Cache().Owner(remoteBucket, k)
			owners[o] = true
			for _, n := range nodes[1:] {
				if n.Cache().Owner(remoteBucket, k) != o {
					agreed = false
				}
			}
		}
		if agreed && len(owners) == len(nodes) {
			return
		}
		if time.Now().After(deadline) {
			b.Fatalf("placement did not converge: %d owners, views agree: %v", len(owners), agreed)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// preload runs set for i from 0 to n-1 on 16 goroutines and returns the
// first error.
func preload(ctx context.Context, n int, set operation) error {
	var (
		next   atomic.Int64
		wg     sync.WaitGroup
		mu     sync.Mutex
		errOut error
	)
	for range 16 {
		wg.Go(func() {
			for i := int(next.Add(1) - 1); i < n; i = int(next.Add(1) - 1) {
				if err := set(ctx, i); err != nil {
					mu.Lock()
					if errOut == nil {
						errOut = fmt.Errorf("preload key %d: %w", i, err)
					}
					mu.Unlock()
					return
				}
			}
		})
	}
	wg.Wait()
	return errOut
}
