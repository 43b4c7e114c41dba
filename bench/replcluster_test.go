package bench

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mycorrizal/mycorrizal"
	"github.com/mycorrizal/mycorrizal/adapters/certs/ca"
	mlmember "github.com/mycorrizal/mycorrizal/adapters/membership/memberlist"
	"github.com/mycorrizal/mycorrizal/adapters/transport/quic"
	"github.com/mycorrizal/mycorrizal/core/cache"
	"github.com/mycorrizal/mycorrizal/ports"
)

// envLarge, set to 1, turns on the large replication cases (100,000 and
// 1,000,000 keys); without it only the 10,000-key case runs, so `make
// test` (every benchmark once, -benchtime=1x) stays quick. run.sh sets it.
const envLarge = "MYCORRIZAL_BENCH_LARGE"

func largeRuns() bool { return os.Getenv(envLarge) == "1" }

// envLog, set to debug, info or warn, sends the replication benchmarks'
// node logs at that level to stderr (they are discarded otherwise).
const envLog = "MYCORRIZAL_BENCH_LOG"

var logLevels = map[string]slog.Level{"debug": slog.LevelDebug, "info": slog.LevelInfo, "warn": slog.LevelWarn}

// replCluster is a cluster of real nodes in this process, as
// startMycorrizalNodes builds them (memberlist gossip on the LAN profile,
// QUIC with mutual TLS on loopback, certificates from a CA made for the
// run), except that the bench builds each node's membership and transport
// itself so it can crash a node: stop its gossip without a leave message
// and close its QUIC transport, as the test kit's Crash does.
type replCluster struct {
	b               testing.TB
	caCert, caKey   []byte
	seed            string
	mu              sync.Mutex
	nodes           []*replNode
	shutdownTimeout time.Duration
}

// replNode is one node of a replCluster and the adapters held to crash it.
type replNode struct {
	node    *mycorrizal.Node
	member  *crashableMembership
	tr      *quic.Transport
	stopped atomic.Bool
}

// crashableMembership skips the graceful leave once the node crashed.
type crashableMembership struct {
	ports.Membership
	crashed atomic.Bool
}

func (c *crashableMembership) Leave(ctx context.Context) error {
	if c.crashed.Load() {
		return nil
	}
	return c.Membership.Leave(ctx)
}

// newReplCluster starts n nodes named "a", "b", … joined through the
// first, each Ready before the next starts, and waits until every node's
// cache sees all n. Every node is shut down in Cleanup (or by Close).
func newReplCluster(b testing.TB, n int) *replCluster {
	b.Helper()
	certPEM, keyPEM, err := ca.GenerateCA("bench CA", 2*time.Hour, time.Now())
	if err != nil {
		b.Fatal(err)
	}
	c := &replCluster{b: b, caCert: certPEM, caKey: keyPEM, shutdownTimeout: 30 * time.Second}
	b.Cleanup(c.Close)
	for i := range n {
		if _, err := c.Start(string(rune('a' + i))); err != nil {
			b.Fatal(err)
		}
	}
	c.waitMembers(n, 30*time.Second)
	return c
}

// Start builds, starts and waits for the readiness of a node named id,
// joining the cluster through the first node, and adds it to the cluster.
func (c *replCluster) Start(id string) (*replNode, error) {
	log := slog.New(slog.DiscardHandler)
	if lv, ok := logLevels[os.Getenv(envLog)]; ok {
		log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: lv})).With("node", id)
	}
	certs, err := ca.New(ca.Config{CACertPEM: c.caCert, CAKeyPEM: c.caKey, NodeID: ports.NodeID(id)})
	if err != nil {
		return nil, err
	}
	ms, err := mlmember.New(mlmember.Config{BindAddr: "127.0.0.1", BindPort: 0, Logger: log})
	if err != nil {
		return nil, err
	}
	tr, err := quic.New(quic.Config{ListenAddr: "127.0.0.1:0", Certs: certs, Logger: log})
	if err != nil {
		_ = ms.Close()
		return nil, err
	}
	member := &crashableMembership{Membership: ms}
	opts := []mycorrizal.Option{
		mycorrizal.WithNodeID(id),
		mycorrizal.WithLogger(log),
		mycorrizal.WithTransport(tr),
		mycorrizal.WithMembership(member),
	}
	if c.seed != "" {
		opts = append(opts, mycorrizal.WithSeeds(c.seed))
	}
	node, err := mycorrizal.New(opts...)
	if err != nil {
		_ = ms.Close()
		_ = tr.Close()
		return nil, err
	}
	rn := &replNode{node: node, member: member, tr: tr}
	c.mu.Lock()
	c.nodes = append(c.nodes, rn)
	c.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	if err := node.Start(ctx); err != nil {
		return nil, fmt.Errorf("start %s: %w", id, err)
	}
	if err := node.Ready(ctx); err != nil {
		return nil, fmt.Errorf("ready %s: %w", id, err)
	}
	if c.seed == "" {
		for _, m := range node.Members() {
			if m.ID == node.ID() {
				c.seed = m.GossipAddr
			}
		}
	}
	return rn, nil
}

// Running returns the nodes not crashed or shut down, in start order.
func (c *replCluster) Running() []*mycorrizal.Node {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []*mycorrizal.Node
	for _, n := range c.nodes {
		if !n.stopped.Load() {
			out = append(out, n.node)
		}
	}
	return out
}

// Crash kills node i as a process crash looks to its peers: its gossip
// stops without a leave message and its QUIC transport closes (its
// connections end); then the node is shut down, which can no longer hand
// anything off (its transport is closed) and only releases its
// goroutines.
func (c *replCluster) Crash(i int) {
	n := c.nodes[i]
	if n.stopped.Swap(true) {
		return
	}
	n.member.crashed.Store(true)
	_ = n.member.Membership.Close()
	_ = n.tr.Close()
	ctx, cancel := context.WithTimeout(context.Background(), c.shutdownTimeout)
	defer cancel()
	_ = n.node.Shutdown(ctx)
}

// Close shuts every running node down, gracefully and at once.
func (c *replCluster) Close() {
	c.mu.Lock()
	nodes := append([]*replNode(nil), c.nodes...)
	c.mu.Unlock()
	var wg sync.WaitGroup
	for _, n := range nodes {
		if n.stopped.Swap(true) {
			continue
		}
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(context.Background(), c.shutdownTimeout)
			defer cancel()
			_ = n.node.Shutdown(ctx)
		})
	}
	wg.Wait()
}

// waitMembers waits until every running node's cache has a view of want
// members.
func (c *replCluster) waitMembers(want int, d time.Duration) {
	c.b.Helper()
	if _, ok := pollUntil(d, 10*time.Millisecond, func() bool {
		for _, n := range c.Running() {
			if n.Cache().ReplicationStats().Members != want {
				return false
			}
		}
		return true
	}); !ok {
		c.b.Fatalf("the nodes' caches do not all see %d members within %v", want, d)
	}
}

// createBucket creates name through the first running node and waits until
// every running node knows it.
func (c *replCluster) createBucket(name string, o cache.BucketOptions) {
	c.b.Helper()
	nodes := c.Running()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := nodes[0].Cache().CreateBucket(ctx, name, o); err != nil {
		c.b.Fatal(err)
	}
	if _, ok := pollUntil(30*time.Second, 10*time.Millisecond, func() bool {
		for _, n := range nodes {
			if _, err := n.Cache().Stats(name); err != nil {
				return false
			}
		}
		return true
	}); !ok {
		c.b.Fatalf("bucket %q not on every node within 30 s", name)
	}
}

// pollUntil checks cond every interval until it holds or d has passed. It
// returns the time the successful check began, so a slow check does not
// count in what is measured.
func pollUntil(d, interval time.Duration, cond func() bool) (time.Time, bool) {
	deadline := time.Now().Add(d)
	for {
		at := time.Now()
		if cond() {
			return at, true
		}
		if at.After(deadline) {
			return at, false
		}
		time.Sleep(interval)
	}
}

// totalEntries sums the local entries of bucket over nodes.
func totalEntries(nodes []*mycorrizal.Node, bucket string) int {
	total := 0
	for _, n := range nodes {
		s, _ := n.Cache().Stats(bucket)
		total += s.Entries
	}
	return total
}

// pendingWrites sums the replica writes in flight over nodes.
func pendingWrites(nodes []*mycorrizal.Node) int64 {
	var total int64
	for _, n := range nodes {
		total += n.Cache().ReplicationStats().PendingWrites
	}
	return total
}

// describe summarises each node's share of bucket for a failure message.
func describe(nodes []*mycorrizal.Node, bucket string) string {
	out := ""
	for _, n := range nodes {
		s, _ := n.Cache().Stats(bucket)
		r := n.Cache().ReplicationStats()
		out += fmt.Sprintf("\n  %s: entries=%d members=%d synced=%v foreign=%d under-replicated=%d pending=%d received=%d rounds=%d",
			n.ID(), s.Entries, r.Members, r.Synced, r.Foreign, r.UnderReplicated, r.PendingWrites, r.Received, r.Rounds)
	}
	return out
}

// loadKeys sets every key through the nodes in turn (key i through node
// i mod len(nodes)) from callers goroutines.
func loadKeys(ctx context.Context, nodes []*mycorrizal.Node, bucket string, keys []string, value []byte, callers int) error {
	return preloadWith(ctx, len(keys), callers, func(ctx context.Context, i int) error {
		return nodes[i%len(nodes)].Cache().Set(ctx, bucket, keys[i], value, 0)
	})
}

// preloadWith runs set for i from 0 to n-1 on callers goroutines and
// returns the first error.
func preloadWith(ctx context.Context, n, callers int, set operation) error {
	var (
		next   atomic.Int64
		wg     sync.WaitGroup
		mu     sync.Mutex
		errOut error
	)
	for range callers {
		wg.Go(func() {
			for i := int(next.Add(1) - 1); i < n; i = int(next.Add(1) - 1) {
				if err := set(ctx, i); err != nil {
					mu.Lock()
					if errOut == nil {
						errOut = fmt.Errorf("set key %d: %w", i, err)
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
