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

	view    atomic.Pointer[placement.View]
	version atomic.Uint64

	flights flightTable
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
	if cfg.NewStore == nil {
		cfg.NewStore = func(_ string, o BucketOptions) (ports.Store, error) {
			return NewStore(StoreConfig{MaxEntries: o.MaxEntries, MaxBytes: o.MaxBytes})
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
	ctx, cancel := context.WithCancel(context.Background())
	c := &Cache{
		cfg: cfg, log: cfg.Logger.With("component", "cache"), self: cfg.Mesh.Self(),
		app: app, load: load, ctx: ctx, cancel: cancel,
		buckets: make(map[string]*bucket),
	}
	c.flights.init(cfg.MaxLoads)
	app.OnRequest(c.serve)
	load.OnRequest(c.serveLoad)
	load.OnMessage(c.loadDone)
	c.Refresh()
	return c, nil
}

// Refresh rebuilds the placement view from the mesh's current peers that
// host the cache, plus this node. Call it after every membership change.
func (c *Cache) Refresh() {
	nodes := append(c.app.Nodes(), c.self)
	old := c.view.Load()
	if old != nil && slices.Equal(old.Nodes(), sortedIDs(nodes)) {
		return
	}
	c.view.Store(placement.NewView(c.version.Add(1), nodes))
}

func sortedIDs(ids []ports.NodeID) []ports.NodeID {
	out := slices.Clone(ids)
	slices.Sort(out)
	return slices.Compact(out)
}

// HandleEvent refreshes the view and, when a peer joins, exchanges bucket
// definitions with it so buckets created before it joined exist there too.
func (c *Cache) HandleEvent(ev ports.MemberEvent) {
	c.Refresh()
	if ev.Type == ports.MemberJoined && ev.Member.Hosts(AppName) {
		c.goSync(ev.Member.ID)
	}
}

// goSync pushes this node's bucket definitions to peer and pulls its own,
// in a goroutine the cache owns.
func (c *Cache) goSync(peer ports.NodeID) {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return
	}
	c.wg.Add(1)
	c.mu.Unlock()
	go func() {
		defer c.wg.Done()
		ctx, cancel := context.WithTimeout(c.ctx, c.cfg.SyncTimeout)
		defer cancel()
		if err := c.syncWith(ctx, peer); err != nil && c.ctx.Err() == nil {
			c.log.Warn("bucket definitions not exchanged", "peer", string(peer), "err", err)
		}
	}()
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
