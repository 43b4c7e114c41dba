package mesh

import (
	"context"
	"sync"

	"github.com/mycorrizal/mycorrizal/ports"
)

// slots bounds an application's request handling in two ways.
//
// Run slots (cfg.RequestConcurrency, app-wide) are held while a handler
// runs, and only then: a finished handler gives its run slot back before
// its response is queued, so a peer that does not read its responses holds
// no run slot at all.
//
// Peer slots (cfg.RequestConcurrencyPerPeer, per peer) are held from the
// moment a request is read until its response is queued or given up. They
// bound what one peer can make this node hold for it (handlers running,
// responses waiting for room in its send buffer), and a peer at its bound
// stops being read, which slows that peer alone. Because one peer never
// holds more than its share of run slots, other peers always find some.
type slots struct {
	run     chan struct{}
	perPeer int

	mu    sync.Mutex
	peers map[ports.NodeID]*peerSlots // entries exist while in use
}

// peerSlots is one peer's share of an application's request handling.
type peerSlots struct {
	sem     chan struct{} // one token per request being handled or answered
	streams int           // request streams from the peer being read
}

func newSlots(total, perPeer int) *slots {
	return &slots{run: make(chan struct{}, total), perPeer: perPeer, peers: make(map[ports.NodeID]*peerSlots)}
}

// join registers a request stream from peer and returns the peer's share.
// Every join is paired with a leave.
func (s *slots) join(peer ports.NodeID) *peerSlots {
	s.mu.Lock()
	defer s.mu.Unlock()
	ps := s.peers[peer]
	if ps == nil {
		ps = &peerSlots{sem: make(chan struct{}, s.perPeer)}
		s.peers[peer] = ps
	}
	ps.streams++
	return ps
}

// leave unregisters a request stream; the share is forgotten once no
// stream uses it and no request holds a token.
func (s *slots) leave(peer ports.NodeID, ps *peerSlots) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ps.streams--
	s.forget(peer, ps)
}

func (s *slots) forget(peer ports.NodeID, ps *peerSlots) {
	if ps.streams == 0 && len(ps.sem) == 0 && s.peers[peer] == ps {
		delete(s.peers, peer)
	}
}

// acquire takes a peer slot and then a run slot, waiting until ctx ends.
// It is called by a stream's reader between join and leave.
func (s *slots) acquire(ctx context.Context, peer ports.NodeID, ps *peerSlots) error {
	select {
	case ps.sem <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case s.run <- struct{}{}:
		return nil
	case <-ctx.Done():
		s.releasePeer(peer, ps)
		return ctx.Err()
	}
}

// releaseRun gives back a run slot: the handler has finished.
func (s *slots) releaseRun() { <-s.run }

// releasePeer gives back a peer slot: the response is queued or given up.
func (s *slots) releasePeer(peer ports.NodeID, ps *peerSlots) {
	s.mu.Lock()
	defer s.mu.Unlock()
	<-ps.sem
	s.forget(peer, ps)
}
