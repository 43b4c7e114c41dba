// Package dnsmasq runs Debian's dnsmasq as a child process of a test,
// serving SRV, A and AAAA records on 127.0.0.1, so DNS-based discovery can
// be tested against a real DNS server, and so integration tests can give
// nodes nothing but a DNS name to find each other by.
//
//	srv := dnsmasq.Start(t, dnsmasq.Records{
//		SRV: []dnsmasq.SRV{{Name: "_mycorrizal._udp.test.local", Target: "node1.test.local", Port: 7001}},
//		A:   map[string][]string{"node1.test.local": {"127.0.0.1"}},
//	})
//	// ask srv.Addr() for _mycorrizal._udp.test.local
//
// The server answers NXDOMAIN for every name it was not given (it forwards
// nothing). It runs until the test ends. Set replaces the records: address
// changes are applied by rewriting a hosts file and sending SIGHUP, SRV
// changes by restarting dnsmasq on the same port; either way Set returns
// once the server answers with the new records.
//
// dnsmasq comes from Debian's dnsmasq-base package (`make test-deps`
// installs it). When it is missing, Require and Start skip the test, unless
// the environment variable CI is "true", in which case they fail it.
package dnsmasq

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/miekg/dns"
)

const (
	// startTimeout bounds how long Start and Set wait for dnsmasq to serve
	// the expected records.
	startTimeout = 10 * time.Second
	// logLimit bounds the dnsmasq output kept for failing tests.
	logLimit = 64 << 10
)

// SRV is one SRV record: Name (such as "_mycorrizal._udp.test.local")
// points at Target (a host name given addresses in Records.A) and Port.
// A Target of "." publishes "service not available".
type SRV struct {
	Name   string
	Target string
	Port   int
}

// Records are the records a Server serves.
type Records struct {
	// SRV records, several per name allowed.
	SRV []SRV
	// A maps host names to their IP addresses: IPv4 addresses are served
	// as A records, IPv6 addresses as AAAA records.
	A map[string][]string
}

// Server is a running dnsmasq. Its methods are safe for concurrent use.
type Server struct {
	bin   string
	dir   string
	hosts string // path of the addn-hosts file
	port  int

	mu      sync.Mutex
	proc    *process // nil when stopped
	records Records
	log     *tailBuffer
}

// process is one dnsmasq run.
type process struct {
	cmd  *exec.Cmd
	done chan struct{} // closed when the process has exited
	err  error         // exit status, set before done is closed
}

// binary is the program Require looks for in PATH, then in binaryPaths
// (sbin directories are often missing from a non-root PATH). Tests replace
// them.
var (
	binary      = "dnsmasq"
	binaryPaths = []string{"/usr/sbin/dnsmasq", "/sbin/dnsmasq", "/usr/local/sbin/dnsmasq"}
)

// Require returns the path of the dnsmasq binary. When there is none it
// skips the test, or fails it when the environment variable CI is "true".
func Require(t testing.TB) string {
	t.Helper()
	if p, err := exec.LookPath(binary); err == nil {
		return p
	}
	for _, p := range binaryPaths {
		if st, err := os.Stat(p); err == nil && !st.IsDir() && st.Mode()&0o111 != 0 {
			return p
		}
	}
	const msg = "dnsmasq not found: install Debian's dnsmasq-base package (make test-deps does, as root)"
	if os.Getenv("CI") == "true" {
		t.Fatal(msg + " (CI=true: not skipping)")
	}
	t.Skip(msg)
	return ""
}

// Start runs dnsmasq serving records on 127.0.0.1 at a free port, and
// stops it when the test ends. It returns once the server answers with
// records. It skips or fails the test as Require does when there is no
// dnsmasq, and fails it when records are invalid or dnsmasq does not come
// up.
func Start(t testing.TB, records Records) *Server {
	t.Helper()
	bin := Require(t)
	if err := records.validate(); err != nil {
		t.Fatalf("dnsmasq: %v", err)
	}
	dir := t.TempDir()
	s := &Server{bin: bin, dir: dir, hosts: filepath.Join(dir, "hosts"), log: &tailBuffer{limit: logLimit}}
	t.Cleanup(func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		s.stopLocked()
		if t.Failed() {
			t.Logf("dnsmasq output (last %d KiB):\n%s", logLimit>>10, s.log.String())
		}
	})
	s.mu.Lock()
	defer s.mu.Unlock()
	var err error
	for range 5 { // a free port may be taken before dnsmasq binds it
		if s.port, err = freePort(); err != nil {
			t.Fatalf("dnsmasq: %v", err)
		}
		if err = s.startLocked(records, Records{}); !errors.Is(err, errExited) {
			break
		}
		s.stopLocked()
	}
	if err != nil {
		t.Fatalf("dnsmasq: %v\n%s", err, s.log.String())
	}
	s.records = records.clone()
	t.Logf("dnsmasq serving on %s", s.Addr())
	return s
}

// Addr returns the server's address, "127.0.0.1:port", for UDP and TCP.
func (s *Server) Addr() string {
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port))
}

// Set makes the server serve records instead of what it served before. It
// returns once the server answers with them. When only addresses changed
// it rewrites the hosts file and signals dnsmasq to reread it; otherwise,
// or when the server was stopped, it (re)starts dnsmasq on the same port.
func (s *Server) Set(t testing.TB, records Records) {
	t.Helper()
	if err := records.validate(); err != nil {
		t.Fatalf("dnsmasq: %v", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	old := s.records
	var err error
	if s.proc != nil && sameSRV(old.SRV, records.SRV) {
		if err = writeHosts(s.hosts, records.A); err == nil {
			err = s.proc.cmd.Process.Signal(syscall.SIGHUP)
		}
		if err == nil {
			err = s.awaitLocked(records, old)
		}
	} else {
		s.stopLocked()
		err = s.restartLocked(records, old)
	}
	if err != nil {
		t.Fatalf("dnsmasq: %v\n%s", err, s.log.String())
	}
	s.records = records.clone()
}

// Stop stops dnsmasq: queries to Addr then fail (connection refused). A
// later Set starts it again on the same port.
func (s *Server) Stop(t testing.TB) {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stopLocked()
}

// restartLocked starts dnsmasq on s.port again, retrying briefly while the
// port is still held (by a dnsmasq child finishing a TCP connection).
func (s *Server) restartLocked(records, old Records) error {
	deadline := time.Now().Add(startTimeout)
	for {
		err := s.startLocked(records, old)
		if !errors.Is(err, errExited) || time.Now().After(deadline) {
			return err
		}
		s.stopLocked()
		time.Sleep(50 * time.Millisecond)
	}
}

// errExited is wrapped by the error of startLocked and awaitLocked when
// dnsmasq exited (typically at start, because the port is in use).
var errExited = errors.New("dnsmasq exited")

// startLocked writes the hosts file, starts dnsmasq on s.port and waits
// until it serves records (see awaitLocked).
func (s *Server) startLocked(records, old Records) error {
	if err := writeHosts(s.hosts, records.A); err != nil {
		return err
	}
	args := []string{
		"--keep-in-foreground",
		"--conf-file=/dev/null", // not /etc/dnsmasq.conf
		"--pid-file=",           // none
		"--no-resolv", "--no-hosts", "--no-poll",
		"--port=" + strconv.Itoa(s.port),
		"--listen-address=127.0.0.1", "--bind-interfaces",
		"--local=/#/", // answer NXDOMAIN for unknown names instead of REFUSED
		"--addn-hosts=" + s.hosts,
		"--local-ttl=0",
		"--log-facility=-", "--log-queries",
	}
	if os.Geteuid() == 0 {
		// As root dnsmasq drops to "nobody", which cannot read the hosts
		// file in the test's private temporary directory.
		args = append(args, "--user=root")
	}
	for _, r := range records.SRV {
		if strings.TrimSuffix(r.Target, ".") == "" {
			args = append(args, "--srv-host="+strings.TrimSuffix(r.Name, "."))
			continue
		}
		args = append(args, fmt.Sprintf("--srv-host=%s,%s,%d", strings.TrimSuffix(r.Name, "."), strings.TrimSuffix(r.Target, "."), r.Port))
	}
	cmd := exec.Command(s.bin, args...)
	cmd.Stdout, cmd.Stderr = s.log, s.log
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", s.bin, err)
	}
	p := &process{cmd: cmd, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	s.proc = p
	return s.awaitLocked(records, old)
}

// stopLocked stops the running dnsmasq, if any, and waits for it to exit.
func (s *Server) stopLocked() {
	p := s.proc
	if p == nil {
		return
	}
	s.proc = nil
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(5 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

// awaitLocked polls the server until it answers with exactly records,
// including no records for the names of old that records lacks.
func (s *Server) awaitLocked(records, old Records) error {
	want := expected(records, old)
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	c := &dns.Client{Net: "udp", Timeout: 500 * time.Millisecond}
	var last error
	for {
		if s.proc != nil {
			select {
			case <-s.proc.done:
				return fmt.Errorf("%w: %v", errExited, s.proc.err)
			default:
			}
		}
		last = check(ctx, c, s.Addr(), want)
		if last == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("dnsmasq on %s did not serve the records within %v: %w", s.Addr(), startTimeout, last)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// probeName is asked to see that the server is up; it has no records.
const probeName = "probe.dnsmasq.mycorrizal.invalid."

// question is one query and the answer expected to it, as sorted strings.
type question struct {
	name  string // fully qualified, lower case
	qtype uint16
	want  []string
}

// expected lists the queries that show the server serves records, and
// has dropped the names of old that records lacks.
func expected(records, old Records) []question {
	srv := map[string][]string{}
	addrs := map[string]map[uint16][]string{}
	for _, r := range old.SRV {
		srv[fqdn(r.Name)] = nil
	}
	for h := range old.A {
		addrs[fqdn(h)] = nil
	}
	for _, r := range records.SRV {
		v := "."
		if t := fqdn(r.Target); t != "." {
			v = fmt.Sprintf("%s %d", t, r.Port)
		}
		srv[fqdn(r.Name)] = append(srv[fqdn(r.Name)], v)
	}
	for h, ips := range records.A {
		m := map[uint16][]string{}
		for _, ip := range ips {
			a := netip.MustParseAddr(ip).Unmap() // validated
			t := dns.TypeA
			if a.Is6() {
				t = dns.TypeAAAA
			}
			m[t] = append(m[t], a.String())
		}
		addrs[fqdn(h)] = m
	}
	// At least one question, so an empty server is also seen to be up.
	qs := []question{{probeName, dns.TypeA, nil}}
	for name, want := range srv {
		qs = append(qs, question{name, dns.TypeSRV, sortedSet(want)})
	}
	for name, m := range addrs {
		qs = append(qs, question{name, dns.TypeA, sortedSet(m[dns.TypeA])}, question{name, dns.TypeAAAA, sortedSet(m[dns.TypeAAAA])})
	}
	return qs
}

// check asks each question once and reports the first wrong answer.
func check(ctx context.Context, c *dns.Client, addr string, qs []question) error {
	for _, q := range qs {
		m := new(dns.Msg)
		m.SetQuestion(q.name, q.qtype)
		m.SetEdns0(4096, false)
		resp, _, err := c.ExchangeContext(ctx, m, addr)
		if err != nil {
			return fmt.Errorf("%s %s: %w", dns.TypeToString[q.qtype], q.name, err)
		}
		if resp.Truncated {
			tc := &dns.Client{Net: "tcp", Timeout: c.Timeout}
			if resp, _, err = tc.ExchangeContext(ctx, m, addr); err != nil {
				return fmt.Errorf("%s %s over TCP: %w", dns.TypeToString[q.qtype], q.name, err)
			}
		}
		if resp.Rcode != dns.RcodeSuccess && resp.Rcode != dns.RcodeNameError {
			return fmt.Errorf("%s %s: %s", dns.TypeToString[q.qtype], q.name, dns.RcodeToString[resp.Rcode])
		}
		var got []string
		for _, rr := range resp.Answer {
			switch rr := rr.(type) {
			case *dns.SRV:
				if rr.Target == "." {
					got = append(got, ".")
				} else {
					got = append(got, fmt.Sprintf("%s %d", strings.ToLower(rr.Target), rr.Port))
				}
			case *dns.A:
				got = append(got, rr.A.String())
			case *dns.AAAA:
				got = append(got, rr.AAAA.String())
			}
		}
		if got = sortedSet(got); !slices.Equal(got, q.want) {
			return fmt.Errorf("%s %s: got %q, want %q", dns.TypeToString[q.qtype], q.name, got, q.want)
		}
	}
	return nil
}

// validate checks that r can be expressed as dnsmasq options.
func (r Records) validate() error {
	for i, s := range r.SRV {
		if err := checkName(s.Name); err != nil {
			return fmt.Errorf("SRV[%d].Name %q: %w", i, s.Name, err)
		}
		if s.Target != "." {
			if err := checkName(s.Target); err != nil {
				return fmt.Errorf("SRV[%d].Target %q: %w", i, s.Target, err)
			}
		}
		if s.Port < 0 || s.Port > 65535 {
			return fmt.Errorf("SRV[%d].Port %d: out of range", i, s.Port)
		}
	}
	for h, ips := range r.A {
		if err := checkName(h); err != nil {
			return fmt.Errorf("A host %q: %w", h, err)
		}
		for _, ip := range ips {
			if _, err := netip.ParseAddr(ip); err != nil {
				return fmt.Errorf("A host %q: %w", h, err)
			}
		}
	}
	return nil
}

func checkName(n string) error {
	if strings.TrimSuffix(n, ".") == "" || strings.ContainsAny(n, ", \t\n/#") {
		return errors.New("not a usable domain name")
	}
	if _, ok := dns.IsDomainName(n); !ok {
		return errors.New("not a valid domain name")
	}
	return nil
}

func (r Records) clone() Records {
	c := Records{SRV: slices.Clone(r.SRV), A: make(map[string][]string, len(r.A))}
	for h, ips := range r.A {
		c.A[h] = slices.Clone(ips)
	}
	return c
}

// sameSRV reports whether a and b hold the same records, in any order.
func sameSRV(a, b []SRV) bool {
	key := func(s []SRV) []string {
		var out []string
		for _, r := range s {
			out = append(out, fmt.Sprintf("%s %s %d", fqdn(r.Name), fqdn(r.Target), r.Port))
		}
		slices.Sort(out)
		return out
	}
	return slices.Equal(key(a), key(b))
}

// writeHosts atomically replaces the hosts file at path with hosts.
func writeHosts(path string, hosts map[string][]string) error {
	var b bytes.Buffer
	for _, h := range slices.Sorted(func(yield func(string) bool) {
		for h := range hosts {
			if !yield(h) {
				return
			}
		}
	}) {
		for _, ip := range hosts[h] {
			fmt.Fprintf(&b, "%s %s\n", netip.MustParseAddr(ip).Unmap(), strings.TrimSuffix(h, "."))
		}
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b.Bytes(), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// freePort returns a port on 127.0.0.1 free for both UDP and TCP now.
func freePort() (int, error) {
	var last error
	for range 20 {
		pc, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			return 0, err
		}
		ln, err := net.Listen("tcp", pc.LocalAddr().String())
		port := pc.LocalAddr().(*net.UDPAddr).Port
		pc.Close()
		if err != nil {
			last = err
			continue
		}
		ln.Close()
		return port, nil
	}
	return 0, fmt.Errorf("no free port: %w", last)
}

func fqdn(n string) string { return strings.ToLower(dns.Fqdn(n)) }

func sortedSet(s []string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	s = slices.Compact(s)
	if len(s) == 0 {
		return nil
	}
	return s
}

// tailBuffer keeps the last limit bytes written to it. It is safe for
// concurrent use.
type tailBuffer struct {
	mu    sync.Mutex
	limit int
	b     []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.b = append(t.b, p...)
	if over := len(t.b) - t.limit; over > 0 {
		t.b = append(t.b[:0], t.b[over:]...)
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.b)
}
