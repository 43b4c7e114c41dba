package cache

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mycorrizal/mycorrizal/core/mesh"
	"github.com/mycorrizal/mycorrizal/core/placement"
	"github.com/mycorrizal/mycorrizal/ports"
)

// System applications the cache uses on every node.
const (
	// AppName carries Get, Set, Delete, SetTTL and bucket definitions.
	AppName = "_mycorrizal.cache"
	// LoadAppName carries GetOrLoad, whose requests may wait for a load;
	// it is separate so waiting loads never hold up plain operations.
	LoadAppName = "_mycorrizal.cache.load"
)

// ErrViewMismatch is returned when the owner of a key, as this node sees
// the cluster, disagreed twice that it owns the key: the views have not
// converged yet; retry shortly.
var ErrViewMismatch = errors.New("cluster views differ on the key's owner")

// Config configures a Cache.
type Config struct {
	// Mesh carries operations to other nodes. Required.
	Mesh *mesh.Mesh
	// Logger receives logs; nil discards them.
	Logger *slog.Logger
	// NewStore builds a bucket's local store; nil uses NewStore with the
	// bucket's limits.
	NewStore func(name string, o BucketOptions) (ports.Store, error)
	// Codecs are the codecs typed helpers may use, by name; "gob" is
	// required for buckets that name none.
	Codecs map[string]ports.Codec
	// MaxBuckets bounds how many buckets this node keeps (default 1024).
	// Definitions arrive from peers, so the table they fill is bounded.
	MaxBuckets int
	// MaxLoads bounds the loads in flight this node coordinates as owner
	// (default 65536).
	MaxLoads int
	// SyncTimeout bounds each bucket-definition exchange with a peer
	// (default 5 s).
	SyncTimeout time.Duration
	// MinClusterSize, when positive, makes a node that sees fewer members
	// refuse writes with ErrClusterTooSmall (split-brain protection: the
	// minority side of a partition stops accepting writes). Reads go on.
	MinClusterSize int
	// ReplicaTimeout bounds a write to one replica that goes on in the
	// background after the write quorum answered (default 10 s).
	ReplicaTimeout time.Duration
	// ReplicaInFlight and ReplicaInFlightBytes bound the replica writes in
	// flight to each peer (default an eighth of the mesh's pending
	// requests, at most 1024, and 32 MiB): beyond them a write
	// is not sent to that replica (it counts as failed there, and sync
	// repairs it), so one slow replica cannot starve the others.
	ReplicaInFlight      int
	ReplicaInFlightBytes int64
	// TombstoneTTL is how long a delete is remembered so a stale replica
	// cannot bring the key back (default 10 min), and MaxTombstones how
	// many each bucket remembers at most (default 1,000,000).
	TombstoneTTL  time.Duration
	MaxTombstones int
	// AntiEntropyInterval is how often a node pulls from its peers even
	// when membership is stable, healing divergence no read touched
	// (default 30 s).
	AntiEntropyInterval time.Duration
	// SyncSettle is how long the membership must be still before a sync
	// round starts (default 100 ms).
	SyncSettle time.Duration
	// PullTimeout bounds one pull of one bucket from one peer (default
	// 5 min).
	PullTimeout time.Duration
	// SyncBandwidth bounds the bytes per second of records this node
	// sends to sync its peers (0 = default 256 MiB/s; negative =
	// unlimited).
	SyncBandwidth int64
	// Clock is the node's wall clock, read for versions and expiry; nil
	// means time.Now. Tests give each node its own (skewed) clock.
	Clock func() time.Time
}

// Cache is Mycel, the distributed cache: buckets of keys placed on their
// owners by rendezvous hashing over the nodes that host the cache. An
// operation on a key this node does not own goes to the owner over the
// mesh, in at most one hop. All methods are safe for concurrent use.
type Cache struct {
	cfg  Config
	log  *slog.Logger
	self ports.NodeID
	app  *mesh.App
	load *mesh.App

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu      sync.RWMutex
	buckets map[string]*bucket
	closed  bool

	view     atomic.Pointer[placement.View]
	prevView atomic.Pointer[placement.View] // the view before the current one
	version  atomic.Uint64

	flights flightTable

	// Replication.
	clock           hlc
	syncApp         *mesh.App
	syncKick        chan struct{}
	dropKick        chan struct{} // a peer pulled: offer and drop foreign copies
	promised        *promises
	syncMu          sync.Mutex  // orders view changes against marking synced
	synced          atomic.Bool // pulled from every peer of the current view
	syncedCh        chan struct{}
	syncedOnce      sync.Once
	pullMu          sync.Mutex
	pulledBy        map[pullKey]string         // the view each peer last pulled each bucket with
	leaving         map[ports.NodeID]time.Time // peers handing off; see ownerView
	selfLeaving     atomic.Bool                // this node is handing off: forward what it applies
	limiter         limiter
	pendingReplicas atomic.Int64
	budgets         *budgets
	shed            atomic.Uint64
	received        atomic.Uint64
	repairs         atomic.Uint64
	rounds          atomic.Uint64
}

// New registers the cache's system applications on cfg.Mesh and returns a
// cache with no buckets. Call Refresh after each membership change and
// Close at the end.
func New(cfg Config) (*Cache, error) {
	if cfg.Mesh == nil {
		return nil, fmt.Errorf("cache: Mesh is required: %w", ports.ErrInvalidConfig)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.MaxBuckets <= 0 {
		cfg.MaxBuckets = 1024
	}
	if cfg.MaxLoads <= 0 {
		cfg.MaxLoads = 65536
	}
	if cfg.SyncTimeout <= 0 {
		cfg.SyncTimeout = 5 * time.Second
	}
	if cfg.ReplicaTimeout <= 0 {
		cfg.ReplicaTimeout = 10 * time.Second
	}
	if cfg.ReplicaInFlight <= 0 {
		cfg.ReplicaInFlight = max(1, min(1024, cfg.Mesh.MaxPendingRequests()/8))
	}
	if cfg.ReplicaInFlightBytes <= 0 {
		cfg.ReplicaInFlightBytes = 32 << 20
	}
	if cfg.TombstoneTTL <= 0 {
		cfg.TombstoneTTL = 10 * time.Minute
	}
	if cfg.MaxTombstones <= 0 {
		cfg.MaxTombstones = 1_000_000
	}
	if cfg.AntiEntropyInterval <= 0 {
		cfg.AntiEntropyInterval = 30 * time.Second
	}
	if cfg.SyncSettle <= 0 {
		cfg.SyncSettle = 100 * time.Millisecond
	}
	if cfg.PullTimeout <= 0 {
		cfg.PullTimeout = 5 * time.Minute
	}
	if cfg.SyncBandwidth == 0 {
		cfg.SyncBandwidth = 256 << 20
	}
	if cfg.Clock == nil {
		cfg.Clock = time.Now
	}
	if cfg.NewStore == nil {
		clock := cfg.Clock
		cfg.NewStore = func(_ string, o BucketOptions) (ports.Store, error) {
			return NewStore(StoreConfig{MaxEntries: o.MaxEntries, MaxBytes: o.MaxBytes, Clock: clock})
		}
	}
	app, err := cfg.Mesh.Register(AppName)
	if err != nil {
		return nil, err
	}
	load, err := cfg.Mesh.Register(LoadAppName)
	if err != nil {
		return nil, err
	}
	syncApp, err := cfg.Mesh.Register(SyncAppName)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	c := &Cache{
		cfg: cfg, log: cfg.Logger.With("component", "cache"), self: cfg.Mesh.Self(),
		app: app, load: load, syncApp: syncApp, ctx: ctx, cancel: cancel,
		buckets:  make(map[string]*bucket),
		syncKick: make(chan struct{}, 1),
		dropKick: make(chan struct{}, 1),
		promised: newPromises(1 << 20),
		syncedCh: make(chan struct{}),
		pulledBy: make(map[pullKey]string),
		leaving:  make(map[ports.NodeID]time.Time),
		budgets:  newBudgets(cfg.ReplicaInFlight, cfg.ReplicaInFlightBytes),
	}
	c.clock.wall = cfg.Clock
	if cfg.SyncBandwidth > 0 {
		c.limiter.rate = float64(cfg.SyncBandwidth)
	}
	c.flights.init(cfg.MaxLoads)
	app.OnRequest(c.serve)
	load.OnRequest(c.serveLoad)
	load.OnMessage(c.loadDone)
	syncApp.OnRequest(c.serveSync)
	c.Refresh()
	c.wg.Add(2)
	go c.syncer()
	go c.tombstoneSweeper()
	return c, nil
}

// SyncNow starts a sync round soon. The node calls it after its first
// join attempt; the round's end (at once when the node is alone) completes
// the first sync that WaitSynced waits for.
func (c *Cache) SyncNow() { c.kickSync() }

// Synced reports whether this node has pulled, from every peer of its
// current view, the keys it owns: its misses are then authoritative. It
// turns false at each membership change until the next sync round ends.
func (c *Cache) Synced() bool { return c.synced.Load() }

// WaitSynced blocks until this node has completed its first sync (it holds
// the data it owns), or ctx ends. This is the readiness gate: a restarted
// node should not take traffic before it.
func (c *Cache) WaitSynced(ctx context.Context) error {
	select {
	case <-c.syncedCh:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("cache: not synced: %w", ctx.Err())
	}
}

// tombstoneSweeper forgets expired tombstones, a bounded batch per bucket
// each second.
func (c *Cache) tombstoneSweeper() {
	defer c.wg.Done()
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-c.ctx.Done():
			return
		case <-t.C:
			for _, name := range c.Buckets() {
				if b, err := c.bucket(name); err == nil {
					b.tombs.expire(time.Unix(0, b.wall()), 4096) // deadlines follow the node's clock
				}
			}
		}
	}
}

// Refresh rebuilds the placement view from the mesh's current peers that
// host the cache, plus this node. Call it after every membership change.
func (c *Cache) Refresh() {
	nodes := append(c.app.Nodes(), c.self)
	old := c.view.Load()
	if old != nil && slices.Equal(old.Nodes(), sortedIDs(nodes)) {
		return
	}
	v := placement.NewView(c.version.Add(1), nodes)
	c.syncMu.Lock()
	defer c.syncMu.Unlock()
	if old != nil {
		c.prevView.Store(old)
	}
	c.view.Store(v)
	c.forgetPulls(v)
	if v.Len() == 1 {
		// Alone: nothing to pull. (The first sync, which gates readiness,
		// still waits for SyncNow: a node that has just started is alone
		// until it joins.)
		c.synced.Store(true)
		return
	}
	c.synced.Store(false)
	c.kickSync()
}

func sortedIDs(ids []ports.NodeID) []ports.NodeID {
	out := slices.Clone(ids)
	slices.Sort(out)
	return slices.Compact(out)
}

// HandleEvent refreshes the view and, when a peer joins, exchanges bucket
// definitions with it so buckets created before it joined exist there too.
func (c *Cache) HandleEvent(ev ports.MemberEvent) {
	if ev.Type == ports.MemberJoined && ev.Member.ID != c.self {
		// Whatever it pulled before is gone if it restarted; ask it to
		// pull again so this node learns it has (and may drop copies).
		c.forgetPeer(ev.Member.ID)
		if ev.Member.Hosts(SyncAppName) {
			peer := ev.Member.ID
			c.goBackground(func(ctx context.Context) {
				_ = c.call(ctx, c.syncApp, peer, appendRequest(nil, request{op: opNudge}), func(response) error { return nil })
			})
		}
	}
	c.Refresh()
	if ev.Type == ports.MemberJoined && ev.Member.Hosts(AppName) {
		c.goSync(ev.Member.ID)
	}
}

// goSync pushes this node's bucket definitions to peer and pulls its own,
// in a goroutine the cache owns.
func (c *Cache) goSync(peer ports.NodeID) {
	c.goOwned(c.cfg.SyncTimeout, func(ctx context.Context) {
		if err := c.syncWith(ctx, peer); err != nil && c.ctx.Err() == nil {
			c.log.Warn("bucket definitions not exchanged", "peer", string(peer), "err", err)
		}
	})
}

// Close stops background work and closes every bucket's store.
func (c *Cache) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	c.cancel()
	c.mu.Unlock()
	c.wg.Wait()
	c.flights.failAll(fmt.Errorf("cache: %w", ports.ErrClosed))
	c.mu.Lock()
	defer c.mu.Unlock()
	var errs []error
	for _, b := range c.buckets {
		if err := b.store.Close(); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// owner returns the node owning key in bucket, in this node's view.
func (c *Cache) owner(bucketName, key string) ports.NodeID {
	id, ok := c.view.Load().Owner(placement.KeyHash(bucketName, key))
	if !ok {
		return c.self
	}
	return id
}

// bucket returns this node's share of the named bucket.
func (c *Cache) bucket(name string) (*bucket, error) {
	c.mu.RLock()
	b := c.buckets[name]
	closed := c.closed
	c.mu.RUnlock()
	if closed {
		return nil, fmt.Errorf("cache: %w", ports.ErrClosed)
	}
	if b == nil {
		return nil, fmt.Errorf("cache: bucket %q: %w", name, ErrUnknownBucket)
	}
	return b, nil
}

// Buckets returns the names of the buckets this node knows, sorted.
func (c *Cache) Buckets() []string {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return slices.Sorted(maps.Keys(c.buckets))
}

// Stats returns this node's counters for the named bucket.
func (c *Cache) Stats(name string) (BucketStats, error) {
	b, err := c.bucket(name)
	if err != nil {
		return BucketStats{}, err
	}
	return BucketStats{Name: name, StoreStats: b.store.Stats()}, nil
}

// NodeStats returns this node's counters summed over all buckets.
func (c *Cache) NodeStats() ports.StoreStats {
	c.mu.RLock()
	bs := make([]*bucket, 0, len(c.buckets))
	for _, b := range c.buckets {
		bs = append(bs, b)
	}
	c.mu.RUnlock()
	var s ports.StoreStats
	for _, b := range bs {
		t := b.store.Stats()
		s.Hits += t.Hits
		s.Misses += t.Misses
		s.Evictions += t.Evictions
		s.Expirations += t.Expirations
		s.Entries += t.Entries
		s.Bytes += t.Bytes
	}
	return s
}

// Owner returns the node that owns key in bucket as this node sees the
// cluster now.
func (c *Cache) Owner(bucketName, key string) ports.NodeID { return c.owner(bucketName, key) }
