package mycorrizal

import (
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"time"

	"github.com/mycorrizal/mycorrizal/core/cache"
	"github.com/mycorrizal/mycorrizal/ports"
)

// Option configures a Node. Options are applied in order by New; an option
// given an invalid value makes New fail with an error naming the option.
type Option func(*config) error

// config is what the options build. Zero values mean "use the default", which
// New chooses.
type config struct {
	id         ports.NodeID
	logger     *slog.Logger
	single     bool
	transport  ports.Transport
	membership ports.Membership
	discovery  ports.Discovery
	codec      ports.Codec
	certs      ports.CertSource
	newStore   func(bucket string, o cache.BucketOptions) (ports.Store, error)
	seeds      []string

	bindSet       bool // WithBindAddr was given (":0" has an empty host and port 0)
	bindHost      string
	bindPort      int
	advertiseHost string
	advertisePort int
	gossipKeys    [][]byte
	transportAddr string
	transportAdv  string

	maxFrameSize       int
	inboxSize          int
	requestConcurrency int
	maxPending         int
	requestTimeout     time.Duration
	joinRetry          time.Duration
	discoveryInterval  time.Duration
	minClusterSize     int
	antiEntropy        time.Duration
	syncBandwidth      int64
	reconnectInterval  time.Duration
	reconnectTimeout   time.Duration
	clock              func() time.Time
}

func invalid(option, format string, args ...any) error {
	return fmt.Errorf("mycorrizal: %s: %s: %w", option, fmt.Sprintf(format, args...), ports.ErrInvalidConfig)
}

// WithNodeID sets this node's ID (1 to 255 bytes). Without it the ID comes
// from the MYCORRIZAL_ID environment variable, else a random UUID.
func WithNodeID(id string) Option {
	return func(c *config) error {
		if id == "" || len(id) > ports.MaxNodeIDLen {
			return invalid("WithNodeID", "ID must be 1 to %d bytes, got %d", ports.MaxNodeIDLen, len(id))
		}
		c.id = ports.NodeID(id)
		return nil
	}
}

// WithLogger sets the structured logger; nil discards logs (the default).
func WithLogger(l *slog.Logger) Option {
	return func(c *config) error { c.logger = l; return nil }
}

// WithSingleMode runs the node without clustering: no membership, no
// transport, the same API. Messages and requests to the node's own ID are
// delivered locally. It cannot be combined with WithTransport,
// WithMembership, WithSeeds or WithDiscovery.
func WithSingleMode() Option {
	return func(c *config) error { c.single = true; return nil }
}

// WithTransport sets the transport that carries application traffic between
// nodes, such as the in-memory transport of adapters/transport/mem.
func WithTransport(t ports.Transport) Option {
	return func(c *config) error {
		if t == nil {
			return invalid("WithTransport", "transport is nil")
		}
		c.transport = t
		return nil
	}
}

// WithMembership sets the membership layer. The default is the memberlist
// adapter configured by WithBindAddr, WithAdvertiseAddr and WithGossipKey,
// which cannot be combined with this option.
func WithMembership(m ports.Membership) Option {
	return func(c *config) error {
		if m == nil {
			return invalid("WithMembership", "membership is nil")
		}
		c.membership = m
		return nil
	}
}

// WithDiscovery sets the discovery backend (adapters/discovery/static,
// dnssd or consul, or your own). Its addresses are joined, in addition to
// WithSeeds, at start, at once whenever the node is alone, every discovery
// interval (WithDiscoveryInterval), and as soon as a backend that is a
// ports.Watcher reports a change. A backend that is a ports.Registrar gets
// this node registered after Start and deregistered on Shutdown.
func WithDiscovery(d ports.Discovery) Option {
	return func(c *config) error {
		if d == nil {
			return invalid("WithDiscovery", "discovery is nil")
		}
		c.discovery = d
		return nil
	}
}

// WithDiscoveryInterval sets how often a node that has peers asks its
// discovery backend again and joins the nodes it does not know (default
// 30 s). A node that is alone asks every join-retry interval.
func WithDiscoveryInterval(d time.Duration) Option {
	return func(c *config) error {
		if d <= 0 {
			return invalid("WithDiscoveryInterval", "%v is not positive", d)
		}
		c.discoveryInterval = d
		return nil
	}
}

// WithMinClusterSize makes the node refuse cache writes while it sees fewer
// than n members (itself included), with an error wrapping
// cache.ErrClusterTooSmall: on the minority side of a network partition
// writes stop instead of diverging. Choose a majority of the expected
// cluster size. Reads go on. The default, 0, never refuses.
func WithMinClusterSize(n int) Option {
	return func(c *config) error {
		if n < 0 {
			return invalid("WithMinClusterSize", "%d is negative", n)
		}
		c.minClusterSize = n
		return nil
	}
}

// WithAntiEntropy sets how often the node compares its cache data with its
// peers' when membership is stable (default 30 s), and the most bytes per
// second it sends to bring them up to date (default 256 MiB/s; negative
// means unlimited).
func WithAntiEntropy(interval time.Duration, bytesPerSecond int64) Option {
	return func(c *config) error {
		if interval <= 0 {
			return invalid("WithAntiEntropy", "interval %v is not positive", interval)
		}
		if bytesPerSecond == 0 {
			return invalid("WithAntiEntropy", "bandwidth 0 would stop sync; use a negative value for unlimited")
		}
		c.antiEntropy, c.syncBandwidth = interval, bytesPerSecond
		return nil
	}
}

// WithSeeds sets gossip addresses ("host:port") of nodes to join at start.
// Joining is retried in the background until one answers, so nodes may
// start in any order.
func WithSeeds(addrs ...string) Option {
	return func(c *config) error {
		for _, a := range addrs {
			if _, _, err := net.SplitHostPort(a); err != nil {
				return invalid("WithSeeds", "seed %q is not host:port: %v", a, err)
			}
		}
		c.seeds = append(c.seeds, addrs...)
		return nil
	}
}

// WithCodec sets the node's default codec (see Node.Codec); the default is
// GOB.
func WithCodec(codec ports.Codec) Option {
	return func(c *config) error {
		if codec == nil {
			return invalid("WithCodec", "codec is nil")
		}
		c.codec = codec
		return nil
	}
}

func splitAddr(option, addr string) (string, int, error) {
	host, portStr, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, invalid(option, "%q is not host:port: %v", addr, err)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil || port < 0 || port > 65535 {
		return "", 0, invalid(option, "port %q is not 0..65535", portStr)
	}
	return host, port, nil
}

// WithBindAddr sets the address the default membership layer listens on
// ("host:port"; an empty host binds all interfaces, port 0 picks a free
// port, which is then advertised). The default is "127.0.0.1:7946":
// loopback, for development.
func WithBindAddr(addr string) Option {
	return func(c *config) error {
		h, p, err := splitAddr("WithBindAddr", addr)
		c.bindSet, c.bindHost, c.bindPort = err == nil, h, p
		return err
	}
}

// WithAdvertiseAddr sets the gossip address announced to peers when it
// differs from the bind address (NAT, containers). The default is the bind
// address, or the host's private IP when binding all interfaces.
func WithAdvertiseAddr(addr string) Option {
	return func(c *config) error {
		h, p, err := splitAddr("WithAdvertiseAddr", addr)
		if err == nil && net.ParseIP(h) == nil {
			err = invalid("WithAdvertiseAddr", "host %q must be an IP address", h)
		}
		c.advertiseHost, c.advertisePort = h, p
		return err
	}
}

// WithGossipKey encrypts and authenticates gossip with a shared secret
// keyring: the first key is used to encrypt, all are tried to decrypt (for
// rotation). Keys are 16, 24 or 32 bytes (AES-128/192/256). A node without
// a matching key cannot join.
func WithGossipKey(keys ...[]byte) Option {
	return func(c *config) error {
		if len(keys) == 0 {
			return invalid("WithGossipKey", "no key given")
		}
		for i, k := range keys {
			if n := len(k); n != 16 && n != 24 && n != 32 {
				return invalid("WithGossipKey", "key %d is %d bytes, want 16, 24 or 32", i, n)
			}
		}
		c.gossipKeys = keys
		return nil
	}
}

// WithMaxFrameSize bounds every frame sent or received (default 4 MiB); a
// larger payload is refused before it is sent.
func WithMaxFrameSize(n int) Option {
	return func(c *config) error {
		if n < 1024 || n > 1<<30 {
			return invalid("WithMaxFrameSize", "%d is outside 1 KiB..1 GiB", n)
		}
		c.maxFrameSize = n
		return nil
	}
}

// WithInboxSize sets how many messages each application buffers before its
// senders block (default 1024).
func WithInboxSize(n int) Option {
	return func(c *config) error {
		if n < 1 {
			return invalid("WithInboxSize", "%d is below 1", n)
		}
		c.inboxSize = n
		return nil
	}
}

// WithRequestConcurrency bounds the request handlers running at once per
// application (default 64). One peer's requests take at most a quarter of
// them (at least 1), so a slow or greedy peer leaves handlers for the rest.
func WithRequestConcurrency(n int) Option {
	return func(c *config) error {
		if n < 1 {
			return invalid("WithRequestConcurrency", "%d is below 1", n)
		}
		c.requestConcurrency = n
		return nil
	}
}

// WithMaxPendingRequests bounds the requests in flight from this node
// (default 16384); further requests wait for a slot until their ctx ends.
func WithMaxPendingRequests(n int) Option {
	return func(c *config) error {
		if n < 1 {
			return invalid("WithMaxPendingRequests", "%d is below 1", n)
		}
		c.maxPending = n
		return nil
	}
}

// WithRequestTimeout sets the timeout of a request whose ctx has no
// deadline (default 30 s).
func WithRequestTimeout(d time.Duration) Option {
	return func(c *config) error {
		if d <= 0 {
			return invalid("WithRequestTimeout", "%v is not positive", d)
		}
		c.requestTimeout = d
		return nil
	}
}

// WithJoinRetry sets how often the node retries joining its seeds while it
// is alone (default 2 s).
func WithJoinRetry(d time.Duration) Option {
	return func(c *config) error {
		if d <= 0 {
			return invalid("WithJoinRetry", "%v is not positive", d)
		}
		c.joinRetry = d
		return nil
	}
}

// WithReconnect sets how often the node tries to rejoin one member that
// failed (not one that left), and for how long after the failure it keeps
// trying (defaults 10 s and 1 h). This is what heals a cluster after a
// network partition: the gossip layer stops talking to members it declared
// dead, so someone must reach across.
func WithReconnect(interval, timeout time.Duration) Option {
	return func(c *config) error {
		if interval <= 0 || timeout <= 0 {
			return invalid("WithReconnect", "interval %v and timeout %v must be positive", interval, timeout)
		}
		c.reconnectInterval, c.reconnectTimeout = interval, timeout
		return nil
	}
}

// WithCertSource sets where the default QUIC transport gets this node's
// certificate and the CAs it trusts (adapters/certs/ca for a CA you hold,
// adapters/certs/onepassword for one kept in 1Password, or your own). The
// default is a development CA shared by the processes of one machine, with
// a warning in the log: never use it in production.
func WithCertSource(cs ports.CertSource) Option {
	return func(c *config) error {
		if cs == nil {
			return invalid("WithCertSource", "cert source is nil")
		}
		c.certs = cs
		return nil
	}
}

// WithTransportAddr sets the address the default QUIC transport listens on
// ("host:port"; port 0 picks a free port, which is then advertised through
// membership). The default is "127.0.0.1:0": loopback, for development.
func WithTransportAddr(addr string) Option {
	return func(c *config) error {
		if _, _, err := splitAddr("WithTransportAddr", addr); err != nil {
			return err
		}
		c.transportAddr = addr
		return nil
	}
}

// WithTransportAdvertiseAddr sets the transport address announced to peers
// when it differs from the listen address (NAT, containers, or a listen
// address of 0.0.0.0).
func WithTransportAdvertiseAddr(addr string) Option {
	return func(c *config) error {
		if _, _, err := splitAddr("WithTransportAdvertiseAddr", addr); err != nil {
			return err
		}
		c.transportAdv = addr
		return nil
	}
}

// WithStore sets how each cache bucket's local storage is built: fn gets
// the bucket's name and options and returns a ports.Store. The default is
// the core's LRU with TTL and the bucket's limits.
func WithStore(fn func(bucket string, o cache.BucketOptions) (ports.Store, error)) Option {
	return func(c *config) error {
		if fn == nil {
			return invalid("WithStore", "store factory is nil")
		}
		c.newStore = fn
		return nil
	}
}

// WithClock sets the wall clock the node reads for cache versions (its
// hybrid logical clock) and expiry; the default is time.Now. testkit uses
// it to give each node a clock of its own, offset from the others, so that
// tests exercise clock skew.
func WithClock(now func() time.Time) Option {
	return func(c *config) error {
		if now == nil {
			return invalid("WithClock", "clock is nil")
		}
		c.clock = now
		return nil
	}
}
