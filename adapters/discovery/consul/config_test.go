package consul

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/mycorrizal/mycorrizal/ports"
)

func TestNewRejectsBadConfig(t *testing.T) {
	for _, tc := range []struct {
		name  string
		cfg   Config
		field string
	}{
		{"no service", Config{}, "Service"},
		{"service with slash", Config{Service: "a/b"}, "Service"},
		{"service with space", Config{Service: "my service"}, "Service"},
		{"empty tag", Config{Service: "s", Tags: []string{"ok", ""}}, "Tags[1]"},
		{"address with space", Config{Service: "s", Address: "local host:8500"}, "Address"},
		{"bad scheme", Config{Service: "s", Scheme: "ftp"}, "Scheme"},
		{"negative TTL", Config{Service: "s", TTL: -time.Second}, "TTL"},
		{"tiny TTL", Config{Service: "s", TTL: time.Nanosecond}, "TTL"},
		{"negative reaping", Config{Service: "s", DeregisterCriticalServiceAfter: -1}, "DeregisterCriticalServiceAfter"},
		{"negative wait", Config{Service: "s", WaitTime: -1}, "WaitTime"},
		{"long wait", Config{Service: "s", WaitTime: 11 * time.Minute}, "WaitTime"},
		{"cert without key", Config{Service: "s", TLS: api.TLSConfig{CertFile: "c.pem"}}, "TLS.CertFile"},
		{"key PEM without cert", Config{Service: "s", TLS: api.TLSConfig{KeyPEM: []byte("k")}}, "TLS.CertPEM"},
		{"missing CA file", Config{Service: "s", TLS: api.TLSConfig{CAFile: "/nonexistent/ca.pem"}}, "TLS"},
		{"bad address scheme", Config{Service: "s", Address: "ftp://x:1"}, "Address"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := New(tc.cfg)
			if err == nil {
				t.Fatalf("New(%+v) = %v, want an error", tc.cfg, c)
			}
			if !errors.Is(err, ports.ErrInvalidConfig) {
				t.Errorf("error %v does not wrap ports.ErrInvalidConfig", err)
			}
			if !strings.Contains(err.Error(), tc.field) {
				t.Errorf("error %q does not name %s", err, tc.field)
			}
			t.Log(err)
		})
	}
}

func TestNewDefaults(t *testing.T) {
	c, err := New(Config{Service: "mycorrizal"})
	if err != nil {
		t.Fatal(err)
	}
	if c.cfg.TTL != DefaultTTL || c.cfg.DeregisterCriticalServiceAfter != DefaultDeregisterCriticalServiceAfter ||
		c.cfg.WaitTime != DefaultWaitTime || c.log == nil {
		t.Errorf("defaults not applied: %+v", c.cfg)
	}
}

// TestEnvironmentDefaults checks that an empty Address and Token come from
// CONSUL_HTTP_ADDR and CONSUL_HTTP_TOKEN, as with Consul's own tools.
func TestEnvironmentDefaults(t *testing.T) {
	f := newFakeAgent(t, false)
	f.setInstances(t, []string{"10.0.0.1:7001"})
	t.Setenv("CONSUL_HTTP_ADDR", "http://"+f.addr())
	t.Setenv("CONSUL_HTTP_TOKEN", "token-from-env")
	c, err := New(Config{Service: "mycorrizal"})
	if err != nil {
		t.Fatal(err)
	}
	if got := discoverNow(t, c); len(got) != 1 || got[0] != "10.0.0.1:7001" {
		t.Fatalf("Discover = %v", got)
	}
	for _, r := range f.seen() {
		if r.Token != "token-from-env" {
			t.Errorf("%s %s sent token %q", r.Method, r.Path, r.Token)
		}
	}
}
