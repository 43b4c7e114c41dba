// Package ca provides ports.CertSource adapters backed by a certificate
// authority whose private key this node holds: the node mints its own leaf
// certificate from the CA and renews it before it expires, without a
// restart and without a background goroutine.
//
// Three ways in:
//
//   - New: a CA given as PEM bytes or files (Config.CACertPEM/CAKeyPEM or
//     Config.CACertFile/CAKeyFile). This is the "direct CA" of production
//     deployments: every node holds the same CA and proves its node ID with
//     a leaf it minted (CN = node ID, URI SAN ports.NodeIDURI(id)).
//   - NewFromAuthority: the same, for a CA obtained elsewhere (a vault, a
//     secret store) and parsed with ParseAuthority. Other CA-backed sources,
//     such as adapters/certs/onepassword, are built on it.
//   - DevCA: the zero-configuration development default. It creates a CA
//     once in the user's cache directory and shares it between the
//     processes of one machine, so a local cluster just works. It logs a
//     warning at every use: it is not for production.
//
// Authority is the shared minting helper: it parses and validates a CA
// (PKCS#1, PKCS#8 or SEC1 keys; RSA, ECDSA or Ed25519) and mints ECDSA
// P-256 leaves usable for both sides of mutual TLS.
//
// A Source is safe for concurrent use. Certificate is cheap on the hot path
// (an atomic load and a clock read); when the current leaf is within
// Config.RenewBefore of its expiry, one caller mints a new leaf while the
// others keep getting the old, still valid one. Transports call Certificate
// at every handshake, so connections made after a renewal use the new leaf.
package ca
