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
	case opPut:
		rec, rest, err := decodeRecord(req.value)
		if err == nil && (len(rest) != 0 || rec.key != req.key) {
			err = fmt.Errorf("cache: put record does not match its request: %w", ports.ErrMalformed)
		}
		if err != nil {
			c.log.Warn("malformed replica write", "from", string(from), "err", err)
			return appendResponse(nil, stError, version, []byte(err.Error())), nil
		}
		if _, err := c.writableView(b.name); err != nil {
			return appendResponse(nil, stTooSmall, version, []byte(err.Error())), nil
		}
		c.clock.observe(rec.version)
		if _, err := b.apply(rec); err != nil {
			return appendResponse(nil, stError, version, []byte(err.Error())), nil
		}
	case opTouch:
		rec, _, err := decodeRecord(req.value)
		if err != nil {
			return appendResponse(nil, stError, version, []byte(err.Error())), nil
		}
		c.clock.observe(rec.version)
		found, err := b.touch(req.key, rec.version, rec.writer, rec.expires)
		switch {
		case err != nil:
			return appendResponse(nil, stError, version, []byte(err.Error())), nil
		case !found:
			return appendResponse(nil, stNotFound, version, nil), nil
		}
	default:
		return appendResponse(nil, stError, version, []byte(fmt.Sprintf("operation %d is not served on %s", req.op, AppName))), nil
	}
	return appendResponse(nil, stOK, version, nil), nil
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
