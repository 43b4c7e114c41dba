package testkit_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mycorrizal/mycorrizal"
	"github.com/mycorrizal/mycorrizal/ports"
	"github.com/mycorrizal/mycorrizal/testkit"
)

// echoSetup registers "echo" (answers "<node>:<payload>") and "chat"
// (records every message) on each node.
type recorder struct {
	mu   sync.Mutex
	msgs map[int][]string // receiving node index -> "from>payload"
}

func (r *recorder) count(i int) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.msgs[i])
}

func setup(rec *recorder) testkit.Option {
	return testkit.WithSetup(func(i int, n *mycorrizal.Node) {
		echo, err := n.RegisterApplication("echo")
		if err != nil {
			panic(err)
		}
		id := n.ID()
		echo.OnRequest(func(ctx context.Context, from ports.NodeID, p []byte) ([]byte, error) {
			return append([]byte(string(id)+":"), p...), nil
		})
		chat, err := n.RegisterApplication("chat")
		if err != nil {
			panic(err)
		}
		chat.OnMessage(func(ctx context.Context, from ports.NodeID, p []byte) {
			rec.mu.Lock()
			rec.msgs[i] = append(rec.msgs[i], string(from)+">"+string(p))
			rec.mu.Unlock()
		})
	})
}

func ctxT(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func request(t *testing.T, c *testkit.Cluster, from, to int, d time.Duration) ([]byte, error) {
	return c.Node(from).Application("echo").Request(ctxT(t, d), c.ID(to), []byte("ping"))
}

func TestFiveNodes(t *testing.T) {
	rec := &recorder{msgs: map[int][]string{}}
	c := testkit.NewCluster(t, 5, setup(rec))

	t.Run("every node sees all members with their apps", func(t *testing.T) {
		for i := range 5 {
			ms := c.Node(i).Members()
			if len(ms) != 5 {
				t.Fatalf("node %d sees %d members", i, len(ms))
			}
			for _, m := range ms {
				if !m.Hosts("echo") || !m.Hosts("chat") || m.TransportAddr == "" {
					t.Fatalf("node %d sees %+v", i, m)
				}
			}
			if nodes := c.Node(i).Application("echo").Nodes(); len(nodes) != 4 {
				t.Fatalf("node %d: echo hosted on %v", i, nodes)
			}
		}
	})

	t.Run("broadcast reaches every other node exactly once", func(t *testing.T) {
		if err := c.Node(0).Application("chat").Broadcast(ctxT(t, 5*time.Second), []byte("hello")); err != nil {
			t.Fatal(err)
		}
		c.Eventually(5*time.Second, "broadcast delivered", func() bool {
			for i := 1; i < 5; i++ {
				if rec.count(i) < 1 {
					return false
				}
			}
			return true
		})
		time.Sleep(200 * time.Millisecond) // give a duplicate the chance to show up
		rec.mu.Lock()
		defer rec.mu.Unlock()
		for i := 1; i < 5; i++ {
			if len(rec.msgs[i]) != 1 || rec.msgs[i][0] != "node-0>hello" {
				t.Fatalf("node %d got %v, want exactly [node-0>hello]", i, rec.msgs[i])
			}
		}
		if len(rec.msgs[0]) != 0 {
			t.Fatalf("sender received its own broadcast: %v", rec.msgs[0])
		}
	})

	t.Run("request and response between every pair", func(t *testing.T) {
		for i := range 5 {
			for j := range 5 {
				resp, err := request(t, c, i, j, 5*time.Second)
				if err != nil {
					t.Fatalf("%d -> %d: %v", i, j, err)
				}
				if want := fmt.Sprintf("node-%d:ping", j); string(resp) != want {
					t.Fatalf("%d -> %d: %q, want %q", i, j, resp, want)
				}
			}
		}
	})
}

func TestPartitionAndHeal(t *testing.T) {
	rec := &recorder{msgs: map[int][]string{}}
	c := testkit.NewCluster(t, 5, setup(rec), testkit.WithSeed(42))
	// Warm every link so the cut also hits established streams.
	for i := range 5 {
		for j := range 5 {
			if _, err := request(t, c, i, j, 5*time.Second); err != nil {
				t.Fatal(err)
			}
		}
	}
	c.Partition([]int{0, 1}, []int{2, 3, 4})

	const deadline = time.Second
	for _, pair := range [][2]int{{0, 2}, {1, 4}, {3, 0}} {
		start := time.Now()
		_, err := request(t, c, pair[0], pair[1], deadline)
		took := time.Since(start)
		if err == nil {
			t.Fatalf("%d -> %d across the cut succeeded", pair[0], pair[1])
		}
		if took > deadline+500*time.Millisecond {
			t.Fatalf("%d -> %d took %v, past its %v deadline", pair[0], pair[1], took, deadline)
		}
		if !strings.Contains(err.Error(), "node-") {
			t.Fatalf("error does not name the peer: %v", err)
		}
		t.Logf("across the cut %d -> %d: %v after %v", pair[0], pair[1], err, took.Round(time.Millisecond))
	}
	// Same side still works.
	if _, err := request(t, c, 0, 1, 5*time.Second); err != nil {
		t.Fatalf("within a side: %v", err)
	}
	if _, err := request(t, c, 2, 4, 5*time.Second); err != nil {
		t.Fatalf("within a side: %v", err)
	}
	// Each side eventually sees the other as gone; then requests fail fast.
	c.Eventually(20*time.Second, "sides detect each other as failed", func() bool {
		for _, a := range []int{0, 1} {
			for _, b := range []int{2, 3, 4} {
				if c.Sees(a, b) || c.Sees(b, a) {
					return false
				}
			}
		}
		return true
	})
	if _, err := request(t, c, 0, 3, 5*time.Second); !errors.Is(err, ports.ErrUnknownNode) {
		t.Fatalf("after detection: %v, want ErrUnknownNode", err)
	}

	c.Heal()
	c.WaitConverged(30 * time.Second)
	for i := range 5 {
		for j := range 5 {
			if _, err := request(t, c, i, j, 5*time.Second); err != nil {
				t.Fatalf("after heal %d -> %d: %v", i, j, err)
			}
		}
	}
}

func TestCrashDetectedAndFailsFast(t *testing.T) {
	rec := &recorder{msgs: map[int][]string{}}
	c := testkit.NewCluster(t, 5, setup(rec))
	if _, err := request(t, c, 0, 2, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	c.Crash(2)
	start := time.Now()
	// Memberlist's detection with the test kit's timing: a probe round plus
	// the suspicion timeout (at most SuspicionMaxTimeoutMult times
	// SuspicionMult x ProbeInterval); 10 s is a generous bound.
	c.Eventually(10*time.Second, "crash detected by every other node", func() bool {
		for _, i := range []int{0, 1, 3, 4} {
			if c.Sees(i, 2) {
				return false
			}
		}
		return true
	})
	t.Logf("crash detected by all after %v", time.Since(start).Round(time.Millisecond))
	for _, i := range []int{0, 1, 3, 4} {
		ctx := ctxT(t, 10*time.Second)
		_, err := c.Node(i).Application("echo").Request(ctx, c.ID(2), nil)
		if !errors.Is(err, ports.ErrUnknownNode) {
			t.Fatalf("node %d -> crashed node: %v, want ErrUnknownNode", i, err)
		}
		if ctx.Err() != nil {
			t.Fatal("request to a crashed node waited for its deadline")
		}
	}
	c.Restart(2)
	c.WaitConverged(20 * time.Second)
	if _, err := request(t, c, 0, 2, 5*time.Second); err != nil {
		t.Fatalf("after restart: %v", err)
	}
}

func TestSlowReceiverSlowsSender(t *testing.T) {
	const total = 10000
	var handled atomic.Int64
	c := testkit.NewCluster(t, 2,
		testkit.WithStreamWindow(16<<10),
		testkit.WithNodeOptions(func(i int) []mycorrizal.Option {
			return []mycorrizal.Option{mycorrizal.WithInboxSize(16)}
		}),
		testkit.WithSetup(func(i int, n *mycorrizal.Node) {
			app, _ := n.RegisterApplication("sink")
			app.OnMessage(func(ctx context.Context, from ports.NodeID, p []byte) {
				if handled.Add(1)%100 == 0 {
					time.Sleep(2 * time.Millisecond) // a slow receiver
				}
			})
		}))
	payload := make([]byte, 256)
	app := c.Node(0).Application("sink")
	var blocked int
	minHandledAtEnd := int64(0)
	for i := range total {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		start := time.Now()
		err := app.Send(ctx, payload, c.ID(1))
		cancel()
		if err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
		if time.Since(start) > time.Millisecond {
			blocked++
		}
	}
	// Every buffer between sender and handler is bounded: the sender's
	// 64 KiB pending buffer and the batch it is writing (each plus the frame
	// that crosses the limit), the reader's
	// 32 KiB bufio buffer, the stream window (16 KiB), the inbox (16) and the
	// message in the handler. So when the last Send returned, the receiver
	// must already have handled all but those; a sender that ran ahead
	// (dropping, or buffering without bound) would fail this.
	const frame = 256 + 5
	inFlight := 2*((64<<10)/frame+1) + (32<<10)/frame + (16<<10)/frame + 16 + 2
	minHandledAtEnd = int64(total - inFlight)
	if got := handled.Load(); got < minHandledAtEnd {
		t.Fatalf("sender finished with only %d of %d handled: it was not slowed", got, total)
	}
	c.Eventually(30*time.Second, "all messages delivered", func() bool { return handled.Load() == total })
	t.Logf("%d messages delivered; the sender blocked on %d sends", total, blocked)
}
