package dnssd_test

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// fakeDNS is an in-process DNS server on 127.0.0.1, UDP and TCP on the same
// port, serving records the test controls.
type fakeDNS struct {
	addr string

	mu         sync.Mutex
	srv        map[string][]*dns.SRV                   // by lower-case owner
	hosts      map[string][]net.IP                     // by lower-case owner; A and AAAA
	additional bool                                    // put targets' addresses in the additional section
	rcode      int                                     // when not 0, answer every query with it
	truncate   bool                                    // answer UDP queries with TC set and no records
	override   func(q *dns.Msg, proto string) *dns.Msg // when set, its reply is sent (nil: no reply)
	raw        func(q *dns.Msg, proto string) []byte   // when set, its bytes are sent as the reply
	queries    map[string]int                          // "proto TYPE name" -> count
	servers    []*dns.Server
}

// newFakeDNS starts a fakeDNS and stops it when the test ends.
func newFakeDNS(t testing.TB) *fakeDNS {
	t.Helper()
	f := &fakeDNS{srv: map[string][]*dns.SRV{}, hosts: map[string][]net.IP{}, queries: map[string]int{}}
	var (
		pc  net.PacketConn
		ln  net.Listener
		err error
	)
	for range 20 { // the TCP port matching a free UDP port may be taken
		pc, err = net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatalf("listen udp: %v", err)
		}
		ln, err = net.Listen("tcp", pc.LocalAddr().String())
		if err == nil {
			break
		}
		pc.Close()
	}
	if err != nil {
		t.Fatalf("listen tcp: %v", err)
	}
	f.addr = pc.LocalAddr().String()
	h := dns.HandlerFunc(f.serve)
	started := make(chan struct{}, 2)
	notify := func() { started <- struct{}{} }
	f.servers = []*dns.Server{
		{PacketConn: pc, Handler: h, NotifyStartedFunc: notify},
		{Listener: ln, Handler: h, NotifyStartedFunc: notify},
	}
	var wg sync.WaitGroup
	for _, s := range f.servers {
		wg.Go(func() { _ = s.ActivateAndServe() })
	}
	<-started
	<-started
	t.Cleanup(func() {
		f.stop()
		wg.Wait()
	})
	return f
}

// stop shuts the server down; later queries find nothing listening.
func (f *fakeDNS) stop() {
	f.mu.Lock()
	servers := f.servers
	f.servers = nil
	f.mu.Unlock()
	for _, s := range servers {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		_ = s.ShutdownContext(ctx)
		cancel()
	}
}

// setInstances makes name's SRV records announce addrs ("ip:port"), one
// target host per address, replacing every record served before.
func (f *fakeDNS) setInstances(t testing.TB, name string, addrs []string) {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	clear(f.srv)
	clear(f.hosts)
	for i, a := range addrs {
		host, port := splitAddr(t, a)
		target := fmt.Sprintf("node%d.test.local.", i)
		f.addSRVLocked(name, target, port)
		f.hosts[target] = append(f.hosts[target], net.ParseIP(host))
	}
}

// addSRV adds an SRV record of name.
func (f *fakeDNS) addSRV(name, target string, port uint16) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.addSRVLocked(name, target, port)
}

func (f *fakeDNS) addSRVLocked(name, target string, port uint16) {
	k := strings.ToLower(dns.Fqdn(name))
	f.srv[k] = append(f.srv[k], &dns.SRV{
		Hdr:    dns.RR_Header{Name: dns.Fqdn(name), Rrtype: dns.TypeSRV, Class: dns.ClassINET, Ttl: 5},
		Target: target, Port: port, Priority: 10, Weight: 10,
	})
}

// addHost adds A (IPv4) or AAAA (IPv6) records of host.
func (f *fakeDNS) addHost(host string, ips ...string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	k := strings.ToLower(dns.Fqdn(host))
	for _, ip := range ips {
		f.hosts[k] = append(f.hosts[k], net.ParseIP(ip))
	}
}

func (f *fakeDNS) set(fn func(f *fakeDNS)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fn(f)
}

// count returns how many queries of type qtype for name arrived over proto
// ("udp", "tcp" or "" for both).
func (f *fakeDNS) count(proto string, qtype uint16, name string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, p := range []string{"udp", "tcp"} {
		if proto == "" || proto == p {
			n += f.queries[p+" "+dns.TypeToString[qtype]+" "+strings.ToLower(dns.Fqdn(name))]
		}
	}
	return n
}

func (f *fakeDNS) serve(w dns.ResponseWriter, q *dns.Msg) {
	proto := "udp"
	if _, ok := w.RemoteAddr().(*net.TCPAddr); ok {
		proto = "tcp"
	}
	if len(q.Question) != 1 {
		m := new(dns.Msg)
		m.SetRcode(q, dns.RcodeFormatError)
		_ = w.WriteMsg(m)
		return
	}
	qq := q.Question[0]
	name := strings.ToLower(qq.Name)
	f.mu.Lock()
	defer f.mu.Unlock()
	f.queries[proto+" "+dns.TypeToString[qq.Qtype]+" "+name]++
	if f.raw != nil {
		if b := f.raw(q, proto); b != nil {
			_, _ = w.Write(b)
		}
		return
	}
	if f.override != nil {
		if m := f.override(q, proto); m != nil {
			_ = w.WriteMsg(m)
		}
		return
	}
	m := new(dns.Msg)
	m.SetReply(q)
	m.Authoritative = true
	switch {
	case f.rcode != 0:
		m.Rcode = f.rcode
	case f.truncate && proto == "udp":
		m.Truncated = true
	default:
		_, isSRV := f.srv[name]
		_, isHost := f.hosts[name]
		if !isSRV && !isHost {
			m.Rcode = dns.RcodeNameError
			break
		}
		switch qq.Qtype {
		case dns.TypeSRV:
			for _, s := range f.srv[name] {
				m.Answer = append(m.Answer, s)
				if f.additional {
					m.Extra = append(m.Extra, f.addrRRs(strings.ToLower(s.Target), dns.TypeA)...)
					m.Extra = append(m.Extra, f.addrRRs(strings.ToLower(s.Target), dns.TypeAAAA)...)
				}
			}
		case dns.TypeA, dns.TypeAAAA:
			m.Answer = f.addrRRs(name, qq.Qtype)
		}
	}
	if proto == "udp" {
		// As a real server does: a reply larger than the client's buffer
		// is cut down and gets the TC bit.
		size := dns.MinMsgSize
		if opt := q.IsEdns0(); opt != nil {
			size = int(opt.UDPSize())
		}
		m.Truncate(size)
	}
	_ = w.WriteMsg(m)
}

// addrRRs returns host's A or AAAA records. f.mu is held.
func (f *fakeDNS) addrRRs(host string, qtype uint16) []dns.RR {
	var out []dns.RR
	for _, ip := range f.hosts[host] {
		hdr := dns.RR_Header{Name: host, Rrtype: qtype, Class: dns.ClassINET, Ttl: 5}
		switch {
		case qtype == dns.TypeA && ip.To4() != nil:
			out = append(out, &dns.A{Hdr: hdr, A: ip.To4()})
		case qtype == dns.TypeAAAA && ip.To4() == nil:
			out = append(out, &dns.AAAA{Hdr: hdr, AAAA: ip})
		}
	}
	return out
}

func splitAddr(t testing.TB, a string) (string, uint16) {
	t.Helper()
	host, port, err := net.SplitHostPort(a)
	if err != nil {
		t.Fatalf("bad instance %q: %v", a, err)
	}
	var p uint16
	if _, err := fmt.Sscan(port, &p); err != nil {
		t.Fatalf("bad instance %q: %v", a, err)
	}
	return host, p
}

// logSink is a slog handler that logs to the test and keeps the messages
// of WARN and above for assertions.
type logSink struct {
	t     testing.TB
	mu    sync.Mutex
	warns []string
}

func newLogger(t testing.TB) (*slog.Logger, *logSink) {
	s := &logSink{t: t}
	return slog.New(s), s
}

func (s *logSink) Enabled(context.Context, slog.Level) bool { return true }

func (s *logSink) Handle(_ context.Context, r slog.Record) error {
	var b strings.Builder
	b.WriteString(r.Level.String() + " " + r.Message)
	r.Attrs(func(a slog.Attr) bool {
		fmt.Fprintf(&b, " %s=%q", a.Key, a.Value.String())
		return true
	})
	s.t.Log(b.String())
	if r.Level >= slog.LevelWarn {
		s.mu.Lock()
		s.warns = append(s.warns, b.String())
		s.mu.Unlock()
	}
	return nil
}

func (s *logSink) WithAttrs([]slog.Attr) slog.Handler { return s }
func (s *logSink) WithGroup(string) slog.Handler      { return s }

// warnings returns the WARN messages logged so far.
func (s *logSink) warnings() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.warns...)
}
