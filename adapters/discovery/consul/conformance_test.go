package consul

import (
	"testing"

	"github.com/mycorrizal/mycorrizal/testkit/discoverytest"
)

func TestConformance(t *testing.T) {
	discoverytest.Run(t, func(t *testing.T) discoverytest.Backend {
		return fakeBackend{newFakeAgent(t, false)}
	})
}
