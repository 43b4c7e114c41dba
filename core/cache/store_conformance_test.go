package cache_test

import (
	"testing"
	"time"

	"github.com/mycorrizal/mycorrizal/core/cache"
	"github.com/mycorrizal/mycorrizal/ports"
	"github.com/mycorrizal/mycorrizal/testkit/storetest"
)

func storeFactory(cfg cache.StoreConfig) storetest.Factory {
	return func(t *testing.T, l storetest.Limits, clock *storetest.FakeClock) ports.Store {
		cfg := cfg
		cfg.MaxEntries = l.MaxEntries
		cfg.MaxBytes = l.MaxBytes
		cfg.Clock = clock.Now
		s, err := cache.NewStore(cfg)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
}

func TestConformance(t *testing.T) {
	t.Run("Default", func(t *testing.T) {
		storetest.Run(t, storeFactory(cache.StoreConfig{}))
	})
	// A sweeper ticking every millisecond races every subtest's Gets.
	t.Run("BusySweeper", func(t *testing.T) {
		storetest.Run(t, storeFactory(cache.StoreConfig{SweepInterval: time.Millisecond, SweepBatch: 7}))
	})
	t.Run("NoSweeper", func(t *testing.T) {
		storetest.Run(t, storeFactory(cache.StoreConfig{SweepInterval: -1}))
	})
}
