package dnssd

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/miekg/dns"

	"github.com/mycorrizal/mycorrizal/ports"
)

const (
	// lookupParallelism bounds the A/AAAA lookups of SRV targets in flight.
	lookupParallelism = 8
	// maxTargetLookups bounds how many SRV targets one Discover resolves
	// with queries of their own (targets whose addresses came in the
	// additional section do not count).
	maxTargetLookups = 512
	// maxReasons bounds the reasons listed in an ErrNoUsableRecords error.
	maxReasons = 3
)

// Resolver is a ports.Discovery that looks up seed addresses in DNS. It
// keeps no state between calls and is safe for concurrent use.
type Resolver struct {
	s   settings
	udp *dns.Client
	tcp *dns.Client
}

var _ ports.Discovery = (*Resolver)(nil)

// New validates c, applies its defaults and returns a Resolver. Errors name
// the Config field at fault. When c.Resolvers is empty New reads
// /etc/resolv.conf once, here.
func New(c Config) (*Resolver, error) {
	s, err := c.settings()
	if err != nil {
		return nil, err
	}
	return &Resolver{
		s:   s,
		udp: &dns.Client{Net: "udp", Timeout: s.timeout, UDPSize: udpSize},
		tcp: &dns.Client{Net: "tcp", Timeout: s.timeout},
	}, nil
}

// Name returns the fully qualified name the Resolver looks up.
func (r *Resolver) Name() string { return r.s.name }

// Resolvers returns the DNS servers the Resolver asks, as "ip:port".
func (r *Resolver) Resolvers() []string { return slices.Clone(r.s.servers) }

// Discover looks the name up and returns "ip:port" addresses, sorted and
// without duplicates; see the package documentation for the lookups made
// and the errors returned. It blocks until the lookups finish or fail, at
// most about Attempts × len(Resolvers) × Timeout per query, and returns
// promptly with ctx's error once ctx ends.
func (r *Resolver) Discover(ctx context.Context) ([]string, error) {
	var (
		found []netip.AddrPort
		err   error
	)
	switch r.s.mode {
	case ModeHeadless:
		found, err = r.discoverHeadless(ctx)
	default:
		found, err = r.discoverSRV(ctx)
	}
	if err != nil {
		return nil, err
	}
	return format(found), nil
}

// discoverHeadless pairs the addresses of the name with the configured port.
func (r *Resolver) discoverHeadless(ctx context.Context) ([]netip.AddrPort, error) {
	rrs, err := r.lookupHost(ctx, r.s.name)
	if err != nil {
		return nil, err
	}
	var out []netip.AddrPort
	var reasons []string
	for _, rr := range rrs {
		a, err := address(rr)
		if err != nil {
			r.s.log.Warn("dnssd: skipping unusable address record", "name", r.s.name, "record", describe(rr), "reason", err)
			reasons = append(reasons, fmt.Sprintf("%s: %v", describe(rr), err))
			continue
		}
		out = append(out, netip.AddrPortFrom(a, uint16(r.s.port)))
	}
	if len(out) == 0 && len(reasons) > 0 {
		return nil, noUsable(r.s.name, "address", len(rrs), reasons)
	}
	return out, nil
}

// discoverSRV looks up the SRV records of the name and resolves their
// targets.
func (r *Resolver) discoverSRV(ctx context.Context) ([]netip.AddrPort, error) {
	resp, err := r.query(ctx, r.s.name, dns.TypeSRV)
	if err != nil {
		return nil, err
	}
	if resp.Rcode == dns.RcodeNameError {
		return nil, nil
	}
	rrs := answers(resp, r.s.name, dns.TypeSRV)
	if len(rrs) == 0 {
		return nil, nil
	}
	extra := extraAddrs(resp)

	// First pass: validate each record and take addresses from the
	// additional section; collect the targets that need queries.
	type pending struct {
		srv    *dns.SRV
		target string // lower case
	}
	var (
		out     []netip.AddrPort
		reasons []string
		todo    []pending
		lookups = make(map[string][]dns.RR)
	)
	skip := func(rr dns.RR, reason string) {
		r.s.log.Warn("dnssd: skipping SRV record", "name", r.s.name, "record", describe(rr), "reason", reason)
		reasons = append(reasons, describe(rr)+": "+reason)
	}
	for _, rr := range rrs {
		srv, ok := rr.(*dns.SRV)
		if !ok {
			skip(rr, "not an SRV record")
			continue
		}
		target := strings.ToLower(srv.Target)
		switch {
		case target == "" || target == ".":
			skip(rr, `target is "." (service not available at this name)`)
			continue
		case srv.Port == 0:
			skip(rr, "port is 0")
			continue
		}
		if _, ok := dns.IsDomainName(target); !ok {
			skip(rr, "target is not a valid domain name")
			continue
		}
		if addrs := r.usable(extra[target], srv); len(addrs) > 0 {
			for _, a := range addrs {
				out = append(out, netip.AddrPortFrom(a, srv.Port))
			}
			continue
		}
		if _, seen := lookups[target]; !seen {
			if len(lookups) >= maxTargetLookups {
				skip(rr, fmt.Sprintf("more than %d targets to resolve", maxTargetLookups))
				continue
			}
			lookups[target] = nil
		}
		todo = append(todo, pending{srv, target})
	}

	// Second pass: resolve the remaining targets, a few at a time.
	failed := r.resolveTargets(ctx, lookups)
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("dnssd: resolving SRV targets of %s: %w", r.s.name, err)
	}
	for _, p := range todo {
		if err := failed[p.target]; err != nil {
			skip(p.srv, "target does not resolve: "+err.Error())
			continue
		}
		if len(lookups[p.target]) == 0 {
			skip(p.srv, "target does not resolve (no A or AAAA records)")
			continue
		}
		addrs := r.usable(lookups[p.target], p.srv)
		if len(addrs) == 0 {
			skip(p.srv, "target has no usable address")
			continue
		}
		for _, a := range addrs {
			out = append(out, netip.AddrPortFrom(a, p.srv.Port))
		}
	}
	if len(out) == 0 {
		return nil, noUsable(r.s.name, "SRV", len(rrs), reasons)
	}
	return out, nil
}

// usable returns the usable addresses among rrs, the A/AAAA records of
// srv's target, logging the others.
func (r *Resolver) usable(rrs []dns.RR, srv *dns.SRV) []netip.Addr {
	var out []netip.Addr
	for _, rr := range rrs {
		a, err := address(rr)
		if err != nil {
			r.s.log.Warn("dnssd: skipping unusable address of SRV target", "name", r.s.name,
				"srv", describe(srv), "record", describe(rr), "reason", err)
			continue
		}
		out = append(out, a)
	}
	return out
}

// resolveTargets fills targets (a set of lower-case names) with each
// name's A and AAAA records, with at most lookupParallelism lookups in
// flight, and returns the error of each name that could not be looked up.
func (r *Resolver) resolveTargets(ctx context.Context, targets map[string][]dns.RR) map[string]error {
	var (
		mu     sync.Mutex
		failed = make(map[string]error)
		wg     sync.WaitGroup
		sem    = make(chan struct{}, lookupParallelism)
	)
	names := slices.Collect(maps.Keys(targets))
	for _, name := range names {
		wg.Go(func() {
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				return
			}
			defer func() { <-sem }()
			rrs, err := r.lookupHost(ctx, name)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				failed[name] = err
				return
			}
			targets[name] = rrs
		})
	}
	wg.Wait()
	return failed
}

// lookupHost returns the A and AAAA records of name, asking both at once.
// A name with neither (NXDOMAIN or no data) gives no records and no error.
// When one of the two queries fails, the other's records are returned if
// there are any (with a warning), else the failure.
func (r *Resolver) lookupHost(ctx context.Context, name string) ([]dns.RR, error) {
	type result struct {
		rrs []dns.RR
		err error
	}
	var res [2]result
	var wg sync.WaitGroup
	for i, qtype := range []uint16{dns.TypeA, dns.TypeAAAA} {
		wg.Go(func() {
			resp, err := r.query(ctx, name, qtype)
			if err != nil {
				res[i].err = err
				return
			}
			res[i].rrs = answers(resp, name, qtype)
		})
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("dnssd: looking up %s: %w", name, err)
	}
	rrs := append(res[0].rrs, res[1].rrs...)
	switch {
	case res[0].err != nil && res[1].err != nil:
		return nil, errors.Join(res[0].err, res[1].err)
	case res[0].err != nil || res[1].err != nil:
		err := cmp.Or(res[0].err, res[1].err)
		if len(rrs) == 0 {
			return nil, err
		}
		r.s.log.Warn("dnssd: one address lookup failed; using the other's records", "name", name, "err", err)
	}
	return rrs, nil
}

// noUsable builds the error for a lookup whose every record was unusable.
func noUsable(name, kind string, n int, reasons []string) error {
	more := ""
	if len(reasons) > maxReasons {
		more = fmt.Sprintf("; and %d more", len(reasons)-maxReasons)
		reasons = reasons[:maxReasons]
	}
	return fmt.Errorf("dnssd: all %d %s records of %s were unusable (%s%s): %w",
		n, kind, name, strings.Join(reasons, "; "), more, ErrNoUsableRecords)
}

// format sorts addrs by address then port, drops duplicates and returns
// them as "ip:port" strings.
func format(addrs []netip.AddrPort) []string {
	slices.SortFunc(addrs, func(a, b netip.AddrPort) int { return a.Compare(b) })
	addrs = slices.Compact(addrs)
	out := make([]string, 0, len(addrs))
	for _, a := range addrs {
		out = append(out, net.JoinHostPort(a.Addr().String(), strconv.Itoa(int(a.Port()))))
	}
	return out
}
