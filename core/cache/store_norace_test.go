//go:build !race

package cache_test

const storeRaceEnabled = false
