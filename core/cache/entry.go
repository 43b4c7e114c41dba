package cache

import (
	"sync/atomic"
	"time"
	"unsafe"
)

// header starts the single allocation that holds one version of an entry:
// the header, then the key's bytes, then the value's. Everything in it is
// written before the allocation is published and never changed after,
// except expires, which SetExpiry changes in place (atomically). An
// overwrite allocates a new one, so a reader holding a header, or a value
// or key slice of it, keeps a consistent and unchanging entry.
//
// The allocation is a []byte, which holds no pointers for the collector to
// trace; the writer ID, a pointer, lives in the node (see node).
type header struct {
	expires int64 // Unix nanoseconds; 0 means never; atomic
	version uint64
	klen    uint32
	vlen    uint32
}

const headerSize = int(unsafe.Sizeof(header{}))

// emptyValue is returned for a zero-length value; it does not allocate.
var emptyValue = []byte{}

// newHeader copies key and value into a new entry allocation.
func newHeader(key string, value []byte, expires int64, version uint64) *header {
	buf := make([]byte, headerSize+len(key)+len(value))
	hd := (*header)(unsafe.Pointer(unsafe.SliceData(buf)))
	hd.expires = expires
	hd.version = version
	hd.klen = uint32(len(key))
	hd.vlen = uint32(len(value))
	copy(buf[headerSize:], key)
	copy(buf[headerSize+len(key):], value)
	return hd
}

// key returns the entry's key, an alias of the allocation.
func (hd *header) key() string {
	if hd.klen == 0 {
		return ""
	}
	return unsafe.String((*byte)(unsafe.Add(unsafe.Pointer(hd), headerSize)), hd.klen)
}

// value returns the entry's value, an alias of the allocation whose
// capacity equals its length, so a caller's append reallocates.
func (hd *header) value() []byte {
	if hd.vlen == 0 {
		return emptyValue
	}
	return unsafe.Slice((*byte)(unsafe.Add(unsafe.Pointer(hd), headerSize+int(hd.klen))), hd.vlen)
}

func (hd *header) size() int64 { return int64(hd.klen) + int64(hd.vlen) }

func (hd *header) loadExpires() int64 { return atomic.LoadInt64(&hd.expires) }

func (hd *header) storeExpires(ns int64) { atomic.StoreInt64(&hd.expires, ns) }

func (hd *header) expired(now int64) bool {
	e := hd.loadExpires()
	return e != 0 && now >= e
}

// expiryTime converts the nanosecond representation back to a time.
func expiryTime(ns int64) time.Time {
	if ns == 0 {
		return time.Time{}
	}
	return time.Unix(0, ns)
}
