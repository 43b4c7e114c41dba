package onepassword

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"log/slog"
	"time"

	"github.com/mycorrizal/mycorrizal/adapters/certs/ca"
	"github.com/mycorrizal/mycorrizal/ports"
)

// Source is a ports.CertSource whose CA was fetched from 1Password. Its
// leaf certificates are minted and renewed by a ca.Source; it is safe for
// concurrent use and owns no goroutine.
type Source struct {
	certs *ca.Source
	ca    *x509.Certificate
}

var _ ports.CertSource = (*Source)(nil)

// New validates cfg, fetches the CA certificate and key from 1Password and
// returns a Source that mints this node's leaf from them.
//
// It first checks cfg offline: the required fields, a service-account token
// when cfg.Resolver is nil (naming OP_SERVICE_ACCOUNT_TOKEN when there is
// none), and the syntax of both secret references with the SDK's validator.
// These errors wrap ports.ErrInvalidConfig and name the field. The first
// use of the SDK in a process loads its WASM core, which takes seconds and
// is not interrupted by ctx.
//
// It then resolves both references, blocking on 1Password until ctx ends;
// a failure is returned wrapped, with the reference it concerns (never the
// token). A CA that does not parse or validate (see ca.ParseAuthority) is an
// error wrapping ports.ErrInvalidConfig naming both references.
func New(ctx context.Context, cfg Config) (*Source, error) {
	token, err := cfg.check()
	if err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("onepassword: fetch CA: %w", err)
	}
	for _, f := range []struct{ field, ref string }{{"CACertRef", cfg.CACertRef}, {"CAKeyRef", cfg.CAKeyRef}} {
		if err := validateReference(ctx, f.ref); err != nil {
			return nil, fmt.Errorf("onepassword: %s %q is not a valid secret reference: %w: %w", f.field, f.ref, ports.ErrInvalidConfig, err)
		}
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	resolver := cfg.Resolver
	if resolver == nil {
		name, version := cfg.integration()
		resolver = newSDKResolver(token, name, version)
	}

	log.Debug("onepassword: fetching CA from 1Password", "cert_ref", cfg.CACertRef, "key_ref", cfg.CAKeyRef)
	start := time.Now()
	certPEM, err := resolve(ctx, resolver, "CA certificate", cfg.CACertRef)
	if err != nil {
		return nil, err
	}
	keyPEM := certPEM
	if cfg.CAKeyRef != cfg.CACertRef {
		if keyPEM, err = resolve(ctx, resolver, "CA key", cfg.CAKeyRef); err != nil {
			return nil, err
		}
	}
	auth, err := ca.ParseAuthority([]byte(certPEM), []byte(keyPEM))
	if err != nil {
		return nil, fmt.Errorf("onepassword: CA from %s and %s: %w", cfg.CACertRef, cfg.CAKeyRef, err)
	}
	caCert := auth.Certificate()
	log.Info("onepassword: CA fetched from 1Password",
		"cert_ref", cfg.CACertRef, "key_ref", cfg.CAKeyRef,
		"ca", caCert.Subject.String(), "ca_not_after", caCert.NotAfter,
		"took", time.Since(start))

	certs, err := ca.NewFromAuthority(auth, ca.Config{
		NodeID:      cfg.NodeID,
		Validity:    cfg.Validity,
		RenewBefore: cfg.RenewBefore,
		Hosts:       cfg.Hosts,
		Logger:      cfg.Logger,
	})
	if err != nil {
		return nil, fmt.Errorf("onepassword: %w", err)
	}
	return &Source{certs: certs, ca: caCert}, nil
}

// resolve resolves ref, naming what it holds and ref in any error.
func resolve(ctx context.Context, r SecretResolver, what, ref string) (string, error) {
	v, err := r.Resolve(ctx, ref)
	if err != nil {
		return "", fmt.Errorf("onepassword: resolve %s %s: %w", what, ref, err)
	}
	return v, nil
}

// Certificate returns this node's current leaf certificate, minted from the
// 1Password CA and renewed before it expires, with the CA in its chain. It
// is cheap and safe for concurrent use (see ca.Source); ctx bounds a
// renewal.
func (s *Source) Certificate(ctx context.Context) (*tls.Certificate, error) {
	return s.certs.Certificate(ctx)
}

// TrustedCAs returns a pool holding the 1Password CA. It does not block.
func (s *Source) TrustedCAs(ctx context.Context) (*x509.CertPool, error) {
	return s.certs.TrustedCAs(ctx)
}

// CA returns the CA certificate fetched from 1Password. The caller must not
// modify it.
func (s *Source) CA() *x509.Certificate { return s.ca }
