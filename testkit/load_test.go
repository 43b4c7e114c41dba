package testkit_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mycorrizal/mycorrizal/core/cache"
	"github.com/mycorrizal/mycorrizal/ports"
	"github.com/mycorrizal/mycorrizal/testkit"
)

// loadCluster builds n nodes with bucket name (opts) known on all of them.
func loadCluster(t *testing.T, n int, name string, opts cache.BucketOptions) *testkit.Cluster {
	t.Helper()
	c := testkit.NewCluster(t, n)
	if err := c.Node(0).Cache().CreateBucket(ctxT(t, 30*time.Second), name, opts); err != nil {
		t.Fatal(err)
	}
	c.Eventually(10*time.Second, "bucket on every node", func() bool {
		for i := range n {
			if !slices.Contains(c.Node(i).Cache().Buckets(), name) {
				return false
			}
		}
		return true
	})
	return c
}

// index returns the cluster index of node id.
func index(t *testing.T, c *testkit.Cluster, id ports.NodeID) int {
	t.Helper()
	for i := range c.Len() {
		if c.ID(i) == id {
			return i
		}
	}
	t.Fatalf("no node %s", id)
	return -1
}

// TestGetOrLoadValueOrError: GetOrLoad returns a value or an error, never
// both, on the owner and on other nodes: when the loader returns both, and
// when the loaded value cannot be stored.
func TestGetOrLoadValueOrError(t *testing.T) {
	c := loadCluster(t, 3, "users", cache.BucketOptions{})
	ctx := ctxT(t, 60*time.Second)
	both := func(ctx context.Context) ([]byte, time.Duration, error) {
		return []byte("partial"), 0, errors.New("database down")
	}
	huge := func(ctx context.Context) ([]byte, time.Duration, error) {
		return make([]byte, 5<<20), 0, nil // over the frame limit: cannot be replicated
	}
	for i := range 3 {
		for name, loader := range map[string]cache.Loader{"loader value and error": both, "value not storable": huge} {
			key := fmt.Sprintf("%s-%d", name, i)
			owner := c.Node(i).Cache().Owner("users", key) == c.ID(i)
			v, err := c.Node(i).Cache().GetOrLoad(ctx, "users", key, loader)
			if err == nil || v != nil {
				t.Errorf("node %d (owner %v), %s: got %d bytes and error %v, want no value and an error", i, owner, name, len(v), err)
			}
		}
	}
}

// TestGetOrLoadRemoteLoaderErrorOnce: a caller waiting on a third node for
// a loader that failed on another non-owner sees the loader's error once,
// wrapping ErrLoad, not the owner's description of it wrapped again.
func TestGetOrLoadRemoteLoaderErrorOnce(t *testing.T) {
	c := loadCluster(t, 3, "users", cache.BucketOptions{})
	ctx := ctxT(t, 60*time.Second)
	const key = "bob"
	o := index(t, c, c.Node(0).Cache().Owner("users", key))
	l, w := (o+1)%3, (o+2)%3
	lerr := make(chan error, 1)
	go func() {
		_, err := c.Node(l).Cache().GetOrLoad(ctx, "users", key, func(ctx context.Context) ([]byte, time.Duration, error) {
			time.Sleep(600 * time.Millisecond)
			return nil, 0, errors.New("database down")
		})
		lerr <- err
	}()
	time.Sleep(200 * time.Millisecond) // node l holds the load by now
	var ran atomic.Bool
	_, err := c.Node(w).Cache().GetOrLoad(ctx, "users", key, func(ctx context.Context) ([]byte, time.Duration, error) {
		ran.Store(true)
		return nil, 0, errors.New("second loader")
	})
	if ran.Load() {
		t.Fatal("the waiting node ran its own loader: the test did not set up a wait")
	}
	if err := <-lerr; err == nil || err.Error() != "database down" {
		t.Errorf("the loading caller got %v, want its loader's error as returned", err)
	}
	if !errors.Is(err, cache.ErrLoad) {
		t.Fatalf("waiter on node %d: %v, want ErrLoad", w, err)
	}
	msg := err.Error()
	t.Logf("waiter's error: %s", msg)
	for _, part := range []string{"database down", cache.ErrLoad.Error(), "cache: load of", string(c.ID(l))} {
		if n := strings.Count(msg, part); n != 1 {
			t.Errorf("%q appears %d times in %q, want once", part, n, msg)
		}
	}
}

// TestGetOrLoadStoreDoesNotBlockOtherLoads: storing one remote load's
// value on the owner, which waits on a slow replica, does not hold up the
// result of another load: the owner's load messages are not handled on
// the goroutine that waits for the write.
func TestGetOrLoadStoreDoesNotBlockOtherLoads(t *testing.T) {
	c := loadCluster(t, 4, "lb", cache.BucketOptions{Replicas: 2, WriteQuorum: 2})
	ctx := ctxT(t, 60*time.Second)
	cc := c.Node(0).Cache()
	// Keys owned by node 0: k1 also on node 1 (which will be slow), k2
	// also on node 2. Node 3 runs the loaders.
	var k1, k2 string
	for i := 0; k1 == "" || k2 == ""; i++ {
		key := fmt.Sprintf("k%d", i)
		if cc.Owner("lb", key) != c.ID(0) {
			continue
		}
		reps := cc.Replicas("lb", key)
		switch {
		case k1 == "" && slices.Contains(reps, c.ID(1)):
			k1 = key
		case k2 == "" && slices.Contains(reps, c.ID(2)):
			k2 = key
		}
	}
	loader := func(value string, d time.Duration) cache.Loader {
		return func(ctx context.Context) ([]byte, time.Duration, error) {
			time.Sleep(d)
			return []byte(value), 0, nil
		}
	}
	c.Delay(0, 1, 10*time.Second) // the owner's write of k1 waits on node 1
	t.Cleanup(c.Heal)
	start := time.Now()
	go func() { _, _ = c.Node(3).Cache().GetOrLoad(ctx, "lb", k1, loader("v1", 50*time.Millisecond)) }()
	go func() { _, _ = c.Node(3).Cache().GetOrLoad(ctx, "lb", k2, loader("v2", 600*time.Millisecond)) }()
	time.Sleep(300 * time.Millisecond) // node 3 holds both loads by now
	wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	v, err := cc.GetOrLoad(wctx, "lb", k2, func(ctx context.Context) ([]byte, time.Duration, error) {
		return nil, 0, errors.New("the owner ran its own loader: the test did not set up a wait")
	})
	took := time.Since(start)
	if err != nil || string(v) != "v2" {
		t.Fatalf("waiting on the owner for k2 after %v: %q, %v", took, v, err)
	}
	if took > 3*time.Second {
		t.Fatalf("k2's result took %v: held up behind k1's store", took)
	}
	t.Logf("k2's result reached the owner's waiter after %v while k1's store waited on a slow replica", took)
}
