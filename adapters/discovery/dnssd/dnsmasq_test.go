package dnssd_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/mycorrizal/mycorrizal/adapters/discovery/dnssd"
	"github.com/mycorrizal/mycorrizal/ports"
	"github.com/mycorrizal/mycorrizal/testkit/discoverytest"
	"github.com/mycorrizal/mycorrizal/testkit/dnsmasq"
)

// These tests ask a real DNS server, Debian's dnsmasq. They skip when it
// is not installed, unless CI=true.

// dnsmasqBackend runs the conformance suite against dnsmasq: SetInstances
// publishes one SRV record and one host per address (restarting dnsmasq),
// Break stops it.
type dnsmasqBackend struct{ srv *dnsmasq.Server }

func (b *dnsmasqBackend) Discovery(t *testing.T) ports.Discovery {
	t.Helper()
	log, _ := newLogger(t)
	r, err := dnssd.New(dnssd.Config{Name: srvName, Resolvers: []string{b.srv.Addr()}, Timeout: time.Second, Logger: log})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return r
}

func (b *dnsmasqBackend) SetInstances(t *testing.T, addrs []string) {
	t.Helper()
	recs := dnsmasq.Records{A: map[string][]string{}}
	for i, a := range addrs {
		host, port := splitAddr(t, a)
		target := fmt.Sprintf("node%d.test.local", i)
		recs.SRV = append(recs.SRV, dnsmasq.SRV{Name: srvName, Target: target, Port: int(port)})
		recs.A[target] = []string{host}
	}
	b.srv.Set(t, recs)
}

func (b *dnsmasqBackend) Break(t *testing.T) bool {
	b.srv.Stop(t)
	return true
}

func TestDnsmasqConformance(t *testing.T) {
	dnsmasq.Require(t)
	discoverytest.Run(t, func(t *testing.T) discoverytest.Backend {
		return &dnsmasqBackend{srv: dnsmasq.Start(t, dnsmasq.Records{})}
	})
}

func TestDnsmasqSRV(t *testing.T) {
	srv := dnsmasq.Start(t, dnsmasq.Records{
		SRV: []dnsmasq.SRV{
			{Name: srvName, Target: "node1.test.local", Port: 7001},
			{Name: srvName, Target: "node2.test.local", Port: 7002},
			{Name: srvName, Target: "nowhere.test.local", Port: 7003}, // no address: skipped
		},
		A: map[string][]string{
			"node1.test.local": {"127.0.0.1", "::1"},
			"node2.test.local": {"127.0.0.2"},
		},
	})
	r, sink := newResolver(t, dnssd.Config{Name: srvName + "."}, srv.Addr())
	mustDiscover(t, r, "127.0.0.1:7001", "127.0.0.2:7002", "[::1]:7001")
	if len(sink.warnings()) != 1 {
		t.Errorf("want one warning, about nowhere.test.local: %q", sink.warnings())
	}
}

func TestDnsmasqHeadless(t *testing.T) {
	srv := dnsmasq.Start(t, dnsmasq.Records{A: map[string][]string{
		"myapp.test.local": {"127.0.0.2", "127.0.0.1", "::1"},
	}})
	r, _ := newResolver(t, dnssd.Config{Name: "myapp.test.local", Mode: dnssd.ModeHeadless, Port: 7946}, srv.Addr())
	mustDiscover(t, r, "127.0.0.1:7946", "127.0.0.2:7946", "[::1]:7946")

	// A pod goes away and another comes (dnsmasq rereads its hosts file).
	srv.Set(t, dnsmasq.Records{A: map[string][]string{
		"myapp.test.local": {"127.0.0.1", "127.0.0.3"},
	}})
	mustDiscover(t, r, "127.0.0.1:7946", "127.0.0.3:7946")

	// The service is gone.
	srv.Set(t, dnsmasq.Records{})
	mustDiscover(t, r)
}
