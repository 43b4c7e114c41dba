package onepassword_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"io"
	"log/slog"
	"math/big"
	"strings"
	"sync"
	"testing"
	"time"

	op "github.com/1password/onepassword-sdk-go"

	"github.com/mycorrizal/mycorrizal/adapters/certs/onepassword"
)

const (
	certRef = "op://infra/mycorrizal-ca/certificate"
	keyRef  = "op://infra/mycorrizal-ca/private-key"
)

// testCA is a CA generated for one test, as it would be stored in a vault.
type testCA struct {
	cert            *x509.Certificate
	certPEM, keyPEM string
}

// newTestCA generates a self-signed ECDSA P-256 CA valid for a year.
func newTestCA(t testing.TB) testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(now.UnixNano()),
		Subject:               pkix.Name{CommonName: "mycorrizal test CA"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(365 * 24 * time.Hour),
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
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return testCA{
		cert:    cert,
		certPEM: string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})),
		keyPEM:  string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})),
	}
}

// fakeVault is a SecretResolver serving fixed values, or errors, by
// reference, and recording the references asked for.
type fakeVault struct {
	values map[string]string
	errs   map[string]error

	mu    sync.Mutex
	calls []string
}

// newFakeVault returns a fakeVault holding ca under certRef and keyRef.
func newFakeVault(ca testCA) *fakeVault {
	return &fakeVault{
		values: map[string]string{certRef: ca.certPEM, keyRef: ca.keyPEM},
		errs:   map[string]error{},
	}
}

func (v *fakeVault) Resolve(ctx context.Context, ref string) (string, error) {
	v.mu.Lock()
	v.calls = append(v.calls, ref)
	v.mu.Unlock()
	if err := ctx.Err(); err != nil {
		return "", err
	}
	if err := v.errs[ref]; err != nil {
		return "", err
	}
	val, ok := v.values[ref]
	if !ok {
		return "", errors.New("no such item or field")
	}
	return val, nil
}

func (v *fakeVault) Calls() []string {
	v.mu.Lock()
	defer v.mu.Unlock()
	return append([]string(nil), v.calls...)
}

// fakeSecrets is an op.SecretsAPI serving from a fakeVault, for SDK clients
// built by a stubbed constructor.
type fakeSecrets struct{ vault *fakeVault }

func (s fakeSecrets) Resolve(ctx context.Context, ref string) (string, error) {
	return s.vault.Resolve(ctx, ref)
}

func (s fakeSecrets) ResolveAll(context.Context, []string) (op.ResolveAllResponse, error) {
	return op.ResolveAllResponse{}, errors.New("fakeSecrets: ResolveAll not implemented")
}

// stubValidator replaces the SDK's WASM validator with a cheap check of the
// "op://" prefix and counts its calls.
func stubValidator(t testing.TB) *int {
	t.Helper()
	calls := new(int)
	onepassword.StubSDKValidator(t, func(_ context.Context, ref string) error {
		*calls++
		if !strings.HasPrefix(ref, "op://") {
			return errors.New(`stub validator: secret reference is not prefixed with "op://"`)
		}
		return nil
	})
	return calls
}

// forbidSDKClient makes the test fail if the SDK client is ever created.
func forbidSDKClient(t testing.TB) {
	t.Helper()
	onepassword.StubSDKClient(t, func(context.Context, ...op.ClientOption) (*op.Client, error) {
		t.Error("the SDK client was created")
		return nil, errors.New("forbidden in this test")
	})
}

// testLogger returns a logger writing to t.Log until t ends.
func testLogger(t testing.TB) *slog.Logger {
	t.Helper()
	w := &tlogWriter{t: t}
	t.Cleanup(w.close)
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type tlogWriter struct {
	mu   sync.Mutex
	t    testing.TB
	done bool
}

func (w *tlogWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.done {
		return 0, io.ErrClosedPipe
	}
	w.t.Helper()
	w.t.Log(strings.TrimSuffix(string(p), "\n"))
	return len(p), nil
}

func (w *tlogWriter) close() {
	w.mu.Lock()
	w.done = true
	w.mu.Unlock()
}

// baseConfig returns a valid Config reading ca from a fakeVault.
func baseConfig(t testing.TB, vault *fakeVault) onepassword.Config {
	return onepassword.Config{
		CACertRef: certRef,
		CAKeyRef:  keyRef,
		NodeID:    "node-1",
		Logger:    testLogger(t),
		Resolver:  vault,
	}
}

// caCert returns the CA certificate the vault holds under certRef.
func (v *fakeVault) caCert(t testing.TB) *x509.Certificate {
	t.Helper()
	b, _ := pem.Decode([]byte(v.values[certRef]))
	if b == nil {
		t.Fatal("fakeVault holds no CA certificate")
	}
	c, err := x509.ParseCertificate(b.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c
}
