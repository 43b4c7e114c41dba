package cache

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/mycorrizal/mycorrizal/core/placement"
	"github.com/mycorrizal/mycorrizal/ports"
)

// Sync moves data to the nodes that own it. One mechanism serves
// rebalancing on join, re-replication after a failure, catching up after a
// restart and periodic anti-entropy: a node pulls, from every peer, the
// keys it owns in its view. The pull carries the node's view (its member
// list) and 256 range digests of what it holds that the peer should also
// hold; the peer sends, for each range whose digest differs, the versions
// it holds of keys the puller owns (an offer), the puller answers which it
// wants (missing or older), and the peer sends those records. Matching
// ranges cost nothing beyond the digest, so a round between replicas in
// agreement moves 2 KiB per bucket and peer.
//
// A node is synced once it has pulled from every peer of its current view;
// until then its misses are not authoritative (reads ask further replicas)
// and its first sync gates Ready. A node drops the copies it does not own
// once every peer of its current view has pulled from it with that same
// view, so the owners have them first.

// SyncAppName carries sync traffic, apart from operations so a long pull
// never holds up a Get.
const SyncAppName = "_mycorrizal.cache.sync"

// Sync batches.
const (
	syncBatchBytes = 256 << 10
	syncBatchMax   = 4096
	batchOverhead  = 16
	digestRanges   = 256
)

// digests are the per-range digests of a set of records.
type digests [digestRanges]uint64

// itemHash is a record's contribution to its range's digest.
func itemHash(kh uint64, r record, writerHash uint64) uint64 {
	x := kh ^ (r.version * 0x9e3779b97f4a7c15) ^ writerHash
	if r.tomb {
		x ^= 0xa5a5a5a5a5a5a5a5
	}
	x ^= x >> 33
	x *= 0xff51afd7ed558ccd
	x ^= x >> 33
	x *= 0xc4ceb9fe1a85ec53
	return x ^ (x >> 33)
}

// writerHashes caches writer ID hashes during one pass.
type writerHashes map[string]uint64

func (w writerHashes) of(id string) uint64 {
	h, ok := w[id]
	if !ok {
		h = placement.KeyHash("writer", id)
		w[id] = h
	}
	return h
}

// eachItem calls fn for every live entry and tombstone of b.
func (b *bucket) eachItem(fn func(r record) bool) {
	stop := false
	b.store.Range(func(e ports.Entry) bool {
		if !fn(recordOf(e)) {
			stop = true
		}
		return !stop
	})
	if stop {
		return
	}
	b.tombs.each(func(key string, ts deletion) bool {
		return fn(record{key: key, version: ts.version, writer: ts.writer, tomb: true})
	})
}

// syncer is the cache's sync loop: a round after each view change (once
// the view has been still for a moment), again after a failed round, and
// every anti-entropy interval.
func (c *Cache) syncer() {
	defer c.wg.Done()
	tick := time.NewTicker(c.cfg.AntiEntropyInterval)
	defer tick.Stop()
	retry := time.NewTimer(time.Hour)
	retry.Stop()
	defer retry.Stop()
	dropAgain := time.NewTimer(time.Hour)
	dropAgain.Stop()
	defer dropAgain.Stop()
	drop := func() {
		ctx, cancel := context.WithTimeout(c.ctx, c.cfg.PullTimeout)
		defer cancel()
		if c.dropForeign(ctx) > 0 && c.ctx.Err() == nil {
			dropAgain.Reset(dropRetry)
		}
	}
	for {
		select {
		case <-c.ctx.Done():
			return
		case <-c.dropKick:
			drop()
			continue
		case <-dropAgain.C:
			drop()
			continue
		case <-c.syncKick:
		case <-tick.C:
		case <-retry.C:
		}
		// Let a burst of membership changes settle into one round.
		select {
		case <-c.ctx.Done():
			return
		case <-time.After(c.cfg.SyncSettle):
		}
		select {
		case <-c.syncKick:
		default:
		}
		if c.selfLeaving.Load() {
			continue // handing off: it pulls nothing more
		}
		v := c.view.Load()
		start := time.Now()
		n, err := c.syncRound(v)
		switch {
		case c.ctx.Err() != nil:
			return
		case err != nil:
			c.log.Warn("sync round failed; retrying", "view", v.Version(), "err", err)
			retry.Reset(time.Second)
		case c.markSynced(v):
			c.rounds.Add(1)
			if n > 0 {
				c.log.Info("synced", "view", v.Version(), "members", v.Len(), "received", n, "took", time.Since(start).Round(time.Millisecond))
			}
		}
		drop()
	}
}

// markSynced marks this node synced if v is still its view (else the
// view changed during the round and another round follows).
func (c *Cache) markSynced(v *placement.View) bool {
	c.syncMu.Lock()
	defer c.syncMu.Unlock()
	if c.view.Load() != v {
		return false
	}
	c.synced.Store(true)
	c.syncedOnce.Do(func() { close(c.syncedCh) })
	return true
}

// kickSync asks the syncer for a round soon.
func (c *Cache) kickSync() {
	select {
	case c.syncKick <- struct{}{}:
	default:
	}
}

// syncRound exchanges bucket definitions with every peer of v, then pulls
// every bucket from every peer, and returns how many records it received.
func (c *Cache) syncRound(v *placement.View) (int, error) {
	peers := slices.DeleteFunc(slices.Clone(v.Nodes()), func(id ports.NodeID) bool { return id == c.self })
	if len(peers) == 0 {
		return 0, nil
	}
	var (
		mu   sync.Mutex
		errs []error
		wg   sync.WaitGroup
	)
	for _, p := range peers {
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(c.ctx, c.cfg.SyncTimeout)
			defer cancel()
			if err := c.syncWith(ctx, p); err != nil {
				mu.Lock()
				errs = append(errs, fmt.Errorf("definitions from %s: %w", p, err))
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if len(errs) > 0 {
		return 0, errors.Join(errs...)
	}
	received := 0
	for _, name := range c.Buckets() {
		b, err := c.bucket(name)
		if err != nil {
			return received, err
		}
		own := c.ownDigests(b, v, peers)
		before := c.received.Load()
		for _, p := range peers {
			wg.Go(func() {
				ctx, cancel := context.WithTimeout(c.ctx, c.cfg.PullTimeout)
				defer cancel()
				if err := c.pull(ctx, b, v, p, own[p]); err != nil {
					mu.Lock()
					errs = append(errs, fmt.Errorf("pull bucket %q from %s: %w", b.name, p, err))
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		received += int(c.received.Load() - before)
		// Every batch of a pull completes before its answer: what a peer
		// promised in it and did not send will not come. The next round
		// asks again (the other holders deferred to that peer).
		missing := 0
		for _, p := range peers {
			missing += c.promised.release(b.name, p)
		}
		if missing > 0 {
			errs = append(errs, fmt.Errorf("bucket %q: %d records promised by peers did not arrive", b.name, missing))
		}
		if len(errs) > 0 {
			return received, errors.Join(errs...)
		}
	}
	return received, nil
}

// ownDigests computes, in one pass over b, for each peer the digests of
// what this node holds and owns that the peer also owns in view v.
func (c *Cache) ownDigests(b *bucket, v *placement.View, peers []ports.NodeID) map[ports.NodeID]*digests {
	out := make(map[ports.NodeID]*digests, len(peers))
	for _, p := range peers {
		out[p] = new(digests)
	}
	rf, _, _ := b.opts.quorums(v.Len())
	owners := make([]ports.NodeID, 0, rf)
	wh := writerHashes{}
	b.eachItem(func(r record) bool {
		kh := placement.KeyHash(b.name, r.key)
		owners = v.Owners(owners[:0], kh, rf)
		if !slices.Contains(owners, c.self) {
			return true
		}
		h := itemHash(kh, r, wh.of(r.writer))
		for _, o := range owners {
			if d := out[o]; d != nil {
				d[kh>>56] ^= h
			}
		}
		return true
	})
	return out
}

// pull asks peer to send this node what it owns in v and may lack.
func (c *Cache) pull(ctx context.Context, b *bucket, v *placement.View, peer ports.NodeID, own *digests) error {
	payload := appendRequest(nil, request{op: opPull, bucket: b.name, value: appendPull(nil, v.Nodes(), own)})
	return c.callBucket(ctx, c.syncApp, peer, b, payload, func(r response) error {
		if r.status == stOK {
			return nil
		}
		return statusErr(r)
	})
}

// appendPull encodes a pull: the puller's view and its digests.
func appendPull(dst []byte, nodes []ports.NodeID, d *digests) []byte {
	dst = binary.BigEndian.AppendUint16(dst, uint16(len(nodes)))
	for _, n := range nodes {
		dst = append(dst, byte(len(n)))
		dst = append(dst, n...)
	}
	for _, h := range d {
		dst = binary.BigEndian.AppendUint64(dst, h)
	}
	return dst
}

// maxViewNodes bounds the member list a pull may carry.
const maxViewNodes = 4096

func decodePull(b []byte) ([]ports.NodeID, *digests, error) {
	bad := func(what string) ([]ports.NodeID, *digests, error) {
		return nil, nil, fmt.Errorf("cache: pull: %s: %w", what, ports.ErrMalformed)
	}
	if len(b) < 2 {
		return bad("truncated")
	}
	n := int(binary.BigEndian.Uint16(b))
	if n == 0 || n > maxViewNodes {
		return bad("member count")
	}
	b = b[2:]
	nodes := make([]ports.NodeID, 0, n)
	for range n {
		if len(b) < 1 || len(b) < 1+int(b[0]) || b[0] == 0 {
			return bad("member overruns")
		}
		nodes = append(nodes, ports.NodeID(b[1:1+int(b[0])]))
		b = b[1+int(b[0]):]
	}
	if len(b) != 8*digestRanges {
		return bad("digests")
	}
	d := new(digests)
	for i := range d {
		d[i] = binary.BigEndian.Uint64(b[8*i:])
	}
	return nodes, d, nil
}

// servePull runs on the peer a node pulls from: it sends the puller, by
// offers and batches, the records it holds of keys the puller owns in the
// puller's view, for every range whose digest differs.
func (c *Cache) servePull(ctx context.Context, from ports.NodeID, b *bucket, body []byte) error {
	nodes, theirs, err := decodePull(body)
	if err != nil {
		return err
	}
	v := placement.NewView(0, nodes)
	if !v.Contains(from) {
		return fmt.Errorf("cache: pull from %s whose view does not include it: %w", from, ports.ErrMalformed)
	}
	if err := c.pushTo(ctx, from, b, v, theirs, nil); err != nil {
		return err
	}
	c.notePulled(from, b.name, v)
	return nil
}

// pushTo sends to peer the records of b it owns in v: in the ranges whose
// digest of the keys both own differs from theirs, and every copy this
// node holds without owning it (those are few: until the owners have them,
// after a membership change). With theirs nil (a handoff) it sends all.
// The digest covers only keys both nodes own, so two replicas that agree
// match range by range even while one still holds copies for others.
func (c *Cache) pushTo(ctx context.Context, peer ports.NodeID, b *bucket, v *placement.View, theirs *digests, onResult func([]record, []bool)) error {
	rf, _, _ := b.opts.quorums(v.Len())
	owners := make([]ports.NodeID, 0, rf)
	differs := func(kh uint64) bool { return true }
	if theirs != nil && *theirs != (digests{}) {
		// (A puller that holds nothing, new or restarted, needs no digest
		// comparison: everything it owns is sent.)
		var mine digests
		wh := writerHashes{}
		b.eachItem(func(r record) bool {
			kh := placement.KeyHash(b.name, r.key)
			owners = v.Owners(owners[:0], kh, rf)
			if slices.Contains(owners, peer) && slices.Contains(owners, c.self) {
				mine[kh>>56] ^= itemHash(kh, r, wh.of(r.writer))
			}
			return true
		})
		differs = func(kh uint64) bool { return mine[kh>>56] != theirs[kh>>56] }
	}
	bt := newBatcher(c, ctx, peer, b)
	bt.onResult = onResult
	b.eachItem(func(r record) bool {
		kh := placement.KeyHash(b.name, r.key)
		owners = v.Owners(owners[:0], kh, rf)
		if !slices.Contains(owners, peer) || (!differs(kh) && slices.Contains(owners, c.self)) {
			return true
		}
		return bt.add(r) == nil
	})
	return bt.close()
}

// batcher gathers records for one peer and sends them as an offer
// followed by the wanted records, with up to syncPipeline batches in
// flight (a pull is latency-bound otherwise: two round trips per batch).
// Its goroutines are waited for by close. When onResult is set, it is
// called after each batch (from the batch's goroutine) with the records
// and whether the peer now holds each (it had the version or a newer one,
// or received it); a record the peer deferred to another peer's promise is
// not held.
type batcher struct {
	c     *Cache
	ctx   context.Context
	peer  ports.NodeID
	b     *bucket
	recs  []record
	bytes int

	onResult func(recs []record, have []bool)

	slots chan struct{}
	wg    sync.WaitGroup
	mu    sync.Mutex
	err   error
}

// syncPipeline is how many batches one pull or handoff has in flight.
const syncPipeline = 4

func newBatcher(c *Cache, ctx context.Context, peer ports.NodeID, b *bucket) *batcher {
	return &batcher{c: c, ctx: ctx, peer: peer, b: b, slots: make(chan struct{}, syncPipeline)}
}

func (bt *batcher) failed() error {
	bt.mu.Lock()
	defer bt.mu.Unlock()
	return bt.err
}

func (bt *batcher) fail(err error) {
	bt.mu.Lock()
	if bt.err == nil {
		bt.err = err
	}
	bt.mu.Unlock()
}

func (bt *batcher) add(r record) error {
	if err := bt.failed(); err != nil {
		return err
	}
	if len(bt.recs) > 0 && (bt.bytes+r.size() > syncBatchBytes || len(bt.recs) >= syncBatchMax) {
		if err := bt.dispatch(); err != nil {
			return err
		}
	}
	bt.recs = append(bt.recs, r)
	bt.bytes += r.size()
	return nil
}

// dispatch sends the gathered batch in a goroutine once a slot is free.
func (bt *batcher) dispatch() error {
	recs := bt.recs
	bt.recs, bt.bytes = make([]record, 0, len(recs)), 0
	select {
	case bt.slots <- struct{}{}:
	case <-bt.ctx.Done():
		bt.fail(bt.ctx.Err())
		return bt.ctx.Err()
	}
	bt.wg.Add(1)
	go func() {
		defer bt.wg.Done()
		defer func() { <-bt.slots }()
		if err := bt.send(recs); err != nil {
			bt.fail(err)
		}
	}()
	return nil
}

// close sends what is left and waits for every batch in flight.
func (bt *batcher) close() error {
	var err error
	if len(bt.recs) > 0 && bt.failed() == nil {
		err = bt.dispatch()
	}
	bt.wg.Wait()
	if ferr := bt.failed(); ferr != nil {
		return ferr
	}
	return err
}

// send offers the versions of recs, then sends the wanted records.
func (bt *batcher) send(recs []record) error {
	var offer []byte
	for _, r := range recs {
		head := r
		head.value = nil
		offer = appendRecord(offer, head)
	}
	var wanted, deferred []byte
	err := bt.c.callBucket(bt.ctx, bt.c.syncApp, bt.peer, bt.b, appendRequest(nil, request{op: opOffer, bucket: bt.b.name, value: offer}), func(r response) error {
		if r.status != stOK {
			return statusErr(r)
		}
		n := (len(recs) + 7) / 8
		if len(r.body) != 2*n {
			return fmt.Errorf("cache: offer answer of %d bytes for %d records: %w", len(r.body), len(recs), ports.ErrMalformed)
		}
		wanted, deferred = r.body[:n], r.body[n:]
		return nil
	})
	if err != nil {
		return err
	}
	bit := func(m []byte, i int) bool { return m[i/8]&(1<<(i%8)) != 0 }
	var batch []byte
	for i, r := range recs {
		if bit(wanted, i) {
			batch = appendRecord(batch, r)
		}
	}
	if len(batch) > 0 {
		if err := bt.c.limiter.wait(bt.ctx, len(batch)); err != nil {
			return err
		}
		err = bt.c.callBucket(bt.ctx, bt.c.syncApp, bt.peer, bt.b, appendRequest(nil, request{op: opPutBatch, bucket: bt.b.name, value: batch}), func(r response) error {
			if r.status != stOK {
				return statusErr(r)
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	if bt.onResult != nil {
		have := make([]bool, len(recs))
		for i := range recs {
			have[i] = !bit(deferred, i)
		}
		bt.onResult(recs, have)
	}
	return nil
}

// serveOffer answers an offer with two bitmaps: the records this node
// wants (it lacks them or holds them older) and the records it defers
// because another peer has promised them already (see promises). A record
// in neither is one this node holds at that version or newer.
func (c *Cache) serveOffer(from ports.NodeID, b *bucket, body []byte) ([]byte, error) {
	recs, err := decodeRecords(body, syncBatchMax)
	if err != nil {
		return nil, err
	}
	n := (len(recs) + 7) / 8
	out := make([]byte, 2*n)
	want, deferred := out[:n], out[n:]
	if c.selfLeaving.Load() {
		// Handing off: hold nothing new, and let no peer count on this
		// node's copies.
		for i := range deferred {
			deferred[i] = 0xff
		}
		return out, nil
	}
	now := time.Now()
	for i, r := range recs {
		v, w, _, ok := b.current(r.key)
		switch {
		case ok && !r.newerThan(v, w):
			// held at this version or newer
		case c.promised.claim(b.name, r, from, now):
			want[i/8] |= 1 << (i % 8)
		default:
			deferred[i/8] |= 1 << (i % 8)
		}
	}
	return out, nil
}

// servePutBatch applies a batch of records.
func (c *Cache) servePutBatch(ctx context.Context, from ports.NodeID, b *bucket, body []byte) error {
	recs, err := decodeRecords(body, syncBatchMax)
	if err != nil {
		return err
	}
	_, copies := b.store.(*Store) // the default store copies what it keeps
	for _, r := range recs {
		c.promised.fulfil(b.name, r.key, from)
		if c.clock.ahead(r.version) {
			c.log.Warn("sync record refused", "from", string(from), "bucket", b.name, "key", r.key, "err", ErrVersionAhead)
			continue
		}
		c.clock.observe(r.version)
		if !copies {
			r.value = slices.Clone(r.value) // do not let a store pin the whole batch
		}
		out, _, err := c.applyReplica(ctx, b, r, nil, from)
		if err != nil {
			return err
		}
		if out == applied {
			c.received.Add(1)
		}
	}
	return nil
}

// serveSync answers requests on the sync application.
func (c *Cache) serveSync(ctx context.Context, from ports.NodeID, payload []byte) ([]byte, error) {
	version := c.view.Load().Version()
	req, err := decodeRequest(payload)
	if err != nil {
		c.log.Warn("malformed sync request", "from", string(from), "err", err)
		return appendResponse(nil, stError, version, []byte(err.Error())), nil
	}
	switch req.op {
	case opLeaving:
		c.noteLeaving(from)
		return appendResponse(nil, stOK, version, nil), nil
	case opNudge:
		c.kickSync()
		return appendResponse(nil, stOK, version, nil), nil
	}
	b, err := c.bucket(req.bucket)
	if err != nil {
		if errors.Is(err, ErrUnknownBucket) {
			return appendResponse(nil, stUnknownBucket, version, nil), nil
		}
		return appendResponse(nil, stError, version, []byte(err.Error())), nil
	}
	var body []byte
	switch req.op {
	case opPull:
		err = c.servePull(ctx, from, b, req.value)
	case opOffer:
		body, err = c.serveOffer(from, b, req.value)
	case opPutBatch:
		err = c.servePutBatch(ctx, from, b, req.value)
	default:
		err = fmt.Errorf("cache: operation %d is not served on %s: %w", req.op, SyncAppName, ports.ErrMalformed)
	}
	if err != nil {
		if errors.Is(err, ports.ErrMalformed) {
			c.log.Warn("bad sync request", "from", string(from), "bucket", req.bucket, "err", err)
		}
		return appendResponse(nil, stError, version, []byte(err.Error())), nil
	}
	return appendResponse(make([]byte, 0, 9+len(body)), stOK, version, body), nil
}
