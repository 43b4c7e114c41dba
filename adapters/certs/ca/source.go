package ca

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mycorrizal/mycorrizal/ports"
)

// DefaultValidity is the lifetime of a minted leaf when Config.Validity is
// zero.
const DefaultValidity = 30 * 24 * time.Hour

// retryDelay is how long a Source waits after a failed renewal before it
// tries again, as long as its current certificate is still valid.
const retryDelay = 30 * time.Second

// Config configures a Source.
type Config struct {
	// CACertPEM and CAKeyPEM are the CA certificate and its private key in
	// PEM (see ParseAuthority for the accepted blocks).
	CACertPEM, CAKeyPEM []byte
	// CACertFile and CAKeyFile name files holding the same, read once by
	// New for each PEM field that is empty.
	CACertFile, CAKeyFile string

	// NodeID is required: the leaf's subject CN and its URI SAN
	// ports.NodeIDURI(NodeID).
	NodeID ports.NodeID

	// Validity is the lifetime of a minted leaf (capped at the CA's own
	// expiry). Zero means DefaultValidity.
	Validity time.Duration
	// RenewBefore: Certificate mints a new leaf when less than this remains
	// of the current one. Zero means Validity/3; it must be less than
	// Validity.
	RenewBefore time.Duration

	// Hosts are optional DNS names or IP addresses added to the leaf as
	// SANs, for clients that verify a host name.
	Hosts []string

	// Logger receives renewals (Info) and problems (Warn, Error); nil
	// discards.
	Logger *slog.Logger

	// Now is the clock; nil means time.Now. Tests set it.
	Now func() time.Time
}

// Source is a ports.CertSource that mints this node's leaf certificate from
// a CA it holds and renews it lazily: Certificate returns the cached leaf
// and mints a new one, in the calling goroutine, once the cached one is
// within RenewBefore of its expiry. It starts no goroutine and needs no
// Close. It is safe for concurrent use.
type Source struct {
	auth        *Authority
	id          ports.NodeID
	validity    time.Duration
	renewBefore time.Duration
	hosts       []string
	log         *slog.Logger
	now         func() time.Time

	cur atomic.Pointer[leaf]

	mu      sync.Mutex // held while minting a renewal
	retryAt time.Time  // guarded by mu: no renewal attempt before, after a failure
}

var _ ports.CertSource = (*Source)(nil)

// leaf is a minted certificate and when to replace it.
type leaf struct {
	cert     *tls.Certificate
	notAfter time.Time
	// renewAt is the first instant at which Certificate tries to mint a
	// replacement: notAfter-RenewBefore, or notAfter itself when the leaf
	// already ends with the CA and a new one could not last longer.
	renewAt   time.Time
	renewable bool
}

// New returns a Source for the CA in cfg: it reads the CA files if the PEM
// fields are empty, parses and validates the CA (see ParseAuthority) and
// mints the first leaf. Every configuration error wraps
// ports.ErrInvalidConfig and names the offending field.
func New(cfg Config) (*Source, error) {
	if err := cfg.check(); err != nil {
		return nil, err
	}
	certPEM, certFrom, err := pemOrFile(cfg.CACertPEM, cfg.CACertFile, "CACertPEM", "CACertFile")
	if err != nil {
		return nil, err
	}
	keyPEM, keyFrom, err := pemOrFile(cfg.CAKeyPEM, cfg.CAKeyFile, "CAKeyPEM", "CAKeyFile")
	if err != nil {
		return nil, err
	}
	a, err := parseAuthority(certPEM, keyPEM, certFrom, keyFrom, nowFunc(cfg.Now)())
	if err != nil {
		return nil, err
	}
	return NewFromAuthority(a, cfg)
}

// pemOrFile returns data, or else the content of the file path.
func pemOrFile(data []byte, path, dataField, pathField string) ([]byte, string, error) {
	if len(data) > 0 {
		return data, "Config." + dataField, nil
	}
	if path == "" {
		return nil, "", fmt.Errorf("ca: Config.%s or Config.%s is required: %w", dataField, pathField, ports.ErrInvalidConfig)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, "", fmt.Errorf("ca: Config.%s: %w: %w", pathField, err, ports.ErrInvalidConfig)
	}
	return b, "Config." + pathField + " " + path, nil
}

// check validates the fields that do not concern the CA.
func (cfg Config) check() error {
	if err := checkNodeID(cfg.NodeID); err != nil {
		return fmt.Errorf("ca: Config.NodeID: %w", err)
	}
	if cfg.Validity < 0 {
		return fmt.Errorf("ca: Config.Validity %s is negative: %w", cfg.Validity, ports.ErrInvalidConfig)
	}
	validity := cmpOr(cfg.Validity, DefaultValidity)
	if cfg.RenewBefore < 0 || cfg.RenewBefore >= validity {
		return fmt.Errorf("ca: Config.RenewBefore %s must be at least 0 and less than Validity %s: %w", cfg.RenewBefore, validity, ports.ErrInvalidConfig)
	}
	for i, h := range cfg.Hosts {
		if h == "" {
			return fmt.Errorf("ca: Config.Hosts[%d] is empty: %w", i, ports.ErrInvalidConfig)
		}
	}
	return nil
}

// NewFromAuthority returns a Source minting from a, which the caller
// obtained with ParseAuthority. The CA fields of cfg (CACertPEM, CAKeyPEM,
// CACertFile, CAKeyFile) are ignored; the others mean what they mean for
// New. It checks that the CA is valid at cfg.Now and mints the first leaf.
func NewFromAuthority(a *Authority, cfg Config) (*Source, error) {
	if a == nil {
		return nil, fmt.Errorf("ca: nil Authority: %w", ports.ErrInvalidConfig)
	}
	if err := cfg.check(); err != nil {
		return nil, err
	}
	validity := cmpOr(cfg.Validity, DefaultValidity)
	s := &Source{
		auth:        a,
		id:          cfg.NodeID,
		validity:    validity,
		renewBefore: cmpOr(cfg.RenewBefore, validity/3),
		hosts:       append([]string(nil), cfg.Hosts...),
		log:         cfg.Logger,
		now:         nowFunc(cfg.Now),
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	now := s.now()
	if err := a.checkValid(now); err != nil {
		return nil, fmt.Errorf("ca: CA certificate: %w", err)
	}
	l, err := s.mint(now)
	if err != nil {
		return nil, err
	}
	s.cur.Store(l)
	return s, nil
}

func nowFunc(f func() time.Time) func() time.Time {
	if f == nil {
		return time.Now
	}
	return f
}

func cmpOr(d, def time.Duration) time.Duration {
	if d == 0 {
		return def
	}
	return d
}

// Certificate returns this node's current leaf, chain and key. It does not
// block on the hot path (an atomic load and a clock read). When the leaf is
// within RenewBefore of its expiry, the first caller to notice mints a new
// one (a few milliseconds) while concurrent callers keep getting the old,
// still valid leaf; callers only wait for the minting goroutine if the old
// leaf has already expired. It fails only when the leaf has expired and no
// new one can be minted (typically because the CA itself has expired); a
// failed renewal while the leaf is still valid is logged and retried 30
// seconds later. ctx is not used: Certificate never waits for anything but
// a mint in progress.
func (s *Source) Certificate(ctx context.Context) (*tls.Certificate, error) {
	l := s.cur.Load()
	now := s.now()
	if now.Before(l.renewAt) {
		return l.cert, nil
	}
	return s.renew(l, now)
}

// renew is Certificate's slow path.
func (s *Source) renew(l *leaf, now time.Time) (*tls.Certificate, error) {
	if now.Before(l.notAfter) {
		if !s.mu.TryLock() {
			return l.cert, nil // another goroutine is minting
		}
	} else {
		s.mu.Lock() // expired: wait for whoever is minting
	}
	defer s.mu.Unlock()

	l = s.cur.Load()
	if now.Before(l.renewAt) {
		return l.cert, nil // renewed while we waited
	}
	valid := now.Before(l.notAfter)
	if !l.renewable || (valid && now.Before(s.retryAt)) {
		if valid {
			return l.cert, nil
		}
		return nil, fmt.Errorf("ca: certificate of node %s expired at %s and CA %q expired at %s: %w",
			s.id, l.notAfter.UTC().Format(time.RFC3339), s.auth.cert.Subject.String(),
			s.auth.cert.NotAfter.UTC().Format(time.RFC3339), ports.ErrInvalidConfig)
	}
	nl, err := s.mint(now)
	if err != nil {
		s.retryAt = now.Add(retryDelay)
		if valid {
			s.log.Error("ca: certificate renewal failed; keeping the current certificate",
				"node", s.id, "not_after", l.notAfter, "retry_in", retryDelay, "err", err)
			return l.cert, nil
		}
		return nil, fmt.Errorf("ca: renew certificate of node %s: %w", s.id, err)
	}
	s.cur.Store(nl)
	s.log.Info("ca: certificate renewed", "node", s.id,
		"serial", nl.cert.Leaf.SerialNumber.Text(16), "not_after", nl.notAfter,
		"previous_not_after", l.notAfter)
	return nl.cert, nil
}

// mint mints a leaf for s at now.
func (s *Source) mint(now time.Time) (*leaf, error) {
	c, err := s.auth.Mint(s.id, s.validity, s.hosts, now)
	if err != nil {
		return nil, err
	}
	l := &leaf{cert: c, notAfter: c.Leaf.NotAfter}
	if l.notAfter.Before(s.auth.cert.NotAfter) {
		l.renewable = true
		l.renewAt = l.notAfter.Add(-s.renewBefore)
	} else {
		l.renewAt = l.notAfter
		s.log.Warn("ca: the CA expires before the requested certificate lifetime; certificate ends with the CA and cannot be renewed; replace the CA",
			"node", s.id, "ca", s.auth.cert.Subject.String(), "ca_not_after", s.auth.cert.NotAfter)
	}
	return l, nil
}

// TrustedCAs returns a new pool holding the CA: peers must present a leaf
// it signed. It never blocks; ctx is not used. The caller owns the pool.
func (s *Source) TrustedCAs(ctx context.Context) (*x509.CertPool, error) {
	return s.auth.Pool(), nil
}

// CA returns the CA certificate. The caller must not modify it.
func (s *Source) CA() *x509.Certificate { return s.auth.cert }
