package cache

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"

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
	from   ports.NodeID
	rec    record
	found  bool
	synced bool
	err    error
}

func (r readReply) authoritative() bool { return r.err == nil && (r.found || r.synced) }

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
	if r == 1 && slices.Contains(owners, c.self) {
		// The fast path: this node's own copy, no network hop.
		if rep := c.readLocal(b, key); rep.authoritative() {
			return rep.rec, rep.found, nil
		}
	}
	nodes := c.candidates(b, kh, v, owners)
	if r == 1 {
		return c.readOne(ctx, b, key, nodes, rf)
	}
	return c.readQuorum(ctx, b, key, nodes, rf, r, w)
}

// readOne asks replicas one at a time, this node first when it is one,
// until one answers authoritatively. Only the first rf nodes are replicas
// in the current view; a miss from the others (previous owners) proves
// nothing, so they are asked for a hit only.
func (c *Cache) readOne(ctx context.Context, b *bucket, key string, nodes []ports.NodeID, rf int) (record, bool, error) {
	if i := slices.Index(nodes, c.self); i >= 0 {
		rep := c.readLocal(b, key)
		if i >= rf {
			rep.synced = false
		}
		if rep.authoritative() {
			return rep.rec, rep.found, nil
		}
		nodes = slices.Delete(slices.Clone(nodes), i, i+1)
		if i < rf {
			rf--
		}
	}
	var errs []error
	for i, o := range nodes {
		rep := c.readFrom(ctx, b, o, key)
		if i >= rf {
			rep.synced = false
		}
		if rep.authoritative() {
			return rep.rec, rep.found, nil
		}
		if rep.err != nil {
			if ctx.Err() != nil {
				return record{}, false, rep.err
			}
			errs = append(errs, rep.err)
		}
	}
	if len(errs) > 0 {
		return record{}, false, fmt.Errorf("cache: get %q in bucket %q: no replica answered for sure: %w", key, b.name, errors.Join(errs...))
	}
	return record{}, false, nil
}

// readQuorum asks r replicas at once (more when some answer without
// authority), returns the newest version among r authoritative answers,
// and before returning makes sure W replicas hold it (writing it back to
// stale ones), so a later quorum read cannot see an older version. Other
// stale replicas are repaired in the background.
func (c *Cache) readQuorum(ctx context.Context, b *bucket, key string, nodes []ports.NodeID, rf, r, w int) (record, bool, error) {
	replies := make(chan readReply, len(nodes))
	next, outstanding := 0, 0
	launch := func() bool {
		if next >= len(nodes) {
			return false
		}
		o, previous := nodes[next], next >= rf // a previous owner: its miss proves nothing
		next++
		outstanding++
		if o == c.self {
			rep := c.readLocal(b, key)
			rep.synced = rep.synced && !previous
			replies <- rep
			return true
		}
		if !c.goBackground(func(context.Context) {
			rep := c.readFrom(ctx, b, o, key) // the caller's ctx: the read is its own
			rep.synced = rep.synced && !previous
			replies <- rep
		}) {
			replies <- readReply{from: o, err: fmt.Errorf("cache: %w", ports.ErrClosed)}
		}
		return true
	}
	for range r {
		launch()
	}
	var got, unsure []readReply
	var errs []error
	for outstanding > 0 && len(got) < r {
		select {
		case rep := <-replies:
			outstanding--
			switch {
			case rep.authoritative():
				got = append(got, rep)
				continue
			case rep.err != nil:
				errs = append(errs, rep.err)
			default:
				unsure = append(unsure, rep)
			}
			launch()
		case <-ctx.Done():
			return record{}, false, fmt.Errorf("cache: get %q in bucket %q: %w", key, b.name, ctx.Err())
		}
	}
	// Every candidate asked: misses from replicas still syncing are what
	// they hold, and count towards the quorum.
	for len(got) < r && len(unsure) > 0 {
		got, unsure = append(got, unsure[0]), unsure[1:]
	}
	if len(got) < r {
		return record{}, false, fmt.Errorf("cache: get %q in bucket %q: %d of %d replicas answered: %w", key, b.name, len(got), r, errors.Join(append(errs, ErrQuorum)...))
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
	var stale []ports.NodeID
	holders := 0
	for _, rep := range got {
		if rep.found && rep.rec.version == best.version && rep.rec.writer == best.writer {
			holders++
		} else {
			stale = append(stale, rep.from)
		}
	}
	if holders < w {
		// Write back until W replicas hold the version returned.
		for _, o := range nodes {
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
		_, err := b.apply(rec)
		return err
	}
	return c.replicate(ctx, b, o, appendRequest(nil, request{op: opPut, bucket: b.name, key: rec.key, value: appendRecord(nil, rec)}))
}

// readLocal is this node's own answer.
func (c *Cache) readLocal(b *bucket, key string) readReply {
	rec, found := b.read(key)
	return readReply{from: c.self, rec: rec, found: found, synced: c.synced.Load()}
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
