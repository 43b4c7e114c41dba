package ports

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net/url"
	"strings"
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

// NodeIDURIScheme is the scheme of the URI SAN that names a node in its
// certificate: "mycorrizal://node/<id>" (the ID path-escaped).
const NodeIDURIScheme = "mycorrizal"

// NodeIDURI returns the URI SAN that names id in a node certificate.
func NodeIDURI(id NodeID) *url.URL {
	return &url.URL{Scheme: NodeIDURIScheme, Host: "node", Path: "/" + string(id)}
}

// CertNodeID returns the node ID a verified leaf certificate proves: the
// ID in its "mycorrizal://node/<id>" URI SAN if it has one, else its
// subject common name. Transports call it after verifying the chain against
// the trusted CAs; it does not verify anything itself. It fails with an
// error wrapping ErrUnauthenticated when the certificate names no valid ID
// or more than one.
func CertNodeID(cert *x509.Certificate) (NodeID, error) {
	var id NodeID
	for _, u := range cert.URIs {
		if u.Scheme != NodeIDURIScheme || u.Host != "node" {
			continue
		}
		candidate := NodeID(strings.TrimPrefix(u.Path, "/"))
		if id != "" && candidate != id {
			return "", fmt.Errorf("certificate names two node IDs (%q, %q): %w", id, candidate, ErrUnauthenticated)
		}
		id = candidate
	}
	if id == "" {
		id = NodeID(cert.Subject.CommonName)
	}
	if id == "" || len(id) > MaxNodeIDLen {
		return "", fmt.Errorf("certificate names no node ID of 1 to %d bytes: %w", MaxNodeIDLen, ErrUnauthenticated)
	}
	return id, nil
}
