package simnet

import (
	"fmt"
	"net"

	"github.com/mycorrizal/mycorrizal/ports"
)

// streamPair is one in-memory stream between two transports: the dialler's
// end and the listener's end. The network keeps every live pair so it can
// cut those crossing a new partition and those of a transport that shuts
// down.
type streamPair struct {
	net              *Network
	dialer, listener *MemberlistTransport
	ends             [2]*conn
}

// conn is one end of a stream: a net.Pipe end (which supports deadlines)
// that reports the simulated TCP addresses and leaves the network's
// registry when closed.
type conn struct {
	net.Conn
	local, remote net.Addr
	pair          *streamPair
}

// LocalAddr returns this end's simulated TCP address.
func (c *conn) LocalAddr() net.Addr { return c.local }

// RemoteAddr returns the other end's simulated TCP address.
func (c *conn) RemoteAddr() net.Addr { return c.remote }

// Close closes this end; the other end's reads then fail with io.EOF. Safe
// to call more than once.
func (c *conn) Close() error {
	c.pair.net.forget(c.pair)
	return c.Conn.Close()
}

// connect opens a stream from src to the transport bound at key. All checks
// and the registration happen under n.mu, so a stream can never slip across
// a partition being installed, nor reach a transport being shut down.
func (n *Network) connect(src *MemberlistTransport, key string) (net.Conn, error) {
	n.mu.Lock()
	dest := n.byAddr[key]
	var failure error
	switch {
	case n.byAddr[src.addr] != src:
		n.mu.Unlock()
		return nil, fmt.Errorf("simnet: dial %s from %s: %w", key, src.addr, ports.ErrClosed)
	case dest == nil:
		failure = fmt.Errorf("simnet: dial %s from %s: connection refused: %w", key, src.addr, ports.ErrUnreachable)
	case !n.reachableLocked(src.id, dest.id):
		failure = fmt.Errorf("simnet: dial %s from %s: partitioned from %s: %w", key, src.addr, dest.id, ports.ErrUnreachable)
	}
	if failure != nil {
		n.mu.Unlock()
		n.stats.streamsRefused.Add(1)
		return nil, failure
	}

	a, b := net.Pipe()
	pair := &streamPair{net: n, dialer: src, listener: dest}
	client := &conn{Conn: a, local: src.tcpAddr, remote: dest.tcpAddr, pair: pair}
	server := &conn{Conn: b, local: dest.tcpAddr, remote: src.tcpAddr, pair: pair}
	pair.ends = [2]*conn{client, server}
	select {
	case dest.streamCh <- server:
		n.streams[pair] = struct{}{}
		n.mu.Unlock()
	default:
		n.mu.Unlock()
		_ = a.Close()
		_ = b.Close()
		n.stats.streamsRefused.Add(1)
		return nil, fmt.Errorf("simnet: dial %s from %s: accept queue full: %w", key, src.addr, ports.ErrUnreachable)
	}
	n.stats.streamsOpened.Add(1)
	return client, nil
}

// forget removes pair from the registry.
func (n *Network) forget(pair *streamPair) {
	n.mu.Lock()
	delete(n.streams, pair)
	n.mu.Unlock()
}

// unbind removes t's bindings (if still its own) and returns, removed from
// the registry, every stream t is an end of.
func (n *Network) unbind(t *MemberlistTransport) []*streamPair {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.byAddr[t.addr] == t {
		delete(n.byAddr, t.addr)
	}
	if n.byID[t.id] == t {
		delete(n.byID, t.id)
	}
	var cut []*streamPair
	for p := range n.streams {
		if p.dialer == t || p.listener == t {
			delete(n.streams, p)
			cut = append(cut, p)
		}
	}
	return cut
}

// cutStreamsLocked removes from the registry and returns the streams the
// current partition cuts. n.mu must be held for writing.
func (n *Network) cutStreamsLocked() []*streamPair {
	var cut []*streamPair
	for p := range n.streams {
		if !n.reachableLocked(p.dialer.id, p.listener.id) {
			delete(n.streams, p)
			cut = append(cut, p)
		}
	}
	return cut
}

// closeStreams closes both ends of each pair. It must be called without
// n.mu held.
func closeStreams(pairs []*streamPair, st *counters) {
	for _, p := range pairs {
		_ = p.ends[0].Conn.Close()
		_ = p.ends[1].Conn.Close()
		st.streamsCut.Add(1)
	}
}
