package mesh

import (
	"cmp"
	"fmt"
	"slices"

	"github.com/mycorrizal/mycorrizal/ports"
)

// SetMembers replaces the mesh's view of the cluster with members (as
// ports.Membership.Members returns them; this node is ignored). Links to
// peers no longer present are closed and their requests in flight fail
// with ports.ErrPeerGone.
func (m *Mesh) SetMembers(members []ports.Member) {
	next := make(map[ports.NodeID]ports.Member, len(members))
	for _, mem := range members {
		if mem.ID != m.cfg.Self && (mem.State == ports.StateAlive || mem.State == ports.StateSuspect) {
			next[mem.ID] = mem
		}
	}
	m.mu.Lock()
	var gone []ports.NodeID
	for id := range m.peers {
		if _, ok := next[id]; !ok {
			gone = append(gone, id)
		}
	}
	m.peers = next
	m.mu.Unlock()
	for _, id := range gone {
		m.closePeer(id, "left the member list")
	}
}

// HandleEvent applies one membership event to the mesh's view. A member
// that left or failed has its links closed at once, so requests to it fail
// fast instead of waiting for their deadline.
func (m *Mesh) HandleEvent(ev ports.MemberEvent) {
	id := ev.Member.ID
	if id == m.cfg.Self {
		return
	}
	switch ev.Type {
	case ports.MemberJoined, ports.MemberUpdated:
		m.mu.Lock()
		m.peers[id] = ev.Member
		m.mu.Unlock()
	case ports.MemberLeft, ports.MemberFailed:
		m.mu.Lock()
		delete(m.peers, id)
		m.mu.Unlock()
		m.closePeer(id, ev.Type.String())
	}
}

// Peer returns what the mesh knows of a live peer.
func (m *Mesh) Peer(id ports.NodeID) (ports.Member, bool) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	p, ok := m.peers[id]
	return p, ok
}

// Peers returns the live peers the mesh routes to (this node excluded),
// sorted by ID: the membership view as far as the mesh has applied it.
func (m *Mesh) Peers() []ports.Member {
	m.mu.RLock()
	ps := make([]ports.Member, 0, len(m.peers))
	for _, p := range m.peers {
		ps = append(ps, p)
	}
	m.mu.RUnlock()
	slices.SortFunc(ps, func(a, b ports.Member) int { return cmp.Compare(a.ID, b.ID) })
	return ps
}

// nodesHosting returns the live peers (not this node) that host app, sorted.
func (m *Mesh) nodesHosting(app string) []ports.NodeID {
	m.mu.RLock()
	ids := make([]ports.NodeID, 0, len(m.peers))
	for id, p := range m.peers {
		if p.Hosts(app) {
			ids = append(ids, id)
		}
	}
	m.mu.RUnlock()
	slices.Sort(ids)
	return ids
}

// closePeer closes every link with peer: outbound links fail their
// requests with ErrPeerGone, inbound streams are reset, and a transport that
// can close the connection to one peer does so.
func (m *Mesh) closePeer(id ports.NodeID, why string) {
	m.mu.Lock()
	var outs []*outLink
	for k, l := range m.out {
		if k.peer == id {
			outs = append(outs, l)
		}
	}
	var ins []*inLink
	for l := range m.in {
		if l.peer == id {
			ins = append(ins, l)
		}
	}
	m.mu.Unlock()
	err := fmt.Errorf("peer %s %s: %w", id, why, ports.ErrPeerGone)
	for _, l := range outs {
		l.fail(err)
	}
	for _, l := range ins {
		_ = l.stream.Reset()
	}
	// Close the connection too, even when no stream is open on it (the
	// transport may keep one for idle streams it already reset).
	if pc, ok := m.cfg.Transport.(ports.PeerCloser); ok {
		_ = pc.ClosePeer(id)
	}
	if len(outs) > 0 || len(ins) > 0 {
		m.log.Info("closed links to peer", "peer", string(id), "why", why, "outbound", len(outs), "inbound", len(ins))
	}
}
