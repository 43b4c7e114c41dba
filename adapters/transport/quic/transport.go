package quic

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/quic-go/quic-go"

	"github.com/mycorrizal/mycorrizal/ports"
)

// Transport is a ports.Transport and ports.PeerCloser on QUIC with mutual
// TLS. Make it with New. It is safe for concurrent use.
type Transport struct {
	cfg   Config
	qconf *quic.Config
	log   *slog.Logger

	ctx    context.Context // ends at Close: stops dials, accept loops, the sweeper
	cancel context.CancelFunc

	acceptQ chan *stream // streams peers opened, not yet accepted; bounded
	epoch   atomic.Uint32
	wg      sync.WaitGroup // every goroutine of the transport

	mu        sync.Mutex
	listening bool
	closed    bool
	closeDone chan struct{} // closed once Close finished
	self      ports.NodeID
	addr      string // advertised
	v4        bool   // the socket is IPv4-only
	udp       *net.UDPConn
	qt        *quic.Transport
	ln        *quic.Listener
	peers     map[ports.NodeID][]*conn // live connections by proven peer, oldest first
	dials     map[dialKey]*dialEntry   // bounded by cfg.MaxDialEntries
}

var (
	_ ports.Transport  = (*Transport)(nil)
	_ ports.PeerCloser = (*Transport)(nil)
)

// New validates cfg, applies defaults and returns a transport that does
// not listen yet. Configuration errors wrap ports.ErrInvalidConfig and
// name the field.
func New(cfg Config) (*Transport, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Transport{
		cfg: cfg,
		qconf: &quic.Config{
			HandshakeIdleTimeout:           cfg.HandshakeTimeout,
			MaxIdleTimeout:                 cfg.MaxIdleTimeout,
			KeepAlivePeriod:                cfg.KeepAlivePeriod,
			MaxIncomingStreams:             int64(cfg.MaxIncomingStreams),
			MaxIncomingUniStreams:          1, // the server's confirmation stream
			InitialStreamReceiveWindow:     initialStreamWindow,
			MaxStreamReceiveWindow:         maxStreamWindow,
			InitialConnectionReceiveWindow: initialConnWindow,
			MaxConnectionReceiveWindow:     maxConnWindow,
		},
		log:       cfg.Logger,
		ctx:       ctx,
		cancel:    cancel,
		acceptQ:   make(chan *stream, AcceptBacklog),
		closeDone: make(chan struct{}),
		peers:     make(map[ports.NodeID][]*conn),
		dials:     make(map[dialKey]*dialEntry),
	}, nil
}

// Listen binds Config.ListenAddr, starts accepting connections for the
// local node self, and returns the address peers should dial:
// Config.AdvertiseAddr if set, else the bound address (port 0 resolved).
// It fails with an error wrapping ports.ErrInvalidConfig when the
// CertSource's certificate does not prove self, or when the bound host is
// unspecified (0.0.0.0, ::) and no AdvertiseAddr says what to advertise.
// It fails when called twice or after Close. ctx bounds fetching the
// certificate.
func (t *Transport) Listen(ctx context.Context, self ports.NodeID) (string, error) {
	if err := ctx.Err(); err != nil {
		return "", fmt.Errorf("quic: listen: %w", err)
	}
	if self == "" || len(self) > ports.MaxNodeIDLen {
		return "", fmt.Errorf("quic: listen: node ID must have 1..%d bytes: %w", ports.MaxNodeIDLen, ports.ErrInvalidConfig)
	}
	cert, err := t.cfg.Certs.Certificate(ctx)
	if err != nil {
		return "", fmt.Errorf("quic: listen as %s: certificate: %w", self, err)
	}
	if cert == nil || len(cert.Certificate) == 0 {
		return "", fmt.Errorf("quic: listen as %s: the CertSource returned no certificate: %w", self, ports.ErrInvalidConfig)
	}
	leaf, err := leafOf(cert)
	if err != nil {
		return "", fmt.Errorf("quic: listen as %s: certificate: %v: %w", self, err, ports.ErrInvalidConfig)
	}
	if id, err := ports.CertNodeID(leaf); err != nil || id != self {
		return "", fmt.Errorf("quic: listen as %s: the certificate proves %q (%v), not this node: %w", self, id, err, ports.ErrInvalidConfig)
	}
	host, _, _ := splitHostPort(t.cfg.ListenAddr) // validated by New
	if t.cfg.AdvertiseAddr == "" && isUnspecifiedHost(host) {
		return "", fmt.Errorf("quic: listen as %s: Config.ListenAddr %q binds every interface; set Config.AdvertiseAddr to the address peers should dial: %w",
			self, t.cfg.ListenAddr, ports.ErrInvalidConfig)
	}

	t.mu.Lock()
	defer t.mu.Unlock()
	switch {
	case t.closed:
		return "", fmt.Errorf("quic: listen: %w", ports.ErrClosed)
	case t.listening:
		return "", fmt.Errorf("quic: listen as %s: already listening as %s", self, t.self)
	}
	laddr, err := net.ResolveUDPAddr("udp", t.cfg.ListenAddr)
	if err != nil {
		return "", fmt.Errorf("quic: listen as %s: resolve %q: %w", self, t.cfg.ListenAddr, err)
	}
	udp, err := net.ListenUDP("udp", laddr)
	if err != nil {
		return "", fmt.Errorf("quic: listen as %s: %w", self, err)
	}
	bound := udp.LocalAddr().(*net.UDPAddr)
	addr := bound.String()
	if t.cfg.AdvertiseAddr != "" {
		ahost, aport, _ := splitHostPort(t.cfg.AdvertiseAddr) // validated by New
		if aport == 0 {
			aport = bound.Port
		}
		addr = net.JoinHostPort(ahost, strconv.Itoa(aport))
	}
	qt := &quic.Transport{Conn: udp}
	if t.cfg.StatelessResetKey != nil {
		key := quic.StatelessResetKey(*t.cfg.StatelessResetKey)
		qt.StatelessResetKey = &key
	}
	ln, err := qt.Listen(t.serverTLS(), t.qconf)
	if err != nil {
		_ = qt.Close()
		_ = udp.Close()
		return "", fmt.Errorf("quic: listen as %s: %w", self, err)
	}
	t.self, t.addr, t.udp, t.qt, t.ln = self, addr, udp, qt, ln
	t.v4 = bound.IP.To4() != nil
	t.listening = true
	t.wg.Add(2)
	go t.acceptConns(ln)
	go t.sweep()
	t.log.Info("quic: listening", "node", string(self), "bound", bound.String(), "advertised", addr)
	return addr, nil
}

// Accept returns the next stream a peer opened. It blocks until one
// arrives, ctx ends, or the transport is closed (then the error wraps
// ports.ErrClosed). Before Listen it fails with ports.ErrNotStarted.
//
// A stream reaches Accept with its first bytes: QUIC announces a stream
// to the peer only when data (or FIN) is sent on it.
func (t *Transport) Accept(ctx context.Context) (ports.Stream, error) {
	t.mu.Lock()
	listening, closed := t.listening, t.closed
	t.mu.Unlock()
	switch {
	case closed:
		return nil, fmt.Errorf("quic: accept: %w", ports.ErrClosed)
	case !listening:
		return nil, fmt.Errorf("quic: accept: %w", ports.ErrNotStarted)
	}
	select {
	case s := <-t.acceptQ:
		if t.ctx.Err() != nil {
			_ = s.Reset()
			return nil, fmt.Errorf("quic: accept: %w", ports.ErrClosed)
		}
		return s, nil
	case <-t.ctx.Done():
		return nil, fmt.Errorf("quic: accept: %w", ports.ErrClosed)
	case <-ctx.Done():
		return nil, fmt.Errorf("quic: accept: %w", ctx.Err())
	}
}

// Open opens a stream to peer, dialing addr if no live connection with
// peer for addr exists (see the package documentation for reuse, backoff
// and identity rules). It fails with an error wrapping
// ports.ErrUnauthenticated when the node at addr proves another identity
// or refuses this node's certificate, with one wrapping
// ports.ErrUnreachable when the handshake fails or times out (at once
// during the backoff after a failed dial), with the ctx error when ctx
// ends first, and with ports.ErrClosed after Close. Before Listen it fails
// with ports.ErrNotStarted. It blocks while the peer's stream limit is
// reached, until ctx ends.
func (t *Transport) Open(ctx context.Context, peer ports.NodeID, addr string) (ports.Stream, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("quic: open %s: %w", peer, err)
	}
	t.mu.Lock()
	listening, closed := t.listening, t.closed
	t.mu.Unlock()
	switch {
	case closed:
		return nil, fmt.Errorf("quic: open %s: %w", peer, ports.ErrClosed)
	case !listening:
		return nil, fmt.Errorf("quic: open %s: %w", peer, ports.ErrNotStarted)
	case peer == "":
		return nil, fmt.Errorf("quic: open: empty node ID: %w", ports.ErrUnauthenticated)
	}
	for attempt := 0; ; attempt++ {
		c, err := t.connFor(ctx, peer, addr)
		if err != nil {
			return nil, err
		}
		qs, err := c.qc.OpenStreamSync(ctx)
		if err == nil {
			if s := c.track(t, qs); s != nil {
				return s, nil
			}
			qs.CancelWrite(codeStreamReset)
			qs.CancelRead(codeStreamReset)
			err = errors.New("connection closed")
		}
		if ctxErr := ctx.Err(); ctxErr != nil {
			return nil, fmt.Errorf("quic: open %s: %w", peer, ctxErr)
		}
		// The connection died since it was looked up: forget it and dial
		// once more.
		t.dropConn(c)
		if attempt > 0 || t.ctx.Err() != nil {
			if t.ctx.Err() != nil {
				return nil, fmt.Errorf("quic: open %s: %w", peer, ports.ErrClosed)
			}
			return nil, fmt.Errorf("quic: open %s at %s: %w: %w", peer, addr, ports.ErrUnreachable, err)
		}
	}
}

// ClosePeer closes every connection with peer (each side's streams on
// them fail with errors wrapping ports.ErrStreamReset and
// ports.ErrPeerGone). Later Opens dial again. It does not wait for the
// network.
func (t *Transport) ClosePeer(peer ports.NodeID) error {
	t.mu.Lock()
	conns := t.peers[peer]
	delete(t.peers, peer)
	t.mu.Unlock()
	for _, c := range conns {
		c.kill()
		_ = c.qc.CloseWithError(codePeerClosed, "connection closed")
	}
	if len(conns) > 0 {
		t.log.Debug("quic: closed connections with peer", "peer", string(peer), "connections", len(conns))
	}
	return nil
}

// Close stops listening, closes every connection (the peers' streams fail
// with errors wrapping ports.ErrStreamReset and ports.ErrPeerGone, ours
// with ports.ErrStreamReset and ports.ErrClosed), fails pending and later
// Accepts and Opens with ports.ErrClosed, and returns once every goroutine
// of the transport has ended. It is idempotent.
func (t *Transport) Close() error {
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		<-t.closeDone
		return nil
	}
	t.closed = true
	peers := t.peers
	t.peers = nil
	udp, qt, ln := t.udp, t.qt, t.ln
	t.mu.Unlock()

	t.cancel()
	if ln != nil {
		_ = ln.Close()
	}
	var wg sync.WaitGroup
	for _, conns := range peers {
		for _, c := range conns {
			c.kill()
			wg.Go(func() { _ = c.qc.CloseWithError(codeTransportClosed, "transport closed") })
		}
	}
	wg.Wait()
	var err error
	if qt != nil {
		err = qt.Close() // connections still handshaking, then the receive loop
	}
	if udp != nil {
		if cerr := udp.Close(); err == nil {
			err = cerr
		}
	}
	t.wg.Wait()
	close(t.closeDone)
	if err != nil {
		return fmt.Errorf("quic: close: %w", err)
	}
	return nil
}

// acceptConns registers each connection the listener completed (the
// client's certificate already verified in the handshake).
func (t *Transport) acceptConns(ln *quic.Listener) {
	defer t.wg.Done()
	for {
		qc, err := ln.Accept(t.ctx)
		if err != nil {
			return
		}
		state := qc.ConnectionState().TLS
		var id ports.NodeID
		if len(state.PeerCertificates) > 0 {
			id, err = ports.CertNodeID(state.PeerCertificates[0])
		} else {
			err = errors.New("no client certificate")
		}
		if err != nil { // unreachable: VerifyConnection checked it
			_ = qc.CloseWithError(codeNoIdentity, "no node identity")
			continue
		}
		c := newConn(qc, id, addrString(qc.RemoteAddr()), false)
		t.mu.Lock()
		superseded, ok := t.addConnLocked(c)
		t.mu.Unlock()
		if !ok {
			_ = qc.CloseWithError(codeTransportClosed, "transport closed")
			return
		}
		if superseded != nil {
			_ = superseded.qc.CloseWithError(codeSuperseded, "superseded by a newer connection")
		}
		t.log.Debug("quic: accepted connection", "peer", string(id), "from", c.addr)
	}
}

// addConnLocked registers c and starts its goroutine; false once closed.
// When the peer already has maxConnsPerPeer connections, the oldest is
// forgotten and returned for the caller to close outside t.mu.
func (t *Transport) addConnLocked(c *conn) (superseded *conn, ok bool) {
	if t.closed {
		return nil, false
	}
	list := t.peers[c.peer]
	if len(list) >= maxConnsPerPeer {
		superseded = list[0]
		superseded.kill()
		list = append(list[:0:0], list[1:]...)
	}
	t.peers[c.peer] = append(list, c)
	t.wg.Add(1)
	go t.serveConn(c)
	return superseded, true
}

// findLocked returns the newest live connection with peer whose address
// is addr: one dialed at addr, or one the peer dialed from addr (a node
// dials from its listening socket, so this matches unless NAT or a host
// name differ, in which case a second connection is dialed).
func (t *Transport) findLocked(peer ports.NodeID, addr string) *conn {
	list := t.peers[peer]
	for i := len(list) - 1; i >= 0; i-- {
		if c := list[i]; c.addr == addr && c.alive() {
			return c
		}
	}
	return nil
}

// addrString formats a peer's source address as it would advertise it:
// an IPv4 address seen through a dual-stack socket loses its ::ffff:
// prefix.
func addrString(a net.Addr) string {
	if u, ok := a.(*net.UDPAddr); ok {
		ap := u.AddrPort()
		return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()).String()
	}
	return a.String()
}

// dropConn forgets c; idempotent.
func (t *Transport) dropConn(c *conn) {
	t.mu.Lock()
	list := t.peers[c.peer]
	for i, x := range list {
		if x == c {
			list = append(list[:i:i], list[i+1:]...)
			if len(list) == 0 {
				delete(t.peers, c.peer)
			} else {
				t.peers[c.peer] = list
			}
			break
		}
	}
	t.mu.Unlock()
	c.kill()
}

// serveConn is the one goroutine of a connection: for an accepted
// connection it first sends the confirmation the dialer waits for, then it
// hands the peer's streams to Accept, and forgets the connection when it
// ends (closed by either side, idle timeout, or Close).
func (t *Transport) serveConn(c *conn) {
	defer t.wg.Done()
	defer t.dropConn(c)
	if !c.outbound {
		if us, err := c.qc.OpenUniStream(); err == nil {
			_ = us.Close()
		}
	}
	for {
		qs, err := c.qc.AcceptStream(t.ctx)
		if err != nil {
			if t.ctx.Err() == nil {
				t.log.Debug("quic: connection ended", "peer", string(c.peer), "addr", c.addr, "reason", c.closeReason())
			}
			return
		}
		s := c.track(t, qs)
		if s == nil {
			qs.CancelWrite(codeStreamReset)
			qs.CancelRead(codeStreamReset)
			return
		}
		select {
		case t.acceptQ <- s:
		case <-t.ctx.Done():
			return
		case <-c.qc.Context().Done():
			return
		}
	}
}

// sweep is the idle clock: every quarter of StreamIdleTimeout it advances
// the epoch streams stamp on activity, and resets the streams whose stamp
// is more than four ticks old.
func (t *Transport) sweep() {
	defer t.wg.Done()
	const ticks = 4
	tick := time.NewTicker(max(t.cfg.StreamIdleTimeout/ticks, time.Millisecond))
	defer tick.Stop()
	var conns []*conn
	var idle []*stream
	for {
		select {
		case <-t.ctx.Done():
			return
		case <-tick.C:
		}
		epoch := t.epoch.Add(1)
		conns = conns[:0]
		t.mu.Lock()
		for _, list := range t.peers {
			conns = append(conns, list...)
		}
		t.mu.Unlock()
		idle = idle[:0]
		for _, c := range conns {
			idle = c.idle(epoch, ticks, idle)
		}
		for _, s := range idle {
			s.abort(fReset|fIdle, codeStreamIdle)
		}
		if len(idle) > 0 {
			t.log.Debug("quic: reset idle streams", "streams", len(idle), "timeout", t.cfg.StreamIdleTimeout)
		}
		clear(idle)
		clear(conns)
	}
}
