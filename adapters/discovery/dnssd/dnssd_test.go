package dnssd_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/mycorrizal/mycorrizal/adapters/discovery/dnssd"
)

// newResolver returns a Resolver of cfg (Logger and, when empty, Resolvers
// filled in) and the sink of its logs.
func newResolver(t *testing.T, cfg dnssd.Config, servers ...string) (*dnssd.Resolver, *logSink) {
	t.Helper()
	log, sink := newLogger(t)
	cfg.Logger = log
	if len(cfg.Resolvers) == 0 {
		cfg.Resolvers = servers
	}
	if cfg.Name == "" {
		cfg.Name = srvName
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = 500 * time.Millisecond
	}
	r, err := dnssd.New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return r, sink
}

func discover(t *testing.T, r *dnssd.Resolver) ([]string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return r.Discover(ctx)
}

// mustDiscover asserts that Discover returns exactly want, in order.
func mustDiscover(t *testing.T, r *dnssd.Resolver, want ...string) {
	t.Helper()
	got, err := discover(t, r)
	if err != nil {
		t.Fatalf("Discover: %v", err)
	}
	if !slices.Equal(got, want) {
		t.Fatalf("Discover = %q, want %q", got, want)
	}
}

func TestAdditionalSectionSavesQueries(t *testing.T) {
	t.Parallel()
	instances := []string{"127.0.0.1:7001", "127.0.0.2:7002", "127.0.0.3:7003"}
	for _, additional := range []bool{true, false} {
		t.Run(fmt.Sprintf("additional=%v", additional), func(t *testing.T) {
			t.Parallel()
			f := newFakeDNS(t)
			f.set(func(f *fakeDNS) { f.additional = additional })
			f.setInstances(t, srvName, instances)
			r, _ := newResolver(t, dnssd.Config{}, f.addr)
			mustDiscover(t, r, instances...)
			for i := range instances {
				target := fmt.Sprintf("node%d.test.local", i)
				a, aaaa := f.count("", dns.TypeA, target), f.count("", dns.TypeAAAA, target)
				if additional && a+aaaa != 0 {
					t.Errorf("%s: %d A and %d AAAA queries despite the additional section", target, a, aaaa)
				}
				if !additional && (a != 1 || aaaa != 1) {
					t.Errorf("%s: %d A and %d AAAA queries, want 1 each", target, a, aaaa)
				}
			}
			if n := f.count("", dns.TypeSRV, srvName); n != 1 {
				t.Errorf("%d SRV queries, want 1", n)
			}
		})
	}
}

func TestTruncatedAnswerRetriedOverTCP(t *testing.T) {
	t.Parallel()
	t.Run("TCWithoutRecords", func(t *testing.T) {
		t.Parallel()
		f := newFakeDNS(t)
		f.set(func(f *fakeDNS) { f.truncate = true })
		f.setInstances(t, srvName, []string{"127.0.0.1:7001", "127.0.0.2:7002"})
		r, _ := newResolver(t, dnssd.Config{}, f.addr)
		mustDiscover(t, r, "127.0.0.1:7001", "127.0.0.2:7002")
		if u, tc := f.count("udp", dns.TypeSRV, srvName), f.count("tcp", dns.TypeSRV, srvName); u != 1 || tc != 1 {
			t.Fatalf("SRV queries: %d over UDP, %d over TCP; want 1 and 1", u, tc)
		}
	})
	t.Run("LargeAnswer", func(t *testing.T) {
		t.Parallel()
		// 200 instances do not fit in 1232 bytes: the server cuts the UDP
		// reply and sets TC, the full answer comes over TCP.
		f := newFakeDNS(t)
		f.set(func(f *fakeDNS) { f.additional = true })
		var want []string
		for i := range 200 {
			want = append(want, fmt.Sprintf("10.0.%d.%d:7946", i/100, i%100+1))
		}
		f.setInstances(t, srvName, want)
		r, _ := newResolver(t, dnssd.Config{}, f.addr)
		got, err := discover(t, r)
		if err != nil {
			t.Fatalf("Discover: %v", err)
		}
		if len(got) != len(want) {
			t.Fatalf("Discover found %d addresses, want %d", len(got), len(want))
		}
		if tc := f.count("tcp", dns.TypeSRV, srvName); tc != 1 {
			t.Fatalf("%d SRV queries over TCP, want 1", tc)
		}
	})
}

func TestNoneFound(t *testing.T) {
	t.Parallel()
	f := newFakeDNS(t)
	f.addHost("host.test.local", "127.0.0.1")
	for _, name := range []string{srvName, "host.test.local"} { // NXDOMAIN, then NOERROR without SRV records
		r, _ := newResolver(t, dnssd.Config{Name: name}, f.addr)
		got, err := discover(t, r)
		if err != nil || len(got) != 0 {
			t.Fatalf("Discover(%s) = %q, %v; want none and no error", name, got, err)
		}
	}
}

func TestErrorRcodes(t *testing.T) {
	t.Parallel()
	for _, rcode := range []int{dns.RcodeServerFailure, dns.RcodeRefused, dns.RcodeNotImplemented, dns.RcodeFormatError, dns.RcodeNotAuth} {
		t.Run(dns.RcodeToString[rcode], func(t *testing.T) {
			t.Parallel()
			f := newFakeDNS(t)
			f.setInstances(t, srvName, []string{"127.0.0.1:7001"})
			f.set(func(f *fakeDNS) { f.rcode = rcode })
			r, _ := newResolver(t, dnssd.Config{Attempts: 3}, f.addr)
			got, err := discover(t, r)
			if err == nil {
				t.Fatalf("Discover = %q and no error", got)
			}
			if !errors.Is(err, dnssd.ErrServer) {
				t.Errorf("error does not wrap ErrServer: %v", err)
			}
			for _, s := range []string{srvName, dns.RcodeToString[rcode], "SRV", f.addr} {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error does not name %q: %v", s, err)
				}
			}
			// A server that answered is not asked again.
			if n := f.count("", dns.TypeSRV, srvName); n != 1 {
				t.Errorf("the server was asked %d times, want 1", n)
			}
		})
	}
}

func TestNextResolverAfterFailure(t *testing.T) {
	t.Parallel()
	good := newFakeDNS(t)
	good.set(func(f *fakeDNS) { f.additional = true }) // one query: SRV
	good.setInstances(t, srvName, []string{"127.0.0.1:7001"})
	failing := newFakeDNS(t)
	failing.set(func(f *fakeDNS) { f.rcode = dns.RcodeServerFailure })
	silent := newSilentServer(t)

	r, _ := newResolver(t, dnssd.Config{Timeout: 200 * time.Millisecond}, failing.addr, silent.addr, good.addr)
	start := time.Now()
	mustDiscover(t, r, "127.0.0.1:7001")
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("Discover took %v", d)
	}
	if n := silent.count.Load(); n != 1 {
		t.Errorf("the silent server got %d queries, want 1", n)
	}
}

// silentServer receives UDP queries and never answers.
type silentServer struct {
	addr  string
	count atomic.Int64
}

func newSilentServer(t *testing.T) *silentServer {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &silentServer{addr: pc.LocalAddr().String()}
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 2048)
		for {
			if _, _, err := pc.ReadFrom(buf); err != nil {
				return
			}
			s.count.Add(1)
		}
	}()
	t.Cleanup(func() {
		pc.Close()
		<-done
	})
	return s
}

func TestTimeout(t *testing.T) {
	t.Parallel()
	s := newSilentServer(t)
	r, _ := newResolver(t, dnssd.Config{Timeout: 200 * time.Millisecond, Attempts: 2}, s.addr)
	start := time.Now()
	got, err := discover(t, r)
	d := time.Since(start)
	if err == nil {
		t.Fatalf("Discover = %q and no error", got)
	}
	t.Logf("after %v: %v", d.Round(time.Millisecond), err)
	if !errors.Is(err, dnssd.ErrNoAnswer) || !strings.Contains(err.Error(), s.addr) || !strings.Contains(err.Error(), srvName) {
		t.Errorf("error does not wrap ErrNoAnswer or name the server and the name: %v", err)
	}
	if d < 350*time.Millisecond || d > 2*time.Second {
		t.Errorf("Discover took %v, want about 2 × 200ms", d)
	}
	if n := s.count.Load(); n != 2 {
		t.Errorf("the server got %d queries, want 2 (one per attempt)", n)
	}
}

func TestCancelWhileWaiting(t *testing.T) {
	t.Parallel()
	s := newSilentServer(t)
	r, _ := newResolver(t, dnssd.Config{Timeout: 5 * time.Second}, s.addr)
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(100*time.Millisecond, cancel)
	start := time.Now()
	_, err := r.Discover(ctx)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Discover: %v, want context.Canceled", err)
	}
	if d := time.Since(start); d > time.Second {
		t.Fatalf("Discover returned %v after its ctx was cancelled", d-100*time.Millisecond)
	}
}

func TestServerDown(t *testing.T) {
	t.Parallel()
	f := newFakeDNS(t)
	f.stop()
	r, _ := newResolver(t, dnssd.Config{}, f.addr)
	start := time.Now()
	if got, err := discover(t, r); err == nil {
		t.Fatalf("Discover = %q and no error", got)
	} else {
		t.Logf("after %v: %v", time.Since(start).Round(time.Millisecond), err)
	}
}

func TestIPv6(t *testing.T) {
	t.Parallel()
	f := newFakeDNS(t)
	f.addSRV(srvName, "a.test.local.", 7001)
	f.addSRV(srvName, "b.test.local.", 7002)
	f.addHost("a.test.local", "::1", "127.0.0.1")
	f.addHost("b.test.local", "2001:db8::2")
	r, _ := newResolver(t, dnssd.Config{}, f.addr)
	mustDiscover(t, r, "127.0.0.1:7001", "[::1]:7001", "[2001:db8::2]:7002")
	f.set(func(f *fakeDNS) { f.additional = true })
	mustDiscover(t, r, "127.0.0.1:7001", "[::1]:7001", "[2001:db8::2]:7002")
}

func TestDeduplicatesAndSorts(t *testing.T) {
	t.Parallel()
	f := newFakeDNS(t)
	f.addSRV(srvName, "b.test.local.", 7001)
	f.addSRV(srvName, "a.test.local.", 7001)
	f.addSRV(srvName, "A.Test.Local.", 7001) // same target, other case
	f.addSRV(srvName, "a.test.local.", 7000)
	f.addHost("a.test.local", "127.0.0.10")
	f.addHost("b.test.local", "127.0.0.10", "127.0.0.9")
	r, _ := newResolver(t, dnssd.Config{}, f.addr)
	mustDiscover(t, r, "127.0.0.9:7001", "127.0.0.10:7000", "127.0.0.10:7001")
	if n := f.count("", dns.TypeA, "a.test.local"); n != 1 {
		t.Errorf("a.test.local was looked up %d times, want 1", n)
	}
}

func TestMalformedSRVRecordsAreSkipped(t *testing.T) {
	t.Parallel()
	f := newFakeDNS(t)
	f.addSRV(srvName, ".", 7001)                   // "service not available"
	f.addSRV(srvName, "zero.test.local.", 0)       // port 0
	f.addSRV(srvName, "missing.test.local.", 7003) // NXDOMAIN
	f.addSRV(srvName, "zeros.test.local.", 7004)   // unusable address
	f.addSRV(srvName, "good.test.local.", 7005)
	f.addHost("zero.test.local", "127.0.0.2")
	f.addHost("zeros.test.local", "0.0.0.0", "::", "255.255.255.255", "224.0.0.1", "fe80::1")
	f.addHost("good.test.local", "127.0.0.5")
	r, sink := newResolver(t, dnssd.Config{}, f.addr)
	mustDiscover(t, r, "127.0.0.5:7005")

	warns := strings.Join(sink.warnings(), "\n")
	for _, s := range []string{"7001 .", "7003 missing.test.local.", "0 zero.test.local.", "zeros.test.local.", "0.0.0.0", "224.0.0.1", "fe80::1"} {
		if !strings.Contains(warns, s) {
			t.Errorf("no warning names %q; warnings:\n%s", s, warns)
		}
	}
	if strings.Contains(warns, "good.test.local") {
		t.Errorf("a warning names the good record:\n%s", warns)
	}

	// With every record bad, Discover says so.
	f.set(func(f *fakeDNS) {
		f.srv[strings.ToLower(srvName)+"."] = f.srv[strings.ToLower(srvName)+"."][:4]
	})
	got, err := discover(t, r)
	if !errors.Is(err, dnssd.ErrNoUsableRecords) {
		t.Fatalf("Discover = %q, %v; want ErrNoUsableRecords", got, err)
	}
	if !strings.Contains(err.Error(), "all 4 SRV records") || !strings.Contains(err.Error(), srvName) {
		t.Errorf("error does not describe the records: %v", err)
	}
	t.Log(err)
}

func TestGarbageInAdditionalSection(t *testing.T) {
	t.Parallel()
	f := newFakeDNS(t)
	f.addHost("node.test.local", "127.0.0.7")
	f.set(func(f *fakeDNS) {
		f.override = func(q *dns.Msg, proto string) *dns.Msg {
			m := new(dns.Msg)
			m.SetReply(q)
			qq := q.Question[0]
			switch {
			case qq.Qtype == dns.TypeSRV:
				m.Answer = append(m.Answer, mustRR(t, srvName+". 5 IN SRV 0 0 7007 node.test.local."))
				m.Extra = append(m.Extra,
					mustRR(t, "node.test.local. 5 IN A 0.0.0.0"),         // unusable
					mustRR(t, "node.test.local. 5 IN TXT \"127.0.0.9\""), // not an address
					mustRR(t, "other.test.local. 5 IN A 127.0.0.8"),      // another name
					mustRR(t, "node.test.local. 5 CH A 127.0.0.6"),       // another class
				)
			case qq.Qtype == dns.TypeA && strings.EqualFold(qq.Name, "node.test.local."):
				m.Answer = append(m.Answer, mustRR(t, "node.test.local. 5 IN A 127.0.0.7"))
			}
			return m
		}
	})
	r, sink := newResolver(t, dnssd.Config{}, f.addr)
	mustDiscover(t, r, "127.0.0.7:7007")
	if n := f.count("", dns.TypeA, "node.test.local"); n != 1 {
		t.Errorf("the target was looked up %d times, want 1 (the additional section had nothing usable)", n)
	}
	if w := strings.Join(sink.warnings(), "\n"); !strings.Contains(w, "0.0.0.0") {
		t.Errorf("no warning about the unusable additional address:\n%s", w)
	}
}

func TestFollowsCNAME(t *testing.T) {
	t.Parallel()
	f := newFakeDNS(t)
	f.set(func(f *fakeDNS) {
		f.override = func(q *dns.Msg, proto string) *dns.Msg {
			m := new(dns.Msg)
			m.SetReply(q)
			if q.Question[0].Qtype == dns.TypeSRV {
				m.Answer = append(m.Answer,
					mustRR(t, srvName+". 5 IN CNAME _alias._udp.test.local."),
					mustRR(t, "_alias._udp.test.local. 5 IN SRV 0 0 7001 node.test.local."),
					mustRR(t, "_unrelated._udp.test.local. 5 IN SRV 0 0 7002 node.test.local."),
				)
				m.Extra = append(m.Extra, mustRR(t, "node.test.local. 5 IN A 127.0.0.1"))
			}
			return m
		}
	})
	r, _ := newResolver(t, dnssd.Config{}, f.addr)
	mustDiscover(t, r, "127.0.0.1:7001")
}

func TestMismatchedReplyIsRejected(t *testing.T) {
	t.Parallel()
	f := newFakeDNS(t)
	f.set(func(f *fakeDNS) {
		f.override = func(q *dns.Msg, proto string) *dns.Msg {
			m := new(dns.Msg)
			m.SetQuestion("_other._udp.test.local.", dns.TypeSRV)
			m.Id = q.Id
			m.Response = true
			m.Answer = append(m.Answer, mustRR(t, "_other._udp.test.local. 5 IN SRV 0 0 7001 node.test.local."))
			return m
		}
	})
	r, _ := newResolver(t, dnssd.Config{Timeout: 200 * time.Millisecond}, f.addr)
	got, err := discover(t, r)
	if !errors.Is(err, dnssd.ErrNoAnswer) {
		t.Fatalf("Discover = %q, %v; want ErrNoAnswer", got, err)
	}
	t.Log(err)
}

func TestOneAddressFamilyFailing(t *testing.T) {
	t.Parallel()
	f := newFakeDNS(t)
	f.set(func(f *fakeDNS) {
		f.override = func(q *dns.Msg, proto string) *dns.Msg {
			m := new(dns.Msg)
			if q.Question[0].Qtype == dns.TypeAAAA {
				m.SetRcode(q, dns.RcodeServerFailure)
				return m
			}
			m.SetReply(q)
			m.Answer = append(m.Answer, mustRR(t, "myapp.test.local. 5 IN A 127.0.0.1"))
			return m
		}
	})
	r, sink := newResolver(t, dnssd.Config{Name: "myapp.test.local", Mode: dnssd.ModeHeadless, Port: 7946}, f.addr)
	mustDiscover(t, r, "127.0.0.1:7946")
	if w := strings.Join(sink.warnings(), "\n"); !strings.Contains(w, "SERVFAIL") {
		t.Errorf("no warning about the failed AAAA lookup:\n%s", w)
	}
}

func TestHeadless(t *testing.T) {
	t.Parallel()
	f := newFakeDNS(t)
	f.addHost("myapp.test.local", "127.0.0.2", "::1", "127.0.0.1", "127.0.0.2")
	r, _ := newResolver(t, dnssd.Config{Name: "myapp.test.local", Mode: dnssd.ModeHeadless, Port: 7946}, f.addr)
	mustDiscover(t, r, "127.0.0.1:7946", "127.0.0.2:7946", "[::1]:7946")
	if a, aaaa, srv := f.count("", dns.TypeA, "myapp.test.local"), f.count("", dns.TypeAAAA, "myapp.test.local"), f.count("", dns.TypeSRV, "myapp.test.local"); a != 1 || aaaa != 1 || srv != 0 {
		t.Errorf("queries: %d A, %d AAAA, %d SRV; want 1, 1, 0", a, aaaa, srv)
	}

	// NXDOMAIN is none found.
	r, _ = newResolver(t, dnssd.Config{Name: "other.test.local", Mode: dnssd.ModeHeadless, Port: 7946}, f.addr)
	mustDiscover(t, r)

	// Only unusable addresses is an error.
	f.addHost("zeros.test.local", "0.0.0.0")
	r, _ = newResolver(t, dnssd.Config{Name: "zeros.test.local", Mode: dnssd.ModeHeadless, Port: 7946}, f.addr)
	if got, err := discover(t, r); !errors.Is(err, dnssd.ErrNoUsableRecords) {
		t.Fatalf("Discover = %q, %v; want ErrNoUsableRecords", got, err)
	}

	// A failing server is an error.
	f.set(func(f *fakeDNS) { f.rcode = dns.RcodeRefused })
	r, _ = newResolver(t, dnssd.Config{Name: "myapp.test.local", Mode: dnssd.ModeHeadless, Port: 7946}, f.addr)
	if got, err := discover(t, r); !errors.Is(err, dnssd.ErrServer) || !strings.Contains(err.Error(), "REFUSED") {
		t.Fatalf("Discover = %q, %v; want an ErrServer naming REFUSED", got, err)
	}
}

func mustRR(t testing.TB, s string) dns.RR {
	t.Helper()
	rr, err := dns.NewRR(s)
	if err != nil {
		t.Fatalf("NewRR(%q): %v", s, err)
	}
	return rr
}
