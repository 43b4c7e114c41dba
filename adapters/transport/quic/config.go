package quic

import (
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"time"

	"github.com/mycorrizal/mycorrizal/ports"
)

// Defaults applied by New to zero fields of Config.
const (
	DefaultHandshakeTimeout   = 5 * time.Second
	DefaultKeepAlivePeriod    = 5 * time.Second
	DefaultMaxIdleTimeout     = 15 * time.Second
	DefaultStreamIdleTimeout  = 2 * time.Minute
	DefaultMaxIncomingStreams = 1024
	DefaultDialBackoffMin     = 100 * time.Millisecond
	DefaultDialBackoffMax     = 30 * time.Second
	DefaultMaxDialEntries     = 4096
)

// Limits of Config fields.
const (
	// MaxIncomingStreamsLimit is the largest Config.MaxIncomingStreams.
	MaxIncomingStreamsLimit = 1 << 20
	// MaxDialEntriesLimit is the largest Config.MaxDialEntries.
	MaxDialEntriesLimit = 1 << 20
)

// AcceptBacklog is how many streams opened by peers wait for Accept. When
// it is full the per-connection accept goroutines stop taking streams from
// QUIC, so peers' Opens block on QUIC's stream limit: backpressure, never a
// drop.
const AcceptBacklog = 256

// Flow-control windows. Each stream starts with a 512 KiB receive window
// and each connection with 4 MiB; QUIC's auto-tuning grows them up to the
// maxima while the application reads fast, and never while it does not, so
// a reader that stops makes writers stall after about the initial window.
const (
	initialStreamWindow = 512 << 10
	maxStreamWindow     = 6 << 20
	initialConnWindow   = 4 << 20
	maxConnWindow       = 16 << 20
)

// Config configures a Transport. Only ListenAddr and Certs are required;
// zero durations and counts take the defaults above.
type Config struct {
	// ListenAddr is the UDP "host:port" to bind; port 0 picks a free port.
	// Outgoing connections use the same socket, so peers see this node's
	// packets come from the address it listens on.
	ListenAddr string

	// AdvertiseAddr is the "host:port" Listen returns for peers to dial,
	// instead of the bound address: set it behind NAT, or when ListenAddr's
	// host is unspecified (0.0.0.0 or ::), which Listen refuses to
	// advertise. A port of 0 is replaced by the bound port.
	AdvertiseAddr string

	// Certs yields this node's certificate (asked at every handshake, so a
	// rotated certificate is used by the connections made after rotation)
	// and the CAs peers' certificates must chain to (also asked at every
	// handshake).
	Certs ports.CertSource

	// Logger receives connection-level events; nil discards them.
	Logger *slog.Logger

	// HandshakeTimeout bounds a dial: the QUIC and TLS handshake and the
	// peer's confirmation that it accepted this node's certificate. It
	// also bounds each call to Certs during a handshake. Default 5 s.
	HandshakeTimeout time.Duration

	// KeepAlivePeriod is how often an otherwise quiet connection sends a
	// PING so that neither side's idle timeout fires while both are alive.
	// It must be below MaxIdleTimeout. Default 5 s.
	KeepAlivePeriod time.Duration

	// MaxIdleTimeout closes a connection that received nothing for that
	// long (the peer crashed or the path broke); the next Open re-dials.
	// Default 15 s.
	MaxIdleTimeout time.Duration

	// StreamIdleTimeout resets a stream on which no Read or Write returned
	// for that long, so streams a peer or the application abandoned do not
	// pin memory. It is checked by one goroutine per transport, with a
	// granularity of a quarter of the timeout. Default 2 min.
	StreamIdleTimeout time.Duration

	// MaxIncomingStreams is how many streams a peer may have open towards
	// this node on one connection; its Opens beyond that block. Default
	// 1024, at most MaxIncomingStreamsLimit.
	MaxIncomingStreams int

	// DialBackoffMin and DialBackoffMax bound the wait after failed dials
	// to one (peer, address): it doubles with each consecutive failure from
	// the minimum up to the maximum, with jitter. Defaults 100 ms and 30 s.
	DialBackoffMin time.Duration
	DialBackoffMax time.Duration

	// MaxDialEntries bounds the table of dial state (dials in flight and
	// the backoff of recent failures); when full, the least recently used
	// entry that has no dial in flight is forgotten. Default 4096.
	MaxDialEntries int

	// StatelessResetKey, when set, lets this node tell peers at once that
	// their connection is gone after it restarted on the same address
	// (QUIC stateless reset, RFC 9000 section 10.3), instead of them
	// waiting for MaxIdleTimeout. It must be secret and stay the same
	// across restarts of this node; nil disables stateless resets.
	StatelessResetKey *[32]byte
}

// withDefaults validates c and returns it with defaults applied. Errors
// wrap ports.ErrInvalidConfig and name the field.
func (c Config) withDefaults() (Config, error) {
	bad := func(field, format string, args ...any) (Config, error) {
		return Config{}, fmt.Errorf("quic: Config.%s: %s: %w", field, fmt.Sprintf(format, args...), ports.ErrInvalidConfig)
	}
	if c.ListenAddr == "" {
		return bad("ListenAddr", "required")
	}
	if _, _, err := splitHostPort(c.ListenAddr); err != nil {
		return bad("ListenAddr", "%v", err)
	}
	if c.AdvertiseAddr != "" {
		host, _, err := splitHostPort(c.AdvertiseAddr)
		if err != nil {
			return bad("AdvertiseAddr", "%v", err)
		}
		if isUnspecifiedHost(host) {
			return bad("AdvertiseAddr", "host %q is not an address peers can dial", host)
		}
	}
	if c.Certs == nil {
		return bad("Certs", "required")
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	durations := []struct {
		name string
		v    *time.Duration
		def  time.Duration
	}{
		{"HandshakeTimeout", &c.HandshakeTimeout, DefaultHandshakeTimeout},
		{"KeepAlivePeriod", &c.KeepAlivePeriod, DefaultKeepAlivePeriod},
		{"MaxIdleTimeout", &c.MaxIdleTimeout, DefaultMaxIdleTimeout},
		{"StreamIdleTimeout", &c.StreamIdleTimeout, DefaultStreamIdleTimeout},
		{"DialBackoffMin", &c.DialBackoffMin, DefaultDialBackoffMin},
		{"DialBackoffMax", &c.DialBackoffMax, DefaultDialBackoffMax},
	}
	for _, d := range durations {
		switch {
		case *d.v < 0:
			return bad(d.name, "negative duration %v", *d.v)
		case *d.v == 0:
			*d.v = d.def
		}
	}
	if c.KeepAlivePeriod >= c.MaxIdleTimeout {
		return bad("KeepAlivePeriod", "%v is not below MaxIdleTimeout %v", c.KeepAlivePeriod, c.MaxIdleTimeout)
	}
	if c.DialBackoffMin > c.DialBackoffMax {
		return bad("DialBackoffMin", "%v exceeds DialBackoffMax %v", c.DialBackoffMin, c.DialBackoffMax)
	}
	switch {
	case c.MaxIncomingStreams == 0:
		c.MaxIncomingStreams = DefaultMaxIncomingStreams
	case c.MaxIncomingStreams < 0 || c.MaxIncomingStreams > MaxIncomingStreamsLimit:
		return bad("MaxIncomingStreams", "%d outside 1..%d", c.MaxIncomingStreams, MaxIncomingStreamsLimit)
	}
	switch {
	case c.MaxDialEntries == 0:
		c.MaxDialEntries = DefaultMaxDialEntries
	case c.MaxDialEntries < 0 || c.MaxDialEntries > MaxDialEntriesLimit:
		return bad("MaxDialEntries", "%d outside 1..%d", c.MaxDialEntries, MaxDialEntriesLimit)
	}
	return c, nil
}

// splitHostPort splits "host:port" and checks the port is a number in
// 0..65535.
func splitHostPort(addr string) (host string, port int, err error) {
	host, p, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, err
	}
	port, err = strconv.Atoi(p)
	if err != nil || port < 0 || port > 65535 {
		return "", 0, fmt.Errorf("port %q is not a number in 0..65535", p)
	}
	return host, port, nil
}

// isUnspecifiedHost reports whether host is empty, 0.0.0.0 or ::, which
// bind every interface but name no address a peer can dial.
func isUnspecifiedHost(host string) bool {
	if host == "" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsUnspecified()
}
