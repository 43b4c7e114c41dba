package mem

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/mycorrizal/mycorrizal/ports"
)

// DefaultWindow is the receive window of a stream direction when
// Config.Window is zero: the bytes buffered before Write blocks.
const DefaultWindow = 256 << 10

// MaxWindow is the largest Config.Window accepted.
const MaxWindow = 1 << 30

// AcceptBacklog is how many opened streams wait for Accept before Open
// blocks.
const AcceptBacklog = 128

// ErrAddrInUse is returned by Listen when a live transport already listens
// on the network as the same node.
var ErrAddrInUse = errors.New("mem: address in use")

// Config configures a Transport.
type Config struct {
	// Window is the number of bytes a stream direction towards this
	// transport buffers before the peer's Write blocks (flow control). Zero
	// means DefaultWindow; it must not be negative nor exceed MaxWindow.
	Window int
}

// Transport is an in-memory ports.Transport on a Network. Make it with New.
// It is safe for concurrent use and starts no goroutines.
type Transport struct {
	net    *Network
	window int

	acceptQ chan *stream  // streams opened to us, not yet accepted; bounded
	done    chan struct{} // closed by Close

	mu        sync.Mutex
	self      ports.NodeID
	addr      string
	listening bool
	closed    bool
	streams   map[*stream]struct{} // live local ends, removed when finished
}

var (
	_ ports.Transport  = (*Transport)(nil)
	_ ports.PeerCloser = (*Transport)(nil)
)

// New returns a transport on n. It does not listen until Listen.
func New(n *Network, cfg Config) (*Transport, error) {
	if n == nil {
		return nil, fmt.Errorf("mem: network is nil: %w", ports.ErrInvalidConfig)
	}
	switch {
	case cfg.Window == 0:
		cfg.Window = DefaultWindow
	case cfg.Window < 0 || cfg.Window > MaxWindow:
		return nil, fmt.Errorf("mem: Window %d outside 1..%d: %w", cfg.Window, MaxWindow, ports.ErrInvalidConfig)
	}
	return &Transport{
		net:     n,
		window:  cfg.Window,
		acceptQ: make(chan *stream, AcceptBacklog),
		done:    make(chan struct{}),
		streams: make(map[*stream]struct{}),
	}, nil
}

// Listen registers the transport on its network as self and returns its
// address, Addr(self). It fails with ErrAddrInUse if a live transport
// already listens as self, and when called twice or after Close.
func (t *Transport) Listen(ctx context.Context, self ports.NodeID) (string, error) {
	if err := ctx.Err(); err != nil {
		return "", fmt.Errorf("mem: listen: %w", err)
	}
	if self == "" || len(self) > ports.MaxNodeIDLen {
		return "", fmt.Errorf("mem: listen: node ID must have 1..%d bytes: %w", ports.MaxNodeIDLen, ports.ErrInvalidConfig)
	}
	addr := Addr(self)

	t.mu.Lock()
	defer t.mu.Unlock()
	switch {
	case t.closed:
		return "", fmt.Errorf("mem: listen: %w", ports.ErrClosed)
	case t.listening:
		return "", fmt.Errorf("mem: listen as %s: already listening as %s", self, t.self)
	}
	// self is set before the transport becomes reachable: dialers read it
	// without t.mu once they found t on the network.
	t.self, t.addr = self, addr
	if err := t.net.register(addr, t); err != nil {
		t.self, t.addr = "", ""
		return "", fmt.Errorf("mem: listen as %s: %w", self, err)
	}
	t.listening = true
	return addr, nil
}

// Accept returns the next stream a peer opened. It blocks until one
// arrives, ctx ends, or the transport is closed (then the error wraps
// ports.ErrClosed). Before Listen it fails with ports.ErrNotStarted.
func (t *Transport) Accept(ctx context.Context) (ports.Stream, error) {
	t.mu.Lock()
	listening, closed := t.listening, t.closed
	t.mu.Unlock()
	switch {
	case closed:
		return nil, fmt.Errorf("mem: accept: %w", ports.ErrClosed)
	case !listening:
		return nil, fmt.Errorf("mem: accept: %w", ports.ErrNotStarted)
	}
	select {
	case s := <-t.acceptQ:
		if isClosed(t.done) {
			return nil, fmt.Errorf("mem: accept: %w", ports.ErrClosed)
		}
		return s, nil
	case <-t.done:
		return nil, fmt.Errorf("mem: accept: %w", ports.ErrClosed)
	case <-ctx.Done():
		return nil, fmt.Errorf("mem: accept: %w", ctx.Err())
	}
}

// Open opens a stream to peer listening at addr. It fails with an error
// wrapping ports.ErrUnreachable when nothing listens at addr or the link
// between this node and the one at addr is down in either direction (the
// handshake needs both), and with one wrapping ports.ErrUnauthenticated
// when the node at addr is not peer. It blocks while the peer's accept
// backlog is full, until ctx ends. Before Listen it fails with
// ports.ErrNotStarted, since the transport has no identity to prove yet.
func (t *Transport) Open(ctx context.Context, peer ports.NodeID, addr string) (ports.Stream, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("mem: open %s: %w", peer, err)
	}
	t.mu.Lock()
	self, listening, closed := t.self, t.listening, t.closed
	t.mu.Unlock()
	switch {
	case closed:
		return nil, fmt.Errorf("mem: open %s: %w", peer, ports.ErrClosed)
	case !listening:
		return nil, fmt.Errorf("mem: open %s: %w", peer, ports.ErrNotStarted)
	}

	dst := t.net.lookup(addr)
	if dst == nil {
		return nil, fmt.Errorf("mem: open %s: nothing listens at %q: %w", peer, addr, ports.ErrUnreachable)
	}
	proven := dst.self // immutable once listening
	if t.net.link(self, proven).Down || t.net.link(proven, self).Down {
		return nil, fmt.Errorf("mem: open %s: link to %q is down: %w", peer, addr, ports.ErrUnreachable)
	}
	if proven != peer {
		return nil, fmt.Errorf("mem: open %s: node at %q proves identity %q: %w", peer, addr, proven, ports.ErrUnauthenticated)
	}

	c := newConn(t.net, t, self, dst, proven)
	local, remote := &c.ends[0], &c.ends[1]
	if !t.add(local) {
		return nil, fmt.Errorf("mem: open %s: %w", peer, ports.ErrClosed)
	}
	if !dst.add(remote) {
		c.reset(0, errResetLocal, errResetRemote)
		return nil, fmt.Errorf("mem: open %s: node at %q closed: %w", peer, addr, ports.ErrUnreachable)
	}

	select {
	case dst.acceptQ <- remote:
		return t.opened(local, dst, peer, addr)
	default:
	}
	select {
	case dst.acceptQ <- remote:
		return t.opened(local, dst, peer, addr)
	case <-ctx.Done():
		c.reset(0, errResetLocal, errResetRemote)
		return nil, fmt.Errorf("mem: open %s: accept backlog full: %w", peer, ctx.Err())
	case <-dst.done:
		c.reset(0, errResetLocal, errResetRemote)
		return nil, fmt.Errorf("mem: open %s: node at %q closed: %w", peer, addr, ports.ErrUnreachable)
	case <-t.done:
		c.reset(0, errResetLocal, errResetRemote)
		return nil, fmt.Errorf("mem: open %s: %w", peer, ports.ErrClosed)
	}
}

// opened returns a stream whose far end is in the peer's backlog, unless
// either transport was closed meanwhile (Close reset the stream already).
func (t *Transport) opened(s *stream, dst *Transport, peer ports.NodeID, addr string) (ports.Stream, error) {
	switch {
	case isClosed(t.done):
		return nil, fmt.Errorf("mem: open %s: %w", peer, ports.ErrClosed)
	case isClosed(dst.done):
		return nil, fmt.Errorf("mem: open %s: node at %q closed: %w", peer, addr, ports.ErrUnreachable)
	}
	return s, nil
}

// ClosePeer resets every stream between this transport and peer, as
// closing the connection to it does on QUIC. Later Opens to peer work.
func (t *Transport) ClosePeer(peer ports.NodeID) error {
	t.mu.Lock()
	var victims []*stream
	for s := range t.streams {
		if s.peer == peer {
			victims = append(victims, s)
		}
	}
	t.mu.Unlock()
	for _, s := range victims {
		s.c.reset(s.side, errResetPeerClosedLocal, errResetPeerClosedRemote)
	}
	return nil
}

// Close stops listening, fails pending and later Accepts with ports.ErrClosed
// and resets every stream of this transport: the peers' Reads and Writes
// fail with an error wrapping ports.ErrStreamReset and ports.ErrPeerGone, as
// when a node crashes. It is idempotent and returns at once (there are no
// goroutines to wait for).
func (t *Transport) Close() error {
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return nil
	}
	t.closed = true
	close(t.done)
	streams := t.streams
	t.streams = nil
	listening, addr := t.listening, t.addr
	t.mu.Unlock()

	if listening {
		t.net.unregister(addr, t)
	}
	for s := range streams {
		s.c.reset(s.side, errResetTransportClosed, errResetPeerCrashed)
	}
	for {
		select {
		case <-t.acceptQ: // already reset above: it was registered
		default:
			return nil
		}
	}
}

// add registers a local stream end; false once the transport is closed.
func (t *Transport) add(s *stream) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return false
	}
	t.streams[s] = struct{}{}
	return true
}

// remove forgets a finished local stream end.
func (t *Transport) remove(s *stream) {
	t.mu.Lock()
	delete(t.streams, s)
	t.mu.Unlock()
}
