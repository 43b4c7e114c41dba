package consul

import (
	"fmt"
	"log/slog"
	"strings"
	"time"
	"unicode"

	"github.com/hashicorp/consul/api"

	"github.com/mycorrizal/mycorrizal/ports"
)

// Defaults for the zero values of Config.
const (
	// DefaultTTL is the TTL of the registration's health check. The check
	// is passed every TTL/3.
	DefaultTTL = 15 * time.Second

	// DefaultDeregisterCriticalServiceAfter is how long Consul keeps a
	// registration whose check is critical before it removes it.
	DefaultDeregisterCriticalServiceAfter = time.Minute

	// DefaultWaitTime is the longest a blocking query waits for a change.
	DefaultWaitTime = 5 * time.Minute

	// MaxWaitTime is the longest wait Consul honours for a blocking query.
	MaxWaitTime = 10 * time.Minute
)

// Config configures a Consul. Service is required; every other field has a
// default.
type Config struct {
	// Address is the agent's HTTP address, "host:port", optionally with an
	// "http://", "https://" or "unix://" prefix. Empty means the
	// CONSUL_HTTP_ADDR environment variable, else "localhost:8500".
	Address string

	// Scheme is "http" or "https". Empty means "https" when TLS names a CA
	// or a client certificate, else the api default ("http", or "https"
	// when CONSUL_HTTP_SSL is true).
	Scheme string

	// Token is the ACL token sent with every request (X-Consul-Token).
	// Empty means the CONSUL_HTTP_TOKEN (or CONSUL_HTTP_TOKEN_FILE)
	// environment variable, else the agent's default token. It never
	// appears in errors or logs.
	Token string

	// TLS configures HTTPS to the agent: CAFile, CAPath or CAPem to trust,
	// CertFile and KeyFile (or CertPEM and KeyPEM) for a client
	// certificate, Address as the server name to verify, and
	// InsecureSkipVerify. Empty fields take the api's environment
	// variables (CONSUL_CACERT, CONSUL_CLIENT_CERT, ...).
	TLS api.TLSConfig

	// Datacenter is the datacenter whose instances Discover and WaitChange
	// find. Empty means the agent's own. Register always registers with
	// the agent, in the agent's datacenter.
	Datacenter string

	// Service is the Consul service name every node registers as and
	// discovers, for example "mycorrizal". Required.
	Service string

	// Tags, when set, restrict discovery to instances that carry all of
	// them. They do not affect Register, which uses Registration.Tags.
	Tags []string

	// TTL is the TTL of the registration's check; the check is passed
	// every TTL/3. Zero means DefaultTTL.
	TTL time.Duration

	// DeregisterCriticalServiceAfter is how long Consul keeps the
	// registration after its check turned critical (this process died
	// without deregistering). Zero means
	// DefaultDeregisterCriticalServiceAfter; Consul raises values below
	// one minute to one minute.
	DeregisterCriticalServiceAfter time.Duration

	// WaitTime is the longest one blocking query of WaitChange waits.
	// Zero means DefaultWaitTime; at most MaxWaitTime.
	WaitTime time.Duration

	// Logger receives the adapter's logs; nil discards them.
	Logger *slog.Logger
}

// withDefaults validates c and returns a copy with the zero values
// replaced by defaults. Errors wrap ports.ErrInvalidConfig and name the
// field.
func (c Config) withDefaults() (Config, error) {
	if c.Service == "" {
		return c, invalid("Service", "is required (the Consul service name, e.g. \"mycorrizal\")")
	}
	if err := checkName(c.Service); err != nil {
		return c, invalid("Service", err.Error())
	}
	for i, tag := range c.Tags {
		if tag == "" || strings.ContainsFunc(tag, unicode.IsControl) {
			return c, invalid(fmt.Sprintf("Tags[%d]", i), fmt.Sprintf("%q is not a usable tag", tag))
		}
	}
	if strings.ContainsFunc(c.Address, unicode.IsSpace) {
		return c, invalid("Address", fmt.Sprintf("%q contains spaces", c.Address))
	}
	switch c.Scheme {
	case "", "http", "https":
	default:
		return c, invalid("Scheme", fmt.Sprintf("%q is neither \"http\" nor \"https\"", c.Scheme))
	}
	if c.Scheme == "" && tlsRequested(c.TLS) {
		c.Scheme = "https"
	}
	if (c.TLS.CertFile == "") != (c.TLS.KeyFile == "") {
		return c, invalid("TLS.CertFile", "and TLS.KeyFile must be set together")
	}
	if (len(c.TLS.CertPEM) == 0) != (len(c.TLS.KeyPEM) == 0) {
		return c, invalid("TLS.CertPEM", "and TLS.KeyPEM must be set together")
	}
	switch {
	case c.TTL < 0:
		return c, invalid("TTL", fmt.Sprintf("%v is negative", c.TTL))
	case c.TTL == 0:
		c.TTL = DefaultTTL
	case c.TTL < 3*time.Millisecond:
		return c, invalid("TTL", fmt.Sprintf("%v is too short to be passed every TTL/3", c.TTL))
	}
	switch {
	case c.DeregisterCriticalServiceAfter < 0:
		return c, invalid("DeregisterCriticalServiceAfter", fmt.Sprintf("%v is negative", c.DeregisterCriticalServiceAfter))
	case c.DeregisterCriticalServiceAfter == 0:
		c.DeregisterCriticalServiceAfter = DefaultDeregisterCriticalServiceAfter
	}
	switch {
	case c.WaitTime < 0:
		return c, invalid("WaitTime", fmt.Sprintf("%v is negative", c.WaitTime))
	case c.WaitTime == 0:
		c.WaitTime = DefaultWaitTime
	case c.WaitTime > MaxWaitTime:
		return c, invalid("WaitTime", fmt.Sprintf("%v is longer than Consul's limit of %v", c.WaitTime, MaxWaitTime))
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	c.Tags = append([]string(nil), c.Tags...)
	return c, nil
}

// apiConfig returns the configuration of the api client. Empty fields are
// filled by api.NewClient from api.DefaultConfig (the environment).
func (c Config) apiConfig() *api.Config {
	return &api.Config{
		Address:    c.Address,
		Scheme:     c.Scheme,
		Token:      c.Token,
		TLSConfig:  c.TLS,
		Datacenter: c.Datacenter,
		// Not WaitTime: the api would add it to every request. Blocking
		// queries set it themselves.
	}
}

// tlsRequested reports whether t names something only HTTPS can use.
func tlsRequested(t api.TLSConfig) bool {
	return t.CAFile != "" || t.CAPath != "" || len(t.CAPem) > 0 ||
		t.CertFile != "" || len(t.CertPEM) > 0
}

// checkName reports whether s can be a path segment of the agent's API: a
// service name or ID is placed in URL paths, so it may not contain a
// slash, and spaces or control characters are refused as typing errors.
func checkName(s string) error {
	if strings.ContainsAny(s, "/\\") {
		return fmt.Errorf("%q contains a slash", s)
	}
	if strings.ContainsFunc(s, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }) {
		return fmt.Errorf("%q contains spaces or control characters", s)
	}
	if s == "." || s == ".." {
		return fmt.Errorf("%q is not a name", s)
	}
	return nil
}

func invalid(field, msg string) error {
	return fmt.Errorf("consul: %s %s: %w", field, msg, ports.ErrInvalidConfig)
}
