// Package mycorrizal turns N instances of one Go program into a cluster with
// no external infrastructure. Each instance is a mushroom; Mycorrizal is the
// mycelium between them.
//
// A Node is composed with functional options (New), started (Start), and
// shut down (Shutdown). It gives the program:
//
//   - membership (Nodosum): who is in the cluster, through gossip with
//     failure detection (hashicorp/memberlist by default);
//   - applications: named apps on every node that send one-way messages,
//     broadcast, and make requests with responses, with backpressure instead
//     of drops (RegisterApplication).
//
// Every technology sits behind a port (package ports) and is supplied by an
// adapter (packages under adapters/); this file is the only place that
// chooses defaults. Package testkit runs whole clusters in one test process.
package mycorrizal

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"

	"github.com/mycorrizal/mycorrizal/adapters/certs/ca"
	gobcodec "github.com/mycorrizal/mycorrizal/adapters/codec/gob"
	rawcodec "github.com/mycorrizal/mycorrizal/adapters/codec/raw"
	mlmember "github.com/mycorrizal/mycorrizal/adapters/membership/memberlist"
	"github.com/mycorrizal/mycorrizal/adapters/transport/quic"
	"github.com/mycorrizal/mycorrizal/core/cache"
	"github.com/mycorrizal/mycorrizal/core/mesh"
	"github.com/mycorrizal/mycorrizal/ports"
)

// ProtocolVersion is advertised through membership metadata.
const ProtocolVersion = "mycorrizal/1"

// EnvNodeID is the environment variable read for the node ID when
// WithNodeID is not given.
const EnvNodeID = "MYCORRIZAL_ID"

// The default membership layer's gossip address when WithBindAddr is not
// given: loopback, for development, on memberlist's usual port.
const (
	defaultBindHost = "127.0.0.1"
	defaultBindPort = 7946
)

// App is a named application on this node; see RegisterApplication.
type App = mesh.App

// MessageHandler handles one-way messages; see App.OnMessage.
type MessageHandler = mesh.MessageHandler

// RequestHandler handles requests; see App.OnRequest.
type RequestHandler = mesh.RequestHandler

// RemoteError is returned by App.Request when the remote handler failed.
type RemoteError = mesh.RemoteError

// Node is one member of a Mycorrizal cluster. Create it with New, register
// applications, Start it, wait for Ready, and Shutdown at the end. All
// methods are safe for concurrent use.
type Node struct {
	id         ports.NodeID
	log        *slog.Logger
	single     bool
	transport  ports.Transport
	membership ports.Membership
	discovery  ports.Discovery
	codec      ports.Codec
	seeds      []string
	joinRetry  time.Duration
	// discoveryInterval is how often a node with peers re-runs discovery.
	discoveryInterval time.Duration
	// registered is set once a Registrar accepted this node.
	registered atomic.Bool
	mesh       *mesh.Mesh
	cache      *cache.Cache

	transportAddr string // set by Start

	ctx       context.Context // ends at Shutdown
	cancel    context.CancelFunc
	wg        sync.WaitGroup // the event loop
	joinWG    sync.WaitGroup // the join loop
	reconnect *reconnector
	ready     chan struct{}
	alone     chan struct{} // wakes the join loop when the last peer is gone

	mu           sync.Mutex
	started      bool
	shutdown     bool
	shutdownDone chan struct{}
	shutdownErr  error
	readyOnce    sync.Once
}

// New builds a node from options, choosing defaults for what is not given:
// the node ID from MYCORRIZAL_ID or a UUID; the memberlist membership layer
// bound to 127.0.0.1:7946 (loopback, memberlist's usual port); the QUIC transport with mutual TLS on
// 127.0.0.1 (a free port), its certificates minted by a development CA
// shared by the processes of this machine; and the GOB codec. So
// New(WithSeeds(...)) alone gives a working cluster on one machine; a real
// deployment sets WithBindAddr, WithTransportAddr and WithCertSource. New
// fails with an error wrapping ports.ErrInvalidConfig that names the
// offending option.
func New(opts ...Option) (*Node, error) {
	var c config
	for _, o := range opts {
		if err := o(&c); err != nil {
			return nil, err
		}
	}
	if c.id == "" {
		if env := os.Getenv(EnvNodeID); env != "" {
			if len(env) > ports.MaxNodeIDLen {
				return nil, invalid(EnvNodeID, "ID must be at most %d bytes, got %d", ports.MaxNodeIDLen, len(env))
			}
			c.id = ports.NodeID(env)
		} else {
			c.id = ports.NodeID(uuid.NewString())
		}
	}
	if c.logger == nil {
		c.logger = slog.New(slog.DiscardHandler)
	}
	if c.codec == nil {
		c.codec = gobcodec.New()
	}
	if c.joinRetry == 0 {
		c.joinRetry = 2 * time.Second
	}
	if c.discoveryInterval == 0 {
		c.discoveryInterval = 30 * time.Second
	}
	if c.reconnectInterval == 0 {
		c.reconnectInterval = 10 * time.Second
	}
	if c.reconnectTimeout == 0 {
		c.reconnectTimeout = time.Hour
	}
	defaultMembership := c.bindSet || c.advertiseHost != "" || c.gossipKeys != nil
	if c.single {
		switch {
		case c.transport != nil:
			return nil, invalid("WithSingleMode", "cannot be combined with WithTransport")
		case c.membership != nil:
			return nil, invalid("WithSingleMode", "cannot be combined with WithMembership")
		case len(c.seeds) > 0:
			return nil, invalid("WithSingleMode", "cannot be combined with WithSeeds")
		case c.discovery != nil:
			return nil, invalid("WithSingleMode", "cannot be combined with WithDiscovery")
		case defaultMembership:
			return nil, invalid("WithSingleMode", "cannot be combined with gossip options")
		}
	} else {
		if c.transport != nil && (c.certs != nil || c.transportAddr != "" || c.transportAdv != "") {
			return nil, invalid("WithTransport", "cannot be combined with WithCertSource, WithTransportAddr or WithTransportAdvertiseAddr, which configure the default QUIC transport")
		}
		if c.transport == nil {
			tr, err := defaultTransport(&c)
			if err != nil {
				return nil, err
			}
			c.transport = tr
		}
		if c.membership != nil && defaultMembership {
			return nil, invalid("WithMembership", "cannot be combined with WithBindAddr, WithAdvertiseAddr or WithGossipKey, which configure the default membership")
		}
		if c.membership == nil {
			if !c.bindSet {
				c.bindHost, c.bindPort = defaultBindHost, defaultBindPort
			}
			m, err := mlmember.New(mlmember.Config{
				BindAddr:      c.bindHost,
				BindPort:      c.bindPort,
				AdvertiseAddr: c.advertiseHost,
				AdvertisePort: c.advertisePort,
				Keyring:       c.gossipKeys,
				Logger:        c.logger,
			})
			if err != nil {
				return nil, fmt.Errorf("mycorrizal: membership: %w", err)
			}
			c.membership = m
		}
	}
	var tr ports.Transport
	if !c.single {
		tr = c.transport
	}
	ms, err := mesh.New(mesh.Config{
		Self:                  c.id,
		Transport:             tr,
		Logger:                c.logger,
		MaxFrameSize:          c.maxFrameSize,
		InboxSize:             c.inboxSize,
		RequestConcurrency:    c.requestConcurrency,
		MaxPendingRequests:    c.maxPending,
		DefaultRequestTimeout: c.requestTimeout,
	})
	if err != nil {
		return nil, fmt.Errorf("mycorrizal: %w", err)
	}
	cc, err := cache.New(cache.Config{
		Mesh:     ms,
		Logger:   c.logger,
		NewStore: c.newStore,
		Codecs:   map[string]ports.Codec{c.codec.Name(): c.codec, "gob": gobcodec.New(), "raw": rawcodec.New()},

		MinClusterSize:      c.minClusterSize,
		AntiEntropyInterval: c.antiEntropy,
		SyncBandwidth:       c.syncBandwidth,
		Clock:               c.clock,
	})
	if err != nil {
		_ = ms.Close(context.Background())
		return nil, fmt.Errorf("mycorrizal: cache: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	n := &Node{
		id:                c.id,
		log:               c.logger.With("node", string(c.id)),
		single:            c.single,
		transport:         c.transport,
		membership:        c.membership,
		discovery:         c.discovery,
		codec:             c.codec,
		seeds:             c.seeds,
		joinRetry:         c.joinRetry,
		discoveryInterval: c.discoveryInterval,
		mesh:              ms,
		cache:             cc,
		ctx:               ctx,
		cancel:            cancel,
		ready:             make(chan struct{}),
		reconnect:         newReconnector(c.reconnectInterval, c.reconnectTimeout, maxReconnect),
	}
	if !c.single {
		if err := n.registerKeysApp(); err != nil {
			cancel()
			_ = cc.Close()
			_ = ms.Close(context.Background())
			return nil, fmt.Errorf("mycorrizal: %w", err)
		}
	}
	return n, nil
}

// ID returns this node's ID.
func (n *Node) ID() ports.NodeID { return n.id }

// Codec returns the node's default codec (GOB unless WithCodec was given),
// for applications that encode their payloads.
func (n *Node) Codec() ports.Codec { return n.codec }

// RegisterApplication adds a named application to this node and returns it.
// Register before Start so peers learn of it with the node's first gossip;
// registering later gossips an update. Names are unique per node.
func (n *Node) RegisterApplication(name string) (*App, error) {
	app, err := n.mesh.Register(name)
	if err != nil {
		return nil, err
	}
	n.mu.Lock()
	started := n.started && !n.shutdown && !n.single
	n.mu.Unlock()
	if started {
		ctx, cancel := context.WithTimeout(n.ctx, 10*time.Second)
		defer cancel()
		if err := n.membership.UpdateLocal(ctx, n.localMember()); err != nil {
			return app, fmt.Errorf("mycorrizal: advertise application %q: %w", name, err)
		}
	}
	return app, nil
}

// Application returns the registered application named name, or nil.
func (n *Node) Application(name string) *App { return n.mesh.App(name) }

// Members returns the live members of the cluster, this node included,
// sorted by ID. It is the view this node has applied: a member missing
// here is one that messages and requests already fail fast for with
// ports.ErrUnknownNode.
func (n *Node) Members() []ports.Member {
	n.mu.Lock()
	started := n.started
	n.mu.Unlock()
	self := ports.Member{ID: n.id, Apps: n.mesh.Apps(), Version: ProtocolVersion, State: ports.StateAlive}
	if n.single || !started {
		return []ports.Member{self}
	}
	for _, m := range n.membership.Members() {
		if m.ID == n.id {
			self = m
			break
		}
	}
	peers := n.mesh.Peers()
	i, _ := slices.BinarySearchFunc(peers, n.id, func(m ports.Member, id ports.NodeID) int { return cmp.Compare(m.ID, id) })
	return slices.Insert(peers, i, self)
}

func (n *Node) localMember() ports.LocalMember {
	return ports.LocalMember{ID: n.id, TransportAddr: n.transportAddr, Apps: n.mesh.Apps(), Version: ProtocolVersion}
}

// MeshStats returns a snapshot of the messaging layer's tables (peers,
// streams, requests in flight).
func (n *Node) MeshStats() mesh.Stats { return n.mesh.Stats() }

// defaultTransport builds the QUIC transport with mutual TLS: listening on
// loopback unless WithTransportAddr says otherwise, with certificates from
// WithCertSource or else the shared development CA.
func defaultTransport(c *config) (ports.Transport, error) {
	certs := c.certs
	if certs == nil {
		dev, err := ca.DevCA(ca.DevConfig{NodeID: c.id, Logger: c.logger})
		if err != nil {
			return nil, fmt.Errorf("mycorrizal: development CA: %w", err)
		}
		certs = dev
	}
	addr := c.transportAddr
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	tr, err := quic.New(quic.Config{ListenAddr: addr, AdvertiseAddr: c.transportAdv, Certs: certs, Logger: c.logger})
	if err != nil {
		return nil, fmt.Errorf("mycorrizal: QUIC transport: %w", err)
	}
	return tr, nil
}

// Cache returns Mycel, the node's distributed cache: cluster-wide buckets of
// keys placed on their owners by rendezvous hashing.
func (n *Node) Cache() *cache.Cache { return n.cache }

// TypedBucket returns a typed handle on an existing bucket of n's cache,
// whose values of type T are encoded with the bucket's codec (GOB unless the
// bucket names another).
func TypedBucket[T any](n *Node, name string) (*cache.Bucket[T], error) {
	return cache.Typed[T](n.cache, name)
}
