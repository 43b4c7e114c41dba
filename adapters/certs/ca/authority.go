package ca

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/url"
	"strings"
	"time"

	"github.com/mycorrizal/mycorrizal/ports"
)

// Leaf certificates start this long before the moment they are minted, so
// a peer whose clock is slightly behind accepts them at once.
const clockSkew = time.Minute

// minRSABits is the smallest RSA CA key accepted.
const minRSABits = 2048

// Authority is a parsed certificate authority: its certificate and the
// private key that signs with it. It mints node certificates (Mint) and
// gives the pool that trusts them (Pool). It is immutable and safe for
// concurrent use.
//
// Every CA-backed CertSource mints through an Authority, so all of them
// produce the same kind of leaf: see Mint.
type Authority struct {
	cert   *x509.Certificate
	chain  [][]byte // DER: cert, then any further certificates given with it
	signer crypto.Signer
	pool   *x509.CertPool
}

// ParseAuthority parses a CA certificate and its private key from PEM and
// validates them. It is the entry point for CA-backed sources that obtain
// the CA elsewhere (a vault, a secret store); pass the result to
// NewFromAuthority.
//
// certPEM holds the CA certificate as its first CERTIFICATE block; further
// CERTIFICATE blocks (the CA's own issuers, when it is an intermediate) are
// appended to every minted chain. keyPEM holds the CA's private key as a
// PKCS#1 "RSA PRIVATE KEY", a SEC1 "EC PRIVATE KEY" or a PKCS#8 "PRIVATE
// KEY" (RSA, ECDSA or Ed25519) block; other blocks, such as "EC
// PARAMETERS" or certificates, are skipped, so one combined file may be
// passed as both arguments. Encrypted keys are not supported.
//
// The certificate must be a CA (basic constraints CA:TRUE), have the
// certSign key usage, be valid now, and match the key. Every failure is an
// error wrapping ports.ErrInvalidConfig that names the problem.
func ParseAuthority(certPEM, keyPEM []byte) (*Authority, error) {
	return parseAuthority(certPEM, keyPEM, "", "", time.Now())
}

// parseAuthority is ParseAuthority with the sources of the PEM named in
// error messages (certFrom, keyFrom: "" or a description such as
// "CACertFile /etc/ca.pem") and the validity checked at now.
func parseAuthority(certPEM, keyPEM []byte, certFrom, keyFrom string, now time.Time) (*Authority, error) {
	certs, err := parseCertificates(certPEM)
	if err != nil {
		return nil, fmt.Errorf("ca: CA certificate%s: %w", from(certFrom), err)
	}
	signer, err := parsePrivateKey(keyPEM)
	if err != nil {
		return nil, fmt.Errorf("ca: CA key%s: %w", from(keyFrom), err)
	}
	a, err := newAuthority(certs, signer)
	if err != nil {
		if errors.Is(err, errKeyMismatch) {
			return nil, fmt.Errorf("ca: CA key%s: %w", from(keyFrom), err)
		}
		return nil, fmt.Errorf("ca: CA certificate%s: %w", from(certFrom), err)
	}
	if err := a.checkValid(now); err != nil {
		return nil, fmt.Errorf("ca: CA certificate%s: %w", from(certFrom), err)
	}
	return a, nil
}

func from(src string) string {
	if src == "" {
		return ""
	}
	return " (" + src + ")"
}

var errKeyMismatch = errors.New("key does not match")

// newAuthority validates certs[0] as a CA signed for by signer.
func newAuthority(certs []*x509.Certificate, signer crypto.Signer) (*Authority, error) {
	cert := certs[0]
	name := cert.Subject.String()
	if !cert.BasicConstraintsValid || !cert.IsCA {
		return nil, fmt.Errorf("%q is not a CA certificate (basic constraints CA:TRUE missing): %w", name, ports.ErrInvalidConfig)
	}
	if cert.KeyUsage&x509.KeyUsageCertSign == 0 {
		return nil, fmt.Errorf("%q lacks the certSign key usage, so it cannot sign certificates: %w", name, ports.ErrInvalidConfig)
	}
	pub, ok := signer.Public().(interface{ Equal(crypto.PublicKey) bool })
	if !ok || !pub.Equal(cert.PublicKey) {
		return nil, fmt.Errorf("%w the public key of CA certificate %q: %w", errKeyMismatch, name, ports.ErrInvalidConfig)
	}
	a := &Authority{cert: cert, signer: signer, pool: x509.NewCertPool()}
	for _, c := range certs {
		a.chain = append(a.chain, c.Raw)
	}
	a.pool.AddCert(cert)
	return a, nil
}

// checkValid reports whether the CA is valid at now.
func (a *Authority) checkValid(now time.Time) error {
	name := a.cert.Subject.String()
	if now.Before(a.cert.NotBefore) {
		return fmt.Errorf("%q is not valid before %s: %w", name, a.cert.NotBefore.UTC().Format(time.RFC3339), ports.ErrInvalidConfig)
	}
	if !now.Before(a.cert.NotAfter) {
		return fmt.Errorf("%q expired at %s: %w", name, a.cert.NotAfter.UTC().Format(time.RFC3339), ports.ErrInvalidConfig)
	}
	return nil
}

// parseCertificates returns the CERTIFICATE blocks of data, in order,
// skipping blocks of other types.
func parseCertificates(data []byte) ([]*x509.Certificate, error) {
	var certs []*x509.Certificate
	for rest := data; ; {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		if b.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, fmt.Errorf("certificate %d: %w: %w", len(certs)+1, err, ports.ErrInvalidConfig)
		}
		certs = append(certs, c)
	}
	if len(certs) == 0 {
		return nil, fmt.Errorf("no PEM CERTIFICATE block found: %w", ports.ErrInvalidConfig)
	}
	return certs, nil
}

// parsePrivateKey returns the first private key of data: PKCS#1 RSA, SEC1
// EC or PKCS#8 (RSA, ECDSA, Ed25519). Blocks of other types are skipped.
func parsePrivateKey(data []byte) (crypto.Signer, error) {
	var skipped []string
	for rest := data; ; {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		var (
			key any
			err error
		)
		switch b.Type {
		case "RSA PRIVATE KEY", "EC PRIVATE KEY", "PRIVATE KEY":
			if strings.Contains(b.Headers["Proc-Type"], "ENCRYPTED") {
				return nil, fmt.Errorf("%s block is encrypted; decrypt it first: %w", b.Type, ports.ErrInvalidConfig)
			}
		case "ENCRYPTED PRIVATE KEY":
			return nil, fmt.Errorf("ENCRYPTED PRIVATE KEY is not supported; decrypt it first: %w", ports.ErrInvalidConfig)
		default:
			skipped = append(skipped, b.Type)
			continue
		}
		switch b.Type {
		case "RSA PRIVATE KEY":
			key, err = x509.ParsePKCS1PrivateKey(b.Bytes)
		case "EC PRIVATE KEY":
			key, err = x509.ParseECPrivateKey(b.Bytes)
		default:
			key, err = x509.ParsePKCS8PrivateKey(b.Bytes)
		}
		if err != nil {
			return nil, fmt.Errorf("parse %s block: %w: %w", b.Type, err, ports.ErrInvalidConfig)
		}
		return checkSigner(key)
	}
	msg := "no PEM private key block (RSA PRIVATE KEY, EC PRIVATE KEY or PRIVATE KEY) found"
	if len(skipped) > 0 {
		msg += " (skipped: " + strings.Join(skipped, ", ") + ")"
	}
	return nil, fmt.Errorf("%s: %w", msg, ports.ErrInvalidConfig)
}

// checkSigner accepts the key types and sizes x509 can sign with.
func checkSigner(key any) (crypto.Signer, error) {
	switch k := key.(type) {
	case *rsa.PrivateKey:
		if n := k.N.BitLen(); n < minRSABits {
			return nil, fmt.Errorf("RSA key of %d bits is too small (want at least %d): %w", n, minRSABits, ports.ErrInvalidConfig)
		}
		return k, nil
	case *ecdsa.PrivateKey:
		switch k.Curve {
		case elliptic.P256(), elliptic.P384(), elliptic.P521():
			return k, nil
		}
		return nil, fmt.Errorf("ECDSA curve %s is not supported (want P-256, P-384 or P-521): %w", k.Curve.Params().Name, ports.ErrInvalidConfig)
	case ed25519.PrivateKey:
		return k, nil
	default:
		return nil, fmt.Errorf("key type %T cannot sign certificates (want RSA, ECDSA or Ed25519): %w", key, ports.ErrInvalidConfig)
	}
}

// Certificate returns the CA certificate. The caller must not modify it.
func (a *Authority) Certificate() *x509.Certificate { return a.cert }

// Pool returns a new pool holding the CA certificate: the trust anchor for
// every certificate this Authority mints. The caller owns the pool and may
// add to it.
func (a *Authority) Pool() *x509.CertPool { return a.pool.Clone() }

// Mint returns a new certificate for node id, signed by the CA, valid from
// now-1m until now+validity or the CA's own expiry, whichever comes first:
//
//   - a fresh ECDSA P-256 key;
//   - subject CN = id and the URI SAN ports.NodeIDURI(id), so
//     ports.CertNodeID gives id back;
//   - hosts, when given, as DNS name or IP address SANs;
//   - key usage digitalSignature, extended key usages serverAuth and
//     clientAuth (one certificate serves both sides of mutual TLS);
//   - a random 128-bit serial number.
//
// The result has Leaf set and its chain is the leaf followed by the CA (and
// any further certificates given with it). It fails with an error wrapping
// ports.ErrInvalidConfig for an empty or too long id, a validity that is
// not positive, an empty host, or a CA that has expired at now.
func (a *Authority) Mint(id ports.NodeID, validity time.Duration, hosts []string, now time.Time) (*tls.Certificate, error) {
	if err := checkNodeID(id); err != nil {
		return nil, fmt.Errorf("ca: mint: %w", err)
	}
	if validity <= 0 {
		return nil, fmt.Errorf("ca: mint for %s: validity %s is not positive: %w", id, validity, ports.ErrInvalidConfig)
	}
	notAfter := now.Add(validity)
	if a.cert.NotAfter.Before(notAfter) {
		notAfter = a.cert.NotAfter
	}
	if !notAfter.After(now) {
		return nil, fmt.Errorf("ca: mint for %s: CA %q expired at %s: %w", id, a.cert.Subject.String(), a.cert.NotAfter.UTC().Format(time.RFC3339), ports.ErrInvalidConfig)
	}
	serial, err := randomSerial()
	if err != nil {
		return nil, fmt.Errorf("ca: mint for %s: %w", id, err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: string(id)},
		URIs:                  []*url.URL{ports.NodeIDURI(id)},
		NotBefore:             now.Add(-clockSkew),
		NotAfter:              notAfter,
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		BasicConstraintsValid: true,
	}
	for _, h := range hosts {
		switch ip := net.ParseIP(h); {
		case h == "":
			return nil, fmt.Errorf("ca: mint for %s: empty host name: %w", id, ports.ErrInvalidConfig)
		case ip != nil:
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		default:
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("ca: mint for %s: generate key: %w", id, err)
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, a.cert, &key.PublicKey, a.signer)
	if err != nil {
		return nil, fmt.Errorf("ca: mint for %s: sign: %w", id, err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("ca: mint for %s: parse minted certificate: %w", id, err)
	}
	chain := make([][]byte, 0, 1+len(a.chain))
	chain = append(chain, der)
	chain = append(chain, a.chain...)
	return &tls.Certificate{Certificate: chain, PrivateKey: key, Leaf: leaf}, nil
}

// checkNodeID accepts the IDs ports.CertNodeID can give back.
func checkNodeID(id ports.NodeID) error {
	if id == "" || len(id) > ports.MaxNodeIDLen {
		return fmt.Errorf("node ID %q must be 1 to %d bytes: %w", id, ports.MaxNodeIDLen, ports.ErrInvalidConfig)
	}
	return nil
}

// randomSerial returns a random, positive 128-bit serial number.
func randomSerial() (*big.Int, error) {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return nil, fmt.Errorf("serial number: %w", err)
	}
	n := new(big.Int).SetBytes(b[:])
	if n.Sign() == 0 {
		n.SetInt64(1)
	}
	return n, nil
}

// GenerateCA creates a self-signed CA: a fresh ECDSA P-256 key and a
// certificate with subject CN = commonName, valid from now-1h for validity,
// with key usages certSign, cRLSign and digitalSignature and a path length
// of zero (it signs leaves, not other CAs). It returns both as PEM: the
// certificate as a CERTIFICATE block, the key as a PKCS#8 PRIVATE KEY block,
// ready for ParseAuthority or Config.CACertPEM/CAKeyPEM.
//
// Keep keyPEM secret: whoever holds it can mint certificates for any node.
func GenerateCA(commonName string, validity time.Duration, now time.Time) (certPEM, keyPEM []byte, err error) {
	if validity <= 0 {
		return nil, nil, fmt.Errorf("ca: generate CA: validity %s is not positive: %w", validity, ports.ErrInvalidConfig)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("ca: generate CA key: %w", err)
	}
	keyPEM, err = encodeKey(key)
	if err != nil {
		return nil, nil, fmt.Errorf("ca: generate CA: %w", err)
	}
	certPEM, err = selfSignCA(key, commonName, validity, now)
	if err != nil {
		return nil, nil, err
	}
	return certPEM, keyPEM, nil
}

// selfSignCA returns the PEM of a self-signed CA certificate for key.
func selfSignCA(key crypto.Signer, commonName string, validity time.Duration, now time.Time) ([]byte, error) {
	serial, err := randomSerial()
	if err != nil {
		return nil, fmt.Errorf("ca: generate CA: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: commonName},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(validity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, fmt.Errorf("ca: generate CA certificate: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), nil
}

// encodeKey returns key as a PKCS#8 PRIVATE KEY PEM block.
func encodeKey(key any) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("encode private key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

// CertificatePEM encodes a certificate, such as one Mint returned, as PEM:
// certPEM holds its chain as CERTIFICATE blocks (leaf first), keyPEM its
// private key as a PKCS#8 PRIVATE KEY block. Use it to write minted
// certificates to files, for example for a file-based CertSource.
func CertificatePEM(c *tls.Certificate) (certPEM, keyPEM []byte, err error) {
	if c == nil || len(c.Certificate) == 0 || c.PrivateKey == nil {
		return nil, nil, fmt.Errorf("ca: encode certificate: no certificate or key: %w", ports.ErrInvalidConfig)
	}
	for _, der := range c.Certificate {
		certPEM = append(certPEM, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})...)
	}
	keyPEM, err = encodeKey(c.PrivateKey)
	if err != nil {
		return nil, nil, fmt.Errorf("ca: encode certificate: %w", err)
	}
	return certPEM, keyPEM, nil
}
