package cache

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/mycorrizal/mycorrizal/ports"
)

// serve answers a cache request from another node. A replica acts on what
// it holds and never forwards, so no operation can wait on itself when
// views differ: a write is applied if it is newer than the replica's copy
// (whether or not this node owns the key in its own view; copies it does
// not own are handed to their owners by the sync), a read returns the
// replica's record and whether the replica is synced. Malformed input is
// answered with an error and changes nothing.
func (c *Cache) serve(ctx context.Context, from ports.NodeID, payload []byte) ([]byte, error) {
	req, err := decodeRequest(payload)
	version := c.view.Load().Version()
	if err != nil {
		c.log.Warn("malformed cache request", "from", string(from), "err", err)
		return appendResponse(nil, stError, version, []byte(err.Error())), nil
	}
	switch req.op {
	case opDefine:
		name, o, _, err := decodeOptions(req.value)
		if err != nil {
			return appendResponse(nil, stError, version, []byte(err.Error())), nil
		}
		if err := c.define(name, o); err != nil {
			if errors.Is(err, ErrBucketConflict) {
				return appendResponse(nil, stConflict, version, []byte(err.Error())), nil
			}
			return appendResponse(nil, stError, version, []byte(err.Error())), nil
		}
		return appendResponse(nil, stOK, version, nil), nil
	case opBuckets:
		if err := c.adopt(from, req.value); err != nil {
			return appendResponse(nil, stError, version, []byte(err.Error())), nil
		}
		return appendResponse(nil, stOK, version, c.definitions()), nil
	case opLoad, opLoadDone, opPull, opOffer, opPutBatch:
		return appendResponse(nil, stError, version, []byte(fmt.Sprintf("operation %d is not served on %s", req.op, AppName))), nil
	}

	b, err := c.bucket(req.bucket)
	if err != nil {
		if errors.Is(err, ErrUnknownBucket) {
			return appendResponse(nil, stUnknownBucket, version, nil), nil
		}
		return appendResponse(nil, stError, version, []byte(err.Error())), nil
	}
	switch req.op {
	case opRead:
		return c.serveRead(b, req.key, version), nil
	case opPut, opPutIf:
		return c.servePut(ctx, from, b, req, version), nil
	default:
		return appendResponse(nil, stError, version, []byte(fmt.Sprintf("operation %d is not served on %s", req.op, AppName))), nil
	}
}

// servePut applies a replica write (opPut) or a conditional one (opPutIf:
// a base version precedes the record). It answers stOK when the replica
// holds the record afterwards, stStale with the version it holds when that
// is newer (than the record, or than the base), and refuses a version too
// far ahead of this node's clock.
func (c *Cache) servePut(ctx context.Context, from ports.NodeID, b *bucket, req request, version uint64) []byte {
	body := req.value
	var base *versionRef
	var err error
	if req.op == opPutIf {
		var v versionRef
		v, body, err = decodeVersion(body)
		base = &v
	}
	var rec record
	if err == nil {
		var rest []byte
		rec, rest, err = decodeRecord(body)
		if err == nil && (len(rest) != 0 || rec.key != req.key) {
			err = fmt.Errorf("cache: put record does not match its request: %w", ports.ErrMalformed)
		}
	}
	if err != nil {
		c.log.Warn("malformed replica write", "from", string(from), "err", err)
		return appendResponse(nil, stError, version, []byte(err.Error()))
	}
	if _, err := c.writableView(b.name); err != nil {
		return appendResponse(nil, stTooSmall, version, []byte(err.Error()))
	}
	if c.clock.ahead(rec.version) {
		return appendResponse(nil, stVersionAhead, version, []byte(fmt.Sprintf("version %d of %q from %s is more than %v ahead of %s's clock", rec.version, rec.key, rec.writer, maxClockLead, c.self)))
	}
	c.clock.observe(rec.version)
	out, cur, err := c.applyReplica(ctx, b, rec, base, "") // the coordinator need not hold it
	switch {
	case err != nil:
		return appendResponse(nil, stError, version, []byte(err.Error()))
	case out == stale:
		return appendResponse(nil, stStale, version, appendVersion(nil, cur))
	}
	// Tell the coordinator whether this replica is synced: if not, it may
	// lack a newer version still held by the key's previous owners.
	var flags byte
	if c.synced.Load() {
		flags = 1
	}
	return appendResponse(nil, stOK, version, []byte{flags})
}

// serveRead answers a replica read: a flags byte (bit 0: this node is
// synced), the fingerprint of the view it is synced for, and, when it
// holds the key, its record.
func (c *Cache) serveRead(b *bucket, key string, version uint64) []byte {
	var head [readHeadLen]byte
	if c.synced.Load() {
		head[0] = 1
	}
	binary.BigEndian.PutUint64(head[1:], c.view.Load().Fingerprint())
	rec, found := b.read(key)
	if !found {
		return appendResponse(nil, stNotFound, version, head[:])
	}
	out := appendResponse(make([]byte, 0, 9+readHeadLen+len(key)+len(rec.value)+maxRecordOverhead), stOK, version, head[:])
	return appendRecord(out, rec)
}

// readHeadLen is the size of a read reply's flags and view fingerprint.
const readHeadLen = 9
