// Package simnet is the simulated network the test kit runs in-process
// clusters on.
//
// One Network holds one rule set (partitions, packet loss and delays between
// nodes) and applies it to everything that crosses it:
//
//   - the gossip of real hashicorp/memberlist instances, through the
//     memberlist transport returned by [Network.Transport], and
//   - the links of the in-memory application transport
//     (adapters/transport/mem), for which the Network is the
//     mem.Conditions: see [Network.Link].
//
// So a partition cuts gossip and application traffic alike, as it would on
// a real network.
//
// # Semantics
//
// Packets (memberlist's UDP path) are best effort: a partition drops them, a
// Drop rule drops them with its probability, a Delay rule holds them for its
// delay plus or minus a uniformly drawn jitter (so delayed packets may be
// reordered), and a receiver whose bounded queue is full drops them, as a
// kernel drops datagrams when a socket's buffer is full. Every drop is
// counted in [Stats].
//
// Streams (memberlist's TCP path) are in-memory connections with working
// deadlines. Opening one costs one round trip of the configured delays
// (without the connection's bytes being delayed afterwards); it fails at
// once when the two nodes are partitioned, when nothing is bound at the
// address, or when the receiver's accept queue is full. Installing a
// partition closes every existing stream that crosses it. Drop rules do not
// apply to streams: a reliable stream retransmits what is lost.
//
// Rules are keyed by node ID, not by address, so they survive a node's
// restart: shut a transport down and bind a new one with the same ID and
// address.
//
// # Randomness
//
// Every random choice (packet drops, jitter) is drawn from one source seeded
// by [New], so the same seed and the same sequence of calls give the same
// decisions. In a cluster of real memberlist instances the sequence of
// packets depends on goroutine scheduling, so a seed makes a run's faults
// reproducible in distribution, not packet for packet.
package simnet

import (
	"fmt"
	"math"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mycorrizal/mycorrizal/adapters/transport/mem"
	"github.com/mycorrizal/mycorrizal/ports"
)

// link names the one-way path between two nodes.
type link struct {
	from, to ports.NodeID
}

// delayRule is a Delay rule: d plus a uniform jitter in [-jitter, +jitter].
type delayRule struct {
	d, jitter time.Duration
}

// Network is a simulated network between nodes named by ports.NodeID. Its
// zero value is not usable; create one with New. All methods are safe for
// concurrent use, and every fault method takes effect at once for packets
// sent, streams opened and links evaluated afterwards.
type Network struct {
	// mu guards the bindings, the rules and the stream registry. Link and
	// the packet path take it for reading only.
	mu     sync.RWMutex
	byAddr map[string]*MemberlistTransport
	byID   map[ports.NodeID]*MemberlistTransport
	// group maps each node named in a partition to its group (1..k);
	// nodes not named are in group 0. Nil when there is no partition.
	group   map[ports.NodeID]int
	drops   map[link]float64
	delays  map[link]delayRule
	streams map[*streamPair]struct{}

	cbMu     sync.Mutex
	onChange []func()

	rngMu sync.Mutex
	rng   *rand.Rand

	stats counters
}

// New returns an empty network with no faults whose random choices all come
// from a source seeded with seed.
func New(seed uint64) *Network {
	return &Network{
		byAddr:  make(map[string]*MemberlistTransport),
		byID:    make(map[ports.NodeID]*MemberlistTransport),
		drops:   make(map[link]float64),
		delays:  make(map[link]delayRule),
		streams: make(map[*streamPair]struct{}),
		// The second PCG word is derived from the seed so one number is
		// all a test has to record.
		rng: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)),
	}
}

// Partition splits the network: nodes in different groups cannot reach each
// other, in either direction, by packet or by stream; nodes named in no
// group form one more group together. It replaces any earlier partition
// (Partition with no groups removes it) and leaves Drop and Delay rules in
// place. Existing streams that cross the new cut are closed before
// Partition returns; packets already delayed in flight across the cut are
// dropped when they arrive. A node named in more than one group is a bug in
// the caller, and Partition panics.
func (n *Network) Partition(groups ...[]ports.NodeID) {
	var group map[ports.NodeID]int
	for i, g := range groups {
		for _, id := range g {
			if group == nil {
				group = make(map[ports.NodeID]int)
			}
			if prev, ok := group[id]; ok && prev != i+1 {
				panic(fmt.Sprintf("simnet: node %q named in partition groups %d and %d", id, prev-1, i))
			}
			group[id] = i + 1
		}
	}
	n.mu.Lock()
	n.group = group
	cut := n.cutStreamsLocked()
	n.mu.Unlock()

	closeStreams(cut, &n.stats)
	n.changed()
}

// Heal removes every fault: the partition, all Drop rules and all Delay
// rules. Packets already delayed in flight still arrive at their time.
func (n *Network) Heal() {
	n.mu.Lock()
	n.group = nil
	clear(n.drops)
	clear(n.delays)
	n.mu.Unlock()
	n.changed()
}

// Drop makes packets sent from one node to another (one direction only) be
// lost with probability p, clamped to [0, 1]; p = 0 (or NaN) removes the
// rule. It replaces an earlier Drop rule for the same direction. Drop
// applies to packets only: streams, and the links of the in-memory
// application transport, are reliable and retransmit what is lost, so loss
// shows there as nothing at all.
func (n *Network) Drop(from, to ports.NodeID, p float64) {
	if math.IsNaN(p) || p < 0 {
		p = 0
	}
	p = min(p, 1)
	n.mu.Lock()
	if p == 0 {
		delete(n.drops, link{from, to})
	} else {
		n.drops[link{from, to}] = p
	}
	n.mu.Unlock()
	n.changed()
}

// Delay makes traffic from one node to another (one direction only) take d
// plus a jitter drawn uniformly from [-jitter, +jitter] (never less than
// zero in total). Negative arguments count as zero; d = jitter = 0 removes
// the rule. It replaces an earlier Delay rule for the same direction. It
// applies to every packet, to the opening of a stream (one round trip: the
// delays of both directions), and to each chunk of the in-memory
// application transport through Link.
func (n *Network) Delay(from, to ports.NodeID, d, jitter time.Duration) {
	d, jitter = max(d, 0), max(jitter, 0)
	n.mu.Lock()
	if d == 0 && jitter == 0 {
		delete(n.delays, link{from, to})
	} else {
		n.delays[link{from, to}] = delayRule{d, jitter}
	}
	n.mu.Unlock()
	n.changed()
}

// Reachable reports whether the current partition lets traffic go from one
// node to the other. Drop and Delay rules do not affect it. A node can
// always reach itself.
func (n *Network) Reachable(from, to ports.NodeID) bool {
	n.mu.RLock()
	defer n.mu.RUnlock()
	return n.reachableLocked(from, to)
}

// Link implements mem.Conditions for the in-memory application transport:
// the path is Down while the two nodes are partitioned, and its Delay is the
// Delay rule's d plus a freshly drawn jitter. Drop rules are ignored because
// the application transport is a reliable stream, which retransmits lost
// segments: on a real network, loss shows as latency there, not as loss.
// Link is fast and never blocks on anything but short internal locks.
func (n *Network) Link(from, to ports.NodeID) mem.Link {
	n.mu.RLock()
	down := !n.reachableLocked(from, to)
	rule := n.delays[link{from, to}]
	n.mu.RUnlock()
	return mem.Link{Down: down, Delay: n.sample(rule)}
}

var _ mem.Conditions = (*Network)(nil)

// OnChange registers fn to be called after every Partition, Heal, Drop and
// Delay call, once the change is in effect. Callbacks run in the goroutine
// that changed the rules, in the order they were registered, with no lock
// of the Network held, so they may call the Network. The test kit wires
// this to the in-memory transport's wake-up, so links that went down or
// came back are re-evaluated at once. fn must not block for long.
func (n *Network) OnChange(fn func()) {
	if fn == nil {
		return
	}
	n.cbMu.Lock()
	n.onChange = append(n.onChange, fn)
	n.cbMu.Unlock()
}

// changed runs the OnChange callbacks.
func (n *Network) changed() {
	n.cbMu.Lock()
	fns := append([]func(){}, n.onChange...)
	n.cbMu.Unlock()
	for _, fn := range fns {
		fn()
	}
}

// reachableLocked reports whether the partition lets from reach to. n.mu
// must be held.
func (n *Network) reachableLocked(from, to ports.NodeID) bool {
	if n.group == nil || from == to {
		return true
	}
	return n.group[from] == n.group[to]
}

// sample draws one delay under rule.
func (n *Network) sample(rule delayRule) time.Duration {
	if rule.jitter <= 0 {
		return rule.d
	}
	n.rngMu.Lock()
	j := n.rng.Int64N(2*int64(rule.jitter)+1) - int64(rule.jitter)
	n.rngMu.Unlock()
	return max(rule.d+time.Duration(j), 0)
}

// lose reports whether a packet subject to a Drop rule of probability p is
// lost. It draws from the source only when the outcome is uncertain, so
// traffic on links without a rule does not shift the sequence.
func (n *Network) lose(p float64) bool {
	switch {
	case p <= 0:
		return false
	case p >= 1:
		return true
	}
	n.rngMu.Lock()
	x := n.rng.Float64()
	n.rngMu.Unlock()
	return x < p
}

// roundTrip draws the time one stream handshake between two nodes takes.
func (n *Network) roundTrip(a, b ports.NodeID) time.Duration {
	n.mu.RLock()
	there, back := n.delays[link{a, b}], n.delays[link{b, a}]
	n.mu.RUnlock()
	return n.sample(there) + n.sample(back)
}

// Stats are a Network's counters since New.
type Stats struct {
	// PacketsSent counts packets handed to the network by live transports.
	PacketsSent uint64
	// PacketsDelivered counts packets put on a receiver's PacketCh.
	PacketsDelivered uint64
	// DroppedPartition counts packets dropped because of a partition,
	// whether at send time or when a delayed packet arrived.
	DroppedPartition uint64
	// DroppedRule counts packets dropped by a Drop rule.
	DroppedRule uint64
	// DroppedFull counts packets dropped because the receiver's PacketCh
	// was full.
	DroppedFull uint64
	// DroppedNoRoute counts packets sent to an address nothing is bound to,
	// or whose receiver shut down while they were in flight.
	DroppedNoRoute uint64
	// StreamsOpened counts streams successfully dialled.
	StreamsOpened uint64
	// StreamsRefused counts dials that failed: unknown or closed address,
	// partition, full accept queue, or timeout.
	StreamsRefused uint64
	// StreamsCut counts streams closed by a partition or by a transport's
	// Shutdown.
	StreamsCut uint64
}

type counters struct {
	packetsSent, packetsDelivered             atomic.Uint64
	droppedPartition, droppedRule             atomic.Uint64
	droppedFull, droppedNoRoute               atomic.Uint64
	streamsOpened, streamsRefused, streamsCut atomic.Uint64
}

// Stats returns a snapshot of the network's counters.
func (n *Network) Stats() Stats {
	c := &n.stats
	return Stats{
		PacketsSent:      c.packetsSent.Load(),
		PacketsDelivered: c.packetsDelivered.Load(),
		DroppedPartition: c.droppedPartition.Load(),
		DroppedRule:      c.droppedRule.Load(),
		DroppedFull:      c.droppedFull.Load(),
		DroppedNoRoute:   c.droppedNoRoute.Load(),
		StreamsOpened:    c.streamsOpened.Load(),
		StreamsRefused:   c.streamsRefused.Load(),
		StreamsCut:       c.streamsCut.Load(),
	}
}
