package dnssd_test

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/mycorrizal/mycorrizal/adapters/discovery/dnssd"
)

// TestGarbageReplies feeds the resolver random, structurally valid replies
// full of odd records, and replies whose bytes are corrupted, and checks
// that it never panics, never hangs, and returns only well-formed,
// deduplicated, sorted addresses.
func TestGarbageReplies(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(1, 2))
	var mu sync.Mutex // guards rng, used by the server goroutines
	f := newFakeDNS(t)
	f.set(func(f *fakeDNS) {
		f.raw = func(q *dns.Msg, proto string) []byte {
			mu.Lock()
			defer mu.Unlock()
			return garbageReply(rng, q, proto)
		}
	})
	resolvers := []*dnssd.Resolver{}
	for _, cfg := range []dnssd.Config{
		{Name: srvName},
		{Name: "node.test.local", Mode: dnssd.ModeHeadless, Port: 7946},
	} {
		cfg.Timeout, cfg.Attempts = 100*time.Millisecond, 1
		r, _ := newResolver(t, cfg, f.addr)
		resolvers = append(resolvers, r)
	}
	var found, empty int
	failed := map[string]int{}
	for i := range 400 {
		r := resolvers[i%len(resolvers)]
		got, err := discover(t, r)
		switch {
		case errors.Is(err, dnssd.ErrServer):
			failed["server error"]++
		case errors.Is(err, dnssd.ErrNoAnswer):
			failed["no answer"]++
		case errors.Is(err, dnssd.ErrNoUsableRecords):
			failed["no usable records"]++
		case err != nil:
			t.Fatalf("Discover: unexpected kind of error: %v", err)
		case len(got) == 0:
			empty++
		default:
			found++
			checkAddrs(t, got)
		}
	}
	t.Logf("%d lookups found addresses, %d found none; failures: %v", found, empty, failed)
}

// checkAddrs asserts that addrs are "ip:port" with a usable IP and a
// non-zero port, sorted and without duplicates.
func checkAddrs(t *testing.T, addrs []string) {
	t.Helper()
	var aps []netip.AddrPort
	for _, a := range addrs {
		ap, err := netip.ParseAddrPort(a)
		if err != nil || ap.Port() == 0 || ap.Addr().IsUnspecified() || ap.Addr().IsMulticast() || ap.Addr().Is4In6() {
			t.Fatalf("Discover returned %q: not a usable ip:port (%v)", a, err)
		}
		if ap.String() != a {
			t.Fatalf("Discover returned %q, not in canonical form %q", a, ap.String())
		}
		aps = append(aps, ap)
	}
	if !slices.IsSortedFunc(aps, netip.AddrPort.Compare) {
		t.Fatalf("Discover returned %q, not sorted", addrs)
	}
	if len(slices.Compact(slices.Clone(aps))) != len(aps) {
		t.Fatalf("Discover returned duplicates: %q", addrs)
	}
}

// garbageReply returns a reply to q: random records, or a packed reply
// with some bytes corrupted, or random bytes, always with q's ID so the
// client reads it.
func garbageReply(rng *rand.Rand, q *dns.Msg, proto string) []byte {
	m := new(dns.Msg)
	m.SetReply(q)
	if rng.IntN(20) == 0 {
		m.Rcode = rng.IntN(24)
	}
	m.Truncated = proto == "udp" && rng.IntN(10) == 0
	qname := q.Question[0].Name
	names := []string{qname, qname, qname, "node.test.local.", "Node.Test.Local.", ".", "x.", "a.b.c.d.e.f.", randomName(rng)}
	pick := func() string { return names[rng.IntN(len(names))] }
	for range rng.IntN(12) {
		m.Answer = append(m.Answer, randomRR(rng, pick))
	}
	for range rng.IntN(12) {
		m.Extra = append(m.Extra, randomRR(rng, pick))
	}
	for range rng.IntN(3) {
		m.Ns = append(m.Ns, randomRR(rng, pick))
	}
	b, err := m.Pack()
	if err != nil {
		b = make([]byte, 12)
	}
	switch rng.IntN(8) {
	default: // as packed
	case 1: // flip some bytes
		for range 1 + rng.IntN(8) {
			b[rng.IntN(len(b))] = byte(rng.Uint32())
		}
	case 2: // cut short
		b = b[:rng.IntN(len(b)+1)]
	case 3: // random bytes
		b = make([]byte, rng.IntN(600))
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
	}
	if len(b) >= 2 {
		binary.BigEndian.PutUint16(b, q.Id)
	}
	return b
}

func randomRR(rng *rand.Rand, name func() string) dns.RR {
	class := uint16(dns.ClassINET)
	if rng.IntN(10) == 0 {
		class = uint16(rng.IntN(300))
	}
	hdr := func(t uint16) dns.RR_Header {
		return dns.RR_Header{Name: name(), Rrtype: t, Class: class, Ttl: rng.Uint32()}
	}
	ip4 := func() net.IP {
		return net.IPv4(byte(rng.Uint32()), byte(rng.Uint32()), byte(rng.Uint32()), byte(rng.Uint32())).To4()
	}
	special := []string{"0.0.0.0", "255.255.255.255", "224.0.0.1", "127.0.0.1", "::", "::1", "fe80::1", "::ffff:10.0.0.1", "ff02::1"}
	kind := rng.IntN(9)
	if kind == 7 && rng.IntN(10) != 0 {
		kind = 2 // one such record spoils the whole reply: keep them rare
	}
	switch kind {
	case 0, 1:
		return &dns.SRV{Hdr: hdr(dns.TypeSRV), Priority: uint16(rng.Uint32()), Weight: uint16(rng.Uint32()),
			Port: []uint16{0, 1, 7946, 65535, uint16(rng.Uint32())}[rng.IntN(5)], Target: name()}
	case 2:
		if rng.IntN(2) == 0 {
			ip := net.ParseIP(special[rng.IntN(len(special))])
			if ip.To4() != nil {
				return &dns.A{Hdr: hdr(dns.TypeA), A: ip.To4()}
			}
			return &dns.AAAA{Hdr: hdr(dns.TypeAAAA), AAAA: ip}
		}
		return &dns.A{Hdr: hdr(dns.TypeA), A: ip4()}
	case 3:
		ip := make(net.IP, 16)
		for i := range ip {
			ip[i] = byte(rng.Uint32())
		}
		return &dns.AAAA{Hdr: hdr(dns.TypeAAAA), AAAA: ip}
	case 4:
		return &dns.CNAME{Hdr: hdr(dns.TypeCNAME), Target: name()}
	case 5:
		return &dns.TXT{Hdr: hdr(dns.TypeTXT), Txt: []string{randomName(rng)}}
	case 6:
		return &dns.MX{Hdr: hdr(dns.TypeMX), Preference: 1, Mx: name()}
	case 7: // a type the resolver asks for, with data of the wrong shape
		t := []uint16{dns.TypeA, dns.TypeAAAA, dns.TypeSRV}[rng.IntN(3)]
		data := make([]byte, rng.IntN(20))
		for i := range data {
			data[i] = byte(rng.Uint32())
		}
		return &dns.RFC3597{Hdr: hdr(t), Rdata: fmt.Sprintf("%x", data)}
	default:
		return &dns.PTR{Hdr: hdr(dns.TypePTR), Ptr: name()}
	}
}

func randomName(rng *rand.Rand) string {
	const letters = "abcdefghijklmnopqrstuvwxyz0123456789-_"
	var labels []string
	for range 1 + rng.IntN(4) {
		b := make([]byte, 1+rng.IntN(12))
		for i := range b {
			b[i] = letters[rng.IntN(len(letters))]
		}
		labels = append(labels, string(b))
	}
	return strings.Join(labels, ".") + "."
}

// FuzzReply answers every query with the fuzzer's bytes (with the query's
// ID patched in) and checks that Discover neither panics nor returns a
// malformed address. Its seeds run as part of go test.
func FuzzReply(f *testing.F) {
	for _, s := range []string{
		srvName + ". 5 IN SRV 0 0 7001 node.test.local.",
		"node.test.local. 5 IN A 127.0.0.1",
		"node.test.local. 5 IN AAAA ::1",
	} {
		rr, err := dns.NewRR(s)
		if err != nil {
			f.Fatal(err)
		}
		m := new(dns.Msg)
		m.SetQuestion(dns.Fqdn(srvName), dns.TypeSRV)
		m.Response = true
		m.Answer = []dns.RR{rr}
		b, err := m.Pack()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte{})
	f.Add(make([]byte, 12))

	var (
		mu      sync.Mutex
		payload []byte
	)
	srv := newFakeDNS(f)
	srv.set(func(s *fakeDNS) {
		s.raw = func(q *dns.Msg, proto string) []byte {
			mu.Lock()
			defer mu.Unlock()
			b := slices.Clone(payload)
			if len(b) >= 2 {
				binary.BigEndian.PutUint16(b, q.Id)
			}
			return b
		}
	})
	var rs []*dnssd.Resolver
	for _, cfg := range []dnssd.Config{
		{Name: srvName},
		{Name: "node.test.local", Mode: dnssd.ModeHeadless, Port: 7946},
	} {
		cfg.Resolvers, cfg.Timeout, cfg.Attempts = []string{srv.addr}, 50*time.Millisecond, 1
		r, err := dnssd.New(cfg)
		if err != nil {
			f.Fatal(err)
		}
		rs = append(rs, r)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		mu.Lock()
		payload = b
		mu.Unlock()
		for _, r := range rs {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			got, err := r.Discover(ctx)
			cancel()
			if err == nil {
				checkAddrs(t, got)
			}
		}
	})
}
