package ports

import (
	"context"
	"crypto/tls"
	"crypto/x509"
)

// CertSource yields this node's certificate and the certificate authorities
// it trusts for mutual TLS. Sources that rotate certificates return the new
// one from Certificate once rotated: transports call it at every handshake,
// so it must be fast (cache, do not mint per call) and safe for concurrent
// use.
type CertSource interface {
	// Certificate returns this node's current certificate chain and key. The
	// leaf must name the node ID (CN or URI SAN). It may block on first use
	// (fetching a CA from a vault, say) until ctx ends.
	Certificate(ctx context.Context) (*tls.Certificate, error)

	// TrustedCAs returns the pool of CAs whose certificates peers must
	// present. It may block on first use until ctx ends.
	TrustedCAs(ctx context.Context) (*x509.CertPool, error)
}
