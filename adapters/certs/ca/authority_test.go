package ca_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mycorrizal/mycorrizal/adapters/certs/ca"
	"github.com/mycorrizal/mycorrizal/ports"
)

func TestKeyFormats(t *testing.T) {
	t.Parallel()
	formats := []keyFormat{rsaPKCS1, rsaPKCS8, ecSEC1, ecSEC1Params, ecPKCS8, ed25519PKCS8}
	for _, f := range formats {
		t.Run(string(f), func(t *testing.T) {
			t.Parallel()
			now := time.Now()
			key := newKey(t, f)
			certPEM := selfSigned(t, caTemplate(now), key)
			keyPEM := encodeKey(t, key, f)

			a, err := ca.ParseAuthority(certPEM, keyPEM)
			if err != nil {
				t.Fatalf("ParseAuthority: %v", err)
			}
			c, err := a.Mint("n1", time.Hour, nil, now)
			if err != nil {
				t.Fatalf("Mint: %v", err)
			}
			verifyLeaf(t, c, a.Pool(), "n1", now)

			// The same through New, from bytes and from files.
			dir := t.TempDir()
			certFile := writeFile(t, dir, "ca.pem", certPEM, 0o644)
			keyFile := writeFile(t, dir, "ca-key.pem", keyPEM, 0o600)
			for name, cfg := range map[string]ca.Config{
				"bytes": {CACertPEM: certPEM, CAKeyPEM: keyPEM},
				"files": {CACertFile: certFile, CAKeyFile: keyFile},
				"mixed": {CACertPEM: certPEM, CAKeyFile: keyFile},
				// PEM fields win over files.
				"bytes over files": {CACertPEM: certPEM, CAKeyPEM: keyPEM, CACertFile: "/nonexistent", CAKeyFile: "/nonexistent"},
			} {
				cfg.NodeID = "n1"
				src, err := ca.New(cfg)
				if err != nil {
					t.Fatalf("New from %s: %v", name, err)
				}
				verifyLeaf(t, mustCert(t, src), mustPool(t, src), "n1", now)
				if !src.CA().Equal(a.Certificate()) {
					t.Errorf("New from %s: CA() differs from the parsed CA", name)
				}
			}
		})
	}
}

func TestCombinedFile(t *testing.T) {
	t.Parallel()
	certPEM, keyPEM := testCA(t, time.Now(), nil)
	combined := append(append([]byte{}, keyPEM...), certPEM...)
	file := writeFile(t, t.TempDir(), "ca-bundle.pem", combined, 0o600)
	src, err := ca.New(ca.Config{CACertFile: file, CAKeyFile: file, NodeID: "n1"})
	if err != nil {
		t.Fatalf("New with one combined file: %v", err)
	}
	verifyLeaf(t, mustCert(t, src), mustPool(t, src), "n1", time.Now())
}

func TestRejects(t *testing.T) {
	t.Parallel()
	now := time.Now()
	goodCert, goodKey := testCA(t, now, nil)
	_, otherKey := testCA(t, now, nil)
	nonCA, nonCAKey := testCA(t, now, func(c *x509.Certificate) { c.IsCA = false })
	noConstraints, noConstraintsKey := testCA(t, now, func(c *x509.Certificate) { c.IsCA, c.BasicConstraintsValid = false, false })
	noCertSign, noCertSignKey := testCA(t, now, func(c *x509.Certificate) { c.KeyUsage = x509.KeyUsageDigitalSignature })
	expired, expiredKey := testCA(t, now, func(c *x509.Certificate) {
		c.NotBefore, c.NotAfter = now.Add(-2*365*24*time.Hour), now.Add(-365*24*time.Hour)
	})
	notYet, notYetKey := testCA(t, now, func(c *x509.Certificate) { c.NotBefore = now.Add(time.Hour) })
	p224, err := ecdsa.GenerateKey(elliptic.P224(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	p224Key := encodeKey(t, p224, ecSEC1)
	paramsOnly := pem.EncodeToMemory(&pem.Block{Type: "EC PARAMETERS", Bytes: []byte{6, 8, 0x2a, 0x86, 0x48, 0xce, 0x3d, 3, 1, 7}})
	badCertBlock := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: []byte("garbage")})
	badKeyBlock := pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: []byte("garbage")})
	encrypted := pem.EncodeToMemory(&pem.Block{Type: "ENCRYPTED PRIVATE KEY", Bytes: []byte("x")})
	legacyEncrypted := pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Headers: map[string]string{"Proc-Type": "4,ENCRYPTED", "DEK-Info": "AES-128-CBC,00"}, Bytes: []byte("x")})

	tests := []struct {
		name      string
		cert, key []byte
		want      string
	}{
		{"not a CA", nonCA, nonCAKey, "is not a CA certificate"},
		{"no basic constraints", noConstraints, noConstraintsKey, "is not a CA certificate"},
		{"no certSign", noCertSign, noCertSignKey, "lacks the certSign key usage"},
		{"mismatched key", goodCert, otherKey, "key does not match"},
		{"expired", expired, expiredKey, "expired at"},
		{"not yet valid", notYet, notYetKey, "not valid before"},
		{"garbage cert", []byte("not PEM at all"), goodKey, "no PEM CERTIFICATE block"},
		{"cert PEM holding a key", goodKey, goodKey, "no PEM CERTIFICATE block"},
		{"corrupt cert block", badCertBlock, goodKey, "certificate 1"},
		{"garbage key", goodCert, []byte("not PEM at all"), "no PEM private key block"},
		{"key PEM holding only parameters", goodCert, paramsOnly, "skipped: EC PARAMETERS"},
		{"corrupt key block", goodCert, badKeyBlock, "parse EC PRIVATE KEY block"},
		{"PKCS#8 encrypted key", goodCert, encrypted, "decrypt it first"},
		{"legacy encrypted key", goodCert, legacyEncrypted, "decrypt it first"},
		{"P-224 key", goodCert, p224Key, "curve P-224 is not supported"},
		{"empty", nil, nil, "no PEM CERTIFICATE block"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ca.ParseAuthority(tt.cert, tt.key)
			checkInvalid(t, "ParseAuthority", err, tt.want)
			// New names where the bad input came from.
			_, err = ca.New(ca.Config{CACertPEM: tt.cert, CAKeyPEM: tt.key, NodeID: "n1"})
			if len(tt.cert) > 0 {
				checkInvalid(t, "New", err, tt.want)
			}
		})
	}
}

func TestConfigRejects(t *testing.T) {
	t.Parallel()
	certPEM, keyPEM := testCA(t, time.Now(), nil)
	tests := []struct {
		name string
		cfg  ca.Config
		want string
	}{
		{"no node ID", ca.Config{CACertPEM: certPEM, CAKeyPEM: keyPEM}, "Config.NodeID"},
		{"long node ID", ca.Config{CACertPEM: certPEM, CAKeyPEM: keyPEM, NodeID: ports.NodeID(strings.Repeat("x", ports.MaxNodeIDLen+1))}, "Config.NodeID"},
		{"no CA", ca.Config{NodeID: "n1"}, "Config.CACertPEM or Config.CACertFile is required"},
		{"no key", ca.Config{NodeID: "n1", CACertPEM: certPEM}, "Config.CAKeyPEM or Config.CAKeyFile is required"},
		{"missing file", ca.Config{NodeID: "n1", CACertFile: "/nonexistent/ca.pem", CAKeyPEM: keyPEM}, "Config.CACertFile"},
		{"negative validity", ca.Config{NodeID: "n1", CACertPEM: certPEM, CAKeyPEM: keyPEM, Validity: -time.Hour}, "Config.Validity"},
		{"renew before not below validity", ca.Config{NodeID: "n1", CACertPEM: certPEM, CAKeyPEM: keyPEM, Validity: time.Hour, RenewBefore: time.Hour}, "Config.RenewBefore"},
		{"empty host", ca.Config{NodeID: "n1", CACertPEM: certPEM, CAKeyPEM: keyPEM, Hosts: []string{"a", ""}}, "Config.Hosts[1]"},
		{"file source named", ca.Config{NodeID: "n1", CACertFile: writeFile(t, t.TempDir(), "x.pem", []byte("junk"), 0o600), CAKeyPEM: keyPEM}, "x.pem"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ca.New(tt.cfg)
			checkInvalid(t, "New", err, tt.want)
		})
	}
	_, err := ca.NewFromAuthority(nil, ca.Config{NodeID: "n1"})
	checkInvalid(t, "NewFromAuthority(nil)", err, "nil Authority")
}

func TestMintRejects(t *testing.T) {
	t.Parallel()
	now := time.Now()
	a := parseTestCA(t, now, nil)
	for name, call := range map[string]func() error{
		"empty id":      func() error { _, err := a.Mint("", time.Hour, nil, now); return err },
		"zero validity": func() error { _, err := a.Mint("n1", 0, nil, now); return err },
		"empty host":    func() error { _, err := a.Mint("n1", time.Hour, []string{""}, now); return err },
		"CA expired":    func() error { _, err := a.Mint("n1", time.Hour, nil, now.Add(2*365*24*time.Hour)); return err },
	} {
		checkInvalid(t, "Mint "+name, call(), "")
	}
}

func TestLeafProperties(t *testing.T) {
	t.Parallel()
	now := time.Now().Truncate(time.Second) // certificates carry seconds
	a := parseTestCA(t, now, nil)
	for _, id := range []ports.NodeID{"n1", "eu-west/node 1?#ü", ports.NodeID(strings.Repeat("x", ports.MaxNodeIDLen))} {
		c, err := a.Mint(id, 48*time.Hour, []string{"node1.example", "10.0.0.1", "::1"}, now)
		if err != nil {
			t.Fatalf("Mint %q: %v", id, err)
		}
		verifyLeaf(t, c, a.Pool(), id, now)
		leaf := c.Leaf
		if !leaf.NotBefore.Equal(now.Add(-time.Minute)) || !leaf.NotAfter.Equal(now.Add(48*time.Hour)) {
			t.Errorf("validity %s..%s, want %s..%s", leaf.NotBefore, leaf.NotAfter, now.Add(-time.Minute), now.Add(48*time.Hour))
		}
		if !slices.Equal(leaf.DNSNames, []string{"node1.example"}) || len(leaf.IPAddresses) != 2 ||
			!leaf.IPAddresses[0].Equal(net.ParseIP("10.0.0.1")) || !leaf.IPAddresses[1].Equal(net.ParseIP("::1")) {
			t.Errorf("SANs DNS %v IP %v", leaf.DNSNames, leaf.IPAddresses)
		}
		if err := leaf.VerifyHostname("node1.example"); err != nil {
			t.Errorf("VerifyHostname: %v", err)
		}
	}

	// Fresh key and serial at every mint.
	c1, _ := a.Mint("n1", time.Hour, nil, now)
	c2, _ := a.Mint("n1", time.Hour, nil, now)
	if c1.Leaf.SerialNumber.Cmp(c2.Leaf.SerialNumber) == 0 {
		t.Error("two mints share a serial number")
	}
	if c1.Leaf.PublicKey.(*ecdsa.PublicKey).Equal(c2.Leaf.PublicKey) {
		t.Error("two mints share a key")
	}

	// Capped at the CA's expiry.
	short := parseTestCA(t, now, func(c *x509.Certificate) { c.NotAfter = now.Add(time.Hour) })
	c, err := short.Mint("n1", 48*time.Hour, nil, now)
	if err != nil {
		t.Fatal(err)
	}
	if !c.Leaf.NotAfter.Equal(short.Certificate().NotAfter) {
		t.Errorf("NotAfter %s, want the CA's %s", c.Leaf.NotAfter, short.Certificate().NotAfter)
	}

	// The pool is the caller's.
	p := a.Pool()
	other := parseTestCA(t, now, nil)
	p.AddCert(other.Certificate())
	if c1.Leaf.CheckSignatureFrom(a.Certificate()) != nil {
		t.Error("leaf not signed by the CA")
	}
	oc, _ := other.Mint("n9", time.Hour, nil, now)
	if _, err := oc.Leaf.Verify(x509.VerifyOptions{Roots: a.Pool(), CurrentTime: now, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err == nil {
		t.Error("modifying one Pool() result changed the Authority's pool")
	}
}

// TestIntermediateChain checks that certificates after the CA in certPEM
// are carried in the minted chain, so peers that trust only the root
// verify it.
func TestIntermediateChain(t *testing.T) {
	t.Parallel()
	now := time.Now()
	rootKey := newKey(t, ecPKCS8)
	rootTmpl := caTemplate(now)
	rootPEM := selfSigned(t, rootTmpl, rootKey)
	root, _ := pem.Decode(rootPEM)
	rootCert, err := x509.ParseCertificate(root.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	interKey := newKey(t, ecPKCS8)
	interTmpl := caTemplate(now)
	interTmpl.Subject.CommonName = "Intermediate"
	der, err := x509.CreateCertificate(rand.Reader, interTmpl, rootCert, interKey.Public(), rootKey)
	if err != nil {
		t.Fatal(err)
	}
	certPEM := append(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), rootPEM...)
	a, err := ca.ParseAuthority(certPEM, encodeKey(t, interKey, ecPKCS8))
	if err != nil {
		t.Fatal(err)
	}
	c, err := a.Mint("n1", time.Hour, nil, now)
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Certificate) != 3 {
		t.Fatalf("chain of %d certificates, want leaf, intermediate, root", len(c.Certificate))
	}
	roots := x509.NewCertPool()
	roots.AddCert(rootCert)
	inter := x509.NewCertPool()
	inter.AddCert(a.Certificate())
	if _, err := c.Leaf.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, CurrentTime: now, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Errorf("verify against the root: %v", err)
	}
}

func TestGenerateCAAndCertificatePEM(t *testing.T) {
	t.Parallel()
	now := time.Now()
	certPEM, keyPEM, err := ca.GenerateCA("My CA", 24*time.Hour, now)
	if err != nil {
		t.Fatal(err)
	}
	a, err := ca.ParseAuthority(certPEM, keyPEM)
	if err != nil {
		t.Fatalf("ParseAuthority(GenerateCA): %v", err)
	}
	if a.Certificate().Subject.CommonName != "My CA" || !a.Certificate().MaxPathLenZero {
		t.Errorf("CA subject %q MaxPathLenZero %v", a.Certificate().Subject, a.Certificate().MaxPathLenZero)
	}
	c, err := a.Mint("n1", time.Hour, nil, now)
	if err != nil {
		t.Fatal(err)
	}
	leafPEM, leafKeyPEM, err := ca.CertificatePEM(c)
	if err != nil {
		t.Fatal(err)
	}
	back, err := tls.X509KeyPair(leafPEM, leafKeyPEM)
	if err != nil {
		t.Fatalf("X509KeyPair(CertificatePEM): %v", err)
	}
	verifyLeaf(t, &back, a.Pool(), "n1", now)
	if _, _, err := ca.CertificatePEM(nil); !errors.Is(err, ports.ErrInvalidConfig) {
		t.Errorf("CertificatePEM(nil): %v", err)
	}
	if _, _, err := ca.GenerateCA("x", 0, now); !errors.Is(err, ports.ErrInvalidConfig) {
		t.Errorf("GenerateCA with zero validity: %v", err)
	}
}

// TestMutualTLS runs a real handshake between two nodes of one CA, each
// presenting its leaf through Certificate and trusting TrustedCAs.
func TestMutualTLS(t *testing.T) {
	t.Parallel()
	certPEM, keyPEM := testCA(t, time.Now(), nil)
	server, err := ca.New(ca.Config{CACertPEM: certPEM, CAKeyPEM: keyPEM, NodeID: "server", Hosts: []string{"server.local"}})
	if err != nil {
		t.Fatal(err)
	}
	client, err := ca.New(ca.Config{CACertPEM: certPEM, CAKeyPEM: keyPEM, NodeID: "client"})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	cn, sn := net.Pipe()
	// Close the pipe, not the TLS conns: their close_notify would wait for a
	// reader.
	defer sn.Close()
	defer cn.Close()
	srv := tls.Server(sn, &tls.Config{
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return server.Certificate(ctx) },
		ClientAuth:     tls.RequireAndVerifyClientCert,
		ClientCAs:      mustPool(t, server),
	})
	cli := tls.Client(cn, &tls.Config{
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return client.Certificate(ctx) },
		RootCAs:              mustPool(t, client),
		ServerName:           "server.local",
	})
	done := make(chan error, 1)
	go func() {
		err := srv.HandshakeContext(ctx)
		if err == nil {
			_, err = srv.Write([]byte{1}) // the client reads it, and any session ticket
		}
		done <- err
	}()
	if err := cli.HandshakeContext(ctx); err != nil {
		t.Fatalf("client handshake: %v", err)
	}
	if _, err := cli.Read(make([]byte, 1)); err != nil {
		t.Fatalf("client read: %v", err)
	}
	if err := <-done; err != nil {
		t.Fatalf("server: %v", err)
	}
	if id, err := ports.CertNodeID(srv.ConnectionState().PeerCertificates[0]); err != nil || id != "client" {
		t.Errorf("server sees client as %q, %v", id, err)
	}
	if id, err := ports.CertNodeID(cli.ConnectionState().PeerCertificates[0]); err != nil || id != "server" {
		t.Errorf("client sees server as %q, %v", id, err)
	}
}

// verifyLeaf checks everything a minted certificate promises.
func verifyLeaf(t testing.TB, c *tls.Certificate, pool *x509.CertPool, id ports.NodeID, now time.Time) {
	t.Helper()
	leaf := c.Leaf
	if leaf == nil {
		t.Fatal("Leaf not set")
	}
	if len(c.Certificate) < 2 || !slices.Equal(c.Certificate[0], leaf.Raw) {
		t.Fatalf("chain of %d certificates, want leaf then CA", len(c.Certificate))
	}
	if leaf.Subject.CommonName != string(id) {
		t.Errorf("CN %q, want %q", leaf.Subject.CommonName, id)
	}
	if len(leaf.URIs) != 1 || leaf.URIs[0].String() != ports.NodeIDURI(id).String() {
		t.Errorf("URIs %v, want [%s]", leaf.URIs, ports.NodeIDURI(id))
	}
	if got, err := ports.CertNodeID(leaf); err != nil || got != id {
		t.Errorf("CertNodeID = %q, %v; want %q", got, err, id)
	}
	if !slices.Equal(leaf.ExtKeyUsage, []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}) {
		t.Errorf("ExtKeyUsage %v", leaf.ExtKeyUsage)
	}
	if leaf.KeyUsage != x509.KeyUsageDigitalSignature || leaf.IsCA {
		t.Errorf("KeyUsage %v IsCA %v", leaf.KeyUsage, leaf.IsCA)
	}
	pub, ok := leaf.PublicKey.(*ecdsa.PublicKey)
	if !ok || pub.Curve != elliptic.P256() {
		t.Errorf("public key %T, want ECDSA P-256", leaf.PublicKey)
	}
	if priv, ok := c.PrivateKey.(*ecdsa.PrivateKey); !ok || !priv.PublicKey.Equal(leaf.PublicKey) {
		t.Error("private key does not match the leaf")
	}
	if n := leaf.SerialNumber.BitLen(); n > 128 || n < 64 {
		t.Errorf("serial of %d bits", n)
	}
	inter := x509.NewCertPool()
	for _, der := range c.Certificate[1:] {
		ic, err := x509.ParseCertificate(der)
		if err != nil {
			t.Fatal(err)
		}
		inter.AddCert(ic)
	}
	for _, eku := range []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth} {
		if _, err := leaf.Verify(x509.VerifyOptions{Roots: pool, Intermediates: inter, CurrentTime: now, KeyUsages: []x509.ExtKeyUsage{eku}}); err != nil {
			t.Errorf("verify for %v: %v", eku, err)
		}
	}
}

func parseTestCA(t testing.TB, now time.Time, mutate func(*x509.Certificate)) *ca.Authority {
	t.Helper()
	a, err := ca.ParseAuthority(testCA(t, now, mutate))
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func mustPool(t testing.TB, src *ca.Source) *x509.CertPool {
	t.Helper()
	p, err := src.TrustedCAs(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// checkInvalid fails unless err wraps ports.ErrInvalidConfig and mentions
// want.
func checkInvalid(t testing.TB, what string, err error, want string) {
	t.Helper()
	switch {
	case err == nil:
		t.Errorf("%s: no error, want one mentioning %q", what, want)
	case !errors.Is(err, ports.ErrInvalidConfig):
		t.Errorf("%s: %v does not wrap ErrInvalidConfig", what, err)
	case !strings.Contains(err.Error(), want):
		t.Errorf("%s: %q does not mention %q", what, err, want)
	default:
		t.Logf("%s: %v", what, err)
	}
}
