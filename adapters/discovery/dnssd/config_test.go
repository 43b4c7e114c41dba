package dnssd_test

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mycorrizal/mycorrizal/adapters/discovery/dnssd"
)

func TestNewValidates(t *testing.T) {
	t.Parallel()
	ok := dnssd.Config{Name: srvName, Resolvers: []string{"127.0.0.1:53"}}
	for _, tc := range []struct {
		field string
		edit  func(c *dnssd.Config)
	}{
		{"Name", func(c *dnssd.Config) { c.Name = "" }},
		{"Name", func(c *dnssd.Config) { c.Name = "a..b" }},
		{"Name", func(c *dnssd.Config) { c.Name = strings.Repeat("x", 64) + ".test" }},
		{"Name", func(c *dnssd.Config) { c.Name = "." }},
		{"Port", func(c *dnssd.Config) { c.Port = 7946 }},
		{"Port", func(c *dnssd.Config) { c.Mode = dnssd.ModeHeadless }},
		{"Port", func(c *dnssd.Config) { c.Mode, c.Port = dnssd.ModeHeadless, 65536 }},
		{"Port", func(c *dnssd.Config) { c.Mode, c.Port = dnssd.ModeHeadless, -1 }},
		{"Mode", func(c *dnssd.Config) { c.Mode = 7 }},
		{"Timeout", func(c *dnssd.Config) { c.Timeout = -time.Second }},
		{"Attempts", func(c *dnssd.Config) { c.Attempts = -1 }},
		{"Resolvers[1]", func(c *dnssd.Config) { c.Resolvers = append(c.Resolvers, "dns.example.com:53") }},
		{"Resolvers[1]", func(c *dnssd.Config) { c.Resolvers = append(c.Resolvers, "127.0.0.1:0") }},
		{"Resolvers[1]", func(c *dnssd.Config) { c.Resolvers = append(c.Resolvers, "127.0.0.1:domain") }},
		{"Resolvers[1]", func(c *dnssd.Config) { c.Resolvers = append(c.Resolvers, "") }},
	} {
		c := ok
		c.Resolvers = slices.Clone(ok.Resolvers)
		tc.edit(&c)
		_, err := dnssd.New(c)
		if err == nil {
			t.Errorf("New(%+v) accepted it", c)
			continue
		}
		if !strings.Contains(err.Error(), "Config."+tc.field) {
			t.Errorf("New(%+v): error does not name %s: %v", c, tc.field, err)
		}
	}
}

func TestNewDefaults(t *testing.T) {
	t.Parallel()
	r, err := dnssd.New(dnssd.Config{Name: "myapp.test.local", Mode: dnssd.ModeHeadless, Port: 7946,
		Resolvers: []string{"10.0.0.1", "::1", "10.0.0.2:5353", "[fe80::1%lo]:53"}})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	if got := r.Name(); got != "myapp.test.local." {
		t.Errorf("Name() = %q, want the fully qualified name", got)
	}
	want := []string{"10.0.0.1:53", "[::1]:53", "10.0.0.2:5353", "[fe80::1%lo]:53"}
	if got := r.Resolvers(); !slices.Equal(got, want) {
		t.Errorf("Resolvers() = %q, want %q", got, want)
	}
}

// The tests below replace the resolv.conf path, so they do not run in
// parallel.

func TestSystemResolvers(t *testing.T) {
	dir := t.TempDir()
	conf := filepath.Join(dir, "resolv.conf")
	if err := os.WriteFile(conf, []byte("# comment\nsearch svc.cluster.local cluster.local\nnameserver 10.96.0.10\nnameserver 2001:db8::53\noptions ndots:5\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	dnssd.SetResolvConf(t, conf)
	r, err := dnssd.New(dnssd.Config{Name: srvName})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	if got, want := r.Resolvers(), []string{"10.96.0.10:53", "[2001:db8::53]:53"}; !slices.Equal(got, want) {
		t.Errorf("Resolvers() = %q, want %q", got, want)
	}
}

func TestSystemResolversFallback(t *testing.T) {
	dir := t.TempDir()
	empty := filepath.Join(dir, "empty.conf")
	if err := os.WriteFile(empty, []byte("search example.com\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{filepath.Join(dir, "missing.conf"), empty} {
		dnssd.SetResolvConf(t, path)
		log, sink := newLogger(t)
		r, err := dnssd.New(dnssd.Config{Name: srvName, Logger: log})
		if err != nil {
			t.Fatalf("New: %v", err)
		}
		if got := r.Resolvers(); !slices.Equal(got, []string{dnssd.FallbackResolver}) {
			t.Errorf("%s: Resolvers() = %q, want the fallback", path, got)
		}
		if w := strings.Join(sink.warnings(), "\n"); !strings.Contains(w, path) || !strings.Contains(w, dnssd.FallbackResolver) {
			t.Errorf("%s: no warning naming the file and the fallback: %q", path, w)
		}
	}
}
