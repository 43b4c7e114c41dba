package quic

import (
	"crypto/x509"

	"github.com/mycorrizal/mycorrizal/ports"
)

// PeerCertificate returns the verified leaf certificate the peer of s
// presented on the connection s belongs to.
func PeerCertificate(s ports.Stream) *x509.Certificate {
	certs := s.(*stream).c.qc.ConnectionState().TLS.PeerCertificates
	if len(certs) == 0 {
		return nil
	}
	return certs[0]
}

// Conns returns how many live connections t keeps with peer.
func Conns(t *Transport, peer ports.NodeID) int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.peers[peer])
}

// DialEntries returns the size of t's dial table.
func DialEntries(t *Transport) int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.dials)
}

// Streams returns how many streams t tracks for the idle sweeper.
func Streams(t *Transport) int {
	t.mu.Lock()
	var conns []*conn
	for _, list := range t.peers {
		conns = append(conns, list...)
	}
	t.mu.Unlock()
	n := 0
	for _, c := range conns {
		c.mu.Lock()
		n += len(c.streams)
		c.mu.Unlock()
	}
	return n
}

// Crash stops t as a crashed process would: its connections vanish without
// telling the peers, then it releases everything.
func Crash(t *Transport) {
	t.mu.Lock()
	qt := t.qt
	t.mu.Unlock()
	if qt != nil {
		_ = qt.Close()
	}
	_ = t.Close()
}
