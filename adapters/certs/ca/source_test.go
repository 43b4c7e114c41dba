package ca_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/mycorrizal/mycorrizal/adapters/certs/ca"
	"github.com/mycorrizal/mycorrizal/ports"
)

const (
	msgRenewed = "ca: certificate renewed"
	msgCapped  = "ca: the CA expires before the requested certificate lifetime; certificate ends with the CA and cannot be renewed; replace the CA"
	day        = 24 * time.Hour
)

// newRenewing returns a Source with a 30-day leaf renewed 10 days before
// expiry, on a fake clock.
func newRenewing(t *testing.T) (*ca.Source, *clock, *logRecorder) {
	t.Helper()
	start := time.Now()
	clk := newClock(start)
	certPEM, keyPEM := testCA(t, start, nil)
	log, rec := newLogger(t)
	src, err := ca.New(ca.Config{
		CACertPEM: certPEM, CAKeyPEM: keyPEM, NodeID: "n1",
		Validity: 30 * day, RenewBefore: 10 * day, Logger: log, Now: clk.Now,
	})
	if err != nil {
		t.Fatal(err)
	}
	return src, clk, rec
}

func TestDefaults(t *testing.T) {
	t.Parallel()
	now := time.Now().Truncate(time.Second)
	clk := newClock(now)
	certPEM, keyPEM := testCA(t, now, nil)
	src, err := ca.New(ca.Config{CACertPEM: certPEM, CAKeyPEM: keyPEM, NodeID: "n1", Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	c := mustCert(t, src)
	if !c.Leaf.NotAfter.Equal(now.Add(ca.DefaultValidity)) {
		t.Errorf("NotAfter %s, want now+30d", c.Leaf.NotAfter)
	}
	// Default RenewBefore is Validity/3: 20 days in, the same leaf; past it, a new one.
	clk.Advance(20*day - time.Minute)
	if mustCert(t, src) != c {
		t.Error("renewed before Validity/3 remained")
	}
	clk.Advance(2 * time.Minute)
	if mustCert(t, src) == c {
		t.Error("not renewed once less than Validity/3 remained")
	}
}

func TestRenewal(t *testing.T) {
	t.Parallel()
	src, clk, rec := newRenewing(t)
	c1 := mustCert(t, src)
	if mustCert(t, src) != c1 {
		t.Fatal("Certificate does not return the cached leaf")
	}

	clk.Advance(19 * day) // 11 days left: outside the window
	if mustCert(t, src) != c1 {
		t.Fatal("renewed outside the RenewBefore window")
	}
	if n := rec.count(msgRenewed); n != 0 {
		t.Fatalf("%d renewals logged", n)
	}

	clk.Advance(2 * day) // 9 days left: inside the window
	c2 := mustCert(t, src)
	if c2.Leaf.SerialNumber.Cmp(c1.Leaf.SerialNumber) == 0 {
		t.Fatal("same serial inside the renewal window")
	}
	now := clk.Now()
	if !c2.Leaf.NotBefore.Equal(now.Add(-time.Minute).Truncate(time.Second)) {
		t.Errorf("renewed leaf NotBefore %s, want about %s", c2.Leaf.NotBefore, now.Add(-time.Minute))
	}
	verifyLeaf(t, c2, mustPool(t, src), "n1", now)
	if mustCert(t, src) != c2 {
		t.Error("renewed leaf not cached")
	}
	if n, lvl := rec.count(msgRenewed), rec.level(msgRenewed); n != 1 || lvl != slog.LevelInfo {
		t.Errorf("renewal logged %d times at %s, want once at INFO", n, lvl)
	}
}

// TestConcurrentRenewal has many goroutines call Certificate as the leaf
// enters its renewal window: each gets a valid leaf, the old or the new
// one, and exactly one of them mints.
func TestConcurrentRenewal(t *testing.T) {
	t.Parallel()
	src, clk, rec := newRenewing(t)
	old := mustCert(t, src)
	clk.Advance(25 * day)
	certs := hammer(t, src, 32, 50)

	now := clk.Now()
	cur := mustCert(t, src)
	if cur == old {
		t.Fatal("not renewed")
	}
	for c := range certs {
		if c != old && c != cur {
			t.Errorf("a caller got a leaf (serial %x) that is neither the old nor the current one", c.Leaf.SerialNumber)
		}
		if !now.Before(c.Leaf.NotAfter) {
			t.Error("a caller got an expired leaf")
		}
	}
	if n := rec.count(msgRenewed); n != 1 {
		t.Errorf("%d renewals, want 1", n)
	}
}

// TestExpiredRenewal lets the leaf expire unseen: callers then wait for
// the one minting goroutine and all get the new leaf.
func TestExpiredRenewal(t *testing.T) {
	t.Parallel()
	src, clk, rec := newRenewing(t)
	old := mustCert(t, src)
	clk.Advance(31 * day)
	certs := hammer(t, src, 32, 1)
	if len(certs) != 1 {
		t.Fatalf("callers got %d distinct leaves, want the one new leaf", len(certs))
	}
	for c := range certs {
		if c == old || !clk.Now().Before(c.Leaf.NotAfter) {
			t.Error("a caller got the expired leaf")
		}
	}
	if n := rec.count(msgRenewed); n != 1 {
		t.Errorf("%d renewals, want 1", n)
	}
}

// hammer calls src.Certificate n times from each of g goroutines started
// together and returns the distinct leaves they got.
func hammer(t *testing.T, src *ca.Source, g, n int) map[*tls.Certificate]bool {
	t.Helper()
	var (
		mu    sync.Mutex
		seen  = map[*tls.Certificate]bool{}
		wg    sync.WaitGroup
		start = make(chan struct{})
	)
	for range g {
		wg.Go(func() {
			<-start
			for range n {
				c, err := src.Certificate(context.Background())
				if err != nil || c == nil {
					t.Errorf("Certificate: %v", err)
					return
				}
				mu.Lock()
				seen[c] = true
				mu.Unlock()
			}
		})
	}
	close(start)
	wg.Wait()
	return seen
}

// TestCappedByCA: a CA expiring before the leaf would is not re-minted
// against at every call, and once it has expired Certificate fails.
func TestCappedByCA(t *testing.T) {
	t.Parallel()
	start := time.Now()
	clk := newClock(start)
	certPEM, keyPEM := testCA(t, start, func(c *x509.Certificate) { c.NotAfter = start.Add(5 * day) })
	log, rec := newLogger(t)
	src, err := ca.New(ca.Config{CACertPEM: certPEM, CAKeyPEM: keyPEM, NodeID: "n1", Logger: log, Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	c := mustCert(t, src)
	if !c.Leaf.NotAfter.Equal(src.CA().NotAfter) {
		t.Errorf("leaf NotAfter %s, want the CA's %s", c.Leaf.NotAfter, src.CA().NotAfter)
	}
	if rec.count(msgCapped) != 1 || rec.level(msgCapped) != slog.LevelWarn {
		t.Error("capped leaf not warned about")
	}
	clk.Advance(4 * day) // inside the 10-day window, but a new leaf could not last longer
	for range 10 {
		if mustCert(t, src) != c {
			t.Fatal("re-minted a leaf that cannot outlast the current one")
		}
	}
	if n := rec.count(msgRenewed); n != 0 {
		t.Errorf("%d renewals", n)
	}
	clk.Advance(2 * day) // CA and leaf expired
	_, err = src.Certificate(context.Background())
	if !errors.Is(err, ports.ErrInvalidConfig) {
		t.Errorf("Certificate after the CA expired: %v, want ErrInvalidConfig", err)
	}
	t.Log(err)
}

func TestNewFromAuthority(t *testing.T) {
	t.Parallel()
	now := time.Now()
	a := parseTestCA(t, now, nil)
	src, err := ca.NewFromAuthority(a, ca.Config{
		NodeID: "n7", Validity: time.Hour,
		// Ignored by NewFromAuthority.
		CACertPEM: []byte("junk"), CAKeyFile: "/nonexistent",
	})
	if err != nil {
		t.Fatal(err)
	}
	verifyLeaf(t, mustCert(t, src), mustPool(t, src), "n7", now)
	if src.CA() != a.Certificate() {
		t.Error("CA() is not the Authority's certificate")
	}
	// The CA must be valid on the Source's clock.
	late := newClock(now.Add(2 * 365 * day))
	_, err = ca.NewFromAuthority(a, ca.Config{NodeID: "n7", Now: late.Now})
	checkInvalid(t, "NewFromAuthority with an expired CA", err, "expired at")
}

// BenchmarkCertificate measures the hot path transports hit per handshake.
func BenchmarkCertificate(b *testing.B) {
	certPEM, keyPEM := testCA(b, time.Now(), nil)
	src, err := ca.New(ca.Config{CACertPEM: certPEM, CAKeyPEM: keyPEM, NodeID: "n1"})
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := src.Certificate(ctx); err != nil {
				b.Error(err)
				return
			}
		}
	})
}
