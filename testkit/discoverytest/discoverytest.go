// Package discoverytest is the conformance suite every ports.Discovery
// adapter's tests run: what a backend announces is what Discover returns,
// changes are seen on the next call (no stale cache), an empty backend is
// "none found" rather than an error, a failing backend is an error rather
// than a hang or a panic, ctx is honoured, concurrent calls are safe, and an
// adapter that is also a ports.Registrar makes its registration visible, and
// one that is a ports.Watcher wakes promptly when its answer changes.
//
// An adapter's test supplies a Backend: a fake or real service (an
// in-process DNS server, dnsmasq, a fake Consul agent) that it controls.
package discoverytest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/mycorrizal/mycorrizal/ports"
)

// Backend is a discovery service under the test's control.
type Backend interface {
	// Discovery returns the adapter under test, configured to ask this
	// backend. It may be called more than once; each result must work.
	Discovery(t *testing.T) ports.Discovery

	// SetInstances makes the backend announce exactly addrs ("ip:port"),
	// replacing what it announced before. nil or empty announces none.
	SetInstances(t *testing.T, addrs []string)

	// Break makes the backend fail every later query (unreachable, or an
	// error answer). Backends that cannot fail return false.
	Break(t *testing.T) bool
}

// Run runs the suite. newBackend is called once per subtest and must give
// a fresh backend announcing nothing; it registers its own cleanup.
func Run(t *testing.T, newBackend func(t *testing.T) Backend) {
	t.Run("FindsAnnounced", func(t *testing.T) {
		b := newBackend(t)
		want := []string{"127.0.0.1:7001", "127.0.0.2:7002", "127.0.0.3:7003"}
		b.SetInstances(t, want)
		expect(t, b.Discovery(t), want)
	})
	t.Run("SeesChanges", func(t *testing.T) {
		b := newBackend(t)
		d := b.Discovery(t)
		b.SetInstances(t, []string{"127.0.0.1:7001", "127.0.0.2:7002"})
		expect(t, d, []string{"127.0.0.1:7001", "127.0.0.2:7002"})
		b.SetInstances(t, []string{"127.0.0.1:7001", "127.0.0.2:7002", "127.0.0.4:7004"})
		expect(t, d, []string{"127.0.0.1:7001", "127.0.0.2:7002", "127.0.0.4:7004"})
		b.SetInstances(t, []string{"127.0.0.4:7004"})
		expect(t, d, []string{"127.0.0.4:7004"})
	})
	t.Run("EmptyIsNotAnError", func(t *testing.T) {
		b := newBackend(t)
		b.SetInstances(t, nil)
		expect(t, b.Discovery(t), nil)
	})
	t.Run("CancelledContext", func(t *testing.T) {
		b := newBackend(t)
		b.SetInstances(t, []string{"127.0.0.1:7001"})
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		start := time.Now()
		_, err := b.Discovery(t).Discover(ctx)
		if err == nil {
			t.Fatal("Discover with a cancelled ctx returned no error")
		}
		if d := time.Since(start); d > 2*time.Second {
			t.Fatalf("Discover with a cancelled ctx took %v", d)
		}
	})
	t.Run("Concurrent", func(t *testing.T) {
		b := newBackend(t)
		want := []string{"127.0.0.1:7001", "127.0.0.2:7002"}
		b.SetInstances(t, want)
		d := b.Discovery(t)
		var wg sync.WaitGroup
		errs := make(chan error, 8)
		for range 8 {
			wg.Go(func() {
				got, err := discover(d, 10*time.Second)
				if err == nil {
					err = same(got, want)
				}
				if err != nil {
					errs <- err
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
	})
	t.Run("BrokenBackendIsAnError", func(t *testing.T) {
		b := newBackend(t)
		b.SetInstances(t, []string{"127.0.0.1:7001"})
		d := b.Discovery(t)
		expect(t, d, []string{"127.0.0.1:7001"})
		if !b.Break(t) {
			t.Skip("backend cannot fail")
		}
		start := time.Now()
		got, err := discover(d, 10*time.Second)
		if err == nil {
			t.Fatalf("a broken backend gave %v and no error", got)
		}
		if errors.Is(err, context.DeadlineExceeded) && time.Since(start) >= 10*time.Second {
			t.Fatalf("a broken backend made Discover wait for its ctx: %v", err)
		}
		t.Logf("broken backend: %v", err)
	})
	t.Run("Watcher", func(t *testing.T) { runWatcher(t, newBackend) })
	t.Run("Registrar", func(t *testing.T) {
		b := newBackend(t)
		d := b.Discovery(t)
		r, ok := d.(ports.Registrar)
		if !ok {
			t.Skip("not a Registrar")
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		self := ports.Registration{ID: "node-a", Addr: "127.0.0.9", Port: 7009, Tags: []string{"t1"}, Meta: map[string]string{"k": "v"}}
		if err := r.Register(ctx, self); err != nil {
			t.Fatalf("Register: %v", err)
		}
		expect(t, d, []string{"127.0.0.9:7009"})
		if err := r.Deregister(ctx); err != nil {
			t.Fatalf("Deregister: %v", err)
		}
		expect(t, d, nil)
		if err := r.Deregister(ctx); err != nil {
			t.Fatalf("second Deregister: %v", err)
		}
	})
}

// runWatcher checks that WaitChange wakes soon after the answer changes.
func runWatcher(t *testing.T, newBackend func(t *testing.T) Backend) {
	b := newBackend(t)
	d := b.Discovery(t)
	w, ok := d.(ports.Watcher)
	if !ok {
		t.Skip("not a Watcher")
	}
	first := []string{"127.0.0.1:7001"}
	b.SetInstances(t, first)
	expect(t, d, first)
	type result struct {
		addrs []string
		err   error
	}
	done := make(chan result, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	go func() {
		prev := first
		for {
			addrs, err := w.WaitChange(ctx, prev)
			if err != nil || same(addrs, prev) != nil {
				done <- result{addrs, err}
				return
			}
		}
	}()
	select {
	case r := <-done:
		t.Fatalf("WaitChange returned before any change: %v %v", r.addrs, r.err)
	case <-time.After(300 * time.Millisecond):
	}
	second := []string{"127.0.0.1:7001", "127.0.0.2:7002"}
	changed := time.Now()
	b.SetInstances(t, second)
	select {
	case r := <-done:
		if r.err != nil {
			t.Fatalf("WaitChange: %v", r.err)
		}
		if err := same(r.addrs, second); err != nil {
			t.Fatal(err)
		}
		t.Logf("WaitChange woke %v after the change", time.Since(changed).Round(time.Millisecond))
	case <-time.After(5 * time.Second):
		t.Fatal("WaitChange did not wake within 5s of a change")
	}
	cancel()
	start := time.Now()
	if _, err := w.WaitChange(ctx, second); err == nil {
		t.Fatal("WaitChange with a cancelled ctx returned no error")
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("WaitChange with a cancelled ctx took %v", d)
	}
}

func discover(d ports.Discovery, timeout time.Duration) ([]string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	return d.Discover(ctx)
}

// expect asserts that Discover returns want (as a set, each "host:port").
func expect(t *testing.T, d ports.Discovery, want []string) {
	t.Helper()
	got, err := discover(d, 10*time.Second)
	if err != nil {
		t.Fatalf("Discover: %v", err)
	}
	if err := same(got, want); err != nil {
		t.Fatal(err)
	}
}

func same(got, want []string) error {
	for _, a := range got {
		if _, _, err := net.SplitHostPort(a); err != nil {
			return fmt.Errorf("Discover returned %q, not host:port: %v", a, err)
		}
	}
	g, w := slices.Sorted(slices.Values(got)), slices.Sorted(slices.Values(want))
	if len(slices.Compact(slices.Clone(g))) != len(g) {
		return fmt.Errorf("Discover returned duplicates: %v", got)
	}
	if !slices.Equal(g, w) {
		return fmt.Errorf("Discover returned %v, want %v", g, w)
	}
	return nil
}
