package storetest

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mycorrizal/mycorrizal/ports"
)

// testConcurrent runs goroutines doing random mixed operations on a shared
// key space larger than the entry limit, with a clock moving meanwhile. It
// checks what must hold at any moment (every value read belongs to its key;
// no entry already expired when a Get began is returned) and, once all
// stop, that the limits hold and Range agrees with Stats. Run it with
// -race.
func (h *harness) testConcurrent(t *testing.T) {
	l := Limits{MaxEntries: 4096, MaxBytes: 1 << 20}
	s, clock := h.store(t, l)
	const (
		workers = 8
		ops     = 3000
		keys    = 8192
	)
	pad := bytes.Repeat([]byte("."), 16<<10)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(w), 42))
			for range ops {
				key := fmt.Sprintf("k%d", rng.IntN(keys))
				switch op := rng.IntN(100); {
				case op < 40:
					before := clock.Now()
					if e, ok := s.Get(key); ok {
						checkEntry(t, "Get", key, e)
						if e.Expired(before) {
							t.Errorf("Get(%q) returned an entry that had expired at %v before the call", key, e.ExpiresAt)
						}
					}
				case op < 75:
					n := rng.IntN(200)
					if rng.IntN(100) == 0 {
						n = len(pad) // occasionally a large value
					}
					e := ports.Entry{Key: key, Value: append([]byte(key+"|"), pad[:n]...)}
					if rng.IntN(2) == 0 {
						e.ExpiresAt = clock.Now().Add(time.Duration(1+rng.IntN(2000)) * time.Millisecond)
					}
					if err := s.Set(e); err != nil {
						t.Errorf("Set(%q): %v", key, err)
					}
				case op < 80:
					s.Delete(key)
				case op < 88:
					var at time.Time
					if rng.IntN(2) == 0 {
						at = clock.Now().Add(time.Duration(rng.IntN(100)) * time.Millisecond)
					}
					s.SetExpiry(key, at)
				case op < 90:
					seen := 0
					s.Range(func(e ports.Entry) bool {
						checkEntry(t, "Range", e.Key, e)
						seen++
						return seen < 50
					})
				case op < 95:
					_ = s.Stats()
				default:
					clock.Advance(time.Millisecond)
				}
			}
		})
	}
	wg.Wait()

	st := s.Stats()
	if st.Entries > l.MaxEntries || st.Bytes > l.MaxBytes {
		t.Fatalf("after concurrent use: %d entries and %d bytes, limits %d and %d", st.Entries, st.Bytes, l.MaxEntries, l.MaxBytes)
	}
	var n int
	var size int64
	s.Range(func(e ports.Entry) bool {
		n++
		size += int64(len(e.Key) + len(e.Value))
		return true
	})
	if n > st.Entries || size > st.Bytes {
		t.Fatalf("Range saw %d entries of %d bytes, Stats reports %d and %d", n, size, st.Entries, st.Bytes)
	}
	t.Logf("after %d operations: %+v", workers*ops, st)
}

// checkEntry checks that e, read for key, holds one of the values written
// for key: its key then "|".
func checkEntry(t *testing.T, op, key string, e ports.Entry) {
	if e.Key != key || !strings.HasPrefix(string(e.Value), key+"|") {
		t.Errorf("%s(%q) = key %q value %.40q, which no Set wrote", op, key, e.Key, e.Value)
	}
}
