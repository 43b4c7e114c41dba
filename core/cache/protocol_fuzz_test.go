package cache

import (
	"bytes"
	"testing"
	"time"

	"github.com/mycorrizal/mycorrizal/ports"
)

// FuzzDecodeRequest feeds arbitrary bytes to the cache's request decoder:
// it must never panic, and what it accepts must re-encode to the same
// request.
func FuzzDecodeRequest(f *testing.F) {
	f.Add(appendRequest(nil, request{op: opRead, bucket: "b", key: "k"}))
	f.Add(appendRequest(nil, request{op: opPut, bucket: "sessions", key: "user:1", ttl: time.Minute, value: []byte("v")}))
	f.Add(appendRequest(nil, request{op: opLoadDone, bucket: "b", key: "k", failed: true, value: []byte("boom")}))
	f.Add(appendRequest(nil, request{op: opDefine, value: appendOptions(nil, "b", BucketOptions{DefaultTTL: time.Second, Codec: "gob"})}))
	f.Add([]byte{0xff, 0x01})
	f.Add([]byte{1, 200, 'x'})
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := decodeRequest(data)
		if err != nil {
			return
		}
		again, err := decodeRequest(appendRequest(nil, r))
		if err != nil {
			t.Fatalf("re-encoded request does not decode: %v", err)
		}
		if again.op != r.op || again.bucket != r.bucket || again.key != r.key || again.ttl != r.ttl || again.failed != r.failed || !bytes.Equal(again.value, r.value) {
			t.Fatalf("round trip changed %+v into %+v", r, again)
		}
		if r.op == opDefine || r.op == opBuckets {
			rest := r.value
			for len(rest) > 0 {
				var err error
				if _, _, rest, err = decodeOptions(rest); err != nil {
					return
				}
			}
		}
	})
}

// FuzzDecodeResponse checks the response decoder never panics.
func FuzzDecodeResponse(f *testing.F) {
	f.Add(appendResponse(nil, stOK, 7, []byte("value")))
	f.Add([]byte{9})
	f.Fuzz(func(t *testing.T, data []byte) {
		_, _ = decodeResponse(data)
	})
}

// FuzzDecodeRecords checks the replica record decoder never panics and
// that what it accepts re-encodes to the same bytes.
func FuzzDecodeRecords(f *testing.F) {
	f.Add(appendRecord(nil, record{key: "k", value: []byte("v"), version: 7, writer: "node-1", expires: 99}))
	f.Add(appendRecord(appendRecord(nil, record{key: "a", tomb: true, version: 1, writer: "n"}), record{key: "b", value: []byte("x")}))
	f.Add([]byte{1, 0, 1, 'k'})
	f.Fuzz(func(t *testing.T, data []byte) {
		recs, err := decodeRecords(data, syncBatchMax)
		if err != nil {
			return
		}
		var again []byte
		for _, r := range recs {
			again = appendRecord(again, r)
		}
		if !bytes.Equal(again, data) {
			t.Fatalf("records re-encode differently")
		}
	})
}

// FuzzDecodePull checks the sync pull decoder never panics.
func FuzzDecodePull(f *testing.F) {
	f.Add(appendPull(nil, []ports.NodeID{"a", "b"}, new(digests)))
	f.Add([]byte{0, 1, 1, 'a'})
	f.Fuzz(func(t *testing.T, data []byte) {
		_, _, _ = decodePull(data)
	})
}
