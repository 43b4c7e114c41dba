package mesh

import (
	"fmt"
	"log/slog"
	"time"

	"github.com/mycorrizal/mycorrizal/core/wire"
	"github.com/mycorrizal/mycorrizal/ports"
)

// Config configures a Mesh. Zero fields take the defaults documented on
// each; the library's builder (package mycorrizal) fills them.
type Config struct {
	// Self is this node's ID. Required.
	Self ports.NodeID
	// Transport opens and accepts streams. Nil means single mode: only
	// this node exists and messages to it are delivered locally.
	Transport ports.Transport
	// Logger receives the mesh's logs; nil discards them.
	Logger *slog.Logger
	// MaxFrameSize bounds every frame sent or received (default 4 MiB).
	MaxFrameSize int
	// InboxSize is how many messages each application buffers before its
	// senders block (default 1024).
	InboxSize int
	// SendBufferSize is how many bytes of frames each stream buffers before
	// its senders block (default 64 KiB; a single larger frame is accepted
	// when the buffer is empty).
	SendBufferSize int
	// MaxPendingRequests bounds the requests in flight from this node
	// (default 16384).
	MaxPendingRequests int
	// RequestConcurrency bounds the request handlers running at once per
	// application (default 64).
	RequestConcurrency int
	// RequestConcurrencyPerPeer bounds, per application, the requests from
	// one peer that are being handled or whose responses wait for the peer
	// to read (default a quarter of RequestConcurrency, at least 1; at most
	// RequestConcurrency). A peer at its bound is not read from until one
	// of its requests is answered, so one slow or greedy peer cannot take
	// the handlers every other peer needs.
	RequestConcurrencyPerPeer int
	// DefaultRequestTimeout applies to a Request whose ctx has no deadline
	// (default 30 s).
	DefaultRequestTimeout time.Duration
	// DialTimeout bounds opening a stream to a peer (default 5 s).
	DialTimeout time.Duration
	// InitTimeout is how long an accepted stream may take to send its init
	// frame (default 10 s).
	InitTimeout time.Duration
	// MaxInboundStreamsPerPeer bounds the streams one peer may have open to
	// this node (default 256).
	MaxInboundStreamsPerPeer int
}

func (c *Config) setDefaults() error {
	if c.Self == "" {
		return fmt.Errorf("mesh: Self is empty: %w", ports.ErrInvalidConfig)
	}
	if len(c.Self) > ports.MaxNodeIDLen {
		return fmt.Errorf("mesh: Self is %d bytes, over %d: %w", len(c.Self), ports.MaxNodeIDLen, ports.ErrInvalidConfig)
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	def := func(name string, v *int, d int) error {
		if *v < 0 {
			return fmt.Errorf("mesh: %s is %d, must not be negative: %w", name, *v, ports.ErrInvalidConfig)
		}
		if *v == 0 {
			*v = d
		}
		return nil
	}
	defDur := func(name string, v *time.Duration, d time.Duration) error {
		if *v < 0 {
			return fmt.Errorf("mesh: %s is %v, must not be negative: %w", name, *v, ports.ErrInvalidConfig)
		}
		if *v == 0 {
			*v = d
		}
		return nil
	}
	for _, e := range []error{
		def("MaxFrameSize", &c.MaxFrameSize, wire.DefaultMaxFrameSize),
		def("InboxSize", &c.InboxSize, 1024),
		def("SendBufferSize", &c.SendBufferSize, 64<<10),
		def("MaxPendingRequests", &c.MaxPendingRequests, 16384),
		def("RequestConcurrency", &c.RequestConcurrency, 64),
		def("MaxInboundStreamsPerPeer", &c.MaxInboundStreamsPerPeer, 256),
		defDur("DefaultRequestTimeout", &c.DefaultRequestTimeout, 30*time.Second),
		defDur("DialTimeout", &c.DialTimeout, 5*time.Second),
		defDur("InitTimeout", &c.InitTimeout, 10*time.Second),
	} {
		if e != nil {
			return e
		}
	}
	if c.RequestConcurrencyPerPeer < 0 {
		return fmt.Errorf("mesh: RequestConcurrencyPerPeer is %d, must not be negative: %w", c.RequestConcurrencyPerPeer, ports.ErrInvalidConfig)
	}
	if c.RequestConcurrencyPerPeer == 0 {
		c.RequestConcurrencyPerPeer = max(1, c.RequestConcurrency/4)
	}
	if c.RequestConcurrencyPerPeer > c.RequestConcurrency {
		return fmt.Errorf("mesh: RequestConcurrencyPerPeer %d exceeds RequestConcurrency %d: %w", c.RequestConcurrencyPerPeer, c.RequestConcurrency, ports.ErrInvalidConfig)
	}
	if c.MaxFrameSize < 1024 {
		return fmt.Errorf("mesh: MaxFrameSize %d is below 1024 bytes: %w", c.MaxFrameSize, ports.ErrInvalidConfig)
	}
	return nil
}
