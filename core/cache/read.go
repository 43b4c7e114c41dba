package cache

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/mycorrizal/mycorrizal/core/placement"
	"github.com/mycorrizal/mycorrizal/ports"
)

// Reads. A replica's answer is authoritative when it holds the key, or
// when it is synced (it holds everything it owns: see sync.go); a miss from
// a replica still receiving its data is not, and the read asks the next
// replica, then the replicas of the previous view, so a key moving to new
// owners is found on its old ones until the new ones have it.

// readReply is one replica's answer.
type readReply struct {
	from     ports.NodeID
	rec      record
	found    bool
	synced   bool
	previous bool // from an owner of the previous view, not of the current one
	err      error
}

// authoritative reports whether the reply settles the read: a value, or a
// tombstone or miss from a synced current owner. A previous owner's
// tombstone or miss proves nothing (the current owners may hold a later
// write), but its value is the key's until they have it.
func (r readReply) authoritative() bool {
	if r.err != nil {
		return false
	}
	if r.previous {
		return r.found && !r.rec.tomb
	}
	return r.found || r.synced
}

// hedgeAfter is how long a read waits for a replica before also asking the
// next candidate: a replica that crashed and is not yet detected costs a
// read this much, not its deadline.
const hedgeAfter = 50 * time.Millisecond

// candidates returns the nodes to read key from, in order: owners (its
// replicas in the current view v, the first rf), then its owners in the
// previous view that are still members.
func (c *Cache) candidates(b *bucket, kh uint64, v *placement.View, owners []ports.NodeID) []ports.NodeID {
	if prev := c.prevView.Load(); prev != nil && prev != v {
		prf, _, _ := b.opts.quorums(prev.Len())
		var buf [MaxReplicas]ports.NodeID
		for _, o := range prev.Owners(buf[:0], kh, prf) {
			if v.Contains(o) && !slices.Contains(owners, o) {
				owners = append(owners, o)
			}
		}
	}
	return owners
}

// readKey returns the newest record the read quorum of key's replicas
// holds; found is false when none holds one.
func (c *Cache) readKey(ctx context.Context, b *bucket, key string) (record, bool, error) {
	v := c.view.Load()
	kh := placement.KeyHash(b.name, key)
	rf, w, r := b.opts.quorums(v.Len())
	var buf [2 * MaxReplicas]ports.NodeID
	owners := v.Owners(buf[:0], kh, rf)
	if r == 1 {
		if i := slices.Index(owners, c.self); i >= 0 {
			// The fast path: this node's own copy, no network hop.
			if rep := c.readLocal(b, key, false); rep.authoritative() {
				return rep.rec, rep.found, nil
			}
			owners = slices.Delete(owners, i, i+1) // asked already
			rf--
		}
	}
	return c.readQuorum(ctx, b, key, c.candidates(b, kh, v, owners), rf, r, w, false)
}

// readQuorum asks r replicas at once (more when some answer without
// authority, or do not answer within hedgeAfter), in candidate order:
// the first rf are the key's owners, the rest its owners in the previous
// view. It returns the newest version among r authoritative answers and,
// with r > 1, before returning makes sure W replicas hold it (writing it
// back to stale ones), so a later quorum read cannot see an older
// version. Other stale replicas are repaired in the background. With
// strict, only answers of replicas synced for this node's view count (a
// read that must not miss a newer write on a replica still syncing:
// SetTTL's).
func (c *Cache) readQuorum(ctx context.Context, b *bucket, key string, nodes []ports.NodeID, rf, r, w int, strict bool) (record, bool, error) {
	replies := make(chan readReply, len(nodes))
	next, outstanding := 0, 0
	launch := func() bool {
		if next >= len(nodes) {
			return false
		}
		o, previous := nodes[next], next >= rf
		next++
		outstanding++
		if o == c.self {
			replies <- c.readLocal(b, key, previous)
			return true
		}
		if !c.goBackground(func(context.Context) {
			rep := c.readFrom(ctx, b, o, key) // the caller's ctx: the read is its own
			rep.previous = previous
			replies <- rep
		}) {
			replies <- readReply{from: o, err: fmt.Errorf("cache: %w", ports.ErrClosed)}
		}
		return true
	}
	for range r {
		launch()
	}
	hedge := time.NewTimer(hedgeAfter)
	defer hedge.Stop()
	var got, unsure []readReply
	var errs []error
	for outstanding > 0 && len(got) < r {
		select {
		case rep := <-replies:
			outstanding--
			switch {
			case strict && rep.err == nil && !rep.synced:
				errs = append(errs, fmt.Errorf("cache: replica %s of %q is still syncing: %w", rep.from, key, ErrQuorum))
			case rep.authoritative():
				got = append(got, rep)
				continue
			case rep.err != nil:
				errs = append(errs, rep.err)
			case !rep.previous:
				unsure = append(unsure, rep)
			}
			launch()
		case <-hedge.C:
			launch()
			hedge.Reset(hedgeAfter)
		case <-ctx.Done():
			return record{}, false, fmt.Errorf("cache: get %q in bucket %q: %w", key, b.name, ctx.Err())
		}
	}
	// Every candidate asked. When none failed, the misses of current
	// owners still syncing are what they hold, and count towards the
	// quorum; when one failed, the key may be on it: no miss is reported.
	for len(got) < r && len(unsure) > 0 && len(errs) == 0 {
		got, unsure = append(got, unsure[0]), unsure[1:]
	}
	if len(got) < r {
		if len(errs) == 0 && r == 1 {
			return record{}, false, nil // nobody holds it
		}
		return record{}, false, fmt.Errorf("cache: get %q in bucket %q: %d of %d replicas answered for sure: %w", key, b.name, len(got), r, errors.Join(append(errs, ErrQuorum)...))
	}
	var newest *readReply
	for i := range got {
		if got[i].found && (newest == nil || got[i].rec.newerThan(newest.rec.version, newest.rec.writer)) {
			newest = &got[i]
		}
	}
	if newest == nil {
		return record{}, false, nil
	}
	best := newest.rec
	best.value = slices.Clone(best.value)
	if r == 1 {
		return best, true, nil
	}
	var stale []ports.NodeID
	holders := 0
	for _, rep := range got {
		switch {
		case rep.found && rep.rec.version == best.version && rep.rec.writer == best.writer:
			holders++
		case !rep.previous:
			stale = append(stale, rep.from)
		}
	}
	if holders < w {
		// Write back until W replicas hold the version returned.
		for _, o := range nodes[:min(rf, len(nodes))] {
			if holders >= w {
				break
			}
			if !slices.Contains(stale, o) && slices.ContainsFunc(got, func(rep readReply) bool { return rep.from == o }) {
				continue
			}
			if err := c.repair(ctx, b, o, best); err == nil {
				holders++
				stale = slices.DeleteFunc(stale, func(s ports.NodeID) bool { return s == o })
			}
		}
		if holders < w {
			return record{}, false, fmt.Errorf("cache: get %q in bucket %q: could not write the newest version back to %d replicas: %w", key, b.name, w, ErrQuorum)
		}
	}
	for _, o := range stale {
		c.goBackground(func(ctx context.Context) { _ = c.repair(ctx, b, o, best) })
	}
	return best, true, nil
}

// repair writes rec to one replica (this node's own copy included).
func (c *Cache) repair(ctx context.Context, b *bucket, o ports.NodeID, rec record) error {
	c.repairs.Add(1)
	if o == c.self {
		_, _, err := c.applyReplica(ctx, b, rec, nil, c.self)
		return err
	}
	return c.replicate(ctx, b, o, appendRequest(nil, request{op: opPut, bucket: b.name, key: rec.key, value: appendRecord(nil, rec)}))
}

// readLocal is this node's own answer, as a current owner or a previous
// one.
func (c *Cache) readLocal(b *bucket, key string, previous bool) readReply {
	rec, found := b.read(key)
	return readReply{from: c.self, rec: rec, found: found, synced: c.synced.Load(), previous: previous}
}

// readFrom asks one replica for its record of key.
func (c *Cache) readFrom(ctx context.Context, b *bucket, o ports.NodeID, key string) readReply {
	rep := readReply{from: o}
	payload := appendRequest(nil, request{op: opRead, bucket: b.name, key: key})
	rep.err = c.callBucket(ctx, c.app, o, b, payload, func(r response) error {
		if len(r.body) < readHeadLen || (r.status != stOK && r.status != stNotFound) {
			if r.status == stOK || r.status == stNotFound {
				return fmt.Errorf("cache: read reply from %s without flags: %w", o, ports.ErrMalformed)
			}
			return statusErr(r)
		}
		// A replica is synced for its own view; its miss proves something
		// only if that view is this node's too (same members, so the
		// same owners).
		rep.synced = r.body[0]&1 != 0 && binary.BigEndian.Uint64(r.body[1:]) == c.view.Load().Fingerprint()
		if r.status == stNotFound {
			return nil
		}
		rec, rest, err := decodeRecord(r.body[readHeadLen:])
		if err != nil {
			return fmt.Errorf("cache: read reply from %s: %w", o, err)
		}
		if len(rest) != 0 || rec.key != key {
			return fmt.Errorf("cache: read reply from %s is for another key: %w", o, ports.ErrMalformed)
		}
		c.clock.observe(rec.version)
		rep.rec, rep.found = rec, true
		return nil
	})
	return rep
}
