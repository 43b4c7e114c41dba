package cache

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/mycorrizal/mycorrizal/core/placement"
	"github.com/mycorrizal/mycorrizal/ports"
)

// Writes. A coordinator stamps a record with its clock and sends it to
// the key's RF replicas, returning once W hold it. A replica that holds a
// newer version answers with it (stStale). When that version is ahead of
// the coordinator's own clock, it was stamped by a clock ahead of this one
// (it cannot be a write that started later), so the coordinator moves its
// clock past it and writes again at a new version: with W a majority of
// RF, a write that starts after another was acknowledged wins over it
// whatever the writers' clocks say (within maxClockLead), unless their
// difference falls within the write's own round trip. A newer version that
// is not ahead of this clock belongs to a write that overlapped this one:
// this write is then ordered before it and has succeeded (writing again
// would make it reappear after a write readers have seen, which is not
// linearizable). Replica writes beyond the quorum go on in the background,
// bounded per replica (see budgets).

// maxRestamps bounds how often one write is stamped again. Writes of one
// key racing each other restamp past each other; a jittered pause that
// grows with each attempt lets one of them through.
const maxRestamps = 10

// errConflict reports that a conditional write (SetTTL) met a version
// newer than the one it read.
var errConflict = errors.New("a replica holds a version newer than the one read")

// writeRecord writes rec to its key's replicas, stamping it again when a
// replica holds a newer version (see above). With base set it is a
// conditional write, which fails with errConflict instead.
func (c *Cache) writeRecord(ctx context.Context, b *bucket, rec record, base *versionRef) error {
	for attempt := 0; ; attempt++ {
		held, err := c.writeOnce(ctx, b, rec, base)
		switch {
		case held == nil:
			return err
		case base == nil && held.version <= uint64(c.clock.wallNano()):
			return nil // superseded by an overlapping write (see above)
		case base != nil:
			return fmt.Errorf("cache: write %q in bucket %q: %w", rec.key, b.name, errConflict)
		case c.clock.ahead(held.version):
			return fmt.Errorf("cache: write %q in bucket %q: a replica holds version %d by %s: %w", rec.key, b.name, held.version, held.writer, ErrVersionAhead)
		case attempt == maxRestamps:
			return fmt.Errorf("cache: write %q in bucket %q: replicas held newer versions %d times: %w", rec.key, b.name, attempt+1, ErrQuorum)
		}
		if attempt > 0 {
			if err := pause(ctx, attempt); err != nil {
				return fmt.Errorf("cache: write %q in bucket %q: %w", rec.key, b.name, err)
			}
		}
		c.clock.observe(held.version)
		rec.version = c.clock.now()
	}
}

// pause waits a random time of up to attempt × 200 µs, or until ctx ends.
func pause(ctx context.Context, attempt int) error {
	t := time.NewTimer(rand.N(time.Duration(attempt) * 200 * time.Microsecond))
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// replicaResult is one replica's answer to a write.
type replicaResult struct {
	held     *versionRef // the newer version the replica holds, when stale
	unsynced bool        // the replica acknowledged while still syncing
	err      error
}

// writeOnce sends rec to every replica of its key and returns once W of
// them (this node's own copy counting, when it is one) hold it, or with
// the newer version one of them holds. The replicas that have not
// answered by then keep being written in the background.
func (c *Cache) writeOnce(ctx context.Context, b *bucket, rec record, base *versionRef) (*versionRef, error) {
	v, err := c.writableView(b.name)
	if err != nil {
		return nil, err
	}
	rf, w, _ := b.opts.quorums(v.Len())
	var buf [MaxReplicas]ports.NodeID
	owners := v.Owners(buf[:0], placement.KeyHash(b.name, rec.key), rf)
	acks, remotes := 0, len(owners)
	unsure := false // an acknowledgement came from a replica still syncing
	var errs []error
	for _, o := range owners {
		if o != c.self {
			continue
		}
		remotes--
		out, cur, err := c.applyReplica(ctx, b, rec, base, c.self)
		switch {
		case err != nil:
			errs = append(errs, fmt.Errorf("cache: write %q in bucket %q: %w", rec.key, b.name, err))
		case out == stale:
			return &cur, nil
		default:
			acks++
			unsure = unsure || !c.synced.Load()
		}
	}
	if remotes == 0 {
		if acks >= w {
			return c.checkPrevious(ctx, b, rec, v, rf, unsure)
		}
		return nil, errors.Join(errs...)
	}
	payload := appendPut(b.name, rec, base)
	if len(owners) == 1 {
		// A single replica, not this node: its answer decides, no fan-out.
		r := c.replicateV(ctx, b, owners[0], payload)
		if r.held != nil || r.err != nil {
			return r.held, r.err
		}
		return c.checkPrevious(ctx, b, rec, v, rf, r.unsynced)
	}
	results := make(chan replicaResult, remotes)
	for _, o := range owners {
		if o == c.self {
			continue
		}
		if !c.budgets.acquire(o, len(payload)) {
			c.shed.Add(1)
			results <- replicaResult{err: fmt.Errorf("cache: write %q in bucket %q: replica %s is not keeping up (%d writes in flight to it): %w", rec.key, b.name, o, c.budgets.maxCount, ports.ErrBackpressure)}
			continue
		}
		c.pendingReplicas.Add(1)
		if !c.goBackground(func(ctx context.Context) {
			defer c.pendingReplicas.Add(-1)
			defer c.budgets.release(o, len(payload))
			results <- c.replicateV(ctx, b, o, payload)
		}) {
			c.pendingReplicas.Add(-1)
			c.budgets.release(o, len(payload))
			return nil, fmt.Errorf("cache: %w", ports.ErrClosed)
		}
	}
	if acks >= w {
		return c.checkPrevious(ctx, b, rec, v, rf, unsure)
	}
	for got := 0; got < remotes; got++ {
		select {
		case r := <-results:
			switch {
			case r.held != nil:
				return r.held, nil
			case r.err == nil:
				unsure = unsure || r.unsynced
				if acks++; acks >= w {
					return c.checkPrevious(ctx, b, rec, v, rf, unsure)
				}
				continue
			}
			errs = append(errs, r.err)
			if acks+remotes-got-1 < w {
				return nil, fmt.Errorf("cache: write %q in bucket %q: %d of %d replicas acknowledged, %d needed: %w", rec.key, b.name, acks, len(owners), w, errors.Join(append(errs, ErrQuorum)...))
			}
		case <-ctx.Done():
			return nil, fmt.Errorf("cache: write %q in bucket %q: %d of %d acknowledgements before %w", rec.key, b.name, acks, w, ctx.Err())
		}
	}
	return nil, fmt.Errorf("cache: write %q in bucket %q: %w", rec.key, b.name, ErrQuorum)
}

// appendPut encodes a replica write of rec: opPut, or opPutIf with base.
func appendPut(bucket string, rec record, base *versionRef) []byte {
	if base == nil {
		return appendRequest(nil, request{op: opPut, bucket: bucket, key: rec.key, value: appendRecord(nil, rec)})
	}
	return appendRequest(nil, request{op: opPutIf, bucket: bucket, key: rec.key, value: appendRecord(appendVersion(nil, *base), rec)})
}

// checkPrevious completes a write acknowledged by its quorum. When a
// replica that acknowledged was still syncing (after a membership change),
// the key's previous owners may hold a newer version it has not received
// yet; they are asked, and a newer version one of them holds is returned
// as a stale answer would be.
func (c *Cache) checkPrevious(ctx context.Context, b *bucket, rec record, v *placement.View, rf int, unsure bool) (*versionRef, error) {
	if !unsure {
		return nil, nil
	}
	kh := placement.KeyHash(b.name, rec.key)
	owners := v.Owners(nil, kh, rf)
	for _, o := range c.candidates(b, kh, v, owners)[len(owners):] {
		var rep readReply
		if o == c.self {
			rep = c.readLocal(b, rec.key, true)
		} else {
			rep = c.readFrom(ctx, b, o, rec.key)
		}
		if rep.err == nil && rep.found && rep.rec.newerThan(rec.version, rec.writer) {
			return &versionRef{rep.rec.version, rep.rec.writer}, nil
		}
	}
	return nil, nil
}

// replicateV sends a replica write to one replica and returns its answer:
// the newer version it holds if it holds one, and whether it is syncing.
func (c *Cache) replicateV(ctx context.Context, b *bucket, peer ports.NodeID, payload []byte) replicaResult {
	var res replicaResult
	res.err = c.callBucket(ctx, c.app, peer, b, payload, func(r response) error {
		switch r.status {
		case stOK:
			res.unsynced = len(r.body) > 0 && r.body[0]&1 == 0
			return nil
		case stStale:
			v, _, err := decodeVersion(r.body)
			if err != nil {
				return fmt.Errorf("cache: stale answer from %s: %w", peer, err)
			}
			res.held = &v
			return nil
		}
		return statusErr(r)
	})
	return res
}

// replicate sends a replica write to one replica; a replica that holds a
// newer version holds what matters, which is success here (read repair,
// forwarding).
func (c *Cache) replicate(ctx context.Context, b *bucket, peer ports.NodeID, payload []byte) error {
	return c.replicateV(ctx, b, peer, payload).err
}
