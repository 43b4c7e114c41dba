package mesh

import "github.com/mycorrizal/mycorrizal/core/wire"

// Stats is a snapshot of a mesh's tables, for metrics and tests.
type Stats struct {
	// Peers is the number of live peers the mesh knows.
	Peers int
	// OutboundStreams counts streams this node opened (including ones
	// being dialled); InboundStreams counts streams peers opened.
	OutboundStreams, InboundStreams int
	// PendingRequests counts requests waiting for a response.
	PendingRequests int
}

// Stats returns a snapshot of the mesh's tables.
func (m *Mesh) Stats() Stats {
	m.mu.RLock()
	s := Stats{Peers: len(m.peers), OutboundStreams: len(m.out), InboundStreams: len(m.in)}
	links := make([]*outLink, 0, len(m.out))
	for _, l := range m.out {
		links = append(links, l)
	}
	m.mu.RUnlock()
	for _, l := range links {
		l.mu.Lock()
		s.PendingRequests += len(l.pending)
		l.mu.Unlock()
	}
	return s
}

// MaxPayload returns the largest request payload the mesh sends (the
// maximum frame size less the request frame's own bytes).
func (m *Mesh) MaxPayload() int {
	return m.cfg.MaxFrameSize - (wire.RequestOverhead - wire.HeaderSize + 1)
}
