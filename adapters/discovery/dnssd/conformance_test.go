package dnssd_test

import (
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/mycorrizal/mycorrizal/adapters/discovery/dnssd"
	"github.com/mycorrizal/mycorrizal/ports"
	"github.com/mycorrizal/mycorrizal/testkit/discoverytest"
)

const srvName = "_mycorrizal._udp.test.local"

// fakeBackend runs the conformance suite against a fakeDNS.
type fakeBackend struct {
	f        *fakeDNS
	stopDown bool // Break stops the server instead of making it SERVFAIL
}

func (b *fakeBackend) Discovery(t *testing.T) ports.Discovery {
	t.Helper()
	log, _ := newLogger(t)
	r, err := dnssd.New(dnssd.Config{Name: srvName, Resolvers: []string{b.f.addr}, Timeout: 500 * time.Millisecond, Logger: log})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return r
}

func (b *fakeBackend) SetInstances(t *testing.T, addrs []string) {
	b.f.setInstances(t, srvName, addrs)
}

func (b *fakeBackend) Break(*testing.T) bool {
	if b.stopDown {
		b.f.stop()
	} else {
		b.f.set(func(f *fakeDNS) { f.rcode = dns.RcodeServerFailure })
	}
	return true
}

func TestConformance(t *testing.T) {
	t.Run("AdditionalSection", func(t *testing.T) {
		discoverytest.Run(t, func(t *testing.T) discoverytest.Backend {
			f := newFakeDNS(t)
			f.set(func(f *fakeDNS) { f.additional = true })
			return &fakeBackend{f: f}
		})
	})
	t.Run("TargetQueries", func(t *testing.T) {
		discoverytest.Run(t, func(t *testing.T) discoverytest.Backend {
			return &fakeBackend{f: newFakeDNS(t), stopDown: true}
		})
	})
}
