package onepassword_test

import (
	"context"
	"crypto/x509"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	op "github.com/1password/onepassword-sdk-go"
	"go.uber.org/goleak"

	"github.com/mycorrizal/mycorrizal/adapters/certs/onepassword"
	"github.com/mycorrizal/mycorrizal/ports"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestNewMintsLeafFromVaultCA(t *testing.T) {
	stubValidator(t)
	forbidSDKClient(t)
	ca := newTestCA(t)
	vault := newFakeVault(ca)
	cfg := baseConfig(t, vault)
	cfg.Hosts = []string{"127.0.0.1", "node-1.example"}
	cfg.Validity = time.Hour

	ctx := t.Context()
	src, err := onepassword.New(ctx, cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	if got, want := vault.Calls(), []string{certRef, keyRef}; !slices.Equal(got, want) {
		t.Errorf("resolved %q, want %q", got, want)
	}
	if !src.CA().Equal(ca.cert) {
		t.Errorf("CA() = %q, want the vault's CA %q", src.CA().Subject, ca.cert.Subject)
	}

	cert, err := src.Certificate(ctx)
	if err != nil {
		t.Fatalf("Certificate: %v", err)
	}
	leaf, err := x509.ParseCertificate(cert.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	if leaf.Subject.CommonName != "node-1" {
		t.Errorf("leaf CN = %q, want node-1", leaf.Subject.CommonName)
	}
	if id, err := ports.CertNodeID(leaf); err != nil || id != "node-1" {
		t.Errorf("CertNodeID = %q, %v; want node-1", id, err)
	}
	if !slices.Equal(leaf.DNSNames, []string{"node-1.example"}) || len(leaf.IPAddresses) != 1 {
		t.Errorf("leaf SANs = %v %v, want the configured Hosts", leaf.DNSNames, leaf.IPAddresses)
	}
	if life := leaf.NotAfter.Sub(leaf.NotBefore); life > time.Hour+2*time.Minute {
		t.Errorf("leaf lives %v, want about the configured Validity of 1h", life)
	}

	pool, err := src.TrustedCAs(ctx)
	if err != nil {
		t.Fatalf("TrustedCAs: %v", err)
	}
	inter := x509.NewCertPool()
	for _, der := range cert.Certificate[1:] {
		c, err := x509.ParseCertificate(der)
		if err != nil {
			t.Fatal(err)
		}
		inter.AddCert(c)
	}
	// One leaf serves both sides of mutual TLS.
	for _, usage := range []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth} {
		if _, err := leaf.Verify(x509.VerifyOptions{Roots: pool, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{usage}}); err != nil {
			t.Errorf("leaf does not verify against TrustedCAs for usage %v: %v", usage, err)
		}
	}

	// A certificate from another CA is not trusted.
	other := newTestCA(t)
	if _, err := other.cert.Verify(x509.VerifyOptions{Roots: pool}); err == nil {
		t.Error("TrustedCAs trusts a CA that is not the vault's")
	}
}

func TestNewOneFieldHoldingCertAndKey(t *testing.T) {
	stubValidator(t)
	ca := newTestCA(t)
	vault := newFakeVault(ca)
	vault.values[certRef] = ca.certPEM + ca.keyPEM
	cfg := baseConfig(t, vault)
	cfg.CAKeyRef = certRef

	src, err := onepassword.New(t.Context(), cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	if got := vault.Calls(); !slices.Equal(got, []string{certRef}) {
		t.Errorf("resolved %q, want the shared reference once", got)
	}
	if _, err := src.Certificate(t.Context()); err != nil {
		t.Fatalf("Certificate: %v", err)
	}
}

func TestNewResolverErrorNamesReference(t *testing.T) {
	cause := errors.New("vault unreachable")
	for _, c := range []struct {
		name, failing string
		wantCalls     []string
	}{
		{"certificate", certRef, []string{certRef}},
		{"key", keyRef, []string{certRef, keyRef}},
	} {
		t.Run(c.name, func(t *testing.T) {
			stubValidator(t)
			vault := newFakeVault(newTestCA(t))
			vault.errs[c.failing] = cause
			_, err := onepassword.New(t.Context(), baseConfig(t, vault))
			t.Logf("New: %v", err)
			if !errors.Is(err, cause) {
				t.Fatalf("New error %v does not wrap the resolver's error", err)
			}
			if !strings.Contains(err.Error(), c.failing) {
				t.Errorf("error %q does not name the reference %s", err, c.failing)
			}
			if errors.Is(err, ports.ErrInvalidConfig) {
				t.Errorf("a failed fetch is reported as a configuration error: %v", err)
			}
			if got := vault.Calls(); !slices.Equal(got, c.wantCalls) {
				t.Errorf("resolved %q, want %q", got, c.wantCalls)
			}
		})
	}
}

func TestNewRejectsBadCA(t *testing.T) {
	good := newTestCA(t)
	for _, c := range []struct {
		name          string
		certPEM, key  string
		wantInMessage string
	}{
		{"no PEM", "certificate: see attachment", good.keyPEM, "no PEM CERTIFICATE block"},
		{"key of another CA", good.certPEM, newTestCA(t).keyPEM, "does not match"},
		{"PEM flattened to one line", strings.ReplaceAll(good.certPEM, "\n", " "), good.keyPEM, "CERTIFICATE"},
	} {
		t.Run(c.name, func(t *testing.T) {
			stubValidator(t)
			vault := newFakeVault(good)
			vault.values[certRef], vault.values[keyRef] = c.certPEM, c.key
			_, err := onepassword.New(t.Context(), baseConfig(t, vault))
			t.Logf("New: %v", err)
			if !errors.Is(err, ports.ErrInvalidConfig) {
				t.Fatalf("New error %v does not wrap ErrInvalidConfig", err)
			}
			for _, want := range []string{certRef, keyRef, c.wantInMessage} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not mention %q", err, want)
				}
			}
			if strings.Contains(err.Error(), "PRIVATE KEY-----") {
				t.Errorf("error %q quotes the key", err)
			}
		})
	}
}

func TestNewConfigErrors(t *testing.T) {
	for _, c := range []struct {
		name, field string
		mutate      func(*onepassword.Config)
	}{
		{"empty cert ref", "CACertRef", func(c *onepassword.Config) { c.CACertRef = "" }},
		{"empty key ref", "CAKeyRef", func(c *onepassword.Config) { c.CAKeyRef = "" }},
		{"cert ref without op://", "CACertRef", func(c *onepassword.Config) { c.CACertRef = "vault/item/field" }},
		{"no node ID", "NodeID", func(c *onepassword.Config) { c.NodeID = "" }},
		{"node ID too long", "NodeID", func(c *onepassword.Config) { c.NodeID = ports.NodeID(strings.Repeat("n", ports.MaxNodeIDLen+1)) }},
		{"negative validity", "Validity", func(c *onepassword.Config) { c.Validity = -time.Hour }},
		{"renewal after expiry", "RenewBefore", func(c *onepassword.Config) { c.Validity, c.RenewBefore = time.Hour, 2*time.Hour }},
		{"empty host", "Hosts[1]", func(c *onepassword.Config) { c.Hosts = []string{"a", ""} }},
	} {
		t.Run(c.name, func(t *testing.T) {
			stubValidator(t)
			vault := newFakeVault(newTestCA(t))
			cfg := baseConfig(t, vault)
			c.mutate(&cfg)
			_, err := onepassword.New(t.Context(), cfg)
			t.Logf("New: %v", err)
			if !errors.Is(err, ports.ErrInvalidConfig) {
				t.Fatalf("New error %v does not wrap ErrInvalidConfig", err)
			}
			if !strings.Contains(err.Error(), c.field) {
				t.Errorf("error %q does not name %s", err, c.field)
			}
			if calls := vault.Calls(); len(calls) > 0 {
				t.Errorf("1Password was asked for %q despite the bad configuration", calls)
			}
		})
	}
}

func TestNewWithoutTokenNamesEnvVar(t *testing.T) {
	t.Setenv(onepassword.TokenEnv, "")
	validations := stubValidator(t)
	forbidSDKClient(t)
	_, err := onepassword.New(t.Context(), onepassword.Config{CACertRef: certRef, CAKeyRef: keyRef, NodeID: "node-1"})
	t.Logf("New: %v", err)
	if !errors.Is(err, ports.ErrInvalidConfig) {
		t.Fatalf("New error %v does not wrap ErrInvalidConfig", err)
	}
	if !strings.Contains(err.Error(), "OP_SERVICE_ACCOUNT_TOKEN") {
		t.Errorf("error %q does not name OP_SERVICE_ACCOUNT_TOKEN", err)
	}
	if *validations != 0 {
		t.Errorf("the SDK validator ran %d times before the token check", *validations)
	}
}

func TestNewCustomResolverNeverCreatesSDKClient(t *testing.T) {
	t.Setenv(onepassword.TokenEnv, "ops_from_env")
	stubValidator(t)
	forbidSDKClient(t)
	cfg := baseConfig(t, newFakeVault(newTestCA(t)))
	cfg.Token = "ops_from_config"
	src, err := onepassword.New(t.Context(), cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	if _, err := src.Certificate(t.Context()); err != nil {
		t.Fatalf("Certificate: %v", err)
	}
	// forbidSDKClient fails the test if the default resolver made a client.
}

func TestNewCancelledContext(t *testing.T) {
	stubValidator(t)
	vault := newFakeVault(newTestCA(t))
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	_, err := onepassword.New(ctx, baseConfig(t, vault))
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("New error %v does not wrap context.Canceled", err)
	}
	if calls := vault.Calls(); len(calls) > 0 {
		t.Errorf("1Password was asked for %q after ctx ended", calls)
	}
}

// The default resolver, with the SDK client constructor stubbed: the client
// is created once, on first use, from the token in Config or the
// environment.
func TestDefaultResolver(t *testing.T) {
	for _, c := range []struct{ name, cfgToken, envToken string }{
		{"token from Config", "ops_from_config", ""},
		{"token from environment", "", "ops_from_env"},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Setenv(onepassword.TokenEnv, c.envToken)
			stubValidator(t)
			vault := newFakeVault(newTestCA(t))
			created := 0
			onepassword.StubSDKClient(t, func(_ context.Context, opts ...op.ClientOption) (*op.Client, error) {
				created++
				if len(opts) != 2 {
					t.Errorf("SDK client created with %d options, want a token and integration info", len(opts))
				}
				return &op.Client{SecretsAPI: fakeSecrets{vault}}, nil
			})
			cfg := baseConfig(t, nil)
			cfg.Resolver = nil
			cfg.Token = c.cfgToken
			src, err := onepassword.New(t.Context(), cfg)
			if err != nil {
				t.Fatalf("New: %v", err)
			}
			if created != 1 {
				t.Errorf("SDK client created %d times, want once", created)
			}
			if got := vault.Calls(); !slices.Equal(got, []string{certRef, keyRef}) {
				t.Errorf("resolved %q, want both references", got)
			}
			if !src.CA().Equal(vault.caCert(t)) {
				t.Error("CA() is not the vault's CA")
			}
		})
	}
}

// Errors from the SDK never carry the token, even if the SDK put it in its
// message, and still name the reference; a ctx that ended is found by
// errors.Is although the SDK flattens its errors to text.
func TestDefaultResolverErrors(t *testing.T) {
	const token = "ops_eyJzZWNyZXQiOiJ0b3Atc2VjcmV0In0"
	echo := errors.New("invalid service account token " + token)

	t.Run("client creation", func(t *testing.T) {
		stubValidator(t)
		onepassword.StubSDKClient(t, func(context.Context, ...op.ClientOption) (*op.Client, error) {
			return nil, echo
		})
		cfg := baseConfig(t, nil)
		cfg.Resolver, cfg.Token = nil, token
		_, err := onepassword.New(t.Context(), cfg)
		checkSDKError(t, err, token, certRef)
	})

	t.Run("resolve", func(t *testing.T) {
		stubValidator(t)
		vault := newFakeVault(newTestCA(t))
		vault.errs[keyRef] = echo
		onepassword.StubSDKClient(t, func(context.Context, ...op.ClientOption) (*op.Client, error) {
			return &op.Client{SecretsAPI: fakeSecrets{vault}}, nil
		})
		cfg := baseConfig(t, nil)
		cfg.Resolver, cfg.Token = nil, token
		_, err := onepassword.New(t.Context(), cfg)
		checkSDKError(t, err, token, keyRef)
	})

	t.Run("ctx ends during resolve", func(t *testing.T) {
		stubValidator(t)
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		onepassword.StubSDKClient(t, func(context.Context, ...op.ClientOption) (*op.Client, error) {
			return &op.Client{SecretsAPI: cancellingSecrets{cancel}}, nil
		})
		cfg := baseConfig(t, nil)
		cfg.Resolver, cfg.Token = nil, token
		_, err := onepassword.New(ctx, cfg)
		t.Logf("New: %v", err)
		if !errors.Is(err, context.Canceled) {
			t.Errorf("New error %v does not wrap context.Canceled", err)
		}
		if !strings.Contains(err.Error(), certRef) {
			t.Errorf("error %q does not name %s", err, certRef)
		}
	})
}

func checkSDKError(t *testing.T, err error, token, ref string) {
	t.Helper()
	t.Logf("New: %v", err)
	if err == nil {
		t.Fatal("New succeeded")
	}
	for e := err; e != nil; e = errors.Unwrap(e) {
		if strings.Contains(e.Error(), token) {
			t.Fatalf("an error in the chain quotes the token: %q", e)
		}
	}
	if !strings.Contains(err.Error(), ref) {
		t.Errorf("error %q does not name %s", err, ref)
	}
	if !strings.Contains(err.Error(), "invalid service account token") {
		t.Errorf("error %q lost the SDK's explanation", err)
	}
}

// cancellingSecrets ends the ctx of the call, then fails as the SDK does:
// with an error that only has text.
type cancellingSecrets struct{ cancel context.CancelFunc }

func (s cancellingSecrets) Resolve(context.Context, string) (string, error) {
	s.cancel()
	return "", errors.New("error sending request: context canceled")
}

func (s cancellingSecrets) ResolveAll(context.Context, []string) (op.ResolveAllResponse, error) {
	return op.ResolveAllResponse{}, errors.New("not implemented")
}
