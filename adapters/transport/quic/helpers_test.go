package quic_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"io"
	"log/slog"
	"math/big"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mycorrizal/mycorrizal/adapters/transport/quic"
	"github.com/mycorrizal/mycorrizal/ports"
)

// testCA is a throwaway certificate authority.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pool *x509.CertPool
}

var serials atomic.Int64

func nextSerial() *big.Int { return big.NewInt(serials.Add(1) + 1000) }

func newCA(t testing.TB, name string) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          nextSerial(),
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &testCA{cert: cert, key: key, pool: pool}
}

// leafOpts adjusts a leaf certificate.
type leafOpts struct {
	notBefore, notAfter time.Time
}

// leaf mints a certificate for id (CN = id, server and client auth).
func (ca *testCA) leaf(t testing.TB, id ports.NodeID, opts ...leafOpts) *tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: nextSerial(),
		Subject:      pkix.Name{CommonName: string(id)},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	for _, o := range opts {
		if !o.notBefore.IsZero() {
			tmpl.NotBefore = o.notBefore
		}
		if !o.notAfter.IsZero() {
			tmpl.NotAfter = o.notAfter
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return &tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}
}

// certSource is a ports.CertSource whose certificate and pool tests swap.
type certSource struct {
	cert atomic.Pointer[tls.Certificate]
	pool atomic.Pointer[x509.CertPool]
}

func newSource(cert *tls.Certificate, pool *x509.CertPool) *certSource {
	s := &certSource{}
	s.cert.Store(cert)
	s.pool.Store(pool)
	return s
}

func (s *certSource) Certificate(ctx context.Context) (*tls.Certificate, error) {
	return s.cert.Load(), nil
}

func (s *certSource) TrustedCAs(ctx context.Context) (*x509.CertPool, error) {
	return s.pool.Load(), nil
}

// pools returns one pool holding every CA given.
func pools(cas ...*testCA) *x509.CertPool {
	p := x509.NewCertPool()
	for _, ca := range cas {
		p.AddCert(ca.cert)
	}
	return p
}

// testLogger logs to t.Log.
func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type tWriter struct{ t testing.TB }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSuffix(string(p), "\n"))
	return len(p), nil
}

// testConfig is a loopback configuration with test-friendly timeouts.
func testConfig(t testing.TB, src ports.CertSource) quic.Config {
	return quic.Config{
		ListenAddr:       "127.0.0.1:0",
		Certs:            src,
		Logger:           testLogger(t),
		HandshakeTimeout: 2 * time.Second,
	}
}

// node is a listening transport.
type node struct {
	tr   *quic.Transport
	id   ports.NodeID
	addr string
	src  *certSource
}

// newNode makes a transport for id with cfg (ListenAddr and Certs filled
// in if empty), listens, and closes it at cleanup.
func newNode(t testing.TB, id ports.NodeID, src *certSource, cfg quic.Config) *node {
	t.Helper()
	if cfg.ListenAddr == "" {
		cfg.ListenAddr = "127.0.0.1:0"
	}
	if cfg.Certs == nil {
		cfg.Certs = src
	}
	if cfg.Logger == nil {
		cfg.Logger = testLogger(t)
	}
	if cfg.HandshakeTimeout == 0 {
		cfg.HandshakeTimeout = 2 * time.Second
	}
	tr, err := quic.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tr.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	addr, err := tr.Listen(ctx, id)
	if err != nil {
		t.Fatalf("Listen(%s): %v", id, err)
	}
	return &node{tr: tr, id: id, addr: addr, src: src}
}

// caNode makes a node with a fresh leaf from ca, trusting ca.
func caNode(t testing.TB, ca *testCA, id ports.NodeID, cfg quic.Config) *node {
	t.Helper()
	return newNode(t, id, newSource(ca.leaf(t, id), ca.pool), cfg)
}

// opCtx is a ctx bounding one operation, cancelled at cleanup.
func opCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// connect opens a stream from a to b, writes one byte so b can accept it,
// and returns both ends.
func connect(t testing.TB, a, b *node) (opened, accepted ports.Stream) {
	t.Helper()
	s, err := a.tr.Open(opCtx(t), b.id, b.addr)
	if err != nil {
		t.Fatalf("%s: Open(%s): %v", a.id, b.id, err)
	}
	_ = s.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := s.Write([]byte{'H'}); err != nil {
		t.Fatalf("first Write: %v", err)
	}
	r, err := b.tr.Accept(opCtx(t))
	if err != nil {
		t.Fatalf("%s: Accept: %v", b.id, err)
	}
	_ = r.SetDeadline(time.Now().Add(10 * time.Second))
	var one [1]byte
	if _, err := io.ReadFull(r, one[:]); err != nil {
		t.Fatalf("first Read: %v", err)
	}
	return s, r
}

// noAccept checks that n accepts no stream within d.
func noAccept(t testing.TB, n *node, d time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	s, err := n.tr.Accept(ctx)
	if err == nil {
		_ = s.Reset()
		t.Fatalf("%s accepted a stream from %s", n.id, s.Peer())
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("%s: Accept = %v; want the ctx deadline", n.id, err)
	}
}

// eventually polls cond until it holds or d passes.
func eventually(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
