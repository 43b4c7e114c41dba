package mem

import (
	"sync"
	"sync/atomic"

	"github.com/mycorrizal/mycorrizal/ports"
)

// Network is the shared medium in-memory transports listen on and dial
// through. Transports made on different Networks cannot reach each other.
// The zero value is not usable; call NewNetwork. All methods are safe for
// concurrent use.
type Network struct {
	conds atomic.Pointer[condBox]
	wake  atomic.Pointer[chan struct{}] // closed and replaced by Poke

	mu    sync.Mutex
	nodes map[string]*Transport // listening transports by address; one per live transport
}

type condBox struct{ c Conditions }

// NewNetwork returns a perfect network with no transports on it.
func NewNetwork() *Network {
	n := &Network{nodes: make(map[string]*Transport)}
	wake := make(chan struct{})
	n.wake.Store(&wake)
	return n
}

// Addr returns the address a transport listening as id has on a Network:
// "mem:" followed by the ID.
func Addr(id ports.NodeID) string { return "mem:" + string(id) }

// SetConditions installs c as the network's conditions (nil is a perfect
// network) and wakes every reader stalled on a link that was down, so a
// healed partition lets bytes in flight through at once. Chunks already
// written keep the delay they were written with.
func (n *Network) SetConditions(c Conditions) {
	if c == nil {
		n.conds.Store(nil)
	} else {
		n.conds.Store(&condBox{c: c})
	}
	n.Poke()
}

// Poke wakes every reader stalled on a link that was down so it asks the
// Conditions again. Call it when a Conditions value installed earlier
// changes its answers without a new SetConditions call.
func (n *Network) Poke() {
	wake := make(chan struct{})
	close(*n.wake.Swap(&wake))
}

// link returns the current path from one node to another.
func (n *Network) link(from, to ports.NodeID) Link {
	b := n.conds.Load()
	if b == nil {
		return Link{}
	}
	return b.c.Link(from, to)
}

// woken returns the channel the next Poke closes.
func (n *Network) woken() <-chan struct{} {
	return *n.wake.Load()
}

// register makes t reachable at addr.
func (n *Network) register(addr string, t *Transport) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if _, ok := n.nodes[addr]; ok {
		return ErrAddrInUse
	}
	n.nodes[addr] = t
	return nil
}

// unregister removes t from addr if it is still the one there.
func (n *Network) unregister(addr string, t *Transport) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.nodes[addr] == t {
		delete(n.nodes, addr)
	}
}

// lookup returns the transport listening at addr, or nil.
func (n *Network) lookup(addr string) *Transport {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.nodes[addr]
}
