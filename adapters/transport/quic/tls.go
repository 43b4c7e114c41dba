package quic

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"time"

	"github.com/mycorrizal/mycorrizal/ports"
)

// ALPN is the TLS application protocol Mycorrizal nodes negotiate; a peer
// that does not offer it fails the handshake.
const ALPN = "mycorrizal"

// certificate returns this node's current certificate from the source,
// bounded by the handshake timeout.
func (t *Transport) certificate(ctx context.Context) (*tls.Certificate, error) {
	if ctx == nil {
		ctx = t.ctx
	}
	ctx, cancel := context.WithTimeout(ctx, t.cfg.HandshakeTimeout)
	defer cancel()
	cert, err := t.cfg.Certs.Certificate(ctx)
	if err != nil {
		return nil, fmt.Errorf("quic: own certificate: %w", err)
	}
	if cert == nil || len(cert.Certificate) == 0 {
		return nil, errors.New("quic: own certificate: the CertSource returned none")
	}
	return cert, nil
}

// serverTLS is the TLS configuration of accepted connections: TLS 1.3, a
// client certificate required and verified by verifyPeer, no session
// tickets (every connection presents and verifies certificates afresh).
func (t *Transport) serverTLS() *tls.Config {
	return &tls.Config{
		MinVersion:             tls.VersionTLS13,
		NextProtos:             []string{ALPN},
		ClientAuth:             tls.RequireAnyClientCert,
		SessionTicketsDisabled: true,
		GetCertificate: func(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
			return t.certificate(hello.Context())
		},
		VerifyConnection: func(cs tls.ConnectionState) error {
			id, err := t.verifyPeer(cs, x509.ExtKeyUsageClientAuth)
			if err != nil {
				t.log.Info("quic: refused a client certificate", "err", err)
				return err
			}
			t.log.Debug("quic: client authenticated", "peer", string(id))
			return nil
		},
	}
}

// clientTLS is the TLS configuration of a dial to peer. The standard
// verification is off (InsecureSkipVerify) because it would check a host
// name and use a fixed pool: verifyPeer does the full chain verification
// against the CAs trusted now, and the proven identity must be peer, so a
// wrong node fails the handshake before it ever sees this node's
// certificate.
func (t *Transport) clientTLS(peer ports.NodeID) *tls.Config {
	return &tls.Config{
		MinVersion:         tls.VersionTLS13,
		NextProtos:         []string{ALPN},
		InsecureSkipVerify: true, // verified in VerifyConnection
		GetClientCertificate: func(req *tls.CertificateRequestInfo) (*tls.Certificate, error) {
			return t.certificate(req.Context())
		},
		VerifyConnection: func(cs tls.ConnectionState) error {
			id, err := t.verifyPeer(cs, x509.ExtKeyUsageServerAuth)
			if err != nil {
				return err
			}
			if id != peer {
				return fmt.Errorf("quic: node proves identity %q, not %q: %w", id, peer, ports.ErrUnauthenticated)
			}
			return nil
		},
	}
}

// verifyPeer verifies the peer's chain against the CAs the CertSource
// trusts now, at the current time, for usage, and returns the node ID the
// leaf proves. Failures wrap ports.ErrUnauthenticated, except a failure to
// get the trusted CAs, which is this node's problem.
func (t *Transport) verifyPeer(cs tls.ConnectionState, usage x509.ExtKeyUsage) (ports.NodeID, error) {
	if len(cs.PeerCertificates) == 0 {
		return "", fmt.Errorf("quic: peer presented no certificate: %w", ports.ErrUnauthenticated)
	}
	ctx, cancel := context.WithTimeout(t.ctx, t.cfg.HandshakeTimeout)
	defer cancel()
	roots, err := t.cfg.Certs.TrustedCAs(ctx)
	if err != nil {
		return "", fmt.Errorf("quic: trusted CAs: %w", err)
	}
	if roots == nil {
		return "", errors.New("quic: trusted CAs: the CertSource returned no pool")
	}
	leaf := cs.PeerCertificates[0]
	opts := x509.VerifyOptions{
		Roots:       roots,
		CurrentTime: time.Now(),
		KeyUsages:   []x509.ExtKeyUsage{usage},
	}
	if len(cs.PeerCertificates) > 1 {
		opts.Intermediates = x509.NewCertPool()
		for _, c := range cs.PeerCertificates[1:] {
			opts.Intermediates.AddCert(c)
		}
	}
	if _, err := leaf.Verify(opts); err != nil {
		return "", fmt.Errorf("quic: peer certificate (serial %s): %w: %w", leaf.SerialNumber, ports.ErrUnauthenticated, err)
	}
	id, err := ports.CertNodeID(leaf)
	if err != nil {
		return "", fmt.Errorf("quic: peer certificate: %w", err)
	}
	return id, nil
}

// leafOf returns the parsed leaf of a tls.Certificate.
func leafOf(cert *tls.Certificate) (*x509.Certificate, error) {
	if cert.Leaf != nil {
		return cert.Leaf, nil
	}
	return x509.ParseCertificate(cert.Certificate[0])
}
