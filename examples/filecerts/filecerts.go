// Package filecerts is an example of a user-written ports.CertSource: it
// serves this node's certificate and the trusted CAs from PEM files, and
// picks up new files without a restart, for example when cert-manager, a
// Vault agent or a cron job rotates them.
//
// Use it with mycorrizal like any other CertSource:
//
//	src, err := filecerts.New(filecerts.Config{
//		CertFile: "/etc/mycorrizal/tls.crt", // leaf (CN or URI SAN = node ID), then intermediates
//		KeyFile:  "/etc/mycorrizal/tls.key",
//		CAFile:   "/etc/mycorrizal/ca.crt", // the CAs peers' certificates must chain to
//		NodeID:   "orders-1",               // optional: refuse files for another node
//		Logger:   logger,
//	})
//	if err != nil {
//		return err
//	}
//	node, err := mycorrizal.New(
//		mycorrizal.WithNodeID("orders-1"),
//		mycorrizal.WithCertSource(src),
//	)
//
// What a CertSource must get right, and how this one does it:
//
//   - Certificate is called at every TLS handshake, so it must be cheap:
//     it returns a cached *tls.Certificate from an atomic pointer.
//   - Rotation without a goroutine: on the Certificate/TrustedCAs path, at
//     most once per Config.CheckInterval (default one second), one caller
//     stats the three files; when a file's identity, size or modification
//     time changed, it reloads them. Because file systems may keep
//     timestamps coarser than the time between two writes, files modified
//     in the last two seconds are also compared by content.
//   - A bad reload never breaks a running node: if the new files do not
//     parse, do not match, do not chain to the CA bundle or name another
//     node, the last good certificate stays in use and the failure is
//     logged once (a half-written rotation fixes itself at the next check).
//
// To mint the files for a test or a small deployment, see
// adapters/certs/ca: ParseAuthority, Authority.Mint and CertificatePEM.
package filecerts

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mycorrizal/mycorrizal/ports"
)

// DefaultCheckInterval is the minimum time between two checks of the files
// when Config.CheckInterval is zero.
const DefaultCheckInterval = time.Second

// racyWindow: a file modified less than this before it was examined may be
// rewritten without its size or modification time changing (coarse file
// system timestamps), so it is also compared by content.
const racyWindow = 2 * time.Second

// Config configures a Source.
type Config struct {
	// CertFile holds this node's certificate chain in PEM, leaf first; the
	// leaf must name the node ID (CN or URI SAN, see ports.CertNodeID).
	CertFile string
	// KeyFile holds the leaf's private key in PEM.
	KeyFile string
	// CAFile holds the PEM bundle of trusted CAs. The leaf must chain to
	// one of them, for both server and client authentication.
	CAFile string

	// NodeID, if set, is the node ID the leaf must name.
	NodeID ports.NodeID

	// CheckInterval is the minimum time between two checks of the files;
	// zero means DefaultCheckInterval.
	CheckInterval time.Duration

	// Logger receives reloads (Info) and failed reloads (Warn); nil
	// discards.
	Logger *slog.Logger

	// Now is the clock that paces the checks and verifies certificates;
	// nil means time.Now.
	Now func() time.Time
}

// Source is a ports.CertSource reading PEM files. It is safe for concurrent
// use, starts no goroutine and needs no Close.
type Source struct {
	files    [3]string // cert, key, CA bundle
	nodeID   ports.NodeID
	interval time.Duration
	log      *slog.Logger
	now      func() time.Time

	cur       atomic.Pointer[material]
	nextCheck atomic.Int64 // Unix nanoseconds on s.now's clock

	mu   sync.Mutex // held by the one goroutine checking the files
	seen snapshot   // guarded by mu: the files last examined, loaded or not
}

var _ ports.CertSource = (*Source)(nil)

// material is what the source serves; it is never modified once stored.
type material struct {
	cert *tls.Certificate
	pool *x509.CertPool
}

// snapshot identifies one version of the three files.
type snapshot struct {
	stats [3]os.FileInfo // nil where Stat failed
	sum   [sha256.Size]byte
	racy  bool // some file was modified within racyWindow of being examined
}

// New loads the files and returns a Source serving them. It fails with an
// error wrapping ports.ErrInvalidConfig if a file is missing or invalid.
func New(cfg Config) (*Source, error) {
	for _, f := range []struct{ name, path string }{{"CertFile", cfg.CertFile}, {"KeyFile", cfg.KeyFile}, {"CAFile", cfg.CAFile}} {
		if f.path == "" {
			return nil, fmt.Errorf("filecerts: Config.%s is required: %w", f.name, ports.ErrInvalidConfig)
		}
	}
	if cfg.CheckInterval < 0 {
		return nil, fmt.Errorf("filecerts: Config.CheckInterval %s is negative: %w", cfg.CheckInterval, ports.ErrInvalidConfig)
	}
	s := &Source{
		files:    [3]string{cfg.CertFile, cfg.KeyFile, cfg.CAFile},
		nodeID:   cfg.NodeID,
		interval: cfg.CheckInterval,
		log:      cfg.Logger,
		now:      cfg.Now,
	}
	if s.interval == 0 {
		s.interval = DefaultCheckInterval
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.now == nil {
		s.now = time.Now
	}
	now := s.now()
	snap, data, err := s.examine()
	if err != nil {
		return nil, fmt.Errorf("filecerts: %w: %w", err, ports.ErrInvalidConfig)
	}
	m, err := s.parse(data, now)
	if err != nil {
		return nil, fmt.Errorf("filecerts: %w: %w", err, ports.ErrInvalidConfig)
	}
	s.seen = snap
	s.cur.Store(m)
	s.nextCheck.Store(now.Add(s.interval).UnixNano())
	return s, nil
}

// Certificate returns the current certificate chain and key, first
// reloading the files if they changed and the last check is at least
// CheckInterval old. It never fails once New succeeded; ctx is not used.
func (s *Source) Certificate(ctx context.Context) (*tls.Certificate, error) {
	s.maybeCheck()
	return s.cur.Load().cert, nil
}

// TrustedCAs returns a new pool holding the current CA bundle, first
// reloading as Certificate does. The caller owns the pool; ctx is not used.
func (s *Source) TrustedCAs(ctx context.Context) (*x509.CertPool, error) {
	s.maybeCheck()
	return s.cur.Load().pool.Clone(), nil
}

// maybeCheck lets one caller per interval check the files.
func (s *Source) maybeCheck() {
	now := s.now()
	next := s.nextCheck.Load()
	if now.UnixNano() < next || !s.nextCheck.CompareAndSwap(next, now.Add(s.interval).UnixNano()) {
		return
	}
	if !s.mu.TryLock() {
		return // a slow check is still running
	}
	defer s.mu.Unlock()
	s.check(now)
}

// check reloads the files if they changed since they were last examined.
func (s *Source) check(now time.Time) {
	snap, data, readErr := s.examine()
	if sameStats(snap.stats, s.seen.stats) {
		if !s.seen.racy {
			return
		}
		if readErr == nil && snap.sum == s.seen.sum {
			s.seen.racy = snap.racy // settles once the files age
			return
		}
	}
	s.seen = snap
	var loaded *material
	err := readErr
	if err == nil {
		loaded, err = s.parse(data, now)
	}
	if err != nil {
		s.log.Warn("filecerts: reload failed; keeping the current certificate",
			"cert_file", s.files[0], "key_file", s.files[1], "ca_file", s.files[2], "err", err)
		return
	}
	s.cur.Store(loaded)
	s.log.Info("filecerts: certificate reloaded", "cert_file", s.files[0],
		"serial", loaded.cert.Leaf.SerialNumber.Text(16), "not_after", loaded.cert.Leaf.NotAfter)
}

// examine stats, then reads, the three files. The snapshot is valid even
// when err is not nil, so a broken version is reported only once.
func (s *Source) examine() (snap snapshot, data [3][]byte, err error) {
	examined := time.Now() // file times are wall-clock times, whatever s.now says
	for i, f := range s.files {
		fi, serr := os.Stat(f)
		if serr == nil {
			snap.stats[i] = fi
			snap.racy = snap.racy || fi.ModTime().After(examined.Add(-racyWindow))
		}
	}
	h := sha256.New()
	for i, f := range s.files {
		b, rerr := os.ReadFile(f)
		if rerr != nil && err == nil {
			err = rerr
		}
		data[i] = b
		fmt.Fprintf(h, "%d:", len(b))
		h.Write(b)
	}
	h.Sum(snap.sum[:0])
	return snap, data, err
}

// sameStats reports whether two sets of stats describe the same files,
// unchanged: same file (device and inode), size and modification time.
func sameStats(a, b [3]os.FileInfo) bool {
	for i := range a {
		switch {
		case a[i] == nil || b[i] == nil:
			if a[i] != b[i] {
				return false
			}
		case !os.SameFile(a[i], b[i]) || a[i].Size() != b[i].Size() || !a[i].ModTime().Equal(b[i].ModTime()):
			return false
		}
	}
	return true
}

// parse validates the files' contents: the key matches the leaf, the CA
// bundle is not empty, the leaf chains to it for both client and server
// authentication at now, and it names a valid node ID (the configured one,
// if any).
func (s *Source) parse(data [3][]byte, now time.Time) (*material, error) {
	cert, err := tls.X509KeyPair(data[0], data[1])
	if err != nil {
		return nil, fmt.Errorf("%s, %s: %w", s.files[0], s.files[1], err)
	}
	if cert.Leaf == nil {
		if cert.Leaf, err = x509.ParseCertificate(cert.Certificate[0]); err != nil {
			return nil, fmt.Errorf("%s: %w", s.files[0], err)
		}
	}
	pool, err := parseBundle(data[2])
	if err != nil {
		return nil, fmt.Errorf("%s: %w", s.files[2], err)
	}
	inter := x509.NewCertPool()
	for _, der := range cert.Certificate[1:] {
		c, err := x509.ParseCertificate(der)
		if err != nil {
			return nil, fmt.Errorf("%s: intermediate: %w", s.files[0], err)
		}
		inter.AddCert(c)
	}
	for _, eku := range []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth} {
		_, err := cert.Leaf.Verify(x509.VerifyOptions{Roots: pool, Intermediates: inter, CurrentTime: now, KeyUsages: []x509.ExtKeyUsage{eku}})
		if err != nil {
			return nil, fmt.Errorf("%s does not verify against %s: %w", s.files[0], s.files[2], err)
		}
	}
	id, err := ports.CertNodeID(cert.Leaf)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", s.files[0], err)
	}
	if s.nodeID != "" && id != s.nodeID {
		return nil, fmt.Errorf("%s names node %q, want %q", s.files[0], id, s.nodeID)
	}
	return &material{cert: &cert, pool: pool}, nil
}

// parseBundle returns a pool of the CERTIFICATE blocks in data.
func parseBundle(data []byte) (*x509.CertPool, error) {
	pool := x509.NewCertPool()
	n := 0
	for rest := bytes.TrimSpace(data); len(rest) > 0; {
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
			return nil, fmt.Errorf("certificate %d: %w", n+1, err)
		}
		pool.AddCert(c)
		n++
	}
	if n == 0 {
		return nil, errors.New("no PEM CERTIFICATE block found")
	}
	return pool, nil
}
