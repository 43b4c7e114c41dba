package filecerts_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/mycorrizal/mycorrizal/adapters/certs/ca"
	"github.com/mycorrizal/mycorrizal/examples/filecerts"
	"github.com/mycorrizal/mycorrizal/ports"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const (
	msgReloaded = "filecerts: certificate reloaded"
	msgFailed   = "filecerts: reload failed; keeping the current certificate"
)

// authority returns a fresh test CA.
func authority(t testing.TB) *ca.Authority {
	t.Helper()
	certPEM, keyPEM, err := ca.GenerateCA("filecerts test CA", 24*time.Hour, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	a, err := ca.ParseAuthority(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// files is one node's set of PEM files.
type files struct{ dir, cert, key, ca string }

func newFiles(t testing.TB) files {
	dir := t.TempDir()
	return files{dir, filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key"), filepath.Join(dir, "ca.crt")}
}

// mint mints a leaf for id from a and returns it with its PEM.
func mint(t testing.TB, a *ca.Authority, id ports.NodeID) (c *tls.Certificate, certPEM, keyPEM []byte) {
	t.Helper()
	c, err := a.Mint(id, time.Hour, nil, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	certPEM, keyPEM, err = ca.CertificatePEM(c)
	if err != nil {
		t.Fatal(err)
	}
	return c, certPEM, keyPEM
}

func write(t testing.TB, path string, data []byte) {
	t.Helper()
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
}

// writeNode mints a leaf for id and writes it, its key and the bundle of
// the given CAs.
func writeNode(t testing.TB, f files, a *ca.Authority, id ports.NodeID, trusted ...*ca.Authority) *tls.Certificate {
	t.Helper()
	c, certPEM, keyPEM := mint(t, a, id)
	write(t, f.cert, certPEM)
	write(t, f.key, keyPEM)
	if len(trusted) == 0 {
		trusted = []*ca.Authority{a}
	}
	var bundle []byte
	for _, ta := range trusted {
		bundle = append(bundle, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ta.Certificate().Raw})...)
	}
	write(t, f.ca, bundle)
	return c
}

type clock struct{ ns atomic.Int64 }

func (c *clock) Now() time.Time          { return time.Unix(0, c.ns.Load()) }
func (c *clock) Advance(d time.Duration) { c.ns.Add(int64(d)) }

func newSource(t testing.TB, f files, id ports.NodeID) (*filecerts.Source, *clock, *logRecorder) {
	t.Helper()
	clk := &clock{}
	clk.ns.Store(time.Now().UnixNano())
	log, rec := newLogger(t)
	src, err := filecerts.New(filecerts.Config{CertFile: f.cert, KeyFile: f.key, CAFile: f.ca, NodeID: id, Logger: log, Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	return src, clk, rec
}

func serial(t testing.TB, src *filecerts.Source) string {
	t.Helper()
	c, err := src.Certificate(context.Background())
	if err != nil || c == nil || c.Leaf == nil {
		t.Fatalf("Certificate: %v, %v", c, err)
	}
	return c.Leaf.SerialNumber.Text(16)
}

func TestReload(t *testing.T) {
	t.Parallel()
	a := authority(t)
	f := newFiles(t)
	first := writeNode(t, f, a, "node-a")
	src, clk, rec := newSource(t, f, "node-a")

	c, err := src.Certificate(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if id, err := ports.CertNodeID(c.Leaf); err != nil || id != "node-a" {
		t.Fatalf("serves node %q, %v", id, err)
	}
	s1 := first.Leaf.SerialNumber.Text(16)
	if got := serial(t, src); got != s1 {
		t.Fatalf("serial %s, want %s", got, s1)
	}

	// A rotation is seen after the check interval, not before.
	second := writeNode(t, f, a, "node-a")
	s2 := second.Leaf.SerialNumber.Text(16)
	clk.Advance(500 * time.Millisecond)
	if got := serial(t, src); got != s1 {
		t.Fatalf("reloaded before the check interval: %s", got)
	}
	clk.Advance(600 * time.Millisecond)
	if got := serial(t, src); got != s2 {
		t.Fatalf("after the interval serial %s, want the new %s", got, s2)
	}
	if rec.count(msgReloaded) != 1 {
		t.Errorf("%d reloads logged", rec.count(msgReloaded))
	}

	// A broken rewrite keeps the last good certificate, and is reported once.
	write(t, f.cert, []byte("-----BEGIN CERTIFICATE-----\nbroken\n"))
	for range 3 {
		clk.Advance(1100 * time.Millisecond)
		if got := serial(t, src); got != s2 {
			t.Fatalf("after a broken rewrite serial %s, want the last good %s", got, s2)
		}
	}
	if n := rec.count(msgFailed); n != 1 || rec.level(msgFailed) != slog.LevelWarn {
		t.Errorf("broken rewrite logged %d times", n)
	}

	// A half-done rotation (new certificate, old key) is refused, then
	// picked up once the key follows.
	third, certPEM, keyPEM := mint(t, a, "node-a")
	write(t, f.cert, certPEM)
	clk.Advance(1100 * time.Millisecond)
	if got := serial(t, src); got != s2 {
		t.Fatalf("certificate with a mismatched key loaded: %s", got)
	}
	write(t, f.key, keyPEM)
	clk.Advance(1100 * time.Millisecond)
	if got, want := serial(t, src), third.Leaf.SerialNumber.Text(16); got != want {
		t.Fatalf("serial %s, want %s once the key matches", got, want)
	}
	if rec.count(msgFailed) != 2 || rec.count(msgReloaded) != 2 {
		t.Errorf("failures %d reloads %d, want 2 and 2", rec.count(msgFailed), rec.count(msgReloaded))
	}
}

func TestRefusesBadReloads(t *testing.T) {
	t.Parallel()
	a, other := authority(t), authority(t)
	for name, rewrite := range map[string]func(f files){
		"another node's certificate": func(f files) { writeNode(t, f, a, "node-b") },
		"a certificate from an untrusted CA": func(f files) {
			_, certPEM, keyPEM := mint(t, other, "node-a")
			write(t, f.cert, certPEM)
			write(t, f.key, keyPEM)
		},
		"an empty CA bundle": func(f files) { write(t, f.ca, nil) },
		"a missing key":      func(f files) { os.Remove(f.key) },
		"a garbage key":      func(f files) { write(t, f.key, []byte("garbage")) },
	} {
		t.Run(name, func(t *testing.T) {
			f := newFiles(t)
			good := writeNode(t, f, a, "node-a")
			src, clk, rec := newSource(t, f, "node-a")
			rewrite(f)
			clk.Advance(time.Second)
			if got, want := serial(t, src), good.Leaf.SerialNumber.Text(16); got != want {
				t.Fatalf("serial %s, want the last good %s", got, want)
			}
			if rec.count(msgFailed) != 1 {
				t.Error("failure not logged")
			}
		})
	}
}

// TestCARotation rotates the CA bundle: the new bundle trusts both CAs,
// and the leaf comes from the new one.
func TestCARotation(t *testing.T) {
	t.Parallel()
	oldCA, newCA := authority(t), authority(t)
	f := newFiles(t)
	writeNode(t, f, oldCA, "node-a")
	src, clk, _ := newSource(t, f, "")
	peerOld, _, _ := mint(t, oldCA, "node-b")
	peerNew, _, _ := mint(t, newCA, "node-c")
	trusts := func(c *tls.Certificate) bool {
		pool, err := src.TrustedCAs(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		_, err = c.Leaf.Verify(x509.VerifyOptions{Roots: pool, CurrentTime: clk.Now(), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}})
		return err == nil
	}
	if !trusts(peerOld) || trusts(peerNew) {
		t.Fatal("before rotation: want only the old CA trusted")
	}
	rotated := writeNode(t, f, newCA, "node-a", oldCA, newCA)
	clk.Advance(time.Second)
	if !trusts(peerOld) || !trusts(peerNew) {
		t.Fatal("after rotation: want both CAs trusted")
	}
	if got, want := serial(t, src), rotated.Leaf.SerialNumber.Text(16); got != want {
		t.Fatalf("serial %s, want the new CA's leaf %s", got, want)
	}
}

// TestShortInterval uses the real clock and a short CheckInterval, as an
// integration test of a user's rotation would.
func TestShortInterval(t *testing.T) {
	t.Parallel()
	a := authority(t)
	f := newFiles(t)
	writeNode(t, f, a, "node-a")
	src, err := filecerts.New(filecerts.Config{CertFile: f.cert, KeyFile: f.key, CAFile: f.ca, CheckInterval: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	want := writeNode(t, f, a, "node-a").Leaf.SerialNumber.Text(16)
	deadline := time.Now().Add(5 * time.Second)
	for serial(t, src) != want {
		if time.Now().After(deadline) {
			t.Fatal("rotation not seen within 5s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestConcurrent calls Certificate and TrustedCAs from many goroutines
// while the files rotate (run with -race).
func TestConcurrent(t *testing.T) {
	t.Parallel()
	a := authority(t)
	f := newFiles(t)
	writeNode(t, f, a, "node-a")
	src, clk, _ := newSource(t, f, "node-a")
	// Pre-mint: minting inside the loop would make the test slow.
	type pair struct{ cert, key []byte }
	var pairs []pair
	for range 5 {
		_, c, k := mint(t, a, "node-a")
		pairs = append(pairs, pair{c, k})
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				c, err := src.Certificate(context.Background())
				if err != nil || c.Leaf == nil {
					t.Errorf("Certificate: %v", err)
					return
				}
				if _, err := src.TrustedCAs(context.Background()); err != nil {
					t.Errorf("TrustedCAs: %v", err)
					return
				}
			}
		})
	}
	for _, p := range pairs {
		// Rewrite in place, key first: some checks see a mismatched pair.
		write(t, f.key, p.key)
		clk.Advance(time.Second)
		time.Sleep(2 * time.Millisecond)
		write(t, f.cert, p.cert)
		clk.Advance(time.Second)
		time.Sleep(2 * time.Millisecond)
	}
	clk.Advance(time.Second)
	last := pairs[len(pairs)-1]
	deadline := time.Now().Add(5 * time.Second)
	for {
		c, _ := src.Certificate(context.Background())
		certPEM, _, _ := ca.CertificatePEM(c)
		if string(certPEM) == string(last.cert) {
			break
		}
		if time.Now().After(deadline) {
			t.Error("last rotation not loaded")
			break
		}
		clk.Advance(time.Second)
		time.Sleep(time.Millisecond)
	}
	close(stop)
	wg.Wait()
}

func TestNewErrors(t *testing.T) {
	t.Parallel()
	a := authority(t)
	f := newFiles(t)
	writeNode(t, f, a, "node-a")
	for name, cfg := range map[string]filecerts.Config{
		"no cert file":   {KeyFile: f.key, CAFile: f.ca},
		"missing file":   {CertFile: filepath.Join(f.dir, "nope"), KeyFile: f.key, CAFile: f.ca},
		"wrong node":     {CertFile: f.cert, KeyFile: f.key, CAFile: f.ca, NodeID: "node-z"},
		"key as bundle":  {CertFile: f.cert, KeyFile: f.key, CAFile: f.key},
		"negative check": {CertFile: f.cert, KeyFile: f.key, CAFile: f.ca, CheckInterval: -1},
	} {
		_, err := filecerts.New(cfg)
		if !errors.Is(err, ports.ErrInvalidConfig) {
			t.Errorf("%s: %v, want ErrInvalidConfig", name, err)
		}
		t.Logf("%s: %v", name, err)
	}
}

// Example writes a node's files with the ca package, as a deployment tool
// would, and serves them.
func Example() {
	dir, err := os.MkdirTemp("", "filecerts-example")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)

	caPEM, caKeyPEM, err := ca.GenerateCA("Example CA", 365*24*time.Hour, time.Now())
	if err != nil {
		panic(err)
	}
	authority, err := ca.ParseAuthority(caPEM, caKeyPEM)
	if err != nil {
		panic(err)
	}
	leaf, err := authority.Mint("orders-1", 30*24*time.Hour, nil, time.Now())
	if err != nil {
		panic(err)
	}
	certPEM, keyPEM, err := ca.CertificatePEM(leaf)
	if err != nil {
		panic(err)
	}
	for name, data := range map[string][]byte{"tls.crt": certPEM, "tls.key": keyPEM, "ca.crt": caPEM} {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
			panic(err)
		}
	}

	src, err := filecerts.New(filecerts.Config{
		CertFile: filepath.Join(dir, "tls.crt"),
		KeyFile:  filepath.Join(dir, "tls.key"),
		CAFile:   filepath.Join(dir, "ca.crt"),
		NodeID:   "orders-1",
	})
	if err != nil {
		panic(err)
	}
	cert, _ := src.Certificate(context.Background())
	id, _ := ports.CertNodeID(cert.Leaf)
	fmt.Println(id)
	// Output: orders-1
}

// logRecorder is a slog.Handler that logs to t.Log and counts messages.
type logRecorder struct {
	t      testing.TB
	mu     sync.Mutex
	counts map[string]int
	levels map[string]slog.Level
}

func newLogger(t testing.TB) (*slog.Logger, *logRecorder) {
	r := &logRecorder{t: t, counts: map[string]int{}, levels: map[string]slog.Level{}}
	return slog.New(r), r
}

func (r *logRecorder) Enabled(context.Context, slog.Level) bool { return true }
func (r *logRecorder) WithAttrs([]slog.Attr) slog.Handler       { return r }
func (r *logRecorder) WithGroup(string) slog.Handler            { return r }

func (r *logRecorder) Handle(_ context.Context, rec slog.Record) error {
	var b strings.Builder
	rec.Attrs(func(a slog.Attr) bool {
		b.WriteString(" " + a.String())
		return true
	})
	r.t.Logf("%s %s%s", rec.Level, rec.Message, b.String())
	r.mu.Lock()
	defer r.mu.Unlock()
	r.counts[rec.Message]++
	r.levels[rec.Message] = rec.Level
	return nil
}

func (r *logRecorder) count(msg string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.counts[msg]
}

func (r *logRecorder) level(msg string) slog.Level {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.levels[msg]
}

// TestCoarseTimestamps rewrites the files in place with contents of the
// same size and restores their modification times, as a file system with
// coarse timestamps would show two quick writes: the rotation is still
// seen, because recently modified files are compared by content.
func TestCoarseTimestamps(t *testing.T) {
	t.Parallel()
	a := authority(t)
	f := newFiles(t)
	first := writeNode(t, f, a, "node-a")
	src, clk, _ := newSource(t, f, "node-a")
	oldCert, oldKey := stat(t, f.cert), stat(t, f.key)

	var next *tls.Certificate
	var certPEM, keyPEM []byte
	for range 100 {
		next, certPEM, keyPEM = mint(t, a, "node-a")
		if int64(len(certPEM)) == oldCert.Size() && int64(len(keyPEM)) == oldKey.Size() {
			break
		}
	}
	if int64(len(certPEM)) != oldCert.Size() {
		t.Skip("could not mint a certificate of the same size")
	}
	write(t, f.cert, certPEM)
	write(t, f.key, keyPEM)
	for _, p := range []struct {
		path string
		fi   os.FileInfo
	}{{f.cert, oldCert}, {f.key, oldKey}} {
		if err := os.Chtimes(p.path, p.fi.ModTime(), p.fi.ModTime()); err != nil {
			t.Fatal(err)
		}
		if fi := stat(t, p.path); !os.SameFile(fi, p.fi) || fi.Size() != p.fi.Size() || !fi.ModTime().Equal(p.fi.ModTime()) {
			t.Fatal("could not make the rewrite invisible to stat")
		}
	}
	clk.Advance(time.Second)
	got := serial(t, src)
	if got == first.Leaf.SerialNumber.Text(16) || got != next.Leaf.SerialNumber.Text(16) {
		t.Fatalf("serial %s, want the rewritten %s", got, next.Leaf.SerialNumber.Text(16))
	}
}

func stat(t testing.TB, path string) os.FileInfo {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi
}
