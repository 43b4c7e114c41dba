package ports

import "context"

// Discovery finds seed addresses of other nodes: a static list, DNS-SD, or
// Consul. The node calls Discover at start and again periodically, and joins
// the addresses it does not know.
type Discovery interface {
	// Discover returns the gossip addresses ("host:port") of nodes it can
	// find now, possibly including this node's own. It blocks until an
	// answer arrives or ctx ends. An empty list with a nil error means none
	// were found; an error means the backend could not be asked.
	Discover(ctx context.Context) ([]string, error)
}

// Registration is what a Registrar announces about this node.
type Registration struct {
	// ID is this node's ID.
	ID NodeID
	// Addr is the host and Port the gossip port peers should join.
	Addr string
	Port int
	// Tags and Meta are passed to backends that store them.
	Tags []string
	Meta map[string]string
}

// Registrar is an optional interface of a Discovery backend in which nodes
// register themselves (Consul). The node registers after Start and
// deregisters on Shutdown.
type Registrar interface {
	// Register announces self and keeps the registration healthy (for
	// example a TTL check) until Deregister. It blocks until the backend
	// accepted the registration or ctx ends.
	Register(ctx context.Context, self Registration) error

	// Deregister removes the registration and stops keeping it healthy. It
	// blocks until the backend confirmed or ctx ends.
	Deregister(ctx context.Context) error
}

// Watcher is an optional interface of a Discovery backend that can wait
// for its answer to change (Consul's blocking queries), so the node finds a
// new peer at once instead of at its next periodic discovery.
type Watcher interface {
	// WaitChange blocks until the backend's answer differs from prev (as a
	// set) and returns the new answer, or returns ctx's error when ctx ends
	// first, or an error when the backend cannot be asked (the caller backs
	// off and calls again). It may return early with an unchanged answer,
	// for example when the backend's own wait times out. Safe for
	// concurrent use.
	WaitChange(ctx context.Context, prev []string) ([]string, error)
}
