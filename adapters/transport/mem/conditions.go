package mem

import (
	"time"

	"github.com/mycorrizal/mycorrizal/ports"
)

// Link describes the one-way path from one node to another at a moment.
type Link struct {
	// Down cuts the path: new streams fail to open with an error wrapping
	// ports.ErrUnreachable, and bytes already written on existing streams
	// wait (they are not lost) until the path is up again, as on a real
	// network whose reliable transport retransmits after a partition heals.
	Down bool
	// Delay is added to the delivery time of every chunk written while it
	// is in force.
	Delay time.Duration
}

// Conditions decides what the network between in-memory transports looks
// like. The test kit implements it to inject partitions and delays; a nil
// Conditions is a perfect network. Link is called often and concurrently:
// it must be fast and must not block.
type Conditions interface {
	Link(from, to ports.NodeID) Link
}
