package memberlist

import (
	"cmp"
	"context"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"

	ml "github.com/hashicorp/memberlist"

	"github.com/mycorrizal/mycorrizal/ports"
)

// delegate is the adapter's side of memberlist's Delegate and EventDelegate.
// memberlist calls it from its own goroutines, the event methods with its
// node lock held and never concurrently: nothing here blocks or calls back
// into memberlist.
//
// It also keeps the member table Members reads. memberlist's own Members
// returns pointers to nodes it keeps mutating under its lock, so reading
// them afterwards is a data race; the event callbacks are the only place
// where a node can be read safely. The table follows memberlist's view
// exactly (a node enters on NotifyJoin, changes on NotifyUpdate, leaves on
// NotifyLeave), including this node, and is bounded by the cluster size.
type delegate struct {
	name   string                 // this node's name: no events about it
	meta   atomic.Pointer[[]byte] // encoded local metadata, at most MaxMetaSize
	events *eventQueue
	log    *slog.Logger

	mu      sync.Mutex
	members map[string]ports.Member // alive or suspect nodes, by name
}

var (
	_ ml.Delegate      = (*delegate)(nil)
	_ ml.EventDelegate = (*delegate)(nil)
)

func newDelegate(name string, meta []byte, events *eventQueue, log *slog.Logger) *delegate {
	d := &delegate{name: name, events: events, log: log, members: make(map[string]ports.Member)}
	d.setMeta(meta)
	return d
}

// setMeta replaces the local metadata; b must fit in MaxMetaSize.
func (d *delegate) setMeta(b []byte) { d.meta.Store(&b) }

// NodeMeta returns the local metadata memberlist gossips in alive messages.
func (d *delegate) NodeMeta(limit int) []byte {
	p := d.meta.Load()
	if p == nil {
		return nil
	}
	if len(*p) > limit {
		// Unreachable: Start and UpdateLocal check the size first.
		// memberlist panics on oversize metadata, so send none instead.
		d.log.Error("node metadata over memberlist's limit; advertising none",
			"size", len(*p), "limit", limit)
		return nil
	}
	return *p
}

// NotifyMsg is unused: the adapter sends no user messages.
func (d *delegate) NotifyMsg([]byte) {}

// GetBroadcasts is unused: the adapter broadcasts no user data.
func (d *delegate) GetBroadcasts(overhead, limit int) [][]byte { return nil }

// LocalState is unused: the adapter has no push/pull state of its own.
func (d *delegate) LocalState(join bool) []byte { return nil }

// MergeRemoteState is unused (see LocalState).
func (d *delegate) MergeRemoteState(buf []byte, join bool) {}

// NotifyJoin maps memberlist's join (new node, or back from dead or left).
func (d *delegate) NotifyJoin(n *ml.Node) {
	m, _ := d.convert(n, ports.StateAlive, slog.LevelWarn)
	d.set(m)
	if n.Name != d.name {
		d.events.push(ports.MemberEvent{Type: ports.MemberJoined, Member: clone(m)})
	}
}

// NotifyUpdate maps a metadata change. The change that only raises the
// leaving flag is not reported as an event: MemberLeft follows it.
func (d *delegate) NotifyUpdate(n *ml.Node) {
	m, meta := d.convert(n, ports.StateAlive, slog.LevelWarn)
	d.set(m)
	if n.Name != d.name && !meta.Leaving {
		d.events.push(ports.MemberEvent{Type: ports.MemberUpdated, Member: clone(m)})
	}
}

// NotifyLeave maps memberlist's leave, which it reports both for a node
// that left gracefully and for one declared dead. It is MemberLeft when
// memberlist says StateLeft (later memberlist versions) or when the node's
// last metadata carried the leaving flag (see Leave), else MemberFailed.
func (d *delegate) NotifyLeave(n *ml.Node) {
	m, meta := d.convert(n, ports.StateFailed, slog.LevelDebug)
	typ := ports.MemberFailed
	if n.State == ml.StateLeft || meta.Leaving {
		typ, m.State = ports.MemberLeft, ports.StateLeft
	}
	d.mu.Lock()
	delete(d.members, n.Name)
	d.mu.Unlock()
	if n.Name != d.name {
		d.events.push(ports.MemberEvent{Type: typ, Member: m})
	}
}

// convert reads a memberlist node (only safe inside a callback). Metadata
// that does not decode gives a member with empty TransportAddr, Version
// and Apps, logged at level.
func (d *delegate) convert(n *ml.Node, state ports.MemberState, level slog.Level) (ports.Member, Meta) {
	m := ports.Member{
		ID:         ports.NodeID(n.Name),
		GossipAddr: n.Address(),
		State:      state,
	}
	meta, err := DecodeMeta(n.Meta)
	if err != nil {
		d.log.Log(context.Background(), level, "member metadata does not decode; treating it as empty",
			"node", n.Name, "addr", m.GossipAddr, "err", err)
		return m, Meta{}
	}
	m.TransportAddr = meta.TransportAddr
	m.Version = meta.Version
	m.Apps = meta.Apps
	return m, meta
}

func (d *delegate) set(m ports.Member) {
	d.mu.Lock()
	d.members[string(m.ID)] = m
	d.mu.Unlock()
}

// clone returns m with its own Apps slice, so a caller that modifies what
// it was given cannot corrupt the table.
func clone(m ports.Member) ports.Member {
	m.Apps = slices.Clone(m.Apps)
	return m
}

// snapshot returns a copy of the member table, sorted by ID.
func (d *delegate) snapshot() []ports.Member {
	d.mu.Lock()
	out := make([]ports.Member, 0, len(d.members))
	for _, m := range d.members {
		out = append(out, clone(m))
	}
	d.mu.Unlock()
	slices.SortFunc(out, func(a, b ports.Member) int { return cmp.Compare(a.ID, b.ID) })
	return out
}

// self returns this node's entry, if memberlist has reported it.
func (d *delegate) self() (ports.Member, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	m, ok := d.members[d.name]
	return m, ok
}
