package mesh_test

import (
	"bytes"
	"context"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mycorrizal/mycorrizal/core/mesh"
	"github.com/mycorrizal/mycorrizal/core/wire"
	"github.com/mycorrizal/mycorrizal/ports"
)

// floodUnread opens a raw request stream to target as id, sends count
// requests (each allowing the handler timeout) and never reads a response.
func floodUnread(t *testing.T, id ports.NodeID, target *node, app string, count int, timeout time.Duration) {
	t.Helper()
	s := rawStream(t, target.net, id, target)
	buf, err := wire.AppendStreamInit(nil, id, app, wire.LaneRequests)
	if err != nil {
		t.Fatal(err)
	}
	for i := range count {
		buf, err = wire.AppendRequest(buf, uint64(i+1), uint32(timeout.Milliseconds()), []byte("q"), wire.DefaultMaxFrameSize)
		if err != nil {
			t.Fatal(err)
		}
	}
	// The write may block once the acceptor stops reading: do it aside.
	go func() { _, _ = s.Write(buf) }()
}

// settled waits until counter stops changing for a while, and returns it.
func settled(t *testing.T, counter *atomic.Int64, atLeast int64) int64 {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	last, since := counter.Load(), time.Now()
	for time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
		if n := counter.Load(); n != last {
			last, since = n, time.Now()
			continue
		}
		if last >= atLeast && time.Since(since) > 300*time.Millisecond {
			return last
		}
	}
	t.Fatalf("handler calls did not settle (at %d, want at least %d)", counter.Load(), atLeast)
	return 0
}

// bigResponder answers peers named "mallory..." with a 64 KiB response and
// everyone else with an echo, counting the mallory calls.
func bigResponder(calls *atomic.Int64) mesh.RequestHandler {
	big := bytes.Repeat([]byte("r"), 64<<10)
	return func(ctx context.Context, from ports.NodeID, p []byte) ([]byte, error) {
		if strings.HasPrefix(string(from), "mallory") {
			calls.Add(1)
			return big, nil
		}
		return echo(ctx, from, p)
	}
}

// requestAll sends n concurrent requests from n to target and fails the
// test on any error.
func requestAll(t *testing.T, from, target *node, app string, n int, timeout time.Duration) {
	t.Helper()
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Go(func() {
			p := fmt.Appendf(nil, "%d", i)
			resp, err := from.m.App(app).Request(ctxT(t, timeout), target.id, p)
			if err == nil && string(resp) != string(from.id)+":"+string(p) {
				err = fmt.Errorf("got %q", resp)
			}
			if err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("request from %s while another peer holds handlers: %v", from.id, err)
	}
}

// TestPeerNotReadingResponsesDoesNotStarveOthers: one peer that sends
// requests and never reads the responses must not take the handler slots
// other peers need.
func TestPeerNotReadingResponsesDoesNotStarveOthers(t *testing.T) {
	ns := newNodes(t, 2, func(c *mesh.Config) { c.RequestConcurrency = 8 }, "svc")
	var calls atomic.Int64
	ns[0].m.App("svc").OnRequest(bigResponder(&calls))
	floodUnread(t, "mallory", ns[0], "svc", 200, time.Minute)
	n := settled(t, &calls, 5) // more 64 KiB responses than the stream window holds
	t.Logf("mallory's requests handled before it stalled: %d", n)
	requestAll(t, ns[1], ns[0], "svc", 16, 3*time.Second)
}

// TestManyPeersNotReadingDoNotStarveOthers: even when enough non-reading
// peers exist to fill every per-peer share, a handler that has finished
// does not keep its slot while its response waits for the peer.
func TestManyPeersNotReadingDoNotStarveOthers(t *testing.T) {
	ns := newNodes(t, 2, func(c *mesh.Config) { c.RequestConcurrency = 8 }, "svc")
	var calls atomic.Int64
	ns[0].m.App("svc").OnRequest(bigResponder(&calls))
	for i := range 10 {
		floodUnread(t, ports.NodeID(fmt.Sprintf("mallory%d", i)), ns[0], "svc", 50, time.Minute)
	}
	n := settled(t, &calls, 10)
	t.Logf("requests of 10 non-reading peers handled before they stalled: %d", n)
	requestAll(t, ns[1], ns[0], "svc", 16, 3*time.Second)
}

// handlersRunning counts the goroutines running or answering a request.
func handlersRunning() int {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			return strings.Count(string(buf[:n]), "mesh.(*App).handleRequest(")
		}
		buf = make([]byte, 2*len(buf))
	}
}

// TestUnreadResponseGivenUpAtDeadline: a response the peer does not read
// is dropped when the request's deadline passes (the caller has given up
// by then), so the goroutine and memory holding it do not live until the
// stream dies.
func TestUnreadResponseGivenUpAtDeadline(t *testing.T) {
	ns := newNodes(t, 1, func(c *mesh.Config) { c.RequestConcurrency = 8 }, "svc")
	var calls atomic.Int64
	ns[0].m.App("svc").OnRequest(bigResponder(&calls))
	// Each request's deadline counts from its arrival, and the stream is
	// read as its share frees up: 20 requests take about 2 s to give up.
	floodUnread(t, "mallory", ns[0], "svc", 20, 300*time.Millisecond)
	eventually(t, 5*time.Second, "responses waiting for the peer", func() bool { return handlersRunning() > 0 })
	eventually(t, 10*time.Second, "unread responses given up after their deadline", func() bool { return handlersRunning() == 0 })
}

// TestSlowHandlersOfOnePeerLeaveSlotsForOthers: requests of one peer whose
// handlers take long hold at most that peer's share of the handler slots.
func TestSlowHandlersOfOnePeerLeaveSlotsForOthers(t *testing.T) {
	ns := newNodes(t, 3, func(c *mesh.Config) { c.RequestConcurrency = 8 }, "svc")
	release := make(chan struct{})
	var slow atomic.Int64
	ns[0].m.App("svc").OnRequest(func(ctx context.Context, from ports.NodeID, p []byte) ([]byte, error) {
		if from == "n2" {
			slow.Add(1)
			select {
			case <-release:
			case <-ctx.Done():
			}
		}
		return echo(ctx, from, p)
	})
	var wg sync.WaitGroup
	t.Cleanup(wg.Wait)
	t.Cleanup(func() { close(release) })
	for range 32 {
		wg.Go(func() { _, _ = ns[2].m.App("svc").Request(ctxT(t, 30*time.Second), "n0", nil) })
	}
	n := settled(t, &slow, 2)
	if n > 2 {
		t.Errorf("one peer ran %d handlers at once, over its share of 2 of 8", n)
	}
	requestAll(t, ns[1], ns[0], "svc", 16, 3*time.Second)
}

func TestRequestConcurrencyPerPeerValidated(t *testing.T) {
	for _, c := range []mesh.Config{
		{Self: "a", RequestConcurrency: 4, RequestConcurrencyPerPeer: 5},
		{Self: "a", RequestConcurrencyPerPeer: -1},
	} {
		if _, err := mesh.New(c); err == nil || !strings.Contains(err.Error(), "RequestConcurrencyPerPeer") {
			t.Errorf("%+v: got %v", c, err)
		}
	}
}
