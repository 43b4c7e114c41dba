package cache

import (
	"context"
	"errors"

	"github.com/mycorrizal/mycorrizal/ports"
)

// serve answers a cache request from another node. It acts on this node's
// own view: it serves the key only if it owns it, else answers "not mine"
// with its view version, and never forwards, so no operation can wait on
// itself when views differ. Malformed input is answered with an error and
// changes nothing.
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
	case opLoad, opLoadDone:
		return appendResponse(nil, stError, version, []byte("load operations go to "+LoadAppName)), nil
	}

	b, err := c.bucket(req.bucket)
	if err != nil {
		if errors.Is(err, ErrUnknownBucket) {
			return appendResponse(nil, stUnknownBucket, version, nil), nil
		}
		return appendResponse(nil, stError, version, []byte(err.Error())), nil
	}
	if c.owner(req.bucket, req.key) != c.self {
		return appendResponse(nil, stNotMine, version, nil), nil
	}
	switch req.op {
	case opGet:
		e, ok := b.store.Get(req.key)
		if !ok {
			return appendResponse(nil, stNotFound, version, nil), nil
		}
		return appendResponse(make([]byte, 0, 9+len(e.Value)), stOK, version, e.Value), nil
	case opSet:
		if err := c.setLocal(b, req.key, req.value, req.ttl); err != nil {
			return appendResponse(nil, stError, version, []byte(err.Error())), nil
		}
	case opDelete:
		if !b.store.Delete(req.key) {
			return appendResponse(nil, stNotFound, version, nil), nil
		}
	case opSetTTL:
		if !b.store.SetExpiry(req.key, expiry(req.ttl)) {
			return appendResponse(nil, stNotFound, version, nil), nil
		}
	}
	return appendResponse(nil, stOK, version, nil), nil
}
