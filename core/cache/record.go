package cache

import (
	"encoding/binary"
	"fmt"
	"time"

	"github.com/mycorrizal/mycorrizal/ports"
)

// record is one version of a key as replicas exchange it: a value, or a
// tombstone that marks the key deleted at that version.
type record struct {
	key     string
	value   []byte
	version uint64
	writer  string
	expires int64 // Unix nanoseconds; 0 = never
	tomb    bool
}

// maxRecordOverhead is the most bytes a record adds to its key and value.
const maxRecordOverhead = 1 + 2 + 8 + 1 + ports.MaxNodeIDLen + 8 + 4

func (r record) size() int { return len(r.key) + len(r.value) + maxRecordOverhead }

func (r record) entry() ports.Entry {
	return ports.Entry{Key: r.key, Value: r.value, ExpiresAt: expiryTime(r.expires), Version: r.version, Writer: ports.NodeID(r.writer)}
}

func recordOf(e ports.Entry) record {
	return record{key: e.Key, value: e.Value, version: e.Version, writer: string(e.Writer), expires: unixNano(e.ExpiresAt)}
}

// newerThan reports whether r wins against version v by writer w.
func (r record) newerThan(v uint64, w string) bool { return newer(r.version, r.writer, v, w) }

func appendRecord(dst []byte, r record) []byte {
	var flags byte
	if r.tomb {
		flags = 1
	}
	dst = append(dst, flags)
	dst = binary.BigEndian.AppendUint16(dst, uint16(len(r.key)))
	dst = append(dst, r.key...)
	dst = binary.BigEndian.AppendUint64(dst, r.version)
	dst = append(dst, byte(len(r.writer)))
	dst = append(dst, r.writer...)
	dst = binary.BigEndian.AppendUint64(dst, uint64(r.expires))
	dst = binary.BigEndian.AppendUint32(dst, uint32(len(r.value)))
	return append(dst, r.value...)
}

// decodeRecord parses one record and returns the rest; the value aliases
// b. It never panics.
func decodeRecord(b []byte) (record, []byte, error) {
	var r record
	bad := func(what string) (record, []byte, error) {
		return record{}, nil, fmt.Errorf("cache: record: %s: %w", what, ports.ErrMalformed)
	}
	if len(b) < 3 {
		return bad("truncated")
	}
	if b[0] > 1 {
		return bad("unknown flags")
	}
	r.tomb = b[0] == 1
	k := int(binary.BigEndian.Uint16(b[1:]))
	b = b[3:]
	if len(b) < k+9 {
		return bad("key overruns")
	}
	r.key = string(b[:k])
	r.version = binary.BigEndian.Uint64(b[k:])
	w := int(b[k+8])
	b = b[k+9:]
	if len(b) < w+12 {
		return bad("writer overruns")
	}
	r.writer = string(b[:w])
	r.expires = int64(binary.BigEndian.Uint64(b[w:]))
	v := int(binary.BigEndian.Uint32(b[w+8:]))
	b = b[w+12:]
	if r.expires < 0 {
		return bad("negative expiry")
	}
	if len(b) < v || v < 0 {
		return bad("value overruns")
	}
	if r.tomb && v != 0 {
		return bad("tombstone with a value")
	}
	r.value = b[:v:v]
	return r, b[v:], nil
}

// decodeRecords parses a batch of records.
func decodeRecords(b []byte, max int) ([]record, error) {
	var out []record
	for len(b) > 0 {
		if len(out) >= max {
			return nil, fmt.Errorf("cache: more than %d records in a batch: %w", max, ports.ErrMalformed)
		}
		r, rest, err := decodeRecord(b)
		if err != nil {
			return nil, err
		}
		out = append(out, r)
		b = rest
	}
	return out, nil
}

// expiresNano returns the expiry, in Unix nanoseconds, of a TTL starting
// now on this node's clock (0 = never).
func (c *Cache) expiresNano(ttl time.Duration) int64 {
	if ttl <= 0 {
		return 0
	}
	return c.clock.wallNano() + int64(ttl)
}
