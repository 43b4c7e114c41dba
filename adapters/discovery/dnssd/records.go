package dnssd

import (
	"fmt"
	"net/netip"
	"strings"

	"github.com/miekg/dns"
)

// maxCNAMEs bounds how many CNAME hops in one answer are followed.
const maxCNAMEs = 8

// answers returns the records of type qtype in resp's answer section that
// belong to name, directly or through a chain of CNAME records in the same
// answer. Records for other names are ignored.
func answers(resp *dns.Msg, name string, qtype uint16) []dns.RR {
	owners := map[string]bool{strings.ToLower(name): true}
	cur := strings.ToLower(name)
	for range maxCNAMEs {
		next := ""
		for _, rr := range resp.Answer {
			if c, ok := rr.(*dns.CNAME); ok && strings.EqualFold(c.Hdr.Name, cur) {
				next = strings.ToLower(c.Target)
				break
			}
		}
		if next == "" || owners[next] {
			break
		}
		owners[next] = true
		cur = next
	}
	var out []dns.RR
	for _, rr := range resp.Answer {
		if rr == nil {
			continue
		}
		h := rr.Header()
		if h.Rrtype == qtype && h.Class == dns.ClassINET && owners[strings.ToLower(h.Name)] {
			out = append(out, rr)
		}
	}
	return out
}

// address returns the IP address of an A or AAAA record, or an error
// saying why it cannot be used to reach a node.
func address(rr dns.RR) (netip.Addr, error) {
	var ip []byte
	switch rr := rr.(type) {
	case *dns.A:
		ip = rr.A.To4()
	case *dns.AAAA:
		ip = rr.AAAA.To16()
	default:
		return netip.Addr{}, fmt.Errorf("not an A or AAAA record")
	}
	a, ok := netip.AddrFromSlice(ip)
	if !ok {
		return netip.Addr{}, fmt.Errorf("malformed address")
	}
	a = a.Unmap()
	switch {
	case a.IsUnspecified():
		return netip.Addr{}, fmt.Errorf("unspecified address %s", a)
	case a.IsMulticast():
		return netip.Addr{}, fmt.Errorf("multicast address %s", a)
	case a == netip.AddrFrom4([4]byte{255, 255, 255, 255}):
		return netip.Addr{}, fmt.Errorf("broadcast address %s", a)
	case a.Is6() && a.IsLinkLocalUnicast():
		return netip.Addr{}, fmt.Errorf("link-local address %s has no zone", a)
	}
	return a, nil
}

// extraAddrs indexes the A and AAAA records of resp's additional section by
// lower-case owner name.
func extraAddrs(resp *dns.Msg) map[string][]dns.RR {
	m := make(map[string][]dns.RR)
	for _, rr := range resp.Extra {
		if rr == nil {
			continue
		}
		h := rr.Header()
		if (h.Rrtype == dns.TypeA || h.Rrtype == dns.TypeAAAA) && h.Class == dns.ClassINET {
			k := strings.ToLower(h.Name)
			m[k] = append(m[k], rr)
		}
	}
	return m
}

// describe returns a short, printable form of rr for logs and errors.
func describe(rr dns.RR) string {
	if rr == nil {
		return "<nil>"
	}
	s := strings.ReplaceAll(rr.String(), "\t", " ")
	if len(s) > 200 {
		s = s[:200] + "..."
	}
	return s
}
