package consul

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"strconv"
	"testing"
	"time"
)

// waitResult is what a WaitChange in a goroutine returned.
type waitResult struct {
	addrs []string
	err   error
	at    time.Time
}

// waitAsync runs WaitChange(ctx, prev) in a goroutine the test waits for
// at cleanup.
func waitAsync(t *testing.T, ctx context.Context, c *Consul, prev []string) <-chan waitResult {
	t.Helper()
	ch := make(chan waitResult, 1)
	done := make(chan struct{})
	go func() {
		defer close(done)
		addrs, err := c.WaitChange(ctx, prev)
		ch <- waitResult{normalize(addrs), err, time.Now()}
	}()
	t.Cleanup(func() { <-done })
	return ch
}

// blockingQueries counts the health queries that carried an index.
func blockingQueries(f *fakeAgent) int {
	n := 0
	for _, r := range f.seen() {
		if r.Path == "/v1/health/service/mycorrizal" && r.Query.Has("index") {
			n++
		}
	}
	return n
}

// TestWaitChangeWakesOnRegistration checks that a blocking query wakes as
// soon as a new node registers (its check passes), and measures how soon.
func TestWaitChangeWakesOnRegistration(t *testing.T) {
	f := newFakeAgent(t, false)
	f.setInstances(t, []string{"10.0.0.1:7001"})
	watcher := newTestConsul(t, f, Config{})
	joiner := newTestConsul(t, f, Config{})
	first := discoverNow(t, watcher)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	res := waitAsync(t, ctx, watcher, first)
	eventually(t, 2*time.Second, "a blocking query", func() bool { return blockingQueries(f) == 1 })
	select {
	case r := <-res:
		t.Fatalf("WaitChange returned before any change: %v %v", r.addrs, r.err)
	case <-time.After(100 * time.Millisecond):
	}
	start := time.Now()
	if err := joiner.Register(ctx, testRegistration()); err != nil {
		t.Fatal(err)
	}
	r := <-res
	if r.err != nil {
		t.Fatal(r.err)
	}
	if want := []string{"10.0.0.1:7001", "127.0.0.9:7009"}; !slices.Equal(r.addrs, want) {
		t.Fatalf("WaitChange = %v, want %v", r.addrs, want)
	}
	latency := r.at.Sub(start)
	t.Logf("WaitChange woke %v after Register was called (Register itself took part of it)", latency.Round(time.Microsecond))
	if latency > 2*time.Second {
		t.Errorf("WaitChange woke only after %v", latency)
	}
	if n := f.count("/v1/health/service/"); n > 4 {
		t.Errorf("%d health queries for one change; blocking should need about 2", n)
	}
}

// TestWaitChangeKeepsWaiting checks that a blocking query that times out
// with nothing changed is followed by another, not returned as a change,
// and that ctx ends the wait promptly.
func TestWaitChangeKeepsWaiting(t *testing.T) {
	f := newFakeAgent(t, false)
	f.setInstances(t, []string{"10.0.0.1:7001"})
	c := newTestConsul(t, f, Config{WaitTime: 150 * time.Millisecond})
	first := discoverNow(t, c)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	res := waitAsync(t, ctx, c, first)
	eventually(t, 3*time.Second, "three blocking queries", func() bool { return blockingQueries(f) >= 3 })
	for _, r := range f.seen() {
		if r.Query.Has("index") && r.Query.Get("wait") != "150ms" {
			t.Errorf("blocking query with wait=%q, want 150ms", r.Query.Get("wait"))
		}
	}
	// An idempotent write (same answer, higher index) is not a change either.
	f.setInstances(t, []string{"10.0.0.1:7001"})
	select {
	case r := <-res:
		t.Fatalf("WaitChange returned without a change: %v %v", r.addrs, r.err)
	case <-time.After(200 * time.Millisecond):
	}
	start := time.Now()
	cancel()
	r := <-res
	if !errors.Is(r.err, context.Canceled) {
		t.Fatalf("WaitChange after cancel: %v %v", r.addrs, r.err)
	}
	if d := r.at.Sub(start); d > time.Second {
		t.Errorf("WaitChange took %v to see its ctx end", d)
	}
}

// TestWaitChangeStalePrev checks that a prev older than the last answer
// returns the current answer at once instead of blocking on its index.
func TestWaitChangeStalePrev(t *testing.T) {
	f := newFakeAgent(t, false)
	f.setInstances(t, []string{"10.0.0.1:7001", "10.0.0.2:7002"})
	c := newTestConsul(t, f, Config{})
	discoverNow(t, c)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	got, err := c.WaitChange(ctx, []string{"10.0.0.1:7001"})
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"10.0.0.1:7001", "10.0.0.2:7002"}; !slices.Equal(normalize(got), want) {
		t.Fatalf("WaitChange = %v, want %v", got, want)
	}
	// Duplicates and order in prev do not make a difference.
	f.setInstances(t, []string{"10.0.0.2:7002", "10.0.0.1:7001"})
	ctx2, cancel2 := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel2()
	if got, err := c.WaitChange(ctx2, []string{"10.0.0.2:7002", "10.0.0.1:7001", "10.0.0.2:7002"}); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("WaitChange with an equal prev = %v, %v; want to block until ctx ends", got, err)
	}
}

// TestWaitChangeIndexBackwards moves the agent's index behind the client's
// (a snapshot restore): the client must reset to index 0 and still see the
// next change.
func TestWaitChangeIndexBackwards(t *testing.T) {
	f := newFakeAgent(t, false)
	f.setInstances(t, []string{"10.0.0.1:7001"})
	c := newTestConsul(t, f, Config{WaitTime: 200 * time.Millisecond})
	first := discoverNow(t, c)
	f.rewind(2)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	res := waitAsync(t, ctx, c, first)
	// Let the blocking query with the stale (ahead) index time out and the
	// reset happen before the change.
	eventually(t, 3*time.Second, "a query after the index went backwards", func() bool {
		for _, r := range f.seen()[1:] {
			if !r.Query.Has("index") {
				return true
			}
		}
		return false
	})
	f.setInstances(t, []string{"10.0.0.1:7001", "10.0.0.2:7002"})
	select {
	case r := <-res:
		if r.err != nil {
			t.Fatal(r.err)
		}
		if want := []string{"10.0.0.1:7001", "10.0.0.2:7002"}; !slices.Equal(r.addrs, want) {
			t.Fatalf("WaitChange = %v, want %v", r.addrs, want)
		}
	case <-time.After(3 * time.Second):
		t.Fatal("WaitChange missed the change after the index went backwards")
	}
	var indexes []string
	for _, r := range f.seen() {
		indexes = append(indexes, r.Query.Get("index"))
	}
	t.Logf("index parameters sent: %q", indexes)
}

// TestWaitChangeNoBusyLoop answers every query at once with index 0 and an
// unchanged answer (a Consul bug the docs warn about): the client must not
// spin.
func TestWaitChangeNoBusyLoop(t *testing.T) {
	f := newFakeAgent(t, false)
	c := newTestConsul(t, f, Config{})
	f.setHealthHandler(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Consul-Index", "0")
		_, _ = w.Write([]byte(`[{"Node":{"Node":"n","Address":"10.0.0.1"},"Service":{"ID":"a","Port":7001}}]`))
	})
	first := discoverNow(t, c)
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if got, err := c.WaitChange(ctx, first); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("WaitChange = %v, %v; want to wait until ctx ends", got, err)
	}
	n := f.count("/v1/health/service/") - 1
	t.Logf("%d queries in 1s against an agent that never blocks", n)
	if limit := int(time.Second/minQueryInterval) + 2; n > limit {
		t.Errorf("%d queries in 1s, want at most %d", n, limit)
	}
	for _, r := range f.seen()[1:] {
		if i, _ := strconv.Atoi(r.Query.Get("index")); i < 1 {
			t.Errorf("blocking query with index %q; an index of 0 must become 1", r.Query.Get("index"))
		}
	}
}

// TestWaitChangeError checks that an agent that fails makes WaitChange
// return an error at once rather than retry internally or hang.
func TestWaitChangeError(t *testing.T) {
	f := newFakeAgent(t, false)
	f.setInstances(t, []string{"10.0.0.1:7001"})
	c := newTestConsul(t, f, Config{WaitTime: 150 * time.Millisecond})
	first := discoverNow(t, c)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	res := waitAsync(t, ctx, c, first)
	eventually(t, 2*time.Second, "a blocking query", func() bool { return blockingQueries(f) == 1 })
	// The blocking query times out unchanged; the next one fails.
	f.fail("health", http.StatusInternalServerError)
	select {
	case r := <-res:
		if r.err == nil || errors.Is(r.err, context.DeadlineExceeded) {
			t.Fatalf("WaitChange against a failing agent = %v, %v", r.addrs, r.err)
		}
		t.Log(r.err)
	case <-time.After(3 * time.Second):
		t.Fatal("WaitChange did not report the failing agent")
	}
}
