package testkit

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mycorrizal/mycorrizal"
	"github.com/mycorrizal/mycorrizal/core/cache"
	"github.com/mycorrizal/mycorrizal/ports"
)

// Checker drives a workload on a Cluster's cache and checks what
// docs/CONSISTENCY.md promises about it, as Jepsen's checker does: clients
// Set, Delete, SetTTL, Get and GetOrLoad through random running nodes, on
// several buckets of different RF, W and R, and every operation is recorded
// with its start and end. Each key has one writer, which writes it
// sequentially, so the state a key must end in is known; readers read any
// key.
//
// Start the workload, run faults (a Nemesis), Stop it, settle the cluster
// (Nemesis.Settle), then Check. Wire Observe to the nemesis (BeforeFault) so
// the checker knows which crashes may lose data. RunSchedule does all of it.
type Checker struct {
	c     *Cluster
	cfg   CheckerConfig
	epoch time.Time

	stop      chan struct{}
	wg        sync.WaitGroup
	followups chan followup // keys to read again once MissGrace passed

	maxOffset atomic.Int64 // largest clock offset any slot has had

	mu       sync.Mutex
	keys     map[bucketKey]*keyHistory
	order    []bucketKey // every key written, in the order of its first op
	faults   []FaultEvent
	window   []crashRecord // crashes since the cluster was last replicated
	windowRW bool          // a crash of the window found writes pending
	started  bool
}

// CheckerConfig configures a Checker; the zero value is a usable default.
type CheckerConfig struct {
	// Seed derives the clients' choices (default 1).
	Seed uint64
	// Buckets are created and written (default DefaultBuckets()).
	Buckets []BucketSpec
	// Writers and Readers are the numbers of client goroutines (default 8
	// and 4). Half of the readers' reads follow a write up: they read its
	// key MissGrace after it was acknowledged, so a write lost and later
	// overwritten is still seen missing.
	Writers, Readers int
	// ActiveKeys is how many keys each writer works on at a time (default
	// 24); a key lives for 1 to KeyOps operations (default 8), after which
	// the writer leaves it alone for the rest of the run and takes a new
	// one, so the final state of most keys is an early write.
	ActiveKeys, KeyOps int
	// Preload keys per bucket are written once before the clients start
	// and never again (default 150; negative: none): a resident data set
	// that the faults move around, checked at the end.
	Preload int
	// Pace is each client's pause between operations (default 20 ms).
	Pace time.Duration
	// OpTimeout bounds each operation (default 5 s).
	OpTimeout time.Duration
	// TTL is the TTL every write gives (default 1 h: nothing expires
	// during a run).
	TTL time.Duration
	// MissGrace: a Get that misses a key whose last write (a value,
	// acknowledged, with no other write in flight) returned at least
	// MissGrace before the Get started is a false miss (default 500 ms).
	MissGrace time.Duration
	// Recovery is how long after a partition or drop heals, or a crash
	// that was not replicated is undone, misses still count as outside
	// the documented promises (default 5 s).
	Recovery time.Duration
	// Logf receives the checker's progress (default: the cluster's test
	// log).
	Logf func(format string, args ...any)
}

// BucketSpec is a bucket the checker uses.
type BucketSpec struct {
	Name    string
	Options cache.BucketOptions
}

// DefaultBuckets are four buckets of different replication: "r1" (RF=1),
// "r3" (the defaults: RF=3, W=2, R=1), "q" (RF=3, W=2, R=2: linearizable
// without faults) and "r2w1" (RF=2, W=1).
func DefaultBuckets() []BucketSpec {
	return []BucketSpec{
		{"r1", cache.BucketOptions{Replicas: 1}},
		{"r3", cache.BucketOptions{}},
		{"q", cache.BucketOptions{Replicas: 3, WriteQuorum: 2, ReadQuorum: 2}},
		{"r2w1", cache.BucketOptions{Replicas: 2, WriteQuorum: 1}},
	}
}

func (cfg CheckerConfig) withDefaults() CheckerConfig {
	if cfg.Seed == 0 {
		cfg.Seed = 1
	}
	if cfg.Buckets == nil {
		cfg.Buckets = DefaultBuckets()
	}
	if cfg.Writers <= 0 {
		cfg.Writers = 8
	}
	if cfg.Readers <= 0 {
		cfg.Readers = 4
	}
	if cfg.ActiveKeys <= 0 {
		cfg.ActiveKeys = 24
	}
	if cfg.KeyOps <= 0 {
		cfg.KeyOps = 8
	}
	if cfg.Preload == 0 {
		cfg.Preload = 150
	}
	if cfg.Pace <= 0 {
		cfg.Pace = 20 * time.Millisecond
	}
	if cfg.OpTimeout <= 0 {
		cfg.OpTimeout = 5 * time.Second
	}
	if cfg.TTL <= 0 {
		cfg.TTL = time.Hour
	}
	if cfg.MissGrace <= 0 {
		cfg.MissGrace = 500 * time.Millisecond
	}
	if cfg.Recovery <= 0 {
		cfg.Recovery = 5 * time.Second
	}
	return cfg
}

// OpKind is the kind of a recorded operation.
type OpKind int

// The operations clients run.
const (
	OpSet OpKind = iota + 1
	OpDelete
	OpSetTTL
	OpGet
	OpGetOrLoad
)

var opNames = map[OpKind]string{OpSet: "set", OpDelete: "delete", OpSetTTL: "setttl", OpGet: "get", OpGetOrLoad: "getorload"}

// String returns the operation's name.
func (k OpKind) String() string { return opNames[k] }

// Outcome is how an operation ended.
type Outcome int

// The outcomes.
const (
	// OutcomeOK: acknowledged (a read found its key).
	OutcomeOK Outcome = iota + 1
	// OutcomeNotFound: a read missed, or SetTTL found no copy.
	OutcomeNotFound
	// OutcomeFailed: any other error; a failed write may have been applied.
	OutcomeFailed
)

var outcomeNames = map[Outcome]string{OutcomeOK: "ok", OutcomeNotFound: "notfound", OutcomeFailed: "failed"}

// String returns the outcome's name.
func (o Outcome) String() string { return outcomeNames[o] }

type bucketKey struct{ bucket, key string }

// op is one recorded operation.
type op struct {
	client  int
	kind    OpKind
	node    int
	inc     *mycorrizal.Node // the node incarnation that coordinated it
	start   time.Duration    // since the checker's epoch
	end     time.Duration
	outcome Outcome
	err     error
	// value is the value written (Set, or GetOrLoad's loaded value) or
	// read; loaded is true when GetOrLoad ran its loader.
	value  string
	loaded bool
	// minOffset is the coordinator's smallest clock offset during the op;
	// maxOffset the largest offset any slot had had by its end.
	minOffset, maxOffset time.Duration
}

// write reports whether o may have changed its key: a Set, Delete, SetTTL
// or a GetOrLoad that ran its loader, unless it is known to have done
// nothing (SetTTL of a missing key).
func (o *op) write() bool {
	switch o.kind {
	case OpSet, OpDelete:
		return true
	case OpSetTTL:
		return o.outcome != OutcomeNotFound
	case OpGetOrLoad:
		return o.loaded
	}
	return false
}

// acked reports whether o is an acknowledged write. A GetOrLoad that ran
// its loader is not: the node that owns the key stores the loaded value
// (stamping it with its own clock), and when the loader ran on another
// node the caller is not told whether that store succeeded. Its loader
// running is an observation, though: the key read as missing.
func (o *op) acked() bool {
	return o.outcome == OutcomeOK && !(o.kind == OpGetOrLoad && o.loaded)
}

// keyHistory is every operation on one key.
type keyHistory struct {
	spec      BucketSpec
	key       string
	writes    []*op           // the writer's writes, in order (sequential)
	reads     []*op           // Gets, and GetOrLoads that did not load
	values    map[string]bool // every value a write of the key carried
	exposures []time.Duration // crashes that may have lost its copies
}

// followup is a key to read at due.
type followup struct {
	spec BucketSpec
	key  string
	due  time.Duration
}

// crashRecord is a crash and the keys the crashed node held or owned.
type crashRecord struct {
	node int
	held map[bucketKey]bool
}

// NewChecker prepares a checker on c; Start creates the buckets and starts
// the clients.
func NewChecker(c *Cluster, cfg CheckerConfig) *Checker {
	cfg = cfg.withDefaults()
	if cfg.Logf == nil {
		cfg.Logf = c.t.Logf
	}
	return &Checker{c: c, cfg: cfg, keys: map[bucketKey]*keyHistory{}, stop: make(chan struct{}), followups: make(chan followup, 4096)}
}

// Start creates the checker's buckets through a running node, waits until
// every running node has them, writes the preloaded keys, and starts the
// clients.
func (ch *Checker) Start(ctx context.Context) error {
	i := ch.randomRunning(rand.New(rand.NewPCG(ch.cfg.Seed, 0)))
	if i < 0 {
		return errors.New("checker: no node running")
	}
	for _, b := range ch.cfg.Buckets {
		if err := ch.c.Node(i).Cache().CreateBucket(ctx, b.Name, b.Options); err != nil {
			return fmt.Errorf("checker: create bucket %q: %w", b.Name, err)
		}
	}
	for {
		all := true
		for j := range ch.c.Len() {
			if !ch.c.Running(j) {
				continue
			}
			have := ch.c.Node(j).Cache().Buckets()
			for _, b := range ch.cfg.Buckets {
				all = all && slices.Contains(have, b.Name)
			}
		}
		if all {
			break
		}
		if err := sleepCtx(ctx, 20*time.Millisecond); err != nil {
			return fmt.Errorf("checker: buckets not on every node: %w", err)
		}
	}
	ch.mu.Lock()
	ch.epoch, ch.started = time.Now(), true
	ch.mu.Unlock()
	ch.preload()
	for w := range ch.cfg.Writers {
		ch.wg.Go(func() { ch.writer(w) })
	}
	for r := range ch.cfg.Readers {
		ch.wg.Go(func() { ch.reader(r) })
	}
	return nil
}

// Stop stops the clients and waits until their last operations returned.
func (ch *Checker) Stop() {
	ch.mu.Lock()
	started := ch.started
	ch.started = false
	ch.mu.Unlock()
	if started {
		close(ch.stop)
	}
	ch.wg.Wait()
}

// Observe tells the checker of a fault about to be applied; pass it as the
// nemesis's BeforeFault. For a crash it records which keys the node holds
// or owns, so that losses the documentation allows (the only copy of an
// RF=1 key; RF copies, or W before background writes finished, crashed at
// once) are excused, and counted, rather than reported as violations.
func (ch *Checker) Observe(ev FaultEvent) {
	if ev.Kind == FaultClock && ev.Offset > 0 {
		for {
			cur := ch.maxOffset.Load()
			if int64(ev.Offset) <= cur || ch.maxOffset.CompareAndSwap(cur, int64(ev.Offset)) {
				break
			}
		}
	}
	ch.mu.Lock()
	ch.faults = append(ch.faults, ev)
	ch.mu.Unlock()
	if ev.Kind != FaultCrash || !ch.c.Running(ev.Node) {
		return
	}
	node := ch.c.Node(ev.Node)
	if node == nil {
		return
	}
	ch.mu.Lock()
	defer ch.mu.Unlock()
	rec := crashRecord{node: ev.Node, held: map[bucketKey]bool{}}
	for bk := range ch.keys {
		_, _, _, found := node.Cache().LocalRecord(bk.bucket, bk.key)
		if found || slices.Contains(node.Cache().Replicas(bk.bucket, bk.key), ch.c.ID(ev.Node)) {
			rec.held[bk] = true
		}
	}
	if ev.Replicated {
		ch.window, ch.windowRW = nil, false
	} else {
		ch.windowRW = true
	}
	ch.window = append(ch.window, rec)
	at := time.Since(ch.epoch)
	for bk := range rec.held {
		h := ch.keys[bk]
		rf, w := quorums(h.spec.Options, ch.c.Len())
		threshold := rf
		if ch.windowRW {
			threshold = w
		}
		count := 0
		for _, r := range ch.window {
			if r.held[bk] {
				count++
			}
		}
		if count >= threshold {
			h.exposures = append(h.exposures, at)
		}
	}
}

// quorums is a bucket's RF and W on a cluster of n slots (the defaults as
// the cache applies them: RF 3, W a majority of RF).
func quorums(o cache.BucketOptions, n int) (rf, w int) {
	rf = o.Replicas
	if rf == 0 {
		rf = cache.DefaultReplicas
	}
	rf = max(1, min(rf, n))
	w = o.WriteQuorum
	if w == 0 {
		w = rf/2 + 1
	}
	return rf, min(w, rf)
}

func (ch *Checker) stopped() bool {
	select {
	case <-ch.stop:
		return true
	default:
		return false
	}
}

func (ch *Checker) randomRunning(rng *rand.Rand) int {
	var up []int
	for i := range ch.c.Len() {
		if ch.c.Running(i) {
			up = append(up, i)
		}
	}
	if len(up) == 0 {
		return -1
	}
	return up[rng.IntN(len(up))]
}

func (ch *Checker) since() time.Duration { return time.Since(ch.epoch) }

// pace waits the client's pause; false when the checker is stopping.
func (ch *Checker) pace() bool { return ch.sleep(ch.cfg.Pace) }

// slotMaxOffset records the clock offsets in force now and returns the
// largest any slot has had.
func (ch *Checker) slotMaxOffset() time.Duration {
	for i := range ch.c.Len() {
		d := int64(ch.c.ClockOffset(i))
		for {
			cur := ch.maxOffset.Load()
			if d <= cur || ch.maxOffset.CompareAndSwap(cur, d) {
				break
			}
		}
	}
	return time.Duration(ch.maxOffset.Load())
}

// history returns (creating it) the history of a key.
func (ch *Checker) history(spec BucketSpec, key string) *keyHistory {
	bk := bucketKey{spec.Name, key}
	ch.mu.Lock()
	defer ch.mu.Unlock()
	h := ch.keys[bk]
	if h == nil {
		h = &keyHistory{spec: spec, key: key, values: map[string]bool{}}
		ch.keys[bk] = h
		ch.order = append(ch.order, bk)
	}
	return h
}

// run runs one operation through a random running node and records it.
func (ch *Checker) run(rng *rand.Rand, client int, kind OpKind, spec BucketSpec, key, value string) *op {
	o := &op{client: client, kind: kind, node: ch.randomRunning(rng), value: value}
	if o.node < 0 {
		o.outcome, o.err = OutcomeFailed, errors.New("no node running")
		return o
	}
	node := ch.c.Node(o.node)
	o.inc = node
	o.minOffset = ch.c.ClockOffset(o.node)
	ctx, cancel := context.WithTimeout(context.Background(), ch.cfg.OpTimeout)
	defer cancel()
	cc := node.Cache()
	o.start = ch.since()
	var err error
	switch kind {
	case OpSet:
		err = cc.Set(ctx, spec.Name, key, []byte(value), ch.cfg.TTL)
	case OpDelete:
		err = cc.Delete(ctx, spec.Name, key)
	case OpSetTTL:
		err = cc.SetTTL(ctx, spec.Name, key, ch.cfg.TTL)
	case OpGet:
		var v []byte
		v, err = cc.Get(ctx, spec.Name, key)
		o.value = string(v)
	case OpGetOrLoad:
		var loaded atomic.Bool
		var v []byte
		v, err = cc.GetOrLoad(ctx, spec.Name, key, func(context.Context) ([]byte, time.Duration, error) {
			loaded.Store(true)
			return []byte(value), ch.cfg.TTL, nil
		})
		o.loaded = loaded.Load()
		if o.loaded {
			o.inc = nil // the key's owner stamps the stored value
		}
		if !o.loaded {
			o.value = string(v)
		} else if err == nil && string(v) != value {
			err = fmt.Errorf("checker: GetOrLoad ran its loader (%q) and returned %q", value, v)
		}
	}
	o.end = ch.since()
	o.minOffset = min(o.minOffset, ch.c.ClockOffset(o.node))
	o.maxOffset = ch.slotMaxOffset()
	o.err = err
	switch {
	case err == nil:
		o.outcome = OutcomeOK
	case errors.Is(err, ports.ErrNotFound):
		o.outcome = OutcomeNotFound
	default:
		o.outcome = OutcomeFailed
	}
	return o
}

// preload writes cfg.Preload keys per bucket, once each, 8 at a time.
func (ch *Checker) preload() {
	if ch.cfg.Preload <= 0 {
		return
	}
	client := ch.cfg.Writers + ch.cfg.Readers
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(ch.cfg.Seed, uint64(3000+g)))
			for k := g; k < ch.cfg.Preload*len(ch.cfg.Buckets); k += 8 {
				spec := ch.cfg.Buckets[k%len(ch.cfg.Buckets)]
				key := fmt.Sprintf("p-k%d", k/len(ch.cfg.Buckets))
				ch.record(ch.history(spec, key), ch.run(rng, client, OpSet, spec, key, "p-v"+key))
			}
		})
	}
	wg.Wait()
}

// record adds o to h, and schedules a follow-up read of an acknowledged
// write.
func (ch *Checker) record(h *keyHistory, o *op) {
	ch.mu.Lock()
	if o.write() {
		h.writes = append(h.writes, o)
		if o.kind == OpSet || o.kind == OpGetOrLoad {
			h.values[o.value] = true
		}
	} else {
		h.reads = append(h.reads, o)
	}
	ch.mu.Unlock()
	if o.write() && o.outcome == OutcomeOK {
		select {
		case ch.followups <- followup{h.spec, h.key, o.end + ch.cfg.MissGrace + 50*time.Millisecond}:
		default:
		}
	}
}

// writer owns ActiveKeys keys at a time, spread over the buckets, and runs
// one operation at a time on one of them, choosing what its model of the
// key allows (a key it deleted is set or loaded again, often).
func (ch *Checker) writer(w int) {
	rng := rand.New(rand.NewPCG(ch.cfg.Seed, uint64(1000+w)))
	type active struct {
		spec    BucketSpec
		key     string
		left    int
		present bool
	}
	next, seq := 0, 0
	fresh := func(slot int) active {
		next++
		spec := ch.cfg.Buckets[(slot+next)%len(ch.cfg.Buckets)]
		return active{spec: spec, key: fmt.Sprintf("w%d-k%d", w, next), left: 1 + rng.IntN(ch.cfg.KeyOps)}
	}
	keys := make([]active, ch.cfg.ActiveKeys)
	for i := range keys {
		keys[i] = fresh(i)
	}
	for ch.pace() {
		slot := rng.IntN(len(keys))
		a := &keys[slot]
		seq++
		value := fmt.Sprintf("w%d-v%d", w, seq)
		var kind OpKind
		p := rng.IntN(100)
		switch {
		case !a.present && p < 65:
			kind = OpSet
		case !a.present:
			kind = OpGetOrLoad
		case p < 45:
			kind = OpSet
		case p < 70:
			kind = OpDelete
		case p < 85:
			kind = OpSetTTL
		default:
			kind = OpGetOrLoad
		}
		h := ch.history(a.spec, a.key)
		o := ch.run(rng, w, kind, a.spec, a.key, value)
		ch.record(h, o)
		switch {
		case kind == OpDelete && o.outcome == OutcomeOK:
			a.present = false
		case kind == OpSet && o.outcome == OutcomeOK, kind == OpGetOrLoad && o.outcome == OutcomeOK:
			a.present = true
		}
		if a.left--; a.left <= 0 {
			*a = fresh(slot)
		}
	}
}

// reader reads keys through random running nodes: half of the time a key
// written MissGrace ago (a follow-up), else mostly keys written lately,
// sometimes any key.
func (ch *Checker) reader(r int) {
	rng := rand.New(rand.NewPCG(ch.cfg.Seed, uint64(2000+r)))
	for ch.pace() {
		var bk bucketKey
		var h *keyHistory
		if rng.IntN(2) == 0 {
			select {
			case f := <-ch.followups:
				if wait := f.due - ch.since(); wait > 0 && !ch.sleep(wait) {
					return
				}
				bk = bucketKey{f.spec.Name, f.key}
			default:
			}
		}
		ch.mu.Lock()
		if n := len(ch.order); bk.key == "" && n > 0 {
			i := rng.IntN(n)
			if recent := 2 * ch.cfg.Writers * ch.cfg.ActiveKeys; rng.IntN(10) < 7 && n > recent {
				i = n - 1 - rng.IntN(recent)
			}
			bk = ch.order[i]
		}
		h = ch.keys[bk]
		ch.mu.Unlock()
		if h == nil {
			continue
		}
		ch.record(h, ch.run(rng, ch.cfg.Writers+r, OpGet, h.spec, bk.key, ""))
	}
}

// sleep waits d; false when the checker is stopping.
func (ch *Checker) sleep(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ch.stop:
		return false
	}
}
