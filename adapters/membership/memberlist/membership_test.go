package memberlist_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"os"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	ml "github.com/hashicorp/memberlist"

	membership "github.com/mycorrizal/mycorrizal/adapters/membership/memberlist"
	"github.com/mycorrizal/mycorrizal/ports"
)

func TestThreeNodesJoinAndSeeEachOther(t *testing.T) {
	leakCheck(t)
	a := startNode(t, "a", []string{"orders"}, nil)
	b := startNode(t, "b", []string{"orders", "billing"}, nil)
	c := startNode(t, "c", nil, nil)
	b.join(t, a)
	c.join(t, a)

	nodes := []*node{a, b, c}
	want := []ports.NodeID{"a", "b", "c"}
	for _, n := range nodes {
		waitFor(t, fmt.Sprintf("%s to see a, b, c", n.self.ID), func() bool {
			return slices.Equal(n.ids(), want)
		})
	}
	for _, n := range nodes {
		for _, o := range nodes {
			m, _ := n.member(o.self.ID)
			if m.TransportAddr != o.self.TransportAddr || !slices.Equal(m.Apps, o.self.Apps) ||
				m.Version != o.self.Version || m.GossipAddr != o.LocalAddr() || m.State != ports.StateAlive {
				t.Errorf("%s sees %+v; want transport %q apps %q version %q gossip %q alive",
					n.self.ID, m, o.self.TransportAddr, o.self.Apps, o.self.Version, o.LocalAddr())
			}
			if n == o {
				continue
			}
			ev := n.events.waitEvent(t, ports.MemberJoined, o.self.ID, nil)
			if ev.Member.TransportAddr != o.self.TransportAddr || !slices.Equal(ev.Member.Apps, o.self.Apps) {
				t.Errorf("%s got join %+v; want transport %q apps %q", n.self.ID, ev.Member, o.self.TransportAddr, o.self.Apps)
			}
		}
		if evs := n.events.about(n.self.ID); len(evs) != 0 {
			t.Errorf("%s got events about itself: %+v", n.self.ID, evs)
		}
	}
	if !b.Hosts(t, a, "orders") {
		t.Error("b does not see a hosting orders")
	}
}

// Hosts reports whether n sees other hosting app.
func (n *node) Hosts(t *testing.T, other *node, app string) bool {
	t.Helper()
	m, ok := n.member(other.self.ID)
	return ok && m.Hosts(app)
}

func TestPortZeroIsResolvedAndAdvertised(t *testing.T) {
	leakCheck(t)
	check := func(t *testing.T, n *node) {
		t.Helper()
		host, port, err := net.SplitHostPort(n.LocalAddr())
		if err != nil || host != "127.0.0.1" || port == "0" || port == "" {
			t.Fatalf("LocalAddr() = %q (%v); want 127.0.0.1:<non-zero>", n.LocalAddr(), err)
		}
		// Something is really listening there (memberlist's TCP side).
		conn, err := net.DialTimeout("tcp", n.LocalAddr(), time.Second)
		if err != nil {
			t.Fatalf("dial advertised %s: %v", n.LocalAddr(), err)
		}
		_ = conn.Close()
		self, ok := n.member(n.self.ID)
		if !ok || self.GossipAddr != n.LocalAddr() {
			t.Fatalf("self member %+v (found %v); want GossipAddr %q", self, ok, n.LocalAddr())
		}
	}
	a := startNode(t, "a", nil, nil)
	check(t, a)
	// An explicit advertise IP with advertise port 0 still gets the bound port.
	b := startNode(t, "b", nil, func(c *membership.Config) { c.AdvertiseAddr = "127.0.0.1" })
	check(t, b)
	if a.LocalAddr() == b.LocalAddr() {
		t.Fatalf("two nodes advertise the same address %s", a.LocalAddr())
	}
	// Peers reach b at the address it advertises.
	b.join(t, a)
	waitFor(t, "a to see b at its advertised address", func() bool {
		m, ok := a.member("b")
		return ok && m.GossipAddr == b.LocalAddr()
	})
}

func TestUpdateLocalPropagates(t *testing.T) {
	leakCheck(t)
	a := startNode(t, "a", []string{"orders"}, nil)
	b := startNode(t, "b", nil, nil)
	c := startNode(t, "c", nil, nil)
	b.join(t, a)
	c.join(t, a)
	for _, n := range []*node{a, b, c} {
		waitFor(t, fmt.Sprintf("%s to see 3 members", n.self.ID), func() bool { return len(n.Members()) == 3 })
	}

	updated := a.self
	updated.Apps = []string{"orders", "payments"}
	updated.TransportAddr = "a.transport.test:7001"
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	if err := a.UpdateLocal(ctx, updated); err != nil {
		t.Fatalf("UpdateLocal: %v", err)
	}
	isNew := func(m ports.Member) bool {
		return slices.Equal(m.Apps, updated.Apps) && m.TransportAddr == updated.TransportAddr
	}
	for _, n := range []*node{b, c} {
		ev := n.events.waitEvent(t, ports.MemberUpdated, "a", isNew)
		if ev.Member.State != ports.StateAlive {
			t.Errorf("%s: update event state %v; want alive", n.self.ID, ev.Member.State)
		}
		waitFor(t, fmt.Sprintf("%s.Members to show a's new apps", n.self.ID), func() bool {
			m, ok := n.member("a")
			return ok && isNew(m)
		})
	}
	if m, _ := a.member("a"); !isNew(m) {
		t.Errorf("a sees itself as %+v; want the update", m)
	}

	// A different ID cannot be advertised.
	other := updated
	other.ID = "z"
	if err := a.UpdateLocal(ctx, other); !errors.Is(err, ports.ErrInvalidConfig) {
		t.Errorf("UpdateLocal with another ID: %v; want ErrInvalidConfig", err)
	}
}

func TestLeaveGivesMemberLeft(t *testing.T) {
	leakCheck(t)
	a := startNode(t, "a", nil, nil)
	b := startNode(t, "b", []string{"orders"}, nil)
	c := startNode(t, "c", nil, nil)
	b.join(t, a)
	c.join(t, a)
	for _, n := range []*node{a, c} {
		waitFor(t, fmt.Sprintf("%s to see 3 members", n.self.ID), func() bool { return len(n.Members()) == 3 })
	}

	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	if err := b.Leave(ctx); err != nil {
		t.Fatalf("Leave: %v", err)
	}
	for _, n := range []*node{a, c} {
		ev := n.events.waitEvent(t, ports.MemberLeft, "b", nil)
		if ev.Member.State != ports.StateLeft || !slices.Equal(ev.Member.Apps, b.self.Apps) {
			t.Errorf("%s: left event %+v; want state left with b's apps", n.self.ID, ev.Member)
		}
		if _, failed := n.events.find(ports.MemberFailed, "b", nil); failed {
			t.Errorf("%s reported b failed; it left", n.self.ID)
		}
		if _, updated := n.events.find(ports.MemberUpdated, "b", nil); updated {
			t.Errorf("%s reported the leaving flag as an update", n.self.ID)
		}
		waitFor(t, fmt.Sprintf("%s to drop b", n.self.ID), func() bool { _, ok := n.member("b"); return !ok })
	}
	if err := b.Leave(ctx); err != nil {
		t.Errorf("second Leave: %v", err)
	}
	if _, err := b.Join(ctx, []string{a.LocalAddr()}); !errors.Is(err, ports.ErrClosed) {
		t.Errorf("Join after Leave: %v; want ErrClosed", err)
	}
	if err := b.UpdateLocal(ctx, b.self); !errors.Is(err, ports.ErrClosed) {
		t.Errorf("UpdateLocal after Leave: %v; want ErrClosed", err)
	}
}

func TestCloseWithoutLeaveGivesMemberFailed(t *testing.T) {
	leakCheck(t)
	a := startNode(t, "a", nil, nil)
	b := startNode(t, "b", []string{"orders"}, nil)
	c := startNode(t, "c", nil, nil)
	b.join(t, a)
	c.join(t, a)
	for _, n := range []*node{a, c} {
		waitFor(t, fmt.Sprintf("%s to see 3 members", n.self.ID), func() bool { return len(n.Members()) == 3 })
	}

	start := time.Now()
	if err := b.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	for _, n := range []*node{a, c} {
		ev := n.events.waitEvent(t, ports.MemberFailed, "b", nil)
		if ev.Member.State != ports.StateFailed {
			t.Errorf("%s: failed event state %v; want failed", n.self.ID, ev.Member.State)
		}
		if _, left := n.events.find(ports.MemberLeft, "b", nil); left {
			t.Errorf("%s reported b left; it crashed", n.self.ID)
		}
	}
	t.Logf("failure detected by both peers in %v", time.Since(start).Round(time.Millisecond))
	// memberlist's "[INFO] ... b as failed" / "Suspect b has failed", bridged at Info.
	if !a.logs.has(slog.LevelInfo, "b has failed") && !a.logs.has(slog.LevelInfo, "b as failed") &&
		!c.logs.has(slog.LevelInfo, "b has failed") && !c.logs.has(slog.LevelInfo, "b as failed") {
		t.Error("neither peer logged b's failure at Info level")
	}
}

func TestCustomTransport(t *testing.T) {
	leakCheck(t)
	nt, err := ml.NewNetTransport(&ml.NetTransportConfig{
		BindAddrs: []string{"127.0.0.1"},
		Logger:    log.New(io.Discard, "", 0),
	})
	if err != nil {
		t.Fatal(err)
	}
	tr := &countingTransport{NetTransport: nt}
	a := startNode(t, "a", []string{"orders"}, func(c *membership.Config) {
		c.Transport = tr
		c.BindAddr, c.BindPort = "10.255.255.1", 1 // unused with a Transport
	})
	want := net.JoinHostPort("127.0.0.1", strconv.Itoa(nt.GetAutoBindPort()))
	if a.LocalAddr() != want {
		t.Fatalf("LocalAddr() = %q; want the transport's %q", a.LocalAddr(), want)
	}
	b := startNode(t, "b", nil, nil)
	b.join(t, a)
	waitFor(t, "a and b to see each other", func() bool { return len(a.Members()) == 2 && len(b.Members()) == 2 })
	waitFor(t, "gossip (packets and streams) through the configured transport", func() bool {
		return tr.packets.Load() > 0 && tr.streams.Load() > 0
	})
}

// countingTransport counts the packets and streams memberlist sends
// through it.
type countingTransport struct {
	*ml.NetTransport
	packets, streams atomic.Int64
}

func (c *countingTransport) WriteTo(b []byte, addr string) (time.Time, error) {
	c.packets.Add(1)
	return c.NetTransport.WriteTo(b, addr)
}

func (c *countingTransport) WriteToAddress(b []byte, a ml.Address) (time.Time, error) {
	c.packets.Add(1)
	return c.NetTransport.WriteToAddress(b, a)
}

func (c *countingTransport) DialAddressTimeout(a ml.Address, d time.Duration) (net.Conn, error) {
	c.streams.Add(1)
	return c.NetTransport.DialAddressTimeout(a, d)
}

func TestDifferentKeyringCannotJoin(t *testing.T) {
	leakCheck(t)
	key1 := []byte("0123456789abcdef")
	key2 := []byte("fedcba9876543210fedcba98") // AES-192
	withKeys := func(keys ...[]byte) func(*membership.Config) {
		return func(c *membership.Config) { c.Keyring = keys }
	}
	a := startNode(t, "a", nil, withKeys(key1))
	b := startNode(t, "b", nil, withKeys(key1, key2))
	c := startNode(t, "c", nil, withKeys(key2))
	d := startNode(t, "d", nil, nil) // no encryption at all

	if a.Keyring() == nil || len(a.Keyring().GetKeys()) != 1 || d.Keyring() != nil {
		t.Fatalf("Keyring(): a has %v, d has %v", a.Keyring(), d.Keyring())
	}
	b.join(t, a)
	waitFor(t, "a and b to see each other", func() bool { return len(a.Members()) == 2 && len(b.Members()) == 2 })

	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	for _, n := range []*node{c, d} {
		if got, err := n.Join(ctx, []string{a.LocalAddr()}); err == nil {
			t.Errorf("%s (other key) joined a: %d seeds answered", n.self.ID, got)
		} else if !errors.Is(err, ports.ErrUnreachable) {
			t.Errorf("%s.Join: %v; want an error wrapping ErrUnreachable", n.self.ID, err)
		}
	}
	// Give gossip time to (wrongly) spread c or d, then check it did not.
	deadline := time.Now().Add(time.Second)
	for time.Now().Before(deadline) {
		if got := a.ids(); !slices.Equal(got, []ports.NodeID{"a", "b"}) {
			t.Fatalf("a's members %v; want only a and b", got)
		}
		if got := c.ids(); !slices.Equal(got, []ports.NodeID{"c"}) {
			t.Fatalf("c's members %v; want only c", got)
		}
		time.Sleep(50 * time.Millisecond)
	}
	// memberlist's own error, bridged to slog at Error level.
	waitFor(t, "a to log the undecryptable stream at Error level", func() bool {
		return a.logs.has(slog.LevelError, "")
	})
}

func TestInvalidKeyring(t *testing.T) {
	leakCheck(t)
	_, err := membership.New(membership.Config{Keyring: [][]byte{make([]byte, 16), []byte("short")}})
	if !errors.Is(err, ports.ErrInvalidConfig) || !strings.Contains(err.Error(), "Keyring[1]") ||
		!strings.Contains(err.Error(), "16, 24 or 32") {
		t.Fatalf("New with a 5-byte key: %v; want ErrInvalidConfig naming Keyring[1] and the sizes", err)
	}
}

func TestInvalidConfig(t *testing.T) {
	leakCheck(t)
	for name, cfg := range map[string]membership.Config{
		"BindAddr":      {BindAddr: "localhost"},
		"BindPort":      {BindPort: 70000},
		"AdvertiseAddr": {AdvertiseAddr: "0.0.0.0"},
		"AdvertisePort": {AdvertisePort: -1},
		"Profile":       {Profile: 9},
	} {
		if _, err := membership.New(cfg); !errors.Is(err, ports.ErrInvalidConfig) || !strings.Contains(err.Error(), name) {
			t.Errorf("New(%+v): %v; want ErrInvalidConfig naming %s", cfg, err, name)
		}
	}
}

func TestOversizeMetadataFailsStart(t *testing.T) {
	leakCheck(t)
	apps := make([]string, 100)
	for i := range apps {
		apps[i] = fmt.Sprintf("application-%08d", i) // 20 bytes
	}
	m, err := membership.New(testConfig(newLogSink(t, "big")))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = m.Close() })
	err = m.Start(context.Background(), ports.LocalMember{ID: "big", TransportAddr: "127.0.0.1:7000", Apps: apps})
	if !errors.Is(err, membership.ErrMetaTooLarge) {
		t.Fatalf("Start with 100 apps: %v; want ErrMetaTooLarge", err)
	}
	for _, s := range []string{"2119 bytes", "512 bytes", "100 apps"} {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("error %q does not mention %q", err, s)
		}
	}
	if m.LocalAddr() != "" || m.Members() != nil {
		t.Errorf("failed Start left LocalAddr %q, members %v", m.LocalAddr(), m.Members())
	}

	// A started node keeps its metadata when an update does not fit.
	n := startNode(t, "n", []string{"orders"}, nil)
	big := n.self
	big.Apps = apps
	if err := n.UpdateLocal(context.Background(), big); !errors.Is(err, membership.ErrMetaTooLarge) {
		t.Fatalf("UpdateLocal with 100 apps: %v; want ErrMetaTooLarge", err)
	}
	if self, _ := n.member("n"); !slices.Equal(self.Apps, []string{"orders"}) {
		t.Errorf("after a failed update n advertises %v; want [orders]", self.Apps)
	}
}

func TestLifecycle(t *testing.T) {
	leakCheck(t)
	ctx := context.Background()

	m, err := membership.New(testConfig(newLogSink(t, "x")))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.Join(ctx, []string{"127.0.0.1:1"}); !errors.Is(err, ports.ErrNotStarted) {
		t.Errorf("Join before Start: %v; want ErrNotStarted", err)
	}
	if err := m.Leave(ctx); !errors.Is(err, ports.ErrNotStarted) {
		t.Errorf("Leave before Start: %v; want ErrNotStarted", err)
	}
	if err := m.Start(ctx, ports.LocalMember{}); !errors.Is(err, ports.ErrInvalidConfig) {
		t.Errorf("Start without an ID: %v; want ErrInvalidConfig", err)
	}
	if err := m.Start(ctx, ports.LocalMember{ID: "x", TransportAddr: "127.0.0.1:0"}); !errors.Is(err, ports.ErrInvalidConfig) {
		t.Errorf("Start advertising transport port 0: %v; want ErrInvalidConfig", err)
	}
	self := ports.LocalMember{ID: "x", TransportAddr: "127.0.0.1:7000"}
	if err := m.Start(ctx, self); err != nil {
		t.Fatalf("Start: %v", err)
	}
	if err := m.Start(ctx, self); err == nil {
		t.Error("second Start succeeded")
	}
	ch := m.Events()
	if ch != m.Events() {
		t.Error("Events returned different channels")
	}
	if err := m.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := m.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	select {
	case _, open := <-ch:
		if open {
			t.Error("Events delivered an event after Close")
		}
	case <-time.After(waitTimeout):
		t.Fatal("Events channel still open after Close")
	}
	if m.Members() != nil {
		t.Errorf("Members after Close = %v; want nil", m.Members())
	}
	if _, err := m.Join(ctx, []string{"127.0.0.1:1"}); !errors.Is(err, ports.ErrClosed) {
		t.Errorf("Join after Close: %v; want ErrClosed", err)
	}
	if err := m.Leave(ctx); !errors.Is(err, ports.ErrClosed) {
		t.Errorf("Leave after Close: %v; want ErrClosed", err)
	}
	if err := m.UpdateLocal(ctx, self); !errors.Is(err, ports.ErrClosed) {
		t.Errorf("UpdateLocal after Close: %v; want ErrClosed", err)
	}
	if err := m.Start(ctx, self); !errors.Is(err, ports.ErrClosed) {
		t.Errorf("Start after Close: %v; want ErrClosed", err)
	}

	// Close without Start also closes the channel.
	u, err := membership.New(membership.Config{})
	if err != nil {
		t.Fatal(err)
	}
	if err := u.Close(); err != nil {
		t.Fatalf("Close unstarted: %v", err)
	}
	if _, open := <-u.Events(); open {
		t.Error("Events of an unstarted, closed Membership delivered an event")
	}
}

func TestJoinSeeds(t *testing.T) {
	leakCheck(t)
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	a := startNode(t, "a", nil, nil)
	b := startNode(t, "b", nil, nil)

	if n, err := a.Join(ctx, []string{a.LocalAddr(), "", a.LocalAddr()}); n != 0 || err != nil {
		t.Errorf("Join(self only) = %d, %v; want 0, nil", n, err)
	}
	if n, err := a.Join(ctx, nil); n != 0 || err != nil {
		t.Errorf("Join(nil) = %d, %v; want 0, nil", n, err)
	}

	refused := closedPort(t)
	if n, err := a.Join(ctx, []string{refused}); n != 0 || !errors.Is(err, ports.ErrUnreachable) {
		t.Errorf("Join(refused) = %d, %v; want 0 and ErrUnreachable", n, err)
	}
	// memberlist's debug line about it, bridged to slog at Debug level.
	waitFor(t, "the failed join logged at Debug", func() bool { return a.logs.has(slog.LevelDebug, "failed to join") })

	// One good seed among bad ones is enough; self and repeats are skipped.
	if n, err := a.Join(ctx, []string{refused, b.LocalAddr(), a.LocalAddr(), b.LocalAddr()}); n != 1 || err != nil {
		t.Errorf("Join(refused, b, self, b) = %d, %v; want 1, nil", n, err)
	}
	waitFor(t, "b to see a", func() bool { _, ok := b.member("a"); return ok })
}

func TestJoinReturnsWhenCtxEnds(t *testing.T) {
	leakCheck(t)
	silent := silentListener(t) // accepts, never answers: memberlist waits for TCPTimeout
	a := startNode(t, "a", nil, func(c *membership.Config) {
		c.Tune = func(mc *ml.Config) {
			fastTune(mc)
			mc.TCPTimeout = 500 * time.Millisecond
		}
	})

	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	start := time.Now()
	n, err := a.Join(ctx, []string{silent})
	elapsed := time.Since(start)
	if n != 0 || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Join(silent) = %d, %v; want 0 and DeadlineExceeded", n, err)
	}
	if elapsed > 400*time.Millisecond {
		t.Errorf("Join returned after %v; want about the 50ms ctx timeout", elapsed)
	}
	// Close waits for the attempt still running in the background.
	start = time.Now()
	if err := a.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	t.Logf("Join returned after %v; Close waited %v for the attempt", elapsed.Round(time.Millisecond),
		time.Since(start).Round(time.Millisecond))
}

func TestEventsCoalesceForSlowConsumer(t *testing.T) {
	leakCheck(t)
	logs := newLogSink(t, "slow")
	cfg := testConfig(logs)
	slow, err := membership.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := slow.Start(context.Background(), ports.LocalMember{ID: "slow", TransportAddr: "127.0.0.1:7000"}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = slow.Close() })
	b := startNode(t, "b", nil, nil)
	waitFor(t, "b to join", func() bool {
		n, err := b.Join(context.Background(), []string{slow.LocalAddr()})
		return n == 1 && err == nil
	})

	// Nobody reads slow's events while b changes its apps many times.
	const updates = 20
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	self := b.self
	for i := range updates {
		self.Apps = []string{fmt.Sprintf("app-%d", i)}
		if err := b.UpdateLocal(ctx, self); err != nil {
			t.Fatalf("UpdateLocal %d: %v", i, err)
		}
	}
	final := self.Apps
	waitFor(t, "slow to see b's final apps", func() bool {
		for _, m := range slow.Members() {
			if m.ID == "b" && slices.Equal(m.Apps, final) {
				return true
			}
		}
		return false
	})

	// Now drain: few events, and the last one carries the current state.
	var got []ports.MemberEvent
	for {
		select {
		case ev := <-slow.Events():
			got = append(got, ev)
			continue
		case <-time.After(300 * time.Millisecond):
		}
		break
	}
	if len(got) == 0 || len(got) > 3 {
		t.Fatalf("slow consumer got %d events (%+v); want 1..3 after coalescing %d changes", len(got), got, updates+1)
	}
	last := got[len(got)-1]
	if last.Member.ID != "b" || !slices.Equal(last.Member.Apps, final) {
		t.Errorf("last event %+v; want b with apps %v", last, final)
	}
	if got[0].Type != ports.MemberJoined {
		t.Errorf("first event %v; want joined", got[0].Type)
	}
}

func TestMalformedPeerMetadata(t *testing.T) {
	leakCheck(t)
	a := startNode(t, "a", nil, nil)

	// A plain memberlist node whose metadata is not ours.
	conf := ml.DefaultLocalConfig()
	fastTune(conf)
	conf.Name = "alien"
	conf.BindAddr = "127.0.0.1"
	conf.BindPort = 0
	conf.AdvertisePort = 0
	conf.LogOutput = discard{}
	conf.Delegate = rawMeta{0xff, 0x00, 0x13}
	alien, err := ml.Create(conf)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = alien.Shutdown() })
	if _, err := alien.Join([]string{a.LocalAddr()}); err != nil {
		t.Fatal(err)
	}

	ev := a.events.waitEvent(t, ports.MemberJoined, "alien", nil)
	if ev.Member.TransportAddr != "" || ev.Member.Apps != nil || ev.Member.Version != "" || ev.Member.GossipAddr == "" {
		t.Errorf("join of alien = %+v; want empty metadata fields and a gossip address", ev.Member)
	}
	if m, ok := a.member("alien"); !ok || m.TransportAddr != "" {
		t.Errorf("a.Members has alien %v: %+v", ok, m)
	}
	if !a.logs.has(slog.LevelWarn, "metadata does not decode") {
		t.Error("no warning logged for the undecodable metadata")
	}
}

// rawMeta is a memberlist Delegate advertising fixed bytes.
type rawMeta []byte

func (r rawMeta) NodeMeta(int) []byte               { return r }
func (rawMeta) NotifyMsg([]byte)                    {}
func (rawMeta) GetBroadcasts(int, int) [][]byte     { return nil }
func (rawMeta) LocalState(bool) []byte              { return nil }
func (rawMeta) MergeRemoteState(buf []byte, _ bool) {}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }

// closedPort returns a loopback address nothing listens on.
func closedPort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	_ = l.Close()
	return addr
}

// silentListener accepts TCP connections and never writes to them, until
// the test ends.
func silentListener(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		var conns []net.Conn
		defer func() {
			for _, c := range conns {
				_ = c.Close()
			}
		}()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			conns = append(conns, c)
		}
	}()
	t.Cleanup(func() {
		_ = l.Close()
		<-done
	})
	return l.Addr().String()
}

// TestConcurrentUseAndClose races every method against Close: nothing may
// panic (memberlist's Leave panics after Shutdown), race or hang.
func TestConcurrentUseAndClose(t *testing.T) {
	leakCheck(t)
	a := startNode(t, "a", nil, nil)
	b := startNode(t, "b", []string{"x"}, nil)
	b.join(t, a)

	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	stop := make(chan struct{})
	var wg sync.WaitGroup
	defer func() {
		close(stop)
		wg.Wait()
	}()
	loop := func(f func(i int)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				f(i)
			}
		}()
	}
	loop(func(i int) {
		self := b.self
		self.Apps = []string{fmt.Sprint("app-", i%5)}
		_ = b.UpdateLocal(ctx, self)
	})
	loop(func(int) { _ = b.Members(); _ = b.LocalAddr() })
	loop(func(int) { _, _ = b.Join(ctx, []string{a.LocalAddr()}) })
	loop(func(int) { _ = b.Leave(ctx) })

	time.Sleep(200 * time.Millisecond) // let the loops overlap with gossip
	closed := make(chan error, 1)
	go func() { closed <- b.Close() }()
	select {
	case err := <-closed:
		if err != nil {
			t.Errorf("Close: %v", err)
		}
	case <-time.After(waitTimeout):
		_ = pprof.Lookup("goroutine").WriteTo(os.Stderr, 1)
		t.Fatal("Close did not return")
	}
}
