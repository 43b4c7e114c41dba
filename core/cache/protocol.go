package cache

import (
	"encoding/binary"
	"fmt"
	"time"

	"github.com/mycorrizal/mycorrizal/ports"
)

// op is a cache operation carried in a request to another node.
type op uint8

const (
	opRead     op = iota + 1 // a replica's record for a key
	opPut                    // apply a record (a value or a tombstone) if newer
	opPutIf                  // apply a record unless the replica holds a version newer than a base (SetTTL)
	opLoad                   // GetOrLoad: the value, or the right to load it
	opLoadDone               // a granted load finished (one-way message)
	opDefine                 // create a bucket with the given options
	opBuckets                // list this node's bucket definitions
	opPull                   // sync: send me what I own that I may lack
	opOffer                  // sync: which of these versions do you want?
	opPutBatch               // sync: apply these records
	opLeaving                // sync: the sender is handing off and leaving
	opNudge                  // sync: please run a sync round (pull from your peers)
)

// lastOp is the highest operation code.
const lastOp = opNudge

// status is the outcome a response reports.
type status uint8

const (
	stOK            status = iota // value follows (Get, Load)
	stNotFound                    // no such key
	stNotMine                     // the receiver does not own the key in its view
	stUnknownBucket               // the receiver does not know the bucket
	stError                       // error text follows
	stLoadGranted                 // the caller must run its loader and report back
	stConflict                    // bucket exists with other options; text follows
	stTooSmall                    // the replica's view is below MinClusterSize
	stStale                       // the replica holds a newer version; it follows
	stVersionAhead                // the record's version is too far ahead of the replica's clock
)

// request is a decoded cache request.
type request struct {
	op     op
	bucket string
	key    string
	ttl    time.Duration // Set, SetTTL, LoadDone: the TTL; 0 = bucket default (Set) or none (SetTTL)
	failed bool          // LoadDone: the loader failed; value holds its error text
	value  []byte
}

// Limits of the encoding.
const (
	maxBucketName = 255
	maxKeyLen     = 1<<16 - 1 // a key's length travels in 16 bits
)

// requestOverhead is the most bytes a request adds to its value.
const requestOverhead = 1 + 1 + maxBucketName + 2 + 8 + 1

func appendRequest(dst []byte, r request) []byte {
	dst = append(dst, byte(r.op), byte(len(r.bucket)))
	dst = append(dst, r.bucket...)
	dst = binary.BigEndian.AppendUint16(dst, uint16(len(r.key)))
	dst = append(dst, r.key...)
	dst = binary.BigEndian.AppendUint64(dst, uint64(r.ttl))
	var flags byte
	if r.failed {
		flags = 1
	}
	dst = append(dst, flags)
	return append(dst, r.value...)
}

func malformed(format string, args ...any) error {
	return fmt.Errorf("cache: request: %s: %w", fmt.Sprintf(format, args...), ports.ErrMalformed)
}

// decodeRequest parses a request from the network; it never panics and the
// value aliases b.
func decodeRequest(b []byte) (request, error) {
	var r request
	if len(b) < 2 {
		return r, malformed("%d bytes", len(b))
	}
	r.op = op(b[0])
	if r.op < opRead || r.op > lastOp {
		return r, malformed("unknown operation %d", b[0])
	}
	n := int(b[1])
	b = b[2:]
	if len(b) < n+2 {
		return r, malformed("bucket name overruns")
	}
	r.bucket, b = string(b[:n]), b[n:]
	k := int(binary.BigEndian.Uint16(b))
	b = b[2:]
	if len(b) < k+9 {
		return r, malformed("key overruns")
	}
	r.key, b = string(b[:k]), b[k:]
	r.ttl = time.Duration(binary.BigEndian.Uint64(b))
	if r.ttl < 0 {
		return r, malformed("negative TTL")
	}
	r.failed = b[8]&1 != 0
	r.value = b[9:]
	return r, nil
}

// response is a decoded cache response.
type response struct {
	status  status
	version uint64 // the responder's view version
	body    []byte // value, error text, or bucket definitions
}

func appendResponse(dst []byte, st status, version uint64, body []byte) []byte {
	dst = append(dst, byte(st))
	dst = binary.BigEndian.AppendUint64(dst, version)
	return append(dst, body...)
}

func decodeResponse(b []byte) (response, error) {
	if len(b) < 9 {
		return response{}, fmt.Errorf("cache: response of %d bytes: %w", len(b), ports.ErrMalformed)
	}
	r := response{status: status(b[0]), version: binary.BigEndian.Uint64(b[1:]), body: b[9:]}
	if r.status > stVersionAhead {
		return r, fmt.Errorf("cache: response status %d: %w", b[0], ports.ErrMalformed)
	}
	return r, nil
}

// appendOptions encodes bucket options (for opDefine and opBuckets).
func appendOptions(dst []byte, name string, o BucketOptions) []byte {
	dst = append(dst, byte(len(name)))
	dst = append(dst, name...)
	dst = binary.BigEndian.AppendUint64(dst, uint64(o.DefaultTTL))
	dst = binary.BigEndian.AppendUint64(dst, uint64(o.MaxEntries))
	dst = binary.BigEndian.AppendUint64(dst, uint64(o.MaxBytes))
	dst = append(dst, byte(len(o.Codec)))
	dst = append(dst, o.Codec...)
	return append(dst, byte(o.Replicas), byte(o.WriteQuorum), byte(o.ReadQuorum))
}

// decodeOptions parses one bucket definition and returns the rest.
func decodeOptions(b []byte) (string, BucketOptions, []byte, error) {
	var o BucketOptions
	bad := func(what string) (string, BucketOptions, []byte, error) {
		return "", o, nil, fmt.Errorf("cache: bucket definition: %s: %w", what, ports.ErrMalformed)
	}
	if len(b) < 1 {
		return bad("empty")
	}
	n := int(b[0])
	if len(b) < 1+n+24+1 {
		return bad("truncated")
	}
	name := string(b[1 : 1+n])
	b = b[1+n:]
	o.DefaultTTL = time.Duration(binary.BigEndian.Uint64(b))
	o.MaxEntries = int(binary.BigEndian.Uint64(b[8:]))
	o.MaxBytes = int64(binary.BigEndian.Uint64(b[16:]))
	b = b[24:]
	c := int(b[0])
	if len(b) < 1+c+3 {
		return bad("codec overruns")
	}
	o.Codec = string(b[1 : 1+c])
	b = b[1+c:]
	o.Replicas, o.WriteQuorum, o.ReadQuorum = int(b[0]), int(b[1]), int(b[2])
	if o.DefaultTTL < 0 || o.MaxEntries < 0 || o.MaxBytes < 0 {
		return bad("negative limit")
	}
	return name, o, b[3:], nil
}

// versionRef names one version of a key: its clock reading and writer.
type versionRef struct {
	version uint64
	writer  string
}

// appendVersion encodes a version (a stale answer's body, a conditional
// write's base).
func appendVersion(dst []byte, v versionRef) []byte {
	dst = binary.BigEndian.AppendUint64(dst, v.version)
	dst = append(dst, byte(len(v.writer)))
	return append(dst, v.writer...)
}

// decodeVersion parses a version and returns the rest.
func decodeVersion(b []byte) (versionRef, []byte, error) {
	if len(b) < 9 || len(b) < 9+int(b[8]) {
		return versionRef{}, nil, fmt.Errorf("cache: version: truncated: %w", ports.ErrMalformed)
	}
	n := int(b[8])
	return versionRef{version: binary.BigEndian.Uint64(b), writer: string(b[9 : 9+n])}, b[9+n:], nil
}
