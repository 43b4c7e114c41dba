package simnet

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/memberlist"

	"github.com/mycorrizal/mycorrizal/ports"
)

// Queue bounds of a MemberlistTransport.
const (
	// PacketQueueLen is the capacity of a transport's PacketCh. A packet
	// that arrives while it is full is dropped and counted, as a kernel
	// drops datagrams when a socket's receive buffer is full.
	PacketQueueLen = 1024
	// StreamQueueLen is the capacity of a transport's StreamCh. A dial
	// that finds it full fails, as a connect fails when a listener's
	// backlog is full.
	StreamQueueLen = 64
)

// ErrInUse is returned by Network.Transport when the address or the node ID
// is already bound by a transport that has not shut down.
var ErrInUse = errors.New("simnet: address or node already bound")

// MemberlistTransport is a hashicorp/memberlist NodeAwareTransport on a
// simulated Network, bound to one node ID and one fake "ip:port" address.
// Set it as memberlist.Config.Transport. All its methods are safe for
// concurrent use.
type MemberlistTransport struct {
	net  *Network
	id   ports.NodeID
	addr string // normalised "ip:port"
	ip   net.IP
	port int

	udpAddr *net.UDPAddr
	tcpAddr *net.TCPAddr

	packetCh chan *memberlist.Packet
	streamCh chan net.Conn

	closed       atomic.Bool
	done         chan struct{}
	shutdownOnce sync.Once

	// mu guards timers, the pending deliveries of delayed packets addressed
	// to this transport; wg counts their callbacks.
	mu     sync.Mutex
	timers map[*time.Timer]struct{}
	wg     sync.WaitGroup
}

var _ memberlist.NodeAwareTransport = (*MemberlistTransport)(nil)

// Transport binds a memberlist transport for node id to addr, an IP literal
// and a non-zero port such as "10.0.0.3:7946" (memberlist needs an IP; no
// real socket is opened). It fails with an error wrapping ErrInUse when
// another live transport holds the address or the ID, and with one wrapping
// ports.ErrInvalidConfig for a malformed address or an empty or overlong
// ID. After the holder's Shutdown, the same address and ID may be bound
// again: that is how a node restarts.
func (n *Network) Transport(id ports.NodeID, addr string) (*MemberlistTransport, error) {
	if id == "" || len(id) > ports.MaxNodeIDLen {
		return nil, fmt.Errorf("simnet: node ID %q: %w", id, ports.ErrInvalidConfig)
	}
	ap, err := parseAddr(addr)
	if err != nil {
		return nil, fmt.Errorf("simnet: bind %s: %w: %v", id, ports.ErrInvalidConfig, err)
	}
	if ap.Port() == 0 {
		return nil, fmt.Errorf("simnet: bind %s to %q: port 0: %w", id, addr, ports.ErrInvalidConfig)
	}
	ip := net.IP(ap.Addr().AsSlice())
	port := int(ap.Port())
	t := &MemberlistTransport{
		net:      n,
		id:       id,
		addr:     ap.String(),
		ip:       ip,
		port:     port,
		udpAddr:  &net.UDPAddr{IP: ip, Port: port},
		tcpAddr:  &net.TCPAddr{IP: ip, Port: port},
		packetCh: make(chan *memberlist.Packet, PacketQueueLen),
		streamCh: make(chan net.Conn, StreamQueueLen),
		done:     make(chan struct{}),
		timers:   make(map[*time.Timer]struct{}),
	}

	n.mu.Lock()
	defer n.mu.Unlock()
	if other, ok := n.byAddr[t.addr]; ok {
		return nil, fmt.Errorf("simnet: bind %s to %s: held by %s: %w", id, t.addr, other.id, ErrInUse)
	}
	if other, ok := n.byID[id]; ok {
		return nil, fmt.Errorf("simnet: bind %s to %s: node already bound to %s: %w", id, t.addr, other.addr, ErrInUse)
	}
	n.byAddr[t.addr] = t
	n.byID[id] = t
	return t, nil
}

// parseAddr parses an "ip:port" address and unmaps IPv4-in-IPv6, so the
// same node has one spelling.
func parseAddr(addr string) (netip.AddrPort, error) {
	ap, err := netip.ParseAddrPort(addr)
	if err != nil {
		return netip.AddrPort{}, err
	}
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()), nil
}

// ID returns the node ID the transport is bound for.
func (t *MemberlistTransport) ID() ports.NodeID { return t.id }

// Addr returns the "ip:port" address the transport is bound to.
func (t *MemberlistTransport) Addr() string { return t.addr }

// FinalAdvertiseAddr returns the bound IP and port. The configured values
// memberlist passes in are ignored: on a simulated network a node can only
// be reached at the address it is bound to.
func (t *MemberlistTransport) FinalAdvertiseAddr(string, int) (net.IP, int, error) {
	return t.ip, t.port, nil
}

// WriteTo sends a packet to addr; see WriteToAddress.
func (t *MemberlistTransport) WriteTo(b []byte, addr string) (time.Time, error) {
	return t.WriteToAddress(b, memberlist.Address{Addr: addr})
}

// WriteToAddress sends a copy of b as one packet to a.Addr, subject to the
// network's rules, and returns the time it was sent. Like UDP it does not
// report loss: a packet to an unknown address, across a partition, lost by
// a Drop rule, or arriving at a full queue is silently dropped (and
// counted). Delayed packets are delivered by timers the receiving transport
// owns. It never blocks and fails only after Shutdown, with an error
// wrapping ports.ErrClosed. a.Name is not used for routing.
func (t *MemberlistTransport) WriteToAddress(b []byte, a memberlist.Address) (time.Time, error) {
	now := time.Now()
	if t.closed.Load() {
		return now, fmt.Errorf("simnet: write from %s: %w", t.addr, ports.ErrClosed)
	}
	t.net.sendPacket(t, b, a.Addr)
	return now, nil
}

// PacketCh returns the channel of packets received, bounded by
// PacketQueueLen. It is never closed.
func (t *MemberlistTransport) PacketCh() <-chan *memberlist.Packet {
	return t.packetCh
}

// DialTimeout opens a stream to addr; see DialAddressTimeout.
func (t *MemberlistTransport) DialTimeout(addr string, timeout time.Duration) (net.Conn, error) {
	return t.DialAddressTimeout(memberlist.Address{Addr: addr}, timeout)
}

// DialAddressTimeout opens an in-memory stream to the transport bound at
// a.Addr, which receives the other end on its StreamCh. Opening takes one
// round trip of the Delay rules between the two nodes; if that exceeds
// timeout (0 means none) the dial fails after timeout with an error
// wrapping os.ErrDeadlineExceeded. It fails at once, with an error wrapping
// ports.ErrUnreachable, when nothing is bound at the address, when the two
// nodes are partitioned, or when the receiver's StreamCh is full; and with
// one wrapping ports.ErrClosed after Shutdown. The connection supports
// deadlines, and is closed by the network when a partition cuts it or
// either transport shuts down. a.Name is not used for routing.
func (t *MemberlistTransport) DialAddressTimeout(a memberlist.Address, timeout time.Duration) (net.Conn, error) {
	if t.closed.Load() {
		return nil, fmt.Errorf("simnet: dial %s from %s: %w", a.Addr, t.addr, ports.ErrClosed)
	}
	n := t.net
	ap, err := parseAddr(a.Addr)
	if err != nil {
		n.stats.streamsRefused.Add(1)
		return nil, fmt.Errorf("simnet: dial %q from %s: %w: %v", a.Addr, t.addr, ports.ErrUnreachable, err)
	}
	key := ap.String()

	n.mu.RLock()
	dest := n.byAddr[key]
	n.mu.RUnlock()
	if dest == nil {
		n.stats.streamsRefused.Add(1)
		return nil, fmt.Errorf("simnet: dial %s from %s: connection refused: %w", key, t.addr, ports.ErrUnreachable)
	}

	if rtt := n.roundTrip(t.id, dest.id); rtt > 0 {
		wait, timedOut := rtt, false
		if timeout > 0 && rtt > timeout {
			wait, timedOut = timeout, true
		}
		timer := time.NewTimer(wait)
		select {
		case <-timer.C:
		case <-t.done:
			timer.Stop()
			return nil, fmt.Errorf("simnet: dial %s from %s: %w", key, t.addr, ports.ErrClosed)
		}
		if timedOut {
			n.stats.streamsRefused.Add(1)
			return nil, fmt.Errorf("simnet: dial %s from %s: %w: %w", key, t.addr, ports.ErrUnreachable, os.ErrDeadlineExceeded)
		}
	}
	return n.connect(t, key)
}

// StreamCh returns the channel of streams other transports opened to this
// one, bounded by StreamQueueLen. It is never closed.
func (t *MemberlistTransport) StreamCh() <-chan net.Conn {
	return t.streamCh
}

// Shutdown unbinds the address and the node ID (another transport may then
// bind them), closes every stream of this transport, including those not
// yet accepted, and stops the timers of packets still in flight to it. It
// returns once no delivery goroutine of this transport is running. It is
// idempotent; concurrent calls wait for the first to finish.
func (t *MemberlistTransport) Shutdown() error {
	t.shutdownOnce.Do(func() {
		t.mu.Lock()
		t.closed.Store(true)
		close(t.done)
		timers := t.timers
		t.timers = nil
		t.mu.Unlock()

		closeStreams(t.net.unbind(t), &t.net.stats)

		for tm := range timers {
			if tm.Stop() {
				t.wg.Done()
				t.net.stats.droppedNoRoute.Add(1)
			}
		}
		t.wg.Wait()
	})
	return nil
}

// sendPacket applies the rules to one packet from src to addr.
func (n *Network) sendPacket(src *MemberlistTransport, b []byte, addr string) {
	n.stats.packetsSent.Add(1)
	ap, err := parseAddr(addr)
	if err != nil {
		n.stats.droppedNoRoute.Add(1)
		return
	}
	n.mu.RLock()
	dest := n.byAddr[ap.String()]
	var (
		reachable bool
		p         float64
		rule      delayRule
	)
	if dest != nil {
		reachable = n.reachableLocked(src.id, dest.id)
		p = n.drops[link{src.id, dest.id}]
		rule = n.delays[link{src.id, dest.id}]
	}
	n.mu.RUnlock()

	switch {
	case dest == nil:
		n.stats.droppedNoRoute.Add(1)
		return
	case !reachable:
		n.stats.droppedPartition.Add(1)
		return
	case n.lose(p):
		n.stats.droppedRule.Add(1)
		return
	}

	pkt := &memberlist.Packet{Buf: append([]byte(nil), b...), From: src.udpAddr}
	if d := n.sample(rule); d > 0 {
		dest.deliverLater(pkt, src.id, d)
		return
	}
	dest.deliver(pkt)
}

// deliver puts pkt on the packet queue if there is room, stamping the
// receive time.
func (t *MemberlistTransport) deliver(pkt *memberlist.Packet) {
	st := &t.net.stats
	if t.closed.Load() {
		st.droppedNoRoute.Add(1)
		return
	}
	pkt.Timestamp = time.Now()
	select {
	case t.packetCh <- pkt:
		st.packetsDelivered.Add(1)
	default:
		st.droppedFull.Add(1)
	}
}

// deliverLater delivers pkt from node src after d, unless this transport
// shuts down first or a partition installed meanwhile cuts src off.
func (t *MemberlistTransport) deliverLater(pkt *memberlist.Packet, src ports.NodeID, d time.Duration) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed.Load() {
		t.net.stats.droppedNoRoute.Add(1)
		return
	}
	t.wg.Add(1)
	var tm *time.Timer
	// The callback takes t.mu before reading tm, and tm is assigned while
	// t.mu is held, so it always sees the assignment.
	tm = time.AfterFunc(d, func() {
		defer t.wg.Done()
		t.mu.Lock()
		if t.timers == nil { // shut down; Stop lost the race with firing
			t.mu.Unlock()
			t.net.stats.droppedNoRoute.Add(1)
			return
		}
		delete(t.timers, tm)
		t.mu.Unlock()
		if !t.net.Reachable(src, t.id) {
			t.net.stats.droppedPartition.Add(1)
			return
		}
		t.deliver(pkt)
	})
	t.timers[tm] = struct{}{}
}
