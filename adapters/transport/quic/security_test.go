package quic_test

import (
	"context"
	"crypto/tls"
	"errors"
	"testing"
	"time"

	quicgo "github.com/quic-go/quic-go"

	"github.com/mycorrizal/mycorrizal/adapters/transport/quic"
	"github.com/mycorrizal/mycorrizal/ports"
)

// TestOtherCA: a node whose certificate comes from a CA the cluster does
// not trust cannot connect, whether it trusts the cluster's CA or not, and
// the cluster cannot connect to it; nothing it sends reaches Accept.
func TestOtherCA(t *testing.T) {
	ca, other := newCA(t, "cluster CA"), newCA(t, "other CA")
	b := caNode(t, ca, "b", quic.Config{})

	// x trusts only its own CA: it refuses b's certificate itself.
	x := caNode(t, other, "x", quic.Config{})
	if s, err := x.tr.Open(opCtx(t), b.id, b.addr); !errors.Is(err, ports.ErrUnauthenticated) {
		if err == nil {
			_ = s.Reset()
		}
		t.Errorf("Open from a node of another CA = %v; want ErrUnauthenticated", err)
	}
	// y trusts both CAs: b refuses y's certificate, which y learns before
	// Open returns.
	y := newNode(t, "y", newSource(other.leaf(t, "y"), pools(ca, other)), quic.Config{})
	if s, err := y.tr.Open(opCtx(t), b.id, b.addr); !errors.Is(err, ports.ErrUnauthenticated) {
		if err == nil {
			_, _ = s.Write([]byte("let me in"))
			_ = s.Reset()
		}
		t.Errorf("Open with a certificate the server does not trust = %v; want ErrUnauthenticated", err)
	} else {
		t.Logf("refused as expected: %v", err)
	}
	// b refuses x's certificate when it dials.
	if s, err := b.tr.Open(opCtx(t), x.id, x.addr); !errors.Is(err, ports.ErrUnauthenticated) {
		if err == nil {
			_ = s.Reset()
		}
		t.Errorf("Open to a node of another CA = %v; want ErrUnauthenticated", err)
	}
	noAccept(t, b, 300*time.Millisecond)
	if n := quic.Conns(b.tr, "x") + quic.Conns(b.tr, "y"); n != 0 {
		t.Errorf("b keeps %d connections with untrusted nodes", n)
	}
}

// TestClientWithoutCertificate: a QUIC client that presents no certificate
// is refused and never gets a stream accepted.
func TestClientWithoutCertificate(t *testing.T) {
	ca := newCA(t, "ca")
	b := caNode(t, ca, "b", quic.Config{})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	tlsConf := &tls.Config{InsecureSkipVerify: true, NextProtos: []string{quic.ALPN}, MinVersion: tls.VersionTLS13}
	conn, err := quicgo.DialAddr(ctx, b.addr, tlsConf, nil)
	if err == nil {
		// The client's side of a TLS 1.3 handshake may finish before the
		// server checked for a certificate: then the server closes it.
		if s, err := conn.OpenStream(); err == nil {
			_, _ = s.Write([]byte("hello"))
		}
		select {
		case <-conn.Context().Done():
			err = context.Cause(conn.Context())
		case <-ctx.Done():
			t.Fatal("the server kept a connection from a client without a certificate")
		}
		_ = conn.CloseWithError(0, "")
	}
	te, ok := errors.AsType[*quicgo.TransportError](err)
	if !ok || !te.ErrorCode.IsCryptoError() {
		t.Errorf("connection without a certificate ended with %v; want a TLS alert", err)
	}
	t.Logf("refused: %v", err)
	noAccept(t, b, 300*time.Millisecond)
}

// TestExpiredCertificate: an expired certificate is refused on either side
// of the handshake.
func TestExpiredCertificate(t *testing.T) {
	ca := newCA(t, "ca")
	b := caNode(t, ca, "b", quic.Config{})
	expired := ca.leaf(t, "e", leafOpts{notBefore: time.Now().Add(-2 * time.Hour), notAfter: time.Now().Add(-time.Hour)})
	e := newNode(t, "e", newSource(expired, ca.pool), quic.Config{})

	if s, err := e.tr.Open(opCtx(t), b.id, b.addr); !errors.Is(err, ports.ErrUnauthenticated) {
		if err == nil {
			_ = s.Reset()
		}
		t.Errorf("Open with an expired certificate = %v; want ErrUnauthenticated", err)
	}
	if s, err := b.tr.Open(opCtx(t), e.id, e.addr); !errors.Is(err, ports.ErrUnauthenticated) {
		if err == nil {
			_ = s.Reset()
		}
		t.Errorf("Open to a node with an expired certificate = %v; want ErrUnauthenticated", err)
	} else {
		t.Logf("refused: %v", err)
	}
	noAccept(t, b, 200*time.Millisecond)
	noAccept(t, e, 50*time.Millisecond)
}

// TestClaimedIdentity: a node holding a certificate for x cannot be taken
// for y: Open(y, x's address) fails with ErrUnauthenticated and x accepts
// nothing; a transport cannot listen as y with x's certificate; and an
// accepted stream reports the identity the certificate proves.
func TestClaimedIdentity(t *testing.T) {
	ca := newCA(t, "ca")
	a, x := caNode(t, ca, "a", quic.Config{}), caNode(t, ca, "x", quic.Config{})
	if s, err := a.tr.Open(opCtx(t), "y", x.addr); !errors.Is(err, ports.ErrUnauthenticated) {
		if err == nil {
			_ = s.Reset()
		}
		t.Errorf("Open(y) at x's address = %v; want ErrUnauthenticated", err)
	}
	noAccept(t, x, 200*time.Millisecond)
	if n := quic.Conns(a.tr, "x") + quic.Conns(a.tr, "y"); n != 0 {
		t.Errorf("a keeps %d connections after the failed claim", n)
	}

	tr, err := quic.New(quic.Config{ListenAddr: "127.0.0.1:0", Certs: newSource(ca.leaf(t, "x"), ca.pool)})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	if _, err := tr.Listen(context.Background(), "y"); !errors.Is(err, ports.ErrInvalidConfig) {
		t.Errorf("Listen as y with x's certificate = %v; want ErrInvalidConfig", err)
	}

	sa, sx := connect(t, a, x)
	if sa.Peer() != "x" || sx.Peer() != "a" {
		t.Errorf("Peer() = %q / %q; want x / a", sa.Peer(), sx.Peer())
	}
}

// TestRotation: after the certificate source rotates, new connections
// present the new certificate (checked on the accepting side) while the
// existing one keeps working; a change of the trusted CAs applies to new
// handshakes too.
func TestRotation(t *testing.T) {
	ca, ca2 := newCA(t, "ca"), newCA(t, "ca2")
	a, b := caNode(t, ca, "a", quic.Config{}), caNode(t, ca, "b", quic.Config{})

	sa, sb := connect(t, a, b)
	first := quic.PeerCertificate(sb).SerialNumber
	if want := a.src.cert.Load().Leaf.SerialNumber; first.Cmp(want) != 0 {
		t.Fatalf("b sees serial %s; want a's %s", first, want)
	}

	rotated := ca.leaf(t, "a")
	a.src.cert.Store(rotated)
	// The connection made before still works and still shows the old one.
	if _, err := sa.Write([]byte("x")); err != nil {
		t.Fatalf("Write on the old connection after rotation: %v", err)
	}
	if got := quic.PeerCertificate(sb).SerialNumber; got.Cmp(first) != 0 {
		t.Errorf("old connection's certificate changed to %s", got)
	}

	// A new connection presents the new certificate.
	if err := a.tr.ClosePeer(b.id); err != nil {
		t.Fatal(err)
	}
	_, sb2 := connect(t, a, b)
	if got := quic.PeerCertificate(sb2).SerialNumber; got.Cmp(rotated.Leaf.SerialNumber) != 0 {
		t.Errorf("new connection presents serial %s; want the rotated %s (old %s)", got, rotated.Leaf.SerialNumber, first)
	}
	// And in the other direction, b dialing a (a's server certificate).
	_ = b.tr.ClosePeer(a.id)
	eventually(t, 5*time.Second, "a to forget the closed connection", func() bool { return quic.Conns(a.tr, b.id) == 0 })
	sb3, _ := connect(t, b, a)
	if got := quic.PeerCertificate(sb3).SerialNumber; got.Cmp(rotated.Leaf.SerialNumber) != 0 {
		t.Errorf("a's server certificate has serial %s; want the rotated %s", got, rotated.Leaf.SerialNumber)
	}

	// b stops trusting ca: a's certificate is refused on the next handshake.
	_ = a.tr.ClosePeer(b.id)
	b.src.pool.Store(ca2.pool)
	if s, err := a.tr.Open(opCtx(t), b.id, b.addr); !errors.Is(err, ports.ErrUnauthenticated) {
		if err == nil {
			_ = s.Reset()
		}
		t.Errorf("Open after b stopped trusting a's CA = %v; want ErrUnauthenticated", err)
	}
}
