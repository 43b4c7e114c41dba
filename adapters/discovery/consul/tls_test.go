package consul

import (
	"context"
	"encoding/pem"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"
)

// writeCA writes the fake agent's certificate, which signs itself, as a CA
// file.
func writeCA(t *testing.T, f *fakeAgent) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "consul-ca.pem")
	data := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: f.srv.Certificate().Raw})
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestTLS(t *testing.T) {
	f := newFakeAgent(t, true)
	f.setInstances(t, []string{"10.0.0.1:7001"})
	ca := writeCA(t, f)
	want := []string{"10.0.0.1:7001"}

	t.Run("CAFile", func(t *testing.T) {
		// Scheme is left empty: a CA file implies https.
		c := newTestConsul(t, f, Config{TLS: api.TLSConfig{CAFile: ca}, TTL: testTTL})
		if got := discoverNow(t, c); !slices.Equal(got, want) {
			t.Fatalf("Discover = %v", got)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := c.Register(ctx, testRegistration()); err != nil {
			t.Fatal(err)
		}
		if err := c.Deregister(ctx); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("ServerName", func(t *testing.T) {
		c := newTestConsul(t, f, Config{Scheme: "https", TLS: api.TLSConfig{CAFile: ca, Address: "example.com"}})
		if got := discoverNow(t, c); !slices.Equal(got, want) {
			t.Fatalf("Discover = %v", got)
		}
	})
	t.Run("HTTPSAddress", func(t *testing.T) {
		c := newTestConsul(t, f, Config{Address: "https://" + f.addr(), TLS: api.TLSConfig{CAPem: mustRead(t, ca)}})
		if got := discoverNow(t, c); !slices.Equal(got, want) {
			t.Fatalf("Discover = %v", got)
		}
	})
	t.Run("InsecureSkipVerify", func(t *testing.T) {
		c := newTestConsul(t, f, Config{Scheme: "https", TLS: api.TLSConfig{InsecureSkipVerify: true}})
		if got := discoverNow(t, c); !slices.Equal(got, want) {
			t.Fatalf("Discover = %v", got)
		}
	})
	for _, tc := range []struct {
		name string
		cfg  Config
		want string
	}{
		{"UnknownCA", Config{Scheme: "https"}, "certificate"},
		{"WrongServerName", Config{TLS: api.TLSConfig{CAFile: ca, Address: "consul.wrong.invalid"}}, "certificate"},
		{"PlainHTTP", Config{Scheme: "http"}, "400"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newTestConsul(t, f, tc.cfg)
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			addrs, err := c.Discover(ctx)
			if err == nil {
				t.Fatalf("Discover = %v, want an error", addrs)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not mention %q", err, tc.want)
			}
			t.Log(err)
		})
	}
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
