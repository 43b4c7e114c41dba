package memberlist

import (
	"fmt"
	"log"
	"log/slog"
	"net"

	ml "github.com/hashicorp/memberlist"

	"github.com/mycorrizal/mycorrizal/ports"
)

// Profile selects which of memberlist's default configurations a
// Membership starts from, before Config.Tune is applied.
type Profile int

// Profiles.
const (
	// ProfileLAN starts from ml.DefaultLANConfig (the zero value).
	ProfileLAN Profile = iota
	// ProfileWAN starts from ml.DefaultWANConfig: longer timeouts and
	// intervals for links with high latency.
	ProfileWAN
	// ProfileLocal starts from ml.DefaultLocalConfig: short timeouts for
	// nodes on one host (loopback), as in tests.
	ProfileLocal
)

// String returns the profile's lower-case name.
func (p Profile) String() string {
	switch p {
	case ProfileLAN:
		return "lan"
	case ProfileWAN:
		return "wan"
	case ProfileLocal:
		return "local"
	default:
		return fmt.Sprintf("profile(%d)", int(p))
	}
}

// Config configures a Membership. The zero value is valid: LAN profile,
// every interface, a port chosen by the kernel, no encryption, no logs.
type Config struct {
	// BindAddr is the IP address the gossip sockets (UDP and TCP) bind to.
	// Empty means "0.0.0.0", as in memberlist itself; then, unless
	// AdvertiseAddr is set, memberlist advertises the first private IP it
	// finds and fails to start when there is none. Host names are not
	// accepted (memberlist would bind every interface for them).
	BindAddr string

	// BindPort is the gossip port, for UDP and TCP. 0 lets the kernel pick
	// one; the port actually bound is then what is advertised (unless
	// AdvertisePort is set) and what LocalAddr reports.
	BindPort int

	// AdvertiseAddr is the IP address advertised to peers, when it differs
	// from the bound one (NAT, 0.0.0.0 binds). Empty means memberlist's
	// choice: the bound IP, or a private IP when bound to 0.0.0.0. An
	// unspecified address (0.0.0.0, ::) is never advertised.
	AdvertiseAddr string

	// AdvertisePort is the port advertised to peers. 0 means the port
	// actually bound (or, with a custom Transport, the port it reports).
	AdvertisePort int

	// Profile picks the memberlist default configuration to start from.
	Profile Profile

	// Keyring holds the gossip encryption keys, the first being the primary
	// (used to encrypt; all are tried to decrypt). Each must be 16, 24 or 32
	// bytes (AES-128, -192, -256). When set, gossip is encrypted and
	// unencrypted gossip is refused. Keys are copied by New.
	Keyring [][]byte

	// Tune, when set, is applied to the memberlist configuration after every
	// field above has been translated into it, so it can adjust any knob
	// (tests shorten ProbeInterval, PushPullInterval, GossipToTheDeadTime).
	// The adapter then installs its own Name, Delegate and Events, which
	// Tune must not rely on setting; when the resulting Transport is nil it
	// builds memberlist's NetTransport from the resulting BindAddr and
	// BindPort. Tune must not set LogOutput (Logger is already set).
	Tune func(*ml.Config)

	// Transport, when set, carries gossip instead of memberlist's
	// NetTransport (UDP + TCP); BindAddr and BindPort are then unused. The
	// in-process test kit uses it to run memberlist over a simulated
	// network. The Membership owns it once started: Close shuts it down.
	Transport ml.NodeAwareTransport

	// Logger receives the adapter's logs and memberlist's own, mapped to
	// slog levels. nil discards them.
	Logger *slog.Logger
}

// validate checks c and returns a copy that owns its key slices.
func (c Config) validate() (Config, error) {
	bad := func(format string, args ...any) (Config, error) {
		return Config{}, fmt.Errorf("memberlist: %s: %w", fmt.Sprintf(format, args...), ports.ErrInvalidConfig)
	}
	switch c.Profile {
	case ProfileLAN, ProfileWAN, ProfileLocal:
	default:
		return bad("Profile %d is not LAN, WAN or Local", int(c.Profile))
	}
	if c.BindAddr != "" && net.ParseIP(c.BindAddr) == nil {
		return bad("BindAddr %q is not an IP address", c.BindAddr)
	}
	if c.BindPort < 0 || c.BindPort > 65535 {
		return bad("BindPort %d is out of range 0..65535", c.BindPort)
	}
	if c.AdvertiseAddr != "" {
		ip := net.ParseIP(c.AdvertiseAddr)
		if ip == nil {
			return bad("AdvertiseAddr %q is not an IP address", c.AdvertiseAddr)
		}
		if ip.IsUnspecified() {
			return bad("AdvertiseAddr %q is unspecified; peers cannot reach it", c.AdvertiseAddr)
		}
	}
	if c.AdvertisePort < 0 || c.AdvertisePort > 65535 {
		return bad("AdvertisePort %d is out of range 0..65535", c.AdvertisePort)
	}
	keys := make([][]byte, 0, len(c.Keyring))
	for i, k := range c.Keyring {
		if err := ml.ValidateKey(k); err != nil {
			return bad("Keyring[%d] is %d bytes; a key must be 16, 24 or 32 bytes (AES-128/192/256)", i, len(k))
		}
		keys = append(keys, append([]byte(nil), k...))
	}
	if len(keys) == 0 {
		keys = nil
	}
	c.Keyring = keys
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c, nil
}

// newKeyring builds memberlist's keyring from validated keys, nil for none.
func newKeyring(keys [][]byte) (*ml.Keyring, error) {
	if len(keys) == 0 {
		return nil, nil
	}
	kr, err := ml.NewKeyring(keys[1:], keys[0])
	if err != nil {
		return nil, fmt.Errorf("memberlist: keyring: %v: %w", err, ports.ErrInvalidConfig)
	}
	return kr, nil
}

// memberlistConfig translates c into a memberlist configuration for the
// node named name, applying Tune last.
func (c Config) memberlistConfig(name string, keyring *ml.Keyring, logger *log.Logger) *ml.Config {
	var conf *ml.Config
	switch c.Profile {
	case ProfileWAN:
		conf = ml.DefaultWANConfig()
	case ProfileLocal:
		conf = ml.DefaultLocalConfig()
	default:
		conf = ml.DefaultLANConfig()
	}
	conf.Name = name
	conf.BindAddr = c.BindAddr
	if conf.BindAddr == "" {
		conf.BindAddr = "0.0.0.0"
	}
	conf.BindPort = c.BindPort
	conf.AdvertiseAddr = c.AdvertiseAddr
	conf.AdvertisePort = c.AdvertisePort
	conf.Keyring = keyring
	if keyring != nil {
		conf.GossipVerifyIncoming = true
		conf.GossipVerifyOutgoing = true
	}
	conf.Logger = logger
	conf.LogOutput = nil
	if c.Transport != nil {
		conf.Transport = c.Transport
	}
	if c.Tune != nil {
		c.Tune(conf)
	}
	return conf
}
