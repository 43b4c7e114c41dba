package cache

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/mycorrizal/mycorrizal/ports"
)

// Loader produces the value of a missing key for GetOrLoad, and the TTL to
// store it with (0 = the bucket's default).
type Loader func(ctx context.Context) (value []byte, ttl time.Duration, err error)

// ErrLoad wraps a loader's error as the callers of GetOrLoad see it when
// the loader ran for another caller (on this node or another one).
var ErrLoad = errors.New("loader failed")

// loadError is a loader's failure as the waiting callers see it: one
// description naming the key, the bucket and the node that ran the loader,
// passed on as it is from node to node (so its text never repeats). It
// wraps ErrLoad and, on the node that ran the loader, the loader's error.
type loadError struct {
	msg   string
	cause error // nil on other nodes: only the text travels
}

func newLoadError(bucket, key string, loader ports.NodeID, text string, cause error) *loadError {
	return &loadError{msg: fmt.Sprintf("cache: load of %q in bucket %q on %s: %s: %s", key, bucket, loader, text, ErrLoad), cause: cause}
}

func (e *loadError) Error() string { return e.msg }

func (e *loadError) Unwrap() []error {
	if e.cause != nil {
		return []error{ErrLoad, e.cause}
	}
	return []error{ErrLoad}
}

// loadStoreTimeout bounds storing a value a remote loader reported (the
// replicated write runs in a goroutine of its own, never on the load
// application's message goroutine).
const loadStoreTimeout = 10 * time.Second

// flightKey names one key's load.
type flightKey struct{ bucket, key string }

// flight is one load in progress, coordinated by the key's owner.
type flight struct {
	loader   ports.NodeID // the node running the loader
	reported bool         // its result arrived (guarded by the table's mu)
	done     chan struct{}
	value    []byte
	err      error
}

// flightTable holds the loads in flight, bounded.
type flightTable struct {
	mu    sync.Mutex
	limit int
	m     map[flightKey]*flight
}

func (t *flightTable) init(limit int) { t.limit, t.m = limit, make(map[flightKey]*flight) }

// join returns the flight for k and whether the caller started it (and
// must run or delegate the load).
func (t *flightTable) join(k flightKey, loader ports.NodeID) (*flight, bool, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if f := t.m[k]; f != nil {
		return f, false, nil
	}
	if len(t.m) >= t.limit {
		return nil, false, fmt.Errorf("cache: %d loads in flight: %w", t.limit, ports.ErrTooManyRequests)
	}
	f := &flight{loader: loader, done: make(chan struct{})}
	t.m[k] = f
	return f, true, nil
}

// finish completes f (if it is still k's flight) and wakes its waiters.
// A flight ends with a value or an error, never both.
func (t *flightTable) finish(k flightKey, f *flight, value []byte, err error) {
	t.mu.Lock()
	if t.m[k] != f {
		t.mu.Unlock()
		return
	}
	delete(t.m, k)
	t.mu.Unlock()
	if err != nil {
		value = nil
	}
	f.value, f.err = value, err
	close(f.done)
}

// lookup returns k's flight if loader is running it.
func (t *flightTable) lookup(k flightKey, loader ports.NodeID) *flight {
	t.mu.Lock()
	defer t.mu.Unlock()
	if f := t.m[k]; f != nil && f.loader == loader {
		return f
	}
	return nil
}

// claim returns k's flight if loader is running it and its result has not
// arrived yet, marking it arrived: a repeated report is ignored.
func (t *flightTable) claim(k flightKey, loader ports.NodeID) *flight {
	t.mu.Lock()
	defer t.mu.Unlock()
	if f := t.m[k]; f != nil && f.loader == loader && !f.reported {
		f.reported = true
		return f
	}
	return nil
}

func (t *flightTable) failAll(err error) {
	t.mu.Lock()
	fs := t.m
	t.m = make(map[flightKey]*flight)
	t.mu.Unlock()
	for _, f := range fs {
		f.err = err
		close(f.done)
	}
}

// GetOrLoad returns key's value; on a miss it runs loader, stores its value
// and returns it. Across the whole cluster at most one loader runs for a key
// at a time: the key's owner coordinates, and callers on every node wait for
// the one load in progress. A loader's error reaches every waiting caller
// and is not cached. If the node running the loader fails or the load takes
// longer than the waiting caller's ctx allows, that caller gets an error.
// A caller gets a value or an error, never both: a loader that returns an
// error has its value ignored, and a loaded value that could not be stored
// is reported as that error. The caller whose loader ran gets its error as
// returned; the others get an error wrapping ErrLoad that names the node
// that ran it.
func (c *Cache) GetOrLoad(ctx context.Context, bucketName, key string, loader Loader) ([]byte, error) {
	b, err := c.bucket(bucketName)
	if err != nil {
		return nil, err
	}
	if err := checkKey(bucketName, key); err != nil {
		return nil, err
	}
	if rec, found, err := c.readKey(ctx, b, key); err == nil && found && !rec.tomb {
		return append([]byte(nil), rec.value...), nil
	}
	for attempt := 0; attempt < 2; attempt++ {
		owner := c.owner(bucketName, key)
		if owner == c.self {
			return c.loadAsOwner(ctx, b, key, c.self, loader)
		}
		value, retry, err := c.loadRemote(ctx, b, owner, key, loader)
		if !retry {
			return value, err
		}
		if attempt == 1 {
			return nil, err
		}
	}
	return nil, nil // unreachable
}

// loadAsOwner serves a load on the owner: a hit, a wait for the load in
// flight, or a new load run by loader (when it is this node's caller) or
// granted to the node from (nil loader).
func (c *Cache) loadAsOwner(ctx context.Context, b *bucket, key string, from ports.NodeID, loader Loader) ([]byte, error) {
	if rec, ok := b.read(key); ok && !rec.tomb {
		return append([]byte(nil), rec.value...), nil
	}
	k := flightKey{b.name, key}
	f, started, err := c.flights.join(k, from)
	if err != nil {
		return nil, err
	}
	if started {
		// Re-check: the value may have landed between Get and join.
		if rec, ok := b.read(key); ok && !rec.tomb {
			v := append([]byte(nil), rec.value...)
			c.flights.finish(k, f, v, nil)
			return v, nil
		}
		if loader == nil {
			return nil, errGranted
		}
		value, ttl, lerr := loader(ctx)
		if lerr != nil {
			c.flights.finish(k, f, nil, newLoadError(b.name, key, c.self, lerr.Error(), lerr))
			return nil, lerr
		}
		if err := c.put(ctx, b, key, value, ttl); err != nil {
			err = fmt.Errorf("cache: storing the loaded value of %q in bucket %q: %w", key, b.name, err)
			c.flights.finish(k, f, nil, err)
			return nil, err
		}
		c.flights.finish(k, f, value, nil)
		return value, nil
	}
	select {
	case <-f.done:
		if f.err != nil {
			return nil, f.err
		}
		return append([]byte(nil), f.value...), nil // each waiter owns its copy
	case <-ctx.Done():
		return nil, fmt.Errorf("cache: waiting for the load of %q in bucket %q by %s: %w", key, b.name, f.loader, ctx.Err())
	}
}

// errGranted tells serveLoad to grant the load to the requesting node.
var errGranted = errors.New("load granted")

// loadRemote asks the owner for the value or the right to load it.
func (c *Cache) loadRemote(ctx context.Context, b *bucket, owner ports.NodeID, key string, loader Loader) (value []byte, retry bool, err error) {
	payload := appendRequest(nil, request{op: opLoad, bucket: b.name, key: key})
	var granted bool
	err = c.call(ctx, c.load, owner, payload, func(r response) error {
		switch r.status {
		case stOK:
			value = r.body
			return nil
		case stLoadGranted:
			granted = true
			return nil
		case stNotMine:
			retry = true
			c.Refresh()
			return fmt.Errorf("cache: %s does not own %q in bucket %q: %w", owner, key, b.name, ErrViewMismatch)
		case stUnknownBucket:
			retry = true
			if perr := c.pushDefinition(ctx, owner, b); perr != nil {
				return perr
			}
			return fmt.Errorf("cache: %s did not know bucket %q: %w", owner, b.name, ErrUnknownBucket)
		case stError:
			// The owner sends a loader's failure as the description its
			// waiters see; other failures come as handler errors.
			return &loadError{msg: string(r.body)}
		}
		return statusErr(r)
	})
	if err != nil {
		return nil, retry, err
	}
	if !granted {
		return value, false, nil
	}
	// This node runs the loader; the owner waits for the result.
	value, ttl, lerr := loader(ctx)
	done := request{op: opLoadDone, bucket: b.name, key: key, ttl: ttl, value: value}
	if lerr != nil {
		done.failed, done.value, done.ttl = true, []byte(lerr.Error()), 0
	}
	// Report with a context of its own: the caller's may have ended while
	// the loader ran, and the waiters on other nodes still need the result.
	sctx, cancel := context.WithTimeout(c.ctx, 5*time.Second)
	defer cancel()
	serr := c.load.Send(sctx, appendRequest(nil, done), owner)
	if serr != nil {
		c.log.Warn("could not report a finished load to the owner", "owner", string(owner), "bucket", b.name, "err", serr)
	}
	switch {
	case lerr != nil:
		return nil, false, lerr
	case serr != nil:
		// The owner stores the value: one it never got is not stored.
		return nil, false, fmt.Errorf("cache: reporting the loaded value of %q in bucket %q to its owner %s: %w", key, b.name, owner, serr)
	}
	return value, false, nil
}

// serveLoad answers a GetOrLoad from another node, on the owner.
func (c *Cache) serveLoad(ctx context.Context, from ports.NodeID, payload []byte) ([]byte, error) {
	version := c.view.Load().Version()
	req, err := decodeRequest(payload)
	if err != nil || req.op != opLoad {
		if err == nil {
			err = fmt.Errorf("cache: operation %d on the load application: %w", req.op, ports.ErrMalformed)
		}
		return appendResponse(nil, stError, version, []byte(err.Error())), nil
	}
	b, err := c.bucket(req.bucket)
	if err != nil {
		if errors.Is(err, ErrUnknownBucket) {
			return appendResponse(nil, stUnknownBucket, version, nil), nil
		}
		return nil, err
	}
	if c.owner(req.bucket, req.key) != c.self {
		return appendResponse(nil, stNotMine, version, nil), nil
	}
	value, err := c.loadAsOwner(ctx, b, req.key, from, nil)
	var le *loadError
	switch {
	case errors.Is(err, errGranted):
		c.watchLease(flightKey{b.name, req.key}, from)
		return appendResponse(nil, stLoadGranted, version, nil), nil
	case errors.As(err, &le):
		return appendResponse(nil, stError, version, []byte(le.msg)), nil
	case err != nil:
		// Not the loader's failure (a full flight table, the wait's
		// deadline, a failed store): the caller sees it as the remote
		// error it is, not as ErrLoad.
		return nil, err
	}
	return appendResponse(make([]byte, 0, 9+len(value)), stOK, version, value), nil
}

// loadLease bounds how long a remote loader may take before the owner
// gives up on it and fails the waiters.
const loadLease = 30 * time.Second

// watchLease fails a granted load if its loader neither finishes within
// the lease nor stays a member.
func (c *Cache) watchLease(k flightKey, loader ports.NodeID) {
	f := c.flights.lookup(k, loader)
	if f == nil {
		return
	}
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return
	}
	c.wg.Add(1)
	c.mu.Unlock()
	go func() {
		defer c.wg.Done()
		t := time.NewTimer(loadLease)
		defer t.Stop()
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		for {
			select {
			case <-f.done:
				return
			case <-c.ctx.Done():
				return
			case <-t.C:
				c.flights.finish(k, f, nil, fmt.Errorf("cache: load of %q in bucket %q by %s did not finish within %v: %w", k.key, k.bucket, loader, loadLease, context.DeadlineExceeded))
				return
			case <-tick.C:
				if !c.view.Load().Contains(loader) {
					c.flights.finish(k, f, nil, fmt.Errorf("cache: %s left while loading %q in bucket %q: %w", loader, k.key, k.bucket, ports.ErrPeerGone))
					return
				}
			}
		}
	}()
}

// loadDone receives a remote loader's result on the owner: it stores the
// value and wakes the waiters, or hands them the loader's error. It runs on
// the load application's message goroutine, so the replicated store runs
// in a goroutine the cache owns, bounded by loadStoreTimeout.
func (c *Cache) loadDone(_ context.Context, from ports.NodeID, payload []byte) {
	req, err := decodeRequest(payload)
	if err != nil || req.op != opLoadDone {
		c.log.Warn("malformed load result", "from", string(from), "err", err)
		return
	}
	k := flightKey{req.bucket, req.key}
	f := c.flights.claim(k, from)
	if f == nil {
		return // expired, not granted to this node, or reported already
	}
	if req.failed {
		c.flights.finish(k, f, nil, newLoadError(req.bucket, req.key, from, string(req.value), nil))
		return
	}
	b, err := c.bucket(req.bucket)
	if err != nil {
		c.flights.finish(k, f, nil, err)
		return
	}
	started := c.goOwned(loadStoreTimeout, func(ctx context.Context) {
		if err := c.put(ctx, b, req.key, req.value, req.ttl); err != nil {
			c.flights.finish(k, f, nil, fmt.Errorf("cache: storing the value of %q in bucket %q loaded by %s: %w", req.key, req.bucket, from, err))
			return
		}
		c.flights.finish(k, f, req.value, nil)
	})
	if !started {
		c.flights.finish(k, f, nil, fmt.Errorf("cache: load of %q in bucket %q: %w", req.key, req.bucket, ports.ErrClosed))
	}
}
