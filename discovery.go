package mycorrizal

import (
	"context"
	"net"
	"strconv"
	"time"

	"github.com/mycorrizal/mycorrizal/ports"
)

// Re-discovery: the node asks its discovery backend again every discovery
// interval, at once when it is alone (see joinLoop), and, when the backend
// is a ports.Watcher, whenever the backend says its answer changed. Each
// time it joins the addresses of nodes it does not know, so nodes that
// started before their peers, or were partitioned away, find each other.
// A backend that cannot be asked is logged and changes nothing: the node
// keeps the members it has.

// rediscover asks the discovery backend and joins the addresses that are
// not live members' (nor this node's).
func (n *Node) rediscover(why string) {
	if n.discovery == nil {
		return
	}
	ctx, cancel := context.WithTimeout(n.ctx, 10*time.Second)
	found, err := n.discovery.Discover(ctx)
	cancel()
	if err != nil {
		if n.ctx.Err() == nil {
			n.log.Warn("discovery failed; keeping current members", "why", why, "err", err)
		}
		return
	}
	n.joinUnknown(why, found)
}

// joinUnknown joins those of addrs that no live member gossips on.
func (n *Node) joinUnknown(why string, addrs []string) {
	known := make(map[string]bool)
	for _, m := range n.membership.Members() {
		known[normalizeAddr(m.GossipAddr)] = true
	}
	var fresh []string
	for _, a := range addrs {
		if !known[normalizeAddr(a)] {
			fresh = append(fresh, a)
		}
	}
	if len(fresh) > 0 {
		n.joinAddrs(why, fresh)
	}
}

// normalizeAddr gives one spelling of host:port for comparison.
func normalizeAddr(a string) string {
	host, port, err := net.SplitHostPort(a)
	if err != nil {
		return a
	}
	if ip := net.ParseIP(host); ip != nil {
		host = ip.String()
	}
	return net.JoinHostPort(host, port)
}

// watchLoop follows a ports.Watcher backend until Shutdown, joining new
// addresses as soon as the backend reports them. Errors back off
// exponentially from the join-retry interval up to the discovery interval
// (see backOff).
func (n *Node) watchLoop(w ports.Watcher) {
	defer n.joinWG.Done()
	var prev []string
	backoff := n.joinRetry
	for n.ctx.Err() == nil {
		addrs, err := w.WaitChange(n.ctx, prev)
		if n.ctx.Err() != nil {
			return
		}
		if err != nil {
			n.log.Warn("discovery watch failed; keeping current members", "err", err, "retry_in", backoff)
			if !n.backOff(&backoff) {
				return
			}
			continue
		}
		backoff = n.joinRetry
		prev = addrs
		n.joinUnknown("discovery watch", addrs)
	}
}

// registerLoop registers this node with a ports.Registrar backend, retrying
// with backoff until it succeeds or the node shuts down.
func (n *Node) registerLoop(r ports.Registrar) {
	defer n.joinWG.Done()
	reg, ok := n.registration()
	if !ok {
		n.log.Error("discovery registration skipped: this node's gossip address is unknown")
		return
	}
	backoff := n.joinRetry
	for {
		ctx, cancel := context.WithTimeout(n.ctx, 10*time.Second)
		err := r.Register(ctx, reg)
		cancel()
		if err == nil {
			n.registered.Store(true)
			n.log.Info("registered with discovery", "addr", reg.Addr, "port", reg.Port)
			return
		}
		if n.ctx.Err() != nil {
			return
		}
		n.log.Warn("discovery registration failed", "err", err, "retry_in", backoff)
		if !n.backOff(&backoff) {
			return
		}
	}
}

// backOff waits *d (false if the node shuts down first) and doubles it, up
// to the discovery interval.
func (n *Node) backOff(d *time.Duration) bool {
	t := time.NewTimer(*d)
	defer t.Stop()
	select {
	case <-n.ctx.Done():
		return false
	case <-t.C:
	}
	*d = min(2**d, max(n.discoveryInterval, n.joinRetry))
	return true
}

// registration describes this node for a Registrar: its advertised gossip
// address, and its transport address and applications as metadata.
func (n *Node) registration() (ports.Registration, bool) {
	for _, m := range n.membership.Members() {
		if m.ID != n.id {
			continue
		}
		host, p, err := net.SplitHostPort(m.GossipAddr)
		if err != nil {
			return ports.Registration{}, false
		}
		port, err := strconv.Atoi(p)
		if err != nil {
			return ports.Registration{}, false
		}
		return ports.Registration{
			ID:   n.id,
			Addr: host,
			Port: port,
			Tags: []string{"mycorrizal", "protocol-" + ProtocolVersion},
			Meta: map[string]string{"transport": n.transportAddr},
		}, true
	}
	return ports.Registration{}, false
}

// deregister removes this node's registration, bounded by ctx.
func (n *Node) deregister(ctx context.Context) error {
	r, ok := n.discovery.(ports.Registrar)
	if !ok || !n.registered.Load() {
		return nil
	}
	return r.Deregister(ctx)
}
