package quic_test

import (
	"context"
	"errors"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/mycorrizal/mycorrizal/adapters/transport/quic"
	"github.com/mycorrizal/mycorrizal/ports"
	"github.com/mycorrizal/mycorrizal/testkit/transporttest"
)

func TestMain(m *testing.M) {
	// quic-go warns once on stderr when it cannot enlarge the UDP buffers.
	_ = os.Setenv("QUIC_GO_DISABLE_RECEIVE_BUFFER_WARNING", "true")
	goleak.VerifyTestMain(m)
}

func TestConformance(t *testing.T) {
	transporttest.Run(t, func(t *testing.T) transporttest.NewTransport {
		ca := newCA(t, "conformance CA")
		return func(id ports.NodeID) ports.Transport {
			cfg := testConfig(t, newSource(ca.leaf(t, id), ca.pool))
			// A closed node does not answer: keep the case that dials one short.
			cfg.HandshakeTimeout = time.Second
			tr, err := quic.New(cfg)
			if err != nil {
				t.Fatal(err)
			}
			return tr
		}
	})
}

func TestNewValidates(t *testing.T) {
	ca := newCA(t, "ca")
	src := newSource(ca.leaf(t, "a"), ca.pool)
	ok := quic.Config{ListenAddr: "127.0.0.1:0", Certs: src}
	for _, c := range []struct {
		field string
		edit  func(*quic.Config)
	}{
		{"ListenAddr", func(c *quic.Config) { c.ListenAddr = "" }},
		{"ListenAddr", func(c *quic.Config) { c.ListenAddr = "127.0.0.1" }},
		{"ListenAddr", func(c *quic.Config) { c.ListenAddr = "127.0.0.1:70000" }},
		{"AdvertiseAddr", func(c *quic.Config) { c.AdvertiseAddr = "nohostport" }},
		{"AdvertiseAddr", func(c *quic.Config) { c.AdvertiseAddr = "0.0.0.0:7000" }},
		{"AdvertiseAddr", func(c *quic.Config) { c.AdvertiseAddr = ":7000" }},
		{"Certs", func(c *quic.Config) { c.Certs = nil }},
		{"HandshakeTimeout", func(c *quic.Config) { c.HandshakeTimeout = -time.Second }},
		{"KeepAlivePeriod", func(c *quic.Config) { c.KeepAlivePeriod = -1 }},
		{"KeepAlivePeriod", func(c *quic.Config) { c.KeepAlivePeriod = 20 * time.Second }},
		{"MaxIdleTimeout", func(c *quic.Config) { c.MaxIdleTimeout = -1 }},
		{"StreamIdleTimeout", func(c *quic.Config) { c.StreamIdleTimeout = -1 }},
		{"MaxIncomingStreams", func(c *quic.Config) { c.MaxIncomingStreams = -1 }},
		{"MaxIncomingStreams", func(c *quic.Config) { c.MaxIncomingStreams = quic.MaxIncomingStreamsLimit + 1 }},
		{"DialBackoffMin", func(c *quic.Config) { c.DialBackoffMin = time.Minute }},
		{"DialBackoffMax", func(c *quic.Config) { c.DialBackoffMax = -1 }},
		{"MaxDialEntries", func(c *quic.Config) { c.MaxDialEntries = -1 }},
	} {
		cfg := ok
		c.edit(&cfg)
		_, err := quic.New(cfg)
		if !errors.Is(err, ports.ErrInvalidConfig) || !strings.Contains(err.Error(), c.field) {
			t.Errorf("New with a bad %s = %v; want ErrInvalidConfig naming the field", c.field, err)
		}
	}
	tr, err := quic.New(ok)
	if err != nil {
		t.Fatalf("New(valid) = %v", err)
	}
	_ = tr.Close()
}

func TestListen(t *testing.T) {
	ca := newCA(t, "ca")
	src := newSource(ca.leaf(t, "a"), ca.pool)
	ctx := context.Background()

	t.Run("NotStarted", func(t *testing.T) {
		tr, err := quic.New(quic.Config{ListenAddr: "127.0.0.1:0", Certs: src})
		if err != nil {
			t.Fatal(err)
		}
		defer tr.Close()
		if _, err := tr.Accept(ctx); !errors.Is(err, ports.ErrNotStarted) {
			t.Errorf("Accept before Listen = %v; want ErrNotStarted", err)
		}
		if _, err := tr.Open(ctx, "b", "127.0.0.1:1"); !errors.Is(err, ports.ErrNotStarted) {
			t.Errorf("Open before Listen = %v; want ErrNotStarted", err)
		}
	})

	t.Run("Unspecified", func(t *testing.T) {
		tr, err := quic.New(quic.Config{ListenAddr: "0.0.0.0:0", Certs: src})
		if err != nil {
			t.Fatal(err)
		}
		defer tr.Close()
		_, err = tr.Listen(ctx, "a")
		if !errors.Is(err, ports.ErrInvalidConfig) || !strings.Contains(err.Error(), "AdvertiseAddr") {
			t.Errorf("Listen on 0.0.0.0 without AdvertiseAddr = %v; want ErrInvalidConfig naming AdvertiseAddr", err)
		}
	})

	t.Run("Advertise", func(t *testing.T) {
		tr, err := quic.New(quic.Config{ListenAddr: "0.0.0.0:0", AdvertiseAddr: "192.0.2.7:0", Certs: src})
		if err != nil {
			t.Fatal(err)
		}
		defer tr.Close()
		addr, err := tr.Listen(ctx, "a")
		if err != nil {
			t.Fatal(err)
		}
		host, port, _ := net.SplitHostPort(addr)
		if host != "192.0.2.7" || port == "0" || port == "" {
			t.Errorf("Listen = %q; want 192.0.2.7 with the bound port", addr)
		}
		tr2, _ := quic.New(quic.Config{ListenAddr: "127.0.0.1:0", AdvertiseAddr: "node-a.example:7946", Certs: src})
		defer tr2.Close()
		if addr, err := tr2.Listen(ctx, "a"); err != nil || addr != "node-a.example:7946" {
			t.Errorf("Listen = %q, %v; want the AdvertiseAddr", addr, err)
		}
	})

	t.Run("Bound", func(t *testing.T) {
		tr, _ := quic.New(quic.Config{ListenAddr: "127.0.0.1:0", Certs: src})
		defer tr.Close()
		addr, err := tr.Listen(ctx, "a")
		if err != nil {
			t.Fatal(err)
		}
		if host, port, _ := net.SplitHostPort(addr); host != "127.0.0.1" || port == "0" {
			t.Errorf("Listen = %q; want 127.0.0.1 with the bound port", addr)
		}
		if _, err := tr.Listen(ctx, "a"); err == nil {
			t.Error("second Listen succeeded")
		}
		_ = tr.Close()
		if _, err := tr.Listen(ctx, "a"); !errors.Is(err, ports.ErrClosed) {
			t.Errorf("Listen after Close = %v; want ErrClosed", err)
		}
	})

	t.Run("CertificateForAnotherNode", func(t *testing.T) {
		tr, _ := quic.New(quic.Config{ListenAddr: "127.0.0.1:0", Certs: src}) // a certificate for "a"
		defer tr.Close()
		if _, err := tr.Listen(ctx, "y"); !errors.Is(err, ports.ErrInvalidConfig) {
			t.Errorf("Listen as y with a certificate for a = %v; want ErrInvalidConfig", err)
		}
	})
}
