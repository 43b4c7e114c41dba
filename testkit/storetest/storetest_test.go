package storetest_test

import (
	"container/list"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/mycorrizal/mycorrizal/ports"
	"github.com/mycorrizal/mycorrizal/testkit/storetest"
)

// refStore is a deliberately plain ports.Store (one mutex, a map and
// container/list) that the suite is run against, to check the suite
// itself against an implementation other than the core's.
type refStore struct {
	mu     sync.Mutex
	limits storetest.Limits
	now    func() time.Time
	m      map[string]*list.Element
	lru    *list.List // of *ports.Entry, most recent first
	stats  ports.StoreStats
}

func newRefStore(l storetest.Limits, now func() time.Time) *refStore {
	return &refStore{limits: l, now: now, m: map[string]*list.Element{}, lru: list.New()}
}

func (s *refStore) removeLocked(el *list.Element) {
	e := s.lru.Remove(el).(*ports.Entry)
	delete(s.m, e.Key)
	s.stats.Entries--
	s.stats.Bytes -= int64(len(e.Key) + len(e.Value))
}

// live returns key's element if present and not expired, removing it and
// counting an expiration if it has expired.
func (s *refStore) live(key string) *list.Element {
	el := s.m[key]
	if el == nil {
		return nil
	}
	if el.Value.(*ports.Entry).Expired(s.now()) {
		s.removeLocked(el)
		s.stats.Expirations++
		return nil
	}
	return el
}

func (s *refStore) Get(key string) (ports.Entry, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	el := s.live(key)
	if el == nil {
		s.stats.Misses++
		return ports.Entry{}, false
	}
	s.stats.Hits++
	s.lru.MoveToFront(el)
	return *el.Value.(*ports.Entry), true
}

func (s *refStore) Set(e ports.Entry) error {
	size := int64(len(e.Key) + len(e.Value))
	if s.limits.MaxBytes > 0 && size > s.limits.MaxBytes {
		return fmt.Errorf("ref: %d bytes: %w", size, ports.ErrFrameTooLarge)
	}
	e.Value = append([]byte(nil), e.Value...)
	s.mu.Lock()
	defer s.mu.Unlock()
	if el := s.m[e.Key]; el != nil {
		s.removeLocked(el)
	}
	s.m[e.Key] = s.lru.PushFront(&e)
	s.stats.Entries++
	s.stats.Bytes += size
	for (s.limits.MaxEntries > 0 && s.stats.Entries > s.limits.MaxEntries) ||
		(s.limits.MaxBytes > 0 && s.stats.Bytes > s.limits.MaxBytes) {
		s.removeLocked(s.lru.Back())
		s.stats.Evictions++
	}
	return nil
}

func (s *refStore) Delete(key string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	el := s.live(key)
	if el != nil {
		s.removeLocked(el)
	}
	return el != nil
}

func (s *refStore) SetExpiry(key string, at time.Time) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	el := s.live(key)
	if el == nil {
		return false
	}
	el.Value.(*ports.Entry).ExpiresAt = at
	s.live(key)
	return true
}

func (s *refStore) Range(fn func(ports.Entry) bool) {
	s.mu.Lock()
	var all []ports.Entry
	for el := s.lru.Front(); el != nil; el = el.Next() {
		if e := el.Value.(*ports.Entry); !e.Expired(s.now()) {
			all = append(all, *e)
		}
	}
	s.mu.Unlock()
	for _, e := range all {
		if !fn(e) {
			return
		}
	}
}

func (s *refStore) Stats() ports.StoreStats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stats
}

func (s *refStore) Close() error { return nil }

func TestSuiteAgainstReferenceStore(t *testing.T) {
	storetest.Run(t, func(t *testing.T, l storetest.Limits, clock *storetest.FakeClock) ports.Store {
		return newRefStore(l, clock.Now)
	})
}

func TestFakeClock(t *testing.T) {
	c := storetest.NewFakeClock()
	if !c.Now().Equal(storetest.Epoch) {
		t.Fatalf("new clock reads %v, want %v", c.Now(), storetest.Epoch)
	}
	c.Advance(time.Hour)
	if got := c.Now().Sub(storetest.Epoch); got != time.Hour {
		t.Fatalf("after Advance(1h) the clock moved %v", got)
	}
}
