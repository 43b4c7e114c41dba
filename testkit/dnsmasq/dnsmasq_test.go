package dnsmasq

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
)

const srvName = "_mycorrizal._udp.test.local"

// ask returns the answer records of name/qtype from s, as strings without
// TTLs, sorted.
func ask(t *testing.T, s *Server, name string, qtype uint16) ([]string, *dns.Msg) {
	t.Helper()
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(name), qtype)
	c := &dns.Client{Timeout: 2 * time.Second}
	resp, _, err := c.Exchange(m, s.Addr())
	if err != nil {
		t.Fatalf("%s %s: %v", dns.TypeToString[qtype], name, err)
	}
	var out []string
	for _, rr := range resp.Answer {
		rr.Header().Ttl = 0
		out = append(out, strings.ReplaceAll(rr.String(), "\t", " "))
	}
	slices.Sort(out)
	return out, resp
}

func pid(s *Server) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc == nil {
		return 0
	}
	return s.proc.cmd.Process.Pid
}

func TestServesRecords(t *testing.T) {
	s := Start(t, Records{
		SRV: []SRV{
			{Name: srvName, Target: "node1.test.local", Port: 7001},
			{Name: srvName, Target: "node2.test.local.", Port: 7002},
		},
		A: map[string][]string{
			"node1.test.local": {"127.0.0.1", "::1"},
			"node2.test.local": {"127.0.0.2"},
		},
	})
	got, resp := ask(t, s, srvName, dns.TypeSRV)
	want := []string{
		srvName + ". 0 IN SRV 0 0 7001 node1.test.local.",
		srvName + ". 0 IN SRV 0 0 7002 node2.test.local.",
	}
	if !slices.Equal(got, want) {
		t.Errorf("SRV = %q, want %q", got, want)
	}
	t.Logf("additional section: %v", resp.Extra)
	if got, _ := ask(t, s, "node1.test.local", dns.TypeAAAA); !slices.Equal(got, []string{"node1.test.local. 0 IN AAAA ::1"}) {
		t.Errorf("AAAA = %q", got)
	}
	if got, resp := ask(t, s, "unknown.example", dns.TypeA); len(got) != 0 || resp.Rcode != dns.RcodeNameError {
		t.Errorf("unknown name: %q, %s; want NXDOMAIN", got, dns.RcodeToString[resp.Rcode])
	}
}

func TestSetAddressesOnlyRereads(t *testing.T) {
	recs := Records{
		SRV: []SRV{{Name: srvName, Target: "node1.test.local", Port: 7001}},
		A:   map[string][]string{"node1.test.local": {"127.0.0.1"}, "old.test.local": {"127.0.0.9"}},
	}
	s := Start(t, recs)
	before := pid(s)
	s.Set(t, Records{SRV: recs.SRV, A: map[string][]string{"node1.test.local": {"127.0.0.3", "127.0.0.4"}}})
	if pid(s) != before {
		t.Errorf("dnsmasq was restarted for an address change")
	}
	if got, _ := ask(t, s, "node1.test.local", dns.TypeA); len(got) != 2 || !strings.HasSuffix(got[0], "127.0.0.3") {
		t.Errorf("A = %q, want 127.0.0.3 and 127.0.0.4", got)
	}
	if got, resp := ask(t, s, "old.test.local", dns.TypeA); len(got) != 0 || resp.Rcode != dns.RcodeNameError {
		t.Errorf("removed host: %q, %s", got, dns.RcodeToString[resp.Rcode])
	}
}

func TestSetSRVRestartsOnSamePort(t *testing.T) {
	s := Start(t, Records{})
	addr, before := s.Addr(), pid(s)
	if got, resp := ask(t, s, srvName, dns.TypeSRV); len(got) != 0 || resp.Rcode != dns.RcodeNameError {
		t.Errorf("SRV before any record: %q, %s; want NXDOMAIN", got, dns.RcodeToString[resp.Rcode])
	}
	s.Set(t, Records{
		SRV: []SRV{{Name: srvName, Target: "node1.test.local", Port: 7001}},
		A:   map[string][]string{"node1.test.local": {"127.0.0.1"}},
	})
	if s.Addr() != addr || pid(s) == before {
		t.Errorf("after Set: addr %s (was %s), pid %d (was %d); want a restart on the same address", s.Addr(), addr, pid(s), before)
	}
	if got, _ := ask(t, s, srvName, dns.TypeSRV); len(got) != 1 {
		t.Errorf("SRV = %q, want one record", got)
	}
	// Removing every SRV record makes the name NXDOMAIN again.
	s.Set(t, Records{A: map[string][]string{"node1.test.local": {"127.0.0.1"}}})
	if got, _ := ask(t, s, srvName, dns.TypeSRV); len(got) != 0 {
		t.Errorf("SRV = %q, want none", got)
	}
}

func TestStopAndStartAgain(t *testing.T) {
	recs := Records{A: map[string][]string{"node1.test.local": {"127.0.0.1"}}}
	s := Start(t, recs)
	s.Stop(t)
	m := new(dns.Msg)
	m.SetQuestion("node1.test.local.", dns.TypeA)
	if _, _, err := (&dns.Client{Timeout: time.Second}).Exchange(m, s.Addr()); err == nil {
		t.Fatal("a stopped server answered")
	}
	s.Set(t, recs)
	if got, _ := ask(t, s, "node1.test.local", dns.TypeA); len(got) != 1 {
		t.Errorf("A = %q after restart", got)
	}
}

func TestRecordsValidate(t *testing.T) {
	for _, r := range []Records{
		{SRV: []SRV{{Name: "a,b", Target: "x", Port: 1}}},
		{SRV: []SRV{{Name: "", Target: "x", Port: 1}}},
		{SRV: []SRV{{Name: "a", Target: "x", Port: 70000}}},
		{A: map[string][]string{"x": {"not-an-ip"}}},
		{A: map[string][]string{"a b": {"127.0.0.1"}}},
	} {
		if err := r.validate(); err == nil {
			t.Errorf("%+v: accepted", r)
		}
	}
}

// recordingTB records Fatal and Skip instead of acting on them.
type recordingTB struct {
	testing.TB
	calls []string
}

func (r *recordingTB) Helper()           {}
func (r *recordingTB) Fatal(args ...any) { r.calls = append(r.calls, "Fatal") }
func (r *recordingTB) Skip(args ...any)  { r.calls = append(r.calls, "Skip") }

func TestRequireMissing(t *testing.T) {
	oldBinary, oldPaths := binary, binaryPaths
	binary, binaryPaths = "dnsmasq-not-installed-here", []string{"/nonexistent/dnsmasq"}
	t.Cleanup(func() { binary, binaryPaths = oldBinary, oldPaths })
	for _, tc := range []struct{ ci, want string }{{"true", "Fatal"}, {"", "Skip"}, {"false", "Skip"}, {"1", "Skip"}} {
		t.Setenv("CI", tc.ci)
		r := &recordingTB{TB: t}
		if p := Require(r); p != "" || len(r.calls) == 0 || r.calls[0] != tc.want {
			t.Errorf("CI=%q: Require returned %q after %v; want %s first", tc.ci, p, r.calls, tc.want)
		}
	}
}
