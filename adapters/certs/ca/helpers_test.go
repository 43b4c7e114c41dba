package ca_test

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"log/slog"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mycorrizal/mycorrizal/adapters/certs/ca"
)

// keyFormat names how a test CA's key is encoded.
type keyFormat string

const (
	rsaPKCS1     keyFormat = "RSA PKCS#1"
	rsaPKCS8     keyFormat = "RSA PKCS#8"
	ecSEC1       keyFormat = "EC SEC1"
	ecSEC1Params keyFormat = "EC SEC1 after EC PARAMETERS"
	ecPKCS8      keyFormat = "EC PKCS#8"
	ed25519PKCS8 keyFormat = "Ed25519 PKCS#8"
)

// rsaKey is generated once: RSA key generation is slow under -race.
var rsaKey = sync.OnceValue(func() *rsa.PrivateKey {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		panic(err)
	}
	return k
})

// newKey returns a fresh key of the kind f encodes.
func newKey(t testing.TB, f keyFormat) crypto.Signer {
	t.Helper()
	switch f {
	case rsaPKCS1, rsaPKCS8:
		return rsaKey()
	case ed25519PKCS8:
		_, k, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		return k
	default:
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
}

// encodeKey encodes key in format f.
func encodeKey(t testing.TB, key crypto.Signer, f keyFormat) []byte {
	t.Helper()
	var (
		typ string
		der []byte
		err error
		out []byte
	)
	switch f {
	case rsaPKCS1:
		typ, der = "RSA PRIVATE KEY", x509.MarshalPKCS1PrivateKey(key.(*rsa.PrivateKey))
	case ecSEC1, ecSEC1Params:
		typ = "EC PRIVATE KEY"
		der, err = x509.MarshalECPrivateKey(key.(*ecdsa.PrivateKey))
		if f == ecSEC1Params { // as `openssl ecparam -genkey` writes it
			oidP256 := []byte{0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07}
			out = pem.EncodeToMemory(&pem.Block{Type: "EC PARAMETERS", Bytes: oidP256})
		}
	default:
		typ = "PRIVATE KEY"
		der, err = x509.MarshalPKCS8PrivateKey(key)
	}
	if err != nil {
		t.Fatal(err)
	}
	return append(out, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})...)
}

// caTemplate returns a valid CA template; tests mutate it.
func caTemplate(now time.Time) *x509.Certificate {
	return &x509.Certificate{
		SerialNumber:          big.NewInt(now.UnixNano()),
		Subject:               pkix.Name{CommonName: "Test CA"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(365 * 24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
}

// selfSigned returns tmpl self-signed by key, as PEM.
func selfSigned(t testing.TB, tmpl *x509.Certificate, key crypto.Signer) []byte {
	t.Helper()
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

// testCA returns a valid CA's certificate and key PEM, its key ECDSA P-256
// in PKCS#8, valid around now, with mutate (if not nil) applied.
func testCA(t testing.TB, now time.Time, mutate func(*x509.Certificate)) (certPEM, keyPEM []byte) {
	t.Helper()
	key := newKey(t, ecPKCS8)
	tmpl := caTemplate(now)
	if mutate != nil {
		mutate(tmpl)
	}
	return selfSigned(t, tmpl, key), encodeKey(t, key, ecPKCS8)
}

// writeFile writes data to name in dir and returns the path.
func writeFile(t testing.TB, dir, name string, data []byte, perm os.FileMode) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, data, perm); err != nil {
		t.Fatal(err)
	}
	return p
}

// clock is a settable clock, safe for concurrent use.
type clock struct{ ns atomic.Int64 }

func newClock(t time.Time) *clock {
	c := &clock{}
	c.ns.Store(t.UnixNano())
	return c
}

func (c *clock) Now() time.Time          { return time.Unix(0, c.ns.Load()) }
func (c *clock) Advance(d time.Duration) { c.ns.Add(int64(d)) }
func (c *clock) Set(t time.Time)         { c.ns.Store(t.UnixNano()) }

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

// count returns how many records had message msg.
func (r *logRecorder) count(msg string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.counts[msg]
}

// level returns the level of the last record with message msg.
func (r *logRecorder) level(msg string) slog.Level {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.levels[msg]
}

// mustCert calls src.Certificate and fails the test on error.
func mustCert(t testing.TB, src *ca.Source) *tls.Certificate {
	t.Helper()
	c, err := src.Certificate(context.Background())
	if err != nil {
		t.Fatalf("Certificate: %v", err)
	}
	return c
}
