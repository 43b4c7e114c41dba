package quic

import (
	"context"
	"sync"

	"github.com/quic-go/quic-go"

	"github.com/mycorrizal/mycorrizal/ports"
)

// Connection error codes (CONNECTION_CLOSE) this transport sends.
const (
	codeTransportClosed quic.ApplicationErrorCode = 1 // Transport.Close
	codePeerClosed      quic.ApplicationErrorCode = 2 // ClosePeer
	codeSuperseded      quic.ApplicationErrorCode = 3 // too many connections with one peer
	codeNoIdentity      quic.ApplicationErrorCode = 4 // the certificate named no node ID
	codeDialAborted     quic.ApplicationErrorCode = 5 // the dial gave up before confirmation
)

// maxConnsPerPeer bounds the connections kept with one peer (normally one;
// two after a simultaneous dial; more only while old ones die). When a new
// one would exceed it, the oldest is closed.
const maxConnsPerPeer = 4

// conn is one authenticated QUIC connection with a peer, dialed by either
// side. Its goroutine (Transport.serveConn) accepts the peer's streams and
// forgets the connection when it ends.
type conn struct {
	qc       *quic.Conn
	peer     ports.NodeID // proven by the peer's certificate
	addr     string       // the address dialed, or the peer's source address for an accepted connection
	outbound bool

	mu      sync.Mutex
	dead    bool                 // forgotten by the transport; no new streams
	streams map[*stream]struct{} // live streams, for the idle sweeper
}

func newConn(qc *quic.Conn, peer ports.NodeID, addr string, outbound bool) *conn {
	return &conn{qc: qc, peer: peer, addr: addr, outbound: outbound, streams: make(map[*stream]struct{})}
}

// alive reports whether the QUIC connection is still open.
func (c *conn) alive() bool {
	return c.qc.Context().Err() == nil
}

// closeReason returns the error the connection closed with, if it did.
func (c *conn) closeReason() error {
	return context.Cause(c.qc.Context())
}

// track wraps qs as a stream of c and registers it; nil if c was
// forgotten meanwhile.
func (c *conn) track(t *Transport, qs *quic.Stream) *stream {
	s := &stream{qs: qs, c: c, epoch: &t.epoch}
	s.seen.Store(t.epoch.Load())
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.dead {
		return nil
	}
	c.streams[s] = struct{}{}
	return s
}

// forget unregisters a stream that finished or was closed; idempotent.
func (c *conn) forget(s *stream) {
	if s.state.Or(fGone)&fGone != 0 {
		return
	}
	c.mu.Lock()
	if c.streams != nil {
		delete(c.streams, s)
	}
	c.mu.Unlock()
}

// kill marks c forgotten: its registry is dropped (the QUIC connection's
// close ends the streams themselves).
func (c *conn) kill() {
	c.mu.Lock()
	c.dead = true
	c.streams = nil
	c.mu.Unlock()
}

// idle removes and returns the streams whose last activity is more than
// limit ticks before epoch, appending them to out.
func (c *conn) idle(epoch, limit uint32, out []*stream) []*stream {
	c.mu.Lock()
	defer c.mu.Unlock()
	for s := range c.streams {
		if epoch-s.seen.Load() > limit {
			delete(c.streams, s)
			s.state.Or(fGone)
			out = append(out, s)
		}
	}
	return out
}
