package simnet_test

import (
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"

	"github.com/mycorrizal/mycorrizal/adapters/transport/mem"
	"github.com/mycorrizal/mycorrizal/ports"
	"github.com/mycorrizal/mycorrizal/testkit/simnet"
)

// bind binds a transport for id at 10.0.0.<i>:7946 and shuts it down at the
// end of the test.
func bind(t testing.TB, n *simnet.Network, id ports.NodeID, i int) *simnet.MemberlistTransport {
	t.Helper()
	tr, err := n.Transport(id, fmt.Sprintf("10.0.0.%d:7946", i))
	if err != nil {
		t.Fatalf("bind %s: %v", id, err)
	}
	t.Cleanup(func() { _ = tr.Shutdown() })
	return tr
}

// recv waits up to d for a packet on tr.
func recv(t testing.TB, tr *simnet.MemberlistTransport, d time.Duration) (*memberlist.Packet, bool) {
	t.Helper()
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case p := <-tr.PacketCh():
		return p, true
	case <-timer.C:
		return nil, false
	}
}

// send writes one packet and fails the test on error.
func send(t testing.TB, from, to *simnet.MemberlistTransport, b []byte) time.Time {
	t.Helper()
	at, err := from.WriteToAddress(b, memberlist.Address{Addr: to.Addr(), Name: string(to.ID())})
	if err != nil {
		t.Fatalf("write %s -> %s: %v", from.ID(), to.ID(), err)
	}
	return at
}

func TestPacketIsDeliveredWithSenderAndTimestamp(t *testing.T) {
	n := simnet.New(1)
	a, b := bind(t, n, "a", 1), bind(t, n, "b", 2)

	ip, port, err := a.FinalAdvertiseAddr("", 0)
	if err != nil || ip.String() != "10.0.0.1" || port != 7946 || len(ip) != net.IPv4len {
		t.Fatalf("FinalAdvertiseAddr = %v (len %d), %d, %v; want 10.0.0.1 (4 bytes), 7946", ip, len(ip), port, err)
	}

	msg := []byte("ping")
	sent := send(t, a, b, msg)
	msg[0] = 'X' // the network must have copied it
	p, ok := recv(t, b, 10*time.Second)
	if !ok {
		t.Fatal("packet not delivered")
	}
	if string(p.Buf) != "ping" {
		t.Errorf("Buf = %q, want %q", p.Buf, "ping")
	}
	if p.From.String() != a.Addr() || p.From.Network() != "udp" {
		t.Errorf("From = %s/%s, want udp/%s", p.From.Network(), p.From, a.Addr())
	}
	if p.Timestamp.Before(sent) {
		t.Errorf("Timestamp %v before send time %v", p.Timestamp, sent)
	}
	if st := n.Stats(); st.PacketsSent != 1 || st.PacketsDelivered != 1 {
		t.Errorf("stats = %+v", st)
	}
}

func TestPacketToUnboundAddressIsLostSilently(t *testing.T) {
	n := simnet.New(1)
	a := bind(t, n, "a", 1)
	if _, err := a.WriteTo([]byte("x"), "10.0.0.99:7946"); err != nil {
		t.Fatalf("WriteTo unbound address: %v (UDP does not report this)", err)
	}
	if _, err := a.WriteTo([]byte("x"), "not an address"); err != nil {
		t.Fatalf("WriteTo bad address: %v", err)
	}
	if st := n.Stats(); st.DroppedNoRoute != 2 {
		t.Errorf("DroppedNoRoute = %d, want 2", st.DroppedNoRoute)
	}
}

func TestPartitionGroupsAndTheImplicitGroup(t *testing.T) {
	n := simnet.New(1)
	a, b, c := bind(t, n, "a", 1), bind(t, n, "b", 2), bind(t, n, "c", 3)

	// Only a is named: b and c form the implicit group together.
	n.Partition([]ports.NodeID{"a"})
	for _, tc := range []struct {
		from, to *simnet.MemberlistTransport
		want     bool
	}{{a, b, false}, {b, a, false}, {a, c, false}, {c, a, false}, {b, c, true}, {c, b, true}, {a, a, true}} {
		if got := n.Reachable(tc.from.ID(), tc.to.ID()); got != tc.want {
			t.Errorf("Reachable(%s, %s) = %v, want %v", tc.from.ID(), tc.to.ID(), got, tc.want)
		}
		if tc.from == tc.to {
			continue
		}
		send(t, tc.from, tc.to, []byte("x"))
		_, ok := recv(t, tc.to, 20*time.Millisecond)
		if ok != tc.want {
			t.Errorf("packet %s -> %s delivered = %v, want %v", tc.from.ID(), tc.to.ID(), ok, tc.want)
		}
	}
	if st := n.Stats(); st.DroppedPartition != 4 {
		t.Errorf("DroppedPartition = %d, want 4", st.DroppedPartition)
	}

	// A new partition replaces the old one.
	n.Partition([]ports.NodeID{"a", "b"}, []ports.NodeID{"c"})
	if !n.Reachable("a", "b") || n.Reachable("b", "c") {
		t.Error("second Partition did not replace the first")
	}
	// Nodes never bound are subject to the same rules.
	if n.Reachable("c", "ghost") || !n.Reachable("ghost", "other-ghost") {
		t.Error("unnamed unbound nodes should be in the implicit group")
	}
	n.Heal()
	if !n.Reachable("a", "c") {
		t.Error("Heal did not remove the partition")
	}
}

func TestPartitionPanicsOnNodeInTwoGroups(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Error("Partition with a node in two groups did not panic")
		}
	}()
	simnet.New(1).Partition([]ports.NodeID{"a", "b"}, []ports.NodeID{"b"})
}

func TestDropIsOneWay(t *testing.T) {
	n := simnet.New(1)
	a, b := bind(t, n, "a", 1), bind(t, n, "b", 2)
	n.Drop("a", "b", 1)
	for range 10 {
		send(t, a, b, []byte("x"))
		send(t, b, a, []byte("y"))
	}
	for range 10 {
		if _, ok := recv(t, a, 10*time.Second); !ok {
			t.Fatal("b -> a packet lost with no rule in that direction")
		}
	}
	if _, ok := recv(t, b, 20*time.Millisecond); ok {
		t.Fatal("a -> b packet delivered despite Drop(a, b, 1)")
	}
	if st := n.Stats(); st.DroppedRule != 10 {
		t.Errorf("DroppedRule = %d, want 10", st.DroppedRule)
	}
	n.Drop("a", "b", 0) // removes the rule
	send(t, a, b, []byte("x"))
	if _, ok := recv(t, b, 10*time.Second); !ok {
		t.Fatal("Drop(a, b, 0) did not remove the rule")
	}
}

func TestDropProbabilityIsRoughlyRight(t *testing.T) {
	n := simnet.New(7)
	a, b := bind(t, n, "a", 1), bind(t, n, "b", 2)
	n.Drop("a", "b", 0.2)
	const total = 1000
	got := 0
	for range total {
		send(t, a, b, []byte("x"))
		select {
		case <-b.PacketCh():
			got++
		default:
		}
	}
	// 800 expected; 5 standard deviations is about +-63.
	if got < 737 || got > 863 {
		t.Errorf("delivered %d of %d with p=0.2, want about 800", got, total)
	}
}

func TestDelayHoldsPackets(t *testing.T) {
	n := simnet.New(1)
	a, b := bind(t, n, "a", 1), bind(t, n, "b", 2)
	const d = 60 * time.Millisecond
	n.Delay("a", "b", d, 0)
	sent := send(t, a, b, []byte("x"))
	p, ok := recv(t, b, 10*time.Second)
	if !ok {
		t.Fatal("delayed packet never arrived")
	}
	if lag := p.Timestamp.Sub(sent); lag < d {
		t.Errorf("packet arrived after %v, want at least %v", lag, d)
	}

	// Jitter stays within d +- jitter.
	n.Delay("a", "b", 30*time.Millisecond, 20*time.Millisecond)
	for range 20 {
		sent := send(t, a, b, []byte("x"))
		p, ok := recv(t, b, 10*time.Second)
		if !ok {
			t.Fatal("jittered packet never arrived")
		}
		if lag := p.Timestamp.Sub(sent); lag < 10*time.Millisecond {
			t.Errorf("jittered packet arrived after %v, want at least 10ms", lag)
		}
	}
}

func TestPartitionDropsPacketsAlreadyInFlight(t *testing.T) {
	n := simnet.New(1)
	a, b := bind(t, n, "a", 1), bind(t, n, "b", 2)
	n.Delay("a", "b", 300*time.Millisecond, 0)
	send(t, a, b, []byte("x"))
	n.Partition([]ports.NodeID{"a"}, []ports.NodeID{"b"})
	if _, ok := recv(t, b, 600*time.Millisecond); ok {
		t.Fatal("packet in flight crossed a partition installed before it arrived")
	}
	if st := n.Stats(); st.DroppedPartition != 1 {
		t.Errorf("DroppedPartition = %d, want 1", st.DroppedPartition)
	}
}

func TestFullPacketQueueDrops(t *testing.T) {
	n := simnet.New(1)
	a, b := bind(t, n, "a", 1), bind(t, n, "b", 2)
	const extra = 10
	for range simnet.PacketQueueLen + extra {
		send(t, a, b, []byte("x"))
	}
	if st := n.Stats(); st.DroppedFull != extra || st.PacketsDelivered != simnet.PacketQueueLen {
		t.Errorf("stats = %+v; want %d dropped full, %d delivered", st, extra, simnet.PacketQueueLen)
	}
}

func TestLinkForTheMemTransport(t *testing.T) {
	n := simnet.New(1)
	var conds mem.Conditions = n

	if l := conds.Link("a", "b"); l != (mem.Link{}) {
		t.Errorf("Link on a perfect network = %+v", l)
	}
	n.Drop("a", "b", 1)
	if l := conds.Link("a", "b"); l.Down {
		t.Error("Drop took a reliable link down; it must be ignored for mem")
	}
	n.Delay("a", "b", 10*time.Millisecond, 0)
	if l := conds.Link("a", "b"); l.Delay != 10*time.Millisecond || l.Down {
		t.Errorf("Link with Delay 10ms = %+v", l)
	}
	if l := conds.Link("b", "a"); l != (mem.Link{}) {
		t.Errorf("Delay leaked to the other direction: %+v", l)
	}

	n.Delay("a", "b", 10*time.Millisecond, 5*time.Millisecond)
	seen := map[time.Duration]bool{}
	for range 1000 {
		d := conds.Link("a", "b").Delay
		if d < 5*time.Millisecond || d > 15*time.Millisecond {
			t.Fatalf("jittered delay %v outside 10ms+-5ms", d)
		}
		seen[d] = true
	}
	if len(seen) < 100 {
		t.Errorf("only %d distinct jittered delays in 1000 draws", len(seen))
	}

	n.Partition([]ports.NodeID{"a"}, []ports.NodeID{"b"})
	if l := conds.Link("a", "b"); !l.Down {
		t.Error("Link across a partition is not Down")
	}
	if l := conds.Link("b", "a"); !l.Down {
		t.Error("partition is not symmetric in Link")
	}
	n.Heal()
	if l := conds.Link("a", "b"); l != (mem.Link{}) {
		t.Errorf("Link after Heal = %+v", l)
	}
}

func TestOnChangeRunsAfterEveryRuleChangeWithoutLocks(t *testing.T) {
	n := simnet.New(1)
	var calls atomic.Int32
	var sawPartition atomic.Bool
	n.OnChange(func() {
		calls.Add(1)
		// Calling back into the network proves no lock is held, and the
		// change is already in effect.
		if !n.Reachable("a", "b") {
			sawPartition.Store(true)
		}
		_ = n.Link("a", "b")
	})
	n.OnChange(nil) // ignored
	n.Partition([]ports.NodeID{"a"})
	if !sawPartition.Load() {
		t.Error("callback ran before the partition was in effect")
	}
	n.Drop("a", "b", 0.5)
	n.Delay("a", "b", time.Millisecond, 0)
	n.Heal()
	if got := calls.Load(); got != 4 {
		t.Errorf("callbacks = %d, want 4", got)
	}
}

func TestHealRemovesEveryRule(t *testing.T) {
	n := simnet.New(1)
	a, b := bind(t, n, "a", 1), bind(t, n, "b", 2)
	n.Partition([]ports.NodeID{"a"})
	n.Drop("a", "b", 1)
	n.Delay("a", "b", time.Hour, 0)
	n.Heal()
	send(t, a, b, []byte("x"))
	select {
	case <-b.PacketCh(): // delivered at once: no drop, no delay, no cut
	default:
		t.Fatal("packet not delivered at once after Heal")
	}
	if l := n.Link("a", "b"); l != (mem.Link{}) {
		t.Errorf("Link after Heal = %+v", l)
	}
}

// dropPattern sends count packets a -> b on a fresh network seeded with seed
// under Drop(a, b, 0.5) and reports which arrived, plus a run of jittered
// Link delays drawn in between.
func dropPattern(t *testing.T, seed uint64, count int) (string, []time.Duration) {
	t.Helper()
	n := simnet.New(seed)
	a, b := bind(t, n, "a", 1), bind(t, n, "b", 2)
	n.Drop("a", "b", 0.5)
	n.Delay("x", "y", time.Millisecond, time.Millisecond)
	var pattern []byte
	var delays []time.Duration
	for i := range count {
		send(t, a, b, []byte{byte(i)})
		select {
		case <-b.PacketCh():
			pattern = append(pattern, '1')
		default:
			pattern = append(pattern, '0')
		}
		if i%10 == 0 {
			delays = append(delays, n.Link("x", "y").Delay)
		}
	}
	_ = a.Shutdown()
	_ = b.Shutdown()
	return string(pattern), delays
}

func TestSameSeedSameDecisions(t *testing.T) {
	p1, d1 := dropPattern(t, 42, 300)
	p2, d2 := dropPattern(t, 42, 300)
	if p1 != p2 {
		t.Errorf("same seed, different drops:\n%s\n%s", p1, p2)
	}
	if fmt.Sprint(d1) != fmt.Sprint(d2) {
		t.Errorf("same seed, different jitter:\n%v\n%v", d1, d2)
	}
	p3, _ := dropPattern(t, 43, 300)
	if p1 == p3 {
		t.Error("different seeds gave identical drop patterns")
	}
}

// TestConcurrentUse hammers every entry point at once; it is meant for -race.
func TestConcurrentUse(t *testing.T) {
	n := simnet.New(3)
	trs := []*simnet.MemberlistTransport{bind(t, n, "a", 1), bind(t, n, "b", 2), bind(t, n, "c", 3)}
	n.OnChange(func() { _ = n.Link("a", "b") })
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for i, tr := range trs {
		peer := trs[(i+1)%len(trs)]
		wg.Go(func() { // sender and dialler
			for {
				select {
				case <-stop:
					return
				default:
				}
				_, _ = tr.WriteTo([]byte("x"), peer.Addr())
				if c, err := tr.DialTimeout(peer.Addr(), 10*time.Millisecond); err == nil {
					_ = c.Close()
				}
			}
		})
		wg.Go(func() { // receiver and acceptor
			for {
				select {
				case <-stop:
					return
				case <-tr.PacketCh():
				case c := <-tr.StreamCh():
					_ = c.Close()
				}
			}
		})
	}
	wg.Go(func() { // fault injector
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			switch i % 4 {
			case 0:
				n.Partition([]ports.NodeID{"a"})
			case 1:
				n.Drop("b", "c", 0.3)
			case 2:
				n.Delay("c", "a", time.Millisecond, time.Millisecond)
			case 3:
				n.Heal()
			}
			_ = n.Link("c", "a")
			time.Sleep(time.Millisecond)
		}
	})
	time.Sleep(300 * time.Millisecond)
	close(stop)
	wg.Wait()
	st := n.Stats()
	if st.PacketsSent == 0 || st.StreamsOpened == 0 {
		t.Errorf("nothing happened: %+v", st)
	}
	t.Logf("stats: %+v", st)
}
