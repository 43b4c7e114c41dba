package dnssd

import (
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"time"

	"github.com/miekg/dns"
)

// Mode selects which records a Resolver looks up.
type Mode int

const (
	// ModeSRV looks up SRV records of Name and resolves their targets.
	ModeSRV Mode = iota
	// ModeHeadless looks up the A and AAAA records of Name (a Kubernetes
	// headless service) and pairs each address with Config.Port.
	ModeHeadless
)

// String returns "SRV" or "headless".
func (m Mode) String() string {
	switch m {
	case ModeSRV:
		return "SRV"
	case ModeHeadless:
		return "headless"
	default:
		return "Mode(" + strconv.Itoa(int(m)) + ")"
	}
}

// Defaults applied by New to zero Config fields.
const (
	// DefaultTimeout is the default time allowed for one query.
	DefaultTimeout = 2 * time.Second
	// DefaultAttempts is the default number of rounds over the resolvers.
	DefaultAttempts = 2
	// FallbackResolver is asked when Resolvers is empty and the system's
	// resolv.conf cannot be read or names no server (as the C library
	// does).
	FallbackResolver = "127.0.0.1:53"
)

// resolvConf is the system resolver configuration New reads when
// Config.Resolvers is empty. Tests replace it.
var resolvConf = "/etc/resolv.conf"

// Config configures a Resolver.
type Config struct {
	// Name is the DNS name to look up: an SRV name such as
	// "_mycorrizal._udp.myapp.default.svc.cluster.local" in ModeSRV, or a
	// host name such as "myapp.default.svc.cluster.local" in ModeHeadless.
	// A trailing dot is optional; search domains are not applied.
	// Required.
	Name string

	// Mode selects SRV (the default) or headless A/AAAA lookups.
	Mode Mode

	// Port is the gossip port paired with every address in ModeHeadless,
	// from 1 to 65535. It must be zero in ModeSRV, where each record
	// carries its own port.
	Port int

	// Resolvers are the DNS servers to ask, each "ip:port" (a bare IP means
	// port 53), in order. Empty means the nameservers of /etc/resolv.conf;
	// if that file cannot be read or names none, FallbackResolver is used
	// and New logs a warning.
	Resolvers []string

	// Timeout bounds each query to one server. Zero means DefaultTimeout.
	Timeout time.Duration

	// Attempts is how many rounds over Resolvers a query makes before
	// Discover gives up on a server that does not answer. Zero means
	// DefaultAttempts.
	Attempts int

	// Logger receives warnings about unusable records and fallbacks. Nil
	// discards them.
	Logger *slog.Logger
}

// settings is a validated Config with defaults applied.
type settings struct {
	name     string // fully qualified
	mode     Mode
	port     int
	servers  []string
	timeout  time.Duration
	attempts int
	log      *slog.Logger
}

// settings validates c and applies defaults. Errors name the field.
func (c Config) settings() (settings, error) {
	s := settings{mode: c.Mode, port: c.Port, timeout: c.Timeout, attempts: c.Attempts, log: c.Logger}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if c.Name == "" {
		return s, fmt.Errorf("dnssd: Config.Name is empty")
	}
	s.name = dns.Fqdn(c.Name)
	if _, ok := dns.IsDomainName(s.name); !ok || s.name == "." {
		return s, fmt.Errorf("dnssd: Config.Name %q is not a valid domain name", c.Name)
	}
	switch c.Mode {
	case ModeSRV:
		if c.Port != 0 {
			return s, fmt.Errorf("dnssd: Config.Port is %d but must be 0 in SRV mode (SRV records carry the port)", c.Port)
		}
	case ModeHeadless:
		if c.Port < 1 || c.Port > 65535 {
			return s, fmt.Errorf("dnssd: Config.Port is %d, want 1 to 65535 in headless mode", c.Port)
		}
	default:
		return s, fmt.Errorf("dnssd: Config.Mode %v is not ModeSRV or ModeHeadless", c.Mode)
	}
	switch {
	case c.Timeout < 0:
		return s, fmt.Errorf("dnssd: Config.Timeout is negative (%v)", c.Timeout)
	case c.Timeout == 0:
		s.timeout = DefaultTimeout
	}
	switch {
	case c.Attempts < 0:
		return s, fmt.Errorf("dnssd: Config.Attempts is negative (%d)", c.Attempts)
	case c.Attempts == 0:
		s.attempts = DefaultAttempts
	}
	for i, r := range c.Resolvers {
		addr, err := resolverAddr(r)
		if err != nil {
			return s, fmt.Errorf("dnssd: Config.Resolvers[%d] %q: %w", i, r, err)
		}
		s.servers = append(s.servers, addr)
	}
	if len(s.servers) == 0 {
		s.servers = systemResolvers(s.log)
	}
	return s, nil
}

// resolverAddr validates a resolver address, "ip:port" or a bare IP (port
// 53), and returns it as "ip:port".
func resolverAddr(r string) (string, error) {
	if ip, err := netip.ParseAddr(r); err == nil {
		return net.JoinHostPort(ip.String(), "53"), nil
	}
	host, port, err := net.SplitHostPort(r)
	if err != nil {
		return "", fmt.Errorf("want ip:port: %w", err)
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return "", fmt.Errorf("host %q is not an IP address", host)
	}
	p, err := strconv.ParseUint(port, 10, 16)
	if err != nil || p == 0 {
		return "", fmt.Errorf("port %q is not a number from 1 to 65535", port)
	}
	return net.JoinHostPort(ip.String(), port), nil
}

// systemResolvers returns the nameservers of resolv.conf, or
// FallbackResolver with a warning when there are none.
func systemResolvers(log *slog.Logger) []string {
	cc, err := dns.ClientConfigFromFile(resolvConf)
	if err != nil {
		log.Warn("dnssd: cannot read the system resolver configuration; asking the fallback resolver",
			"file", resolvConf, "err", err, "fallback", FallbackResolver)
		return []string{FallbackResolver}
	}
	var out []string
	for _, s := range cc.Servers {
		addr, err := resolverAddr(net.JoinHostPort(s, cc.Port))
		if err != nil {
			log.Warn("dnssd: skipping a bad nameserver in the system resolver configuration",
				"file", resolvConf, "nameserver", s, "err", err)
			continue
		}
		out = append(out, addr)
	}
	if len(out) == 0 {
		log.Warn("dnssd: the system resolver configuration names no nameserver; asking the fallback resolver",
			"file", resolvConf, "fallback", FallbackResolver)
		return []string{FallbackResolver}
	}
	return out
}
