package quic

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"time"

	"github.com/quic-go/quic-go"

	"github.com/mycorrizal/mycorrizal/ports"
)

// dialKey names the dial state of one (peer, address): concurrent Opens
// with the same key share one dial, and failures back off per key. Keying
// by the claimed peer too means a wrong identity at an address does not
// hold back the right one there.
type dialKey struct {
	peer ports.NodeID
	addr string
}

// dialCall is one dial in flight; done is closed once conn or err is set.
type dialCall struct {
	done chan struct{}
	conn *conn
	err  error
}

// dialEntry is the state of one key in the bounded dial table: a dial in
// flight, or the backoff after failed ones. A successful dial removes it.
type dialEntry struct {
	call     *dialCall // in flight, or nil
	failures int       // consecutive failed dials
	retryAt  time.Time // no new dial before
	lastErr  error
	used     time.Time // last Open that looked it up, for eviction
}

// connFor returns a live connection with peer for addr, dialing one if
// needed (one dial per key at a time, shared by concurrent callers). A
// caller whose ctx ends stops waiting; the dial goes on, bounded by the
// handshake timeout, and its connection is kept for later Opens. During
// the backoff after a failed dial it fails at once, without waiting even
// if ctx would allow it: the caller decides when to come back.
func (t *Transport) connFor(ctx context.Context, peer ports.NodeID, addr string) (*conn, error) {
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return nil, fmt.Errorf("quic: open %s: %w", peer, ports.ErrClosed)
	}
	if c := t.findLocked(peer, addr); c != nil {
		t.mu.Unlock()
		return c, nil
	}
	key := dialKey{peer: peer, addr: addr}
	now := time.Now()
	e := t.dials[key]
	if e == nil {
		if len(t.dials) >= t.cfg.MaxDialEntries && !t.evictDialLocked() {
			t.mu.Unlock()
			return nil, fmt.Errorf("quic: open %s at %s: all %d dial table entries have dials in flight: %w",
				peer, addr, t.cfg.MaxDialEntries, ports.ErrUnreachable)
		}
		e = &dialEntry{}
		t.dials[key] = e
	}
	e.used = now
	if e.call == nil {
		if now.Before(e.retryAt) {
			err := fmt.Errorf("quic: open %s at %s: %w: backing off after %d failed dials, next attempt in %v: %w",
				peer, addr, ports.ErrUnreachable, e.failures, e.retryAt.Sub(now).Round(time.Millisecond), e.lastErr)
			t.mu.Unlock()
			return nil, err
		}
		e.call = &dialCall{done: make(chan struct{})}
		t.wg.Add(1)
		go t.dial(key, e.call)
	}
	call := e.call
	t.mu.Unlock()

	select {
	case <-call.done:
		return call.conn, call.err
	case <-ctx.Done():
		return nil, fmt.Errorf("quic: open %s at %s: waiting for the handshake: %w", peer, addr, ctx.Err())
	}
}

// evictDialLocked forgets the least recently used entry without a dial in
// flight; false if every entry has one.
func (t *Transport) evictDialLocked() bool {
	var oldest dialKey
	var at time.Time
	found := false
	for k, e := range t.dials {
		if e.call == nil && (!found || e.used.Before(at)) {
			oldest, at, found = k, e.used, true
		}
	}
	if found {
		delete(t.dials, oldest)
	}
	return found
}

// dial runs one dial for key and records its outcome.
func (t *Transport) dial(key dialKey, call *dialCall) {
	defer t.wg.Done()
	ctx, cancel := context.WithTimeout(t.ctx, t.cfg.HandshakeTimeout)
	qc, err := t.handshake(ctx, key.peer, key.addr)
	cancel()

	var c, superseded *conn
	t.mu.Lock()
	if err == nil {
		c = newConn(qc, key.peer, key.addr, true)
		var ok bool
		if superseded, ok = t.addConnLocked(c); !ok {
			c, err = nil, fmt.Errorf("quic: dial %s at %s: %w", key.peer, key.addr, ports.ErrClosed)
		}
	}
	if e := t.dials[key]; e != nil { // entries with a dial in flight are never evicted
		e.call = nil
		switch {
		case err == nil:
			delete(t.dials, key)
		case !t.closed:
			e.failures++
			e.retryAt = time.Now().Add(t.backoff(e.failures))
			e.lastErr = err
		}
	}
	t.mu.Unlock()

	if c == nil && qc != nil {
		_ = qc.CloseWithError(codeTransportClosed, "transport closed")
	}
	if superseded != nil {
		_ = superseded.qc.CloseWithError(codeSuperseded, "superseded by a newer connection")
	}
	if err != nil {
		t.log.Debug("quic: dial failed", "peer", string(key.peer), "addr", key.addr, "err", err)
	} else {
		t.log.Debug("quic: connected", "peer", string(key.peer), "addr", key.addr)
	}
	call.conn, call.err = c, err
	close(call.done)
}

// backoff returns the wait after the given number of consecutive failures:
// DialBackoffMin doubled per earlier failure, capped at DialBackoffMax,
// then drawn uniformly from its upper half (jitter keeps nodes that lost a
// peer together from retrying in lockstep).
func (t *Transport) backoff(failures int) time.Duration {
	d := t.cfg.DialBackoffMin
	for i := 1; i < failures && d < t.cfg.DialBackoffMax; i++ {
		d *= 2
	}
	d = min(d, t.cfg.DialBackoffMax)
	if d < 2 {
		return d
	}
	return d/2 + rand.N(d/2)
}

// handshake dials addr and returns a connection on which the peer proved
// to be peer and confirmed it accepted this node's certificate.
func (t *Transport) handshake(ctx context.Context, peer ports.NodeID, addr string) (*quic.Conn, error) {
	raddr, err := t.resolve(ctx, addr)
	if err != nil {
		return nil, fmt.Errorf("quic: dial %s at %s: %w: %w", peer, addr, ports.ErrUnreachable, err)
	}
	qc, err := t.qt.Dial(ctx, raddr, t.clientTLS(peer), t.qconf)
	if err != nil {
		return nil, t.dialErr(peer, addr, err)
	}
	// In TLS 1.3 the client completes its handshake before the server
	// has checked the client's certificate. The server opens a
	// unidirectional stream (empty, FIN) once it has accepted the
	// connection; until it arrives a refused certificate would look like
	// a working connection.
	us, err := qc.AcceptUniStream(ctx)
	if err != nil {
		if qc.Context().Err() != nil {
			err = context.Cause(qc.Context())
		}
		_ = qc.CloseWithError(codeDialAborted, "no confirmation from the server")
		return nil, t.dialErr(peer, addr, err)
	}
	if d, ok := ctx.Deadline(); ok {
		_ = us.SetReadDeadline(d)
	}
	_, _ = us.Read(make([]byte, 1)) // io.EOF at once: completes the stream
	return qc, nil
}

// dialErr classifies a failed dial: ports.ErrUnauthenticated when either
// side refused the other's certificate (as far as the TLS alert tells),
// ports.ErrClosed when this transport closed, else ports.ErrUnreachable
// with the cause.
func (t *Transport) dialErr(peer ports.NodeID, addr string, err error) error {
	switch {
	case errors.Is(err, ports.ErrUnauthenticated):
		return fmt.Errorf("quic: dial %s at %s: %w", peer, addr, err)
	case t.ctx.Err() != nil || errors.Is(err, quic.ErrTransportClosed):
		return fmt.Errorf("quic: dial %s at %s: %w", peer, addr, ports.ErrClosed)
	}
	if te, ok := errors.AsType[*quic.TransportError](err); ok && te.ErrorCode.IsCryptoError() && isCertAlert(uint8(te.ErrorCode-0x100)) {
		return fmt.Errorf("quic: dial %s at %s: certificate refused: %w: %w", peer, addr, ports.ErrUnauthenticated, err)
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("quic: dial %s at %s: %w: no handshake within %v", peer, addr, ports.ErrUnreachable, t.cfg.HandshakeTimeout)
	}
	return fmt.Errorf("quic: dial %s at %s: %w: %w", peer, addr, ports.ErrUnreachable, err)
}

// isCertAlert reports whether a TLS alert says a certificate was refused.
func isCertAlert(alert uint8) bool {
	switch alert {
	case 42, // bad_certificate
		43,  // unsupported_certificate
		44,  // certificate_revoked
		45,  // certificate_expired
		46,  // certificate_unknown
		48,  // unknown_ca
		49,  // access_denied
		116: // certificate_required
		return true
	}
	return false
}

// resolve turns "host:port" into a UDP address of the family the local
// socket can reach.
func (t *Transport) resolve(ctx context.Context, addr string) (*net.UDPAddr, error) {
	host, port, err := splitHostPort(addr)
	if err != nil {
		return nil, err
	}
	if port == 0 {
		return nil, fmt.Errorf("address %q has port 0", addr)
	}
	if ip, err := netip.ParseAddr(host); err == nil {
		if t.v4 {
			ip = ip.Unmap()
		}
		return net.UDPAddrFromAddrPort(netip.AddrPortFrom(ip, uint16(port))), nil
	}
	network := "ip"
	if t.v4 {
		network = "ip4"
	}
	ips, err := net.DefaultResolver.LookupNetIP(ctx, network, host)
	if err != nil {
		return nil, err
	}
	if len(ips) == 0 {
		return nil, fmt.Errorf("no address for %q", host)
	}
	return net.UDPAddrFromAddrPort(netip.AddrPortFrom(ips[0].Unmap(), uint16(port))), nil
}
