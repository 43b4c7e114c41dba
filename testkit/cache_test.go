package testkit_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mycorrizal/mycorrizal"
	"github.com/mycorrizal/mycorrizal/core/cache"
	"github.com/mycorrizal/mycorrizal/ports"
	"github.com/mycorrizal/mycorrizal/testkit"
)

func TestCacheAcrossFiveNodes(t *testing.T) {
	c := testkit.NewCluster(t, 5)
	ctx := ctxT(t, 60*time.Second)
	// R=2 with the default RF=3, W=2: R+W > RF, so a read on any node sees
	// the write that just returned.
	sessions := cache.BucketOptions{DefaultTTL: time.Minute, ReadQuorum: 2}
	if err := c.Node(0).Cache().CreateBucket(ctx, "sessions", sessions); err != nil {
		t.Fatal(err)
	}
	c.Eventually(10*time.Second, "bucket known on every node", func() bool {
		for i := range 5 {
			if !slices.Contains(c.Node(i).Cache().Buckets(), "sessions") {
				return false
			}
		}
		return true
	})

	t.Run("a key set on any node is read from every node", func(t *testing.T) {
		for k := range 100 {
			key := fmt.Sprintf("user:%d", k)
			if err := c.Node(k%5).Cache().Set(ctx, "sessions", key, []byte("v"+key), 0); err != nil {
				t.Fatal(err)
			}
		}
		owners := map[ports.NodeID]int{}
		for k := range 100 {
			key := fmt.Sprintf("user:%d", k)
			owners[c.Node(0).Cache().Owner("sessions", key)]++
			for i := range 5 {
				v, err := c.Node(i).Cache().Get(ctx, "sessions", key)
				if err != nil || string(v) != "v"+key {
					t.Fatalf("node %d get %s: %q, %v", i, key, v, err)
				}
			}
		}
		if len(owners) != 5 {
			t.Fatalf("keys owned by %d nodes, want all 5: %v", len(owners), owners)
		}
		var total int
		for i := range 5 {
			s, _ := c.Node(i).Cache().Stats("sessions")
			total += s.Entries
		}
		if total != 300 {
			t.Fatalf("%d entries stored across the nodes, want 300 (three copies each)", total)
		}
	})

	t.Run("delete and SetTTL from any node take effect everywhere", func(t *testing.T) {
		for k := range 20 {
			key := fmt.Sprintf("user:%d", k)
			if err := c.Node((k+2)%5).Cache().Delete(ctx, "sessions", key); err != nil {
				t.Fatal(err)
			}
			for i := range 5 {
				if _, err := c.Node(i).Cache().Get(ctx, "sessions", key); !errors.Is(err, ports.ErrNotFound) {
					t.Fatalf("node %d after delete: %v", i, err)
				}
			}
		}
		for k := 20; k < 40; k++ {
			key := fmt.Sprintf("user:%d", k)
			if err := c.Node((k+3)%5).Cache().SetTTL(ctx, "sessions", key, 100*time.Millisecond); err != nil {
				t.Fatal(err)
			}
		}
		time.Sleep(150 * time.Millisecond)
		for k := 20; k < 40; k++ {
			key := fmt.Sprintf("user:%d", k)
			for i := range 5 {
				if _, err := c.Node(i).Cache().Get(ctx, "sessions", key); !errors.Is(err, ports.ErrNotFound) {
					t.Fatalf("node %d: %s after its TTL: %v", i, key, err)
				}
			}
		}
		if err := c.Node(1).Cache().SetTTL(ctx, "sessions", "never-set", time.Second); !errors.Is(err, ports.ErrNotFound) {
			t.Fatalf("SetTTL of a missing key: %v", err)
		}
	})

	t.Run("default TTL applies and expiry works across nodes", func(t *testing.T) {
		if err := c.Node(2).Cache().CreateBucket(ctx, "short", cache.BucketOptions{DefaultTTL: 100 * time.Millisecond}); err != nil {
			t.Fatal(err)
		}
		for k := range 20 {
			if err := c.Node(k%5).Cache().Set(ctx, "short", fmt.Sprint(k), []byte("x"), 0); err != nil {
				t.Fatal(err)
			}
		}
		time.Sleep(150 * time.Millisecond)
		for k := range 20 {
			if _, err := c.Node(4-k%5).Cache().Get(ctx, "short", fmt.Sprint(k)); !errors.Is(err, ports.ErrNotFound) {
				t.Fatalf("key %d after the default TTL: %v", k, err)
			}
		}
	})

	t.Run("eviction keeps each node within its limit", func(t *testing.T) {
		if err := c.Node(3).Cache().CreateBucket(ctx, "small", cache.BucketOptions{MaxEntries: 10}); err != nil {
			t.Fatal(err)
		}
		for k := range 300 {
			if err := c.Node(k%5).Cache().Set(ctx, "small", fmt.Sprint(k), []byte("x"), 0); err != nil {
				t.Fatal(err)
			}
		}
		var evictions uint64
		for i := range 5 {
			s, err := c.Node(i).Cache().Stats("small")
			if err != nil {
				t.Fatal(err)
			}
			if s.Entries > 10 {
				t.Fatalf("node %d holds %d entries of a 10-entry bucket", i, s.Entries)
			}
			evictions += s.Evictions
		}
		if evictions < 250 {
			t.Fatalf("%d evictions for 300 keys in 5x10 slots", evictions)
		}
	})

	t.Run("bucket creation is idempotent and conflicts are refused", func(t *testing.T) {
		if err := c.Node(4).Cache().CreateBucket(ctx, "sessions", sessions); err != nil {
			t.Fatalf("same options again: %v", err)
		}
		err := c.Node(1).Cache().CreateBucket(ctx, "sessions", cache.BucketOptions{DefaultTTL: time.Hour})
		if !errors.Is(err, cache.ErrBucketConflict) {
			t.Fatalf("other options: %v", err)
		}
	})

	t.Run("bad input", func(t *testing.T) {
		_, err := c.Node(0).Cache().Get(ctx, "nope", "k")
		if !errors.Is(err, cache.ErrUnknownBucket) || !strings.Contains(err.Error(), `"nope"`) {
			t.Fatalf("unknown bucket: %v", err)
		}
		big := make([]byte, 5<<20)
		start := c.Node(0).MeshStats()
		if err := c.Node(0).Cache().Set(ctx, "sessions", "big", big, 0); !errors.Is(err, ports.ErrFrameTooLarge) {
			t.Fatalf("oversize value: %v", err)
		}
		if c.Node(0).MeshStats().PendingRequests != start.PendingRequests {
			t.Fatal("oversize value was sent")
		}
		// A malformed payload straight to the cache application.
		app := c.Node(0).Application(cache.AppName)
		resp, err := app.Request(ctx, c.ID(1), []byte{0xff, 0x01})
		if err != nil || len(resp) == 0 || resp[0] == 0 {
			t.Fatalf("malformed request: %q, %v (want an error status)", resp, err)
		}
		if _, err := c.Node(0).Cache().Get(ctx, "sessions", "user:50"); err != nil {
			t.Fatalf("node stopped serving after malformed input: %v", err)
		}
	})
}

func TestGetOrLoadOncePerKeyAcrossCluster(t *testing.T) {
	c := testkit.NewCluster(t, 5)
	ctx := ctxT(t, 60*time.Second)
	if err := c.Node(0).Cache().CreateBucket(ctx, "users", cache.BucketOptions{}); err != nil {
		t.Fatal(err)
	}
	c.Eventually(10*time.Second, "bucket everywhere", func() bool {
		for i := range 5 {
			if !slices.Contains(c.Node(i).Cache().Buckets(), "users") {
				return false
			}
		}
		return true
	})
	var calls atomic.Int64
	loader := func(ctx context.Context) ([]byte, time.Duration, error) {
		calls.Add(1)
		time.Sleep(200 * time.Millisecond)
		return []byte("loaded"), 0, nil
	}
	var wg sync.WaitGroup
	errs := make(chan error, 50)
	for i := range 5 {
		for range 10 {
			wg.Go(func() {
				v, err := c.Node(i).Cache().GetOrLoad(ctx, "users", "alice", loader)
				if err == nil && string(v) != "loaded" {
					err = fmt.Errorf("node %d got %q", i, v)
				}
				if err != nil {
					errs <- err
				}
			})
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if n := calls.Load(); n != 1 {
		t.Fatalf("loader ran %d times for one key called from 5 nodes at once, want 1", n)
	}

	// Loader errors reach every waiting caller and are not cached.
	var failing atomic.Int64
	bad := func(ctx context.Context) ([]byte, time.Duration, error) {
		failing.Add(1)
		time.Sleep(100 * time.Millisecond)
		return nil, 0, errors.New("database down")
	}
	var wg2 sync.WaitGroup
	var failures atomic.Int64
	for i := range 5 {
		wg2.Go(func() {
			_, err := c.Node(i).Cache().GetOrLoad(ctx, "users", "bob", bad)
			if err != nil && strings.Contains(err.Error(), "database down") {
				failures.Add(1)
			}
		})
	}
	wg2.Wait()
	if failures.Load() != 5 {
		t.Fatalf("%d of 5 callers saw the loader's error", failures.Load())
	}
	before := failing.Load()
	if _, err := c.Node(2).Cache().GetOrLoad(ctx, "users", "bob", bad); err == nil {
		t.Fatal("error was cached as a value")
	}
	if failing.Load() != before+1 {
		t.Fatal("a failed load was cached: the loader did not run again")
	}
}

func TestTypedBucketAndLateJoiner(t *testing.T) {
	c := testkit.NewCluster(t, 3)
	ctx := ctxT(t, 60*time.Second)
	if err := c.Node(0).Cache().CreateBucket(ctx, "profiles", cache.BucketOptions{}); err != nil {
		t.Fatal(err)
	}
	type profile struct {
		Name string
		Age  int
	}
	c.Eventually(10*time.Second, "bucket everywhere", func() bool {
		return slices.Contains(c.Node(2).Cache().Buckets(), "profiles")
	})
	b0, err := mycorrizal.TypedBucket[profile](c.Node(0), "profiles")
	if err != nil {
		t.Fatal(err)
	}
	if err := b0.Set(ctx, "p1", profile{"Ada", 36}, 0); err != nil {
		t.Fatal(err)
	}
	// With the defaults (RF=3, W=2, R=1) a read may reach the one replica
	// the write has not reached yet (no read-your-writes: see
	// docs/CONSISTENCY.md); under load that window was seen. Wait for the
	// background replica write.
	waitReplicated(t, c)
	b2, err := mycorrizal.TypedBucket[profile](c.Node(2), "profiles")
	if err != nil {
		t.Fatal(err)
	}
	if p, err := b2.Get(ctx, "p1"); err != nil || p != (profile{"Ada", 36}) {
		t.Fatalf("typed get: %+v, %v", p, err)
	}
	// A node that joins after the bucket was created learns it.
	c.Restart(1)
	c.WaitConverged(20 * time.Second)
	c.Eventually(10*time.Second, "restarted node knows the bucket", func() bool {
		return slices.Contains(c.Node(1).Cache().Buckets(), "profiles")
	})
}
