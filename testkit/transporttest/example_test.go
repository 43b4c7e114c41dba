package transporttest_test

import (
	"testing"

	"github.com/mycorrizal/mycorrizal/adapters/transport/mem"
	"github.com/mycorrizal/mycorrizal/ports"
	"github.com/mycorrizal/mycorrizal/testkit/transporttest"
)

// An adapter's test file runs the suite with a Factory that sets up one
// network per case. This one is the in-memory transport's.
func ExampleRun() {
	factory := func(t *testing.T) transporttest.NewTransport {
		net := mem.NewNetwork()
		return func(id ports.NodeID) ports.Transport {
			tr, err := mem.New(net, mem.Config{})
			if err != nil {
				t.Fatal(err)
			}
			return tr
		}
	}
	// In func TestConformance(t *testing.T):
	//	transporttest.Run(t, factory)
	_ = factory
}
