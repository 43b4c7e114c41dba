package storetest

import (
	"sync"
	"time"
)

// FakeClock is a manually advanced clock, safe for concurrent use. The
// suite hands one to the Factory, which wires its Now into the store, and
// advances it to expire entries deterministically.
type FakeClock struct {
	mu  sync.Mutex
	now time.Time
}

// Epoch is the time a NewFakeClock starts at.
var Epoch = time.Date(2025, time.January, 1, 0, 0, 0, 0, time.UTC)

// NewFakeClock returns a clock reading Epoch.
func NewFakeClock() *FakeClock { return &FakeClock{now: Epoch} }

// Now returns the clock's current time.
func (c *FakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// Advance moves the clock forward by d.
func (c *FakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}
