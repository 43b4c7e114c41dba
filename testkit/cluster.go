package testkit

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	ml "github.com/hashicorp/memberlist"

	"github.com/mycorrizal/mycorrizal"
	mlmember "github.com/mycorrizal/mycorrizal/adapters/membership/memberlist"
	"github.com/mycorrizal/mycorrizal/adapters/transport/mem"
	"github.com/mycorrizal/mycorrizal/ports"
	"github.com/mycorrizal/mycorrizal/testkit/simnet"
)

// Option configures NewCluster.
type Option func(*options)

type options struct {
	seed     uint64
	setup    func(i int, n *mycorrizal.Node)
	nodeOpts func(i int) []mycorrizal.Option
	tune     func(*ml.Config)
	logger   *slog.Logger
	window   int
	initial  int // slots started by NewCluster; -1 means all
}

// WithSeed sets the seed of the simulated network's randomness (packet
// drops, delay jitter). The default is 1; the seed is logged so a failing
// run can be repeated.
func WithSeed(seed uint64) Option { return func(o *options) { o.seed = seed } }

// WithSetup runs fn on each node after it is built and before it starts,
// also for nodes restarted by Restart: register applications and set
// handlers here.
func WithSetup(fn func(i int, n *mycorrizal.Node)) Option {
	return func(o *options) { o.setup = fn }
}

// WithNodeOptions adds mycorrizal options for node i (they are applied
// after the test kit's own transport and membership options).
func WithNodeOptions(fn func(i int) []mycorrizal.Option) Option {
	return func(o *options) { o.nodeOpts = fn }
}

// WithMemberlistTuning adjusts the memberlist configuration of every node
// after the test kit's own fast timings.
func WithMemberlistTuning(fn func(*ml.Config)) Option {
	return func(o *options) { o.tune = fn }
}

// WithLogger sends every node's logs to l instead of the test log.
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.logger = l } }

// WithStreamWindow sets the in-memory transport's per-stream window in
// bytes (default: the transport's own default).
func WithStreamWindow(bytes int) Option { return func(o *options) { o.window = bytes } }

// WithInitialNodes makes NewCluster start only slots 0 … k-1; the others
// stay empty until Start (a node joining mid-test) or Restart starts them.
// k is clamped to [1, n].
func WithInitialNodes(k int) Option { return func(o *options) { o.initial = k } }

// FastMemberlist is the memberlist timing the test kit uses: memberlist's
// Local profile with probe, gossip and push/pull intervals shortened so
// failures are detected in about a second and state converges in a few.
func FastMemberlist(c *ml.Config) {
	c.ProbeInterval = 200 * time.Millisecond
	c.ProbeTimeout = 150 * time.Millisecond
	c.SuspicionMult = 3
	c.GossipInterval = 30 * time.Millisecond
	c.GossipNodes = 4
	c.PushPullInterval = 2 * time.Second
	c.GossipToTheDeadTime = 15 * time.Second
	c.TCPTimeout = 2 * time.Second
}

// Cluster is a set of in-process nodes on one simulated network.
type Cluster struct {
	t    testing.TB
	opts options
	net  *simnet.Network
	mem  *mem.Network

	mu    sync.Mutex
	nodes []*member
	// offsets holds each slot's clock offset in nanoseconds (see
	// SetClockOffset); a node reads it on every clock reading.
	offsets []atomic.Int64
}

// member is one slot of the cluster: the node running in it now, and the
// adapters the test kit holds to crash it.
type member struct {
	id      ports.NodeID
	addr    string // gossip address on the simulated network
	node    *mycorrizal.Node
	crash   *crashable
	tr      *mem.Transport
	running bool
}

// NewCluster starts n nodes named "node-0" … "node-(n-1)", joins them, and
// waits until every node sees all n members (failing the test if that takes
// more than 30 s). With WithInitialNodes(k) only the first k slots start;
// the rest wait for Start. Every node is shut down by t.Cleanup.
//
// Each node reads its own wall clock (mycorrizal.WithClock): time.Now plus
// its slot's offset, 0 until SetClockOffset changes it.
func NewCluster(t testing.TB, n int, opts ...Option) *Cluster {
	t.Helper()
	o := options{seed: 1, initial: -1}
	for _, opt := range opts {
		opt(&o)
	}
	if o.logger == nil {
		w := &tlogWriter{t: t}
		t.Cleanup(w.close) // runs after shutdownAll, registered below
		o.logger = slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: testLogLevel()}))
	}
	t.Logf("testkit: cluster of %d nodes, seed %d", n, o.seed)
	c := &Cluster{t: t, opts: o, net: simnet.New(o.seed), mem: mem.NewNetwork()}
	c.mem.SetConditions(c.net)
	c.net.OnChange(c.mem.Poke)
	c.nodes = make([]*member, n)
	c.offsets = make([]atomic.Int64, n)
	for i := range n {
		c.nodes[i] = &member{id: ports.NodeID(fmt.Sprintf("node-%d", i)), addr: fmt.Sprintf("10.0.0.%d:7946", i+1)}
	}
	t.Cleanup(c.shutdownAll)
	initial := n
	if o.initial >= 0 {
		initial = max(1, min(o.initial, n))
	}
	for i := range initial {
		if err := c.start(i); err != nil {
			t.Fatalf("testkit: start node %d: %v", i, err)
		}
	}
	c.WaitConverged(30 * time.Second)
	return c
}

// startTimeout bounds a node's Start and Ready.
const startTimeout = 10 * time.Second

// start builds and starts the node of slot i, joining the running ones,
// and waits until it is Ready (at most timeout).
func (c *Cluster) start(i int) error { return c.startWithin(i, startTimeout) }

func (c *Cluster) startWithin(i int, timeout time.Duration) error {
	m := c.nodes[i]
	gossip, err := c.net.Transport(m.id, m.addr)
	if err != nil {
		return err
	}
	tune := func(mc *ml.Config) {
		FastMemberlist(mc)
		if c.opts.tune != nil {
			c.opts.tune(mc)
		}
	}
	logger := c.opts.logger.With("node", string(m.id))
	ms, err := mlmember.New(mlmember.Config{Profile: mlmember.ProfileLocal, Transport: gossip, Tune: tune, Logger: logger})
	if err != nil {
		_ = gossip.Shutdown()
		return err
	}
	tr, err := mem.New(c.mem, mem.Config{Window: c.opts.window})
	if err != nil {
		_ = ms.Close()
		return err
	}
	crash := &crashable{Membership: ms}
	var seeds []string
	for j, other := range c.nodes {
		if j != i && other.running {
			seeds = append(seeds, other.addr)
		}
	}
	nopts := []mycorrizal.Option{
		mycorrizal.WithNodeID(string(m.id)),
		mycorrizal.WithLogger(logger),
		mycorrizal.WithTransport(tr),
		mycorrizal.WithMembership(crash),
		mycorrizal.WithJoinRetry(500 * time.Millisecond),
		mycorrizal.WithReconnect(300*time.Millisecond, time.Hour),
		mycorrizal.WithClock(c.clock(i)),
	}
	if len(seeds) > 0 {
		nopts = append(nopts, mycorrizal.WithSeeds(seeds...))
	}
	if c.opts.nodeOpts != nil {
		nopts = append(nopts, c.opts.nodeOpts(i)...)
	}
	node, err := mycorrizal.New(nopts...)
	if err != nil {
		_ = ms.Close()
		_ = tr.Close()
		return err
	}
	if c.opts.setup != nil {
		c.opts.setup(i, node)
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	if err := node.Start(ctx); err != nil {
		_ = node.Shutdown(ctx)
		return err
	}
	if err := node.Ready(ctx); err != nil {
		_ = node.Shutdown(ctx)
		return err
	}
	c.mu.Lock()
	m.node, m.crash, m.tr, m.running = node, crash, tr, true
	c.mu.Unlock()
	return nil
}

func (c *Cluster) shutdownAll() {
	var wg sync.WaitGroup
	for i := range c.nodes {
		wg.Go(func() { c.stop(i, true) })
	}
	wg.Wait()
}

// stop shuts node i down, gracefully or as a crash.
func (c *Cluster) stop(i int, graceful bool) {
	c.mu.Lock()
	m := c.nodes[i]
	running := m.running
	m.running = false
	c.mu.Unlock()
	if !running {
		return
	}
	if !graceful {
		// Die first, as a process would: no leave message, streams reset.
		m.crash.crash()
		_ = m.tr.Close()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if err := m.node.Shutdown(ctx); err != nil && graceful {
		c.t.Logf("testkit: shutdown node %d: %v", i, err)
	}
}

// Len returns the number of node slots.
func (c *Cluster) Len() int { return len(c.nodes) }

// Node returns the node running in slot i (after Restart, the new one).
func (c *Cluster) Node(i int) *mycorrizal.Node {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.nodes[i].node
}

// ID returns the node ID of slot i.
func (c *Cluster) ID(i int) ports.NodeID { return c.nodes[i].id }

// Running reports whether slot i's node is running (not crashed or shut
// down).
func (c *Cluster) Running(i int) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.nodes[i].running
}

func (c *Cluster) ids(idx []int) []ports.NodeID {
	out := make([]ports.NodeID, len(idx))
	for k, i := range idx {
		out[k] = c.nodes[i].id
	}
	return out
}

// Partition splits the network into groups of node indexes: nodes in
// different groups cannot reach each other (gossip and application traffic
// alike; bytes already in flight wait until Heal). Nodes not listed form one
// more group.
func (c *Cluster) Partition(groups ...[]int) {
	idg := make([][]ports.NodeID, len(groups))
	for k, g := range groups {
		idg[k] = c.ids(g)
	}
	c.t.Logf("testkit: partition %v", groups)
	c.net.Partition(idg...)
}

// Heal removes every partition, drop and delay rule.
func (c *Cluster) Heal() {
	c.t.Logf("testkit: heal")
	c.net.Heal()
}

// Drop loses gossip packets from one node to another with probability p
// (seeded). Application streams are reliable and are not affected.
func (c *Cluster) Drop(from, to int, p float64) {
	c.net.Drop(c.nodes[from].id, c.nodes[to].id, p)
}

// Delay adds d to every packet and stream chunk from one node to another.
func (c *Cluster) Delay(from, to int, d time.Duration) { c.DelayJitter(from, to, d, 0) }

// DelayJitter adds d ± a seeded random jitter to every packet and stream
// chunk from one node to another.
func (c *Cluster) DelayJitter(from, to int, d, jitter time.Duration) {
	c.net.Delay(c.nodes[from].id, c.nodes[to].id, d, jitter)
}

// Crash kills node i without a graceful leave: its gossip stops, its
// streams are reset, and the others must detect the failure.
func (c *Cluster) Crash(i int) {
	c.t.Logf("testkit: crash node %d", i)
	c.stop(i, false)
}

// Stop shuts node i down gracefully (it leaves the cluster).
func (c *Cluster) Stop(i int) {
	c.t.Logf("testkit: stop node %d", i)
	c.stop(i, true)
}

// Restart starts a fresh node in slot i, with the same ID and address, after
// a Crash or Stop (a running node is crashed first), joining the running
// nodes. It fails the test if the node cannot start.
func (c *Cluster) Restart(i int) {
	c.t.Helper()
	if err := c.restart(i, startTimeout); err != nil {
		c.t.Fatalf("testkit: restart node %d: %v", i, err)
	}
}

// restart is Restart returning the error instead of failing the test.
func (c *Cluster) restart(i int, timeout time.Duration) error {
	c.stop(i, false)
	c.t.Logf("testkit: restart node %d", i)
	return c.startWithin(i, timeout)
}

// Start starts the node of slot i, which is not running: a slot that
// WithInitialNodes left empty joins the cluster, or a stopped or crashed one
// comes back (as Restart). It returns once the node is Ready, or an error
// (without failing the test) if it is running already or cannot start or
// become Ready within 10 s.
func (c *Cluster) Start(i int) error {
	if c.Running(i) {
		return fmt.Errorf("testkit: start node %d: already running", i)
	}
	c.t.Logf("testkit: start node %d", i)
	return c.start(i)
}

// Started reports whether slot i has ever run a node (false for a slot
// WithInitialNodes left empty that has not been started since).
func (c *Cluster) Started(i int) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.nodes[i].node != nil
}

// SetClockOffset shifts slot i's wall clock by d from time.Now, from now on
// (its node's next clock reading), also for nodes later restarted in the
// slot. The hybrid logical clock of a running node never goes back, so a
// negative change only slows its versions until real time catches up.
func (c *Cluster) SetClockOffset(i int, d time.Duration) {
	c.t.Logf("testkit: clock of node %d offset %v", i, d)
	c.offsets[i].Store(int64(d))
}

// ClockOffset returns slot i's current clock offset.
func (c *Cluster) ClockOffset(i int) time.Duration { return time.Duration(c.offsets[i].Load()) }

// clock is slot i's wall clock.
func (c *Cluster) clock(i int) func() time.Time {
	return func() time.Time { return time.Now().Add(time.Duration(c.offsets[i].Load())) }
}

// Eventually polls cond every 20 ms until it returns true, failing the test
// with msg if it has not within d.
func (c *Cluster) Eventually(d time.Duration, msg string, cond func() bool) {
	c.t.Helper()
	Eventually(c.t, d, msg, cond)
}

// Eventually polls cond every 20 ms until it returns true, failing t with
// msg if it has not within d.
func Eventually(t testing.TB, d time.Duration, msg string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("testkit: not within %v: %s", d, msg)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Converged reports whether every running node sees exactly the running
// nodes as members, in its membership layer and its messaging layer.
func (c *Cluster) Converged() bool {
	var want []ports.NodeID
	var running []*mycorrizal.Node
	c.mu.Lock()
	for _, m := range c.nodes {
		if m.running {
			want = append(want, m.id)
			running = append(running, m.node)
		}
	}
	c.mu.Unlock()
	slices.Sort(want)
	for _, n := range running {
		var got []ports.NodeID
		for _, m := range n.Members() {
			got = append(got, m.ID)
		}
		slices.Sort(got)
		if !slices.Equal(got, want) {
			return false
		}
		// The messaging layer learns of members through events, a moment
		// after the membership layer: wait for it too.
		if n.MeshStats().Peers != len(want)-1 {
			return false
		}
	}
	return true
}

// WaitConverged waits until every running node sees exactly the running
// nodes as members, failing the test after d.
func (c *Cluster) WaitConverged(d time.Duration) {
	c.t.Helper()
	c.Eventually(d, "membership did not converge", c.Converged)
}

// Sees reports whether node i sees node j as a live member.
func (c *Cluster) Sees(i, j int) bool {
	n := c.Node(i)
	for _, m := range n.Members() {
		if m.ID == c.nodes[j].id {
			return true
		}
	}
	return false
}

// crashable wraps the membership adapter so a crash can skip the graceful
// leave that Shutdown would otherwise send.
type crashable struct {
	ports.Membership
	mu      sync.Mutex
	crashed bool
}

func (c *crashable) crash() {
	c.mu.Lock()
	c.crashed = true
	c.mu.Unlock()
	_ = c.Membership.Close()
}

// Leave leaves gracefully unless the node crashed.
func (c *crashable) Leave(ctx context.Context) error {
	c.mu.Lock()
	crashed := c.crashed
	c.mu.Unlock()
	if crashed {
		return nil
	}
	return c.Membership.Leave(ctx)
}

// tlogWriter sends log lines to the test log until the cluster is shut
// down; memberlist may still log from a gossip round that was under way
// when it shut down, and testing forbids logging after a test ends.
type tlogWriter struct {
	t    testing.TB
	mu   sync.Mutex
	done bool
}

func (w *tlogWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.done {
		w.t.Log(strings.TrimRight(string(p), "\n"))
	}
	return len(p), nil
}

func (w *tlogWriter) close() {
	w.mu.Lock()
	w.done = true
	w.mu.Unlock()
}

// testLogLevel is WARN, or what MYCORRIZAL_TEST_LOG says (debug, info).
func testLogLevel() slog.Level {
	var l slog.Level
	if err := l.UnmarshalText([]byte(os.Getenv("MYCORRIZAL_TEST_LOG"))); err != nil {
		return slog.LevelWarn
	}
	return l
}
