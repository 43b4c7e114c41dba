package onepassword_test

import (
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/mycorrizal/mycorrizal/adapters/certs/onepassword"
	"github.com/mycorrizal/mycorrizal/ports"
)

// TestSDK runs New against the real 1Password SDK, in its WASM core and
// without network: its secret-reference validator, and its client
// construction with a malformed token. Loading the core is the SDK's
// first-call cost: 3 to 5 s, but 40 to 50 s under the race detector, so
// with -race the test is skipped unless MYCORRIZAL_TEST_SDK_WASM=1. Run it
// without -race:
//
//	go test -run TestSDK ./adapters/certs/onepassword
func TestSDK(t *testing.T) {
	if raceEnabled && os.Getenv("MYCORRIZAL_TEST_SDK_WASM") != "1" {
		t.Skip("loading the SDK's WASM core takes 40 to 50 s under -race: run without -race (3 to 5 s), or set MYCORRIZAL_TEST_SDK_WASM=1")
	}
	ca := newTestCA(t)

	t.Run("valid", func(t *testing.T) {
		vault := newFakeVault(ca)
		vault.values["op://infra/mycorrizal-ca/keys/private-key"] = ca.keyPEM
		cfg := baseConfig(t, vault)
		cfg.CAKeyRef = "op://infra/mycorrizal-ca/keys/private-key" // with a section
		start := time.Now()
		if _, err := onepassword.New(t.Context(), cfg); err != nil {
			t.Fatalf("New: %v", err)
		}
		t.Logf("New, loading the WASM core on first use: %v", time.Since(start))
	})

	for _, c := range []struct{ field, ref string }{
		{"CACertRef", "vault/item/field"},
		{"CACertRef", "op://vault"},
		{"CAKeyRef", "op://vault/item"},
		{"CAKeyRef", "op:/vault/item/field"},
	} {
		t.Run(c.field+" "+c.ref, func(t *testing.T) {
			vault := newFakeVault(ca)
			cfg := baseConfig(t, vault)
			if c.field == "CACertRef" {
				cfg.CACertRef = c.ref
			} else {
				cfg.CAKeyRef = c.ref
			}
			start := time.Now()
			_, err := onepassword.New(t.Context(), cfg)
			t.Logf("New (%v): %v", time.Since(start), err)
			if !errors.Is(err, ports.ErrInvalidConfig) {
				t.Fatalf("New error %v does not wrap ErrInvalidConfig", err)
			}
			for _, want := range []string{c.field, c.ref, "secret reference"} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not mention %q", err, want)
				}
			}
			if calls := vault.Calls(); len(calls) > 0 {
				t.Errorf("1Password was asked for %q with an invalid reference", calls)
			}
		})
	}

	t.Run("malformed token", func(t *testing.T) {
		const token = "ops_not-a-service-account-token"
		cfg := baseConfig(t, nil)
		cfg.Resolver, cfg.Token = nil, token
		_, err := onepassword.New(t.Context(), cfg)
		t.Logf("New: %v", err)
		if err == nil {
			t.Fatal("New succeeded with a malformed token")
		}
		for e := err; e != nil; e = errors.Unwrap(e) {
			if strings.Contains(e.Error(), token) {
				t.Fatalf("an error in the chain quotes the token: %q", e)
			}
		}
		for _, want := range []string{certRef, "service account token"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("error %q does not mention %q", err, want)
			}
		}
	})
}
