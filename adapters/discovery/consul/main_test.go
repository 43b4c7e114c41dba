package consul

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain checks that no goroutine (a TTL updater, a blocking query, an
// HTTP connection) outlives the tests.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
