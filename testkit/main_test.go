package testkit_test

import (
	"testing"

	"github.com/mycorrizal/mycorrizal/testkit"
)

func TestMain(m *testing.M) { testkit.VerifyTestMain(m) }
