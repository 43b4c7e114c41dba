package mycorrizal_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/mycorrizal/mycorrizal"
	"github.com/mycorrizal/mycorrizal/adapters/transport/mem"
	"github.com/mycorrizal/mycorrizal/ports"
	"github.com/mycorrizal/mycorrizal/testkit"
)

func TestMain(m *testing.M) { testkit.VerifyTestMain(m) }

func ctxT(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func memTransport(t *testing.T) ports.Transport {
	tr, err := mem.New(mem.NewNetwork(), mem.Config{})
	if err != nil {
		t.Fatal(err)
	}
	return tr
}

func TestInvalidConfigNamesOption(t *testing.T) {
	cases := map[string][]mycorrizal.Option{
		"WithNodeID":         {mycorrizal.WithNodeID("")},
		"WithTransport":      {mycorrizal.WithTransport(nil)},
		"WithSeeds":          {mycorrizal.WithSingleMode(), mycorrizal.WithSeeds("no-port")},
		"WithGossipKey":      {mycorrizal.WithGossipKey([]byte("short"))},
		"WithBindAddr":       {mycorrizal.WithBindAddr("127.0.0.1:99999")},
		"WithAdvertiseAddr":  {mycorrizal.WithAdvertiseAddr("example.com:7946")},
		"WithMaxFrameSize":   {mycorrizal.WithMaxFrameSize(10)},
		"WithSingleMode":     {mycorrizal.WithSingleMode(), mycorrizal.WithTransport(memTransport(t))},
		"WithMembership":     {mycorrizal.WithTransport(memTransport(t)), mycorrizal.WithMembership(nil)},
		"WithReconnect":      {mycorrizal.WithReconnect(0, time.Hour)},
		"WithRequestTimeout": {mycorrizal.WithRequestTimeout(-time.Second)},
		"WithCertSource":     {mycorrizal.WithCertSource(nil)},
		"WithTransportAddr":  {mycorrizal.WithTransportAddr("nowhere")},
	}
	for option, opts := range cases {
		t.Run(option, func(t *testing.T) {
			_, err := mycorrizal.New(opts...)
			if !errors.Is(err, ports.ErrInvalidConfig) {
				t.Fatalf("got %v, want ErrInvalidConfig", err)
			}
			if !strings.Contains(err.Error(), option) {
				t.Fatalf("error does not name %s: %v", option, err)
			}
		})
	}
	_, err := mycorrizal.New(mycorrizal.WithTransport(memTransport(t)), mycorrizal.WithTransportAddr("127.0.0.1:0"))
	if !errors.Is(err, ports.ErrInvalidConfig) || !strings.Contains(err.Error(), "WithTransport") {
		t.Fatalf("custom transport with QUIC options: %v", err)
	}
}

func TestNodeID(t *testing.T) {
	n, err := mycorrizal.New(mycorrizal.WithSingleMode(), mycorrizal.WithNodeID("explicit"))
	if err != nil || n.ID() != "explicit" {
		t.Fatalf("%v %v", n, err)
	}
	_ = n.Shutdown(ctxT(t, time.Second))

	t.Setenv(mycorrizal.EnvNodeID, "from-env")
	n, err = mycorrizal.New(mycorrizal.WithSingleMode())
	if err != nil || n.ID() != "from-env" {
		t.Fatalf("%v %v", n, err)
	}
	_ = n.Shutdown(ctxT(t, time.Second))

	t.Setenv(mycorrizal.EnvNodeID, "")
	n, err = mycorrizal.New(mycorrizal.WithSingleMode())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := uuid.Parse(string(n.ID())); err != nil {
		t.Fatalf("generated ID %q is not a UUID: %v", n.ID(), err)
	}
	_ = n.Shutdown(ctxT(t, time.Second))
}

func TestSingleMode(t *testing.T) {
	n, err := mycorrizal.New(mycorrizal.WithSingleMode(), mycorrizal.WithNodeID("solo"))
	if err != nil {
		t.Fatal(err)
	}
	app, err := n.RegisterApplication("calc")
	if err != nil {
		t.Fatal(err)
	}
	app.OnRequest(func(ctx context.Context, from ports.NodeID, p []byte) ([]byte, error) {
		return append(p, '!'), nil
	})
	got := make(chan string, 1)
	app.OnMessage(func(ctx context.Context, from ports.NodeID, p []byte) { got <- string(p) })
	if err := n.Start(ctxT(t, 5*time.Second)); err != nil {
		t.Fatal(err)
	}
	if err := n.Ready(ctxT(t, 5*time.Second)); err != nil {
		t.Fatal(err)
	}
	if ms := n.Members(); len(ms) != 1 || ms[0].ID != "solo" || !ms[0].Hosts("calc") {
		t.Fatalf("members: %+v", ms)
	}
	resp, err := app.Request(ctxT(t, time.Second), n.ID(), []byte("hi"))
	if err != nil || string(resp) != "hi!" {
		t.Fatalf("%q %v", resp, err)
	}
	if err := app.Send(ctxT(t, time.Second), []byte("m"), n.ID()); err != nil || <-got != "m" {
		t.Fatalf("send: %v", err)
	}
	if err := app.Broadcast(ctxT(t, time.Second), []byte("nobody")); err != nil {
		t.Fatalf("broadcast alone: %v", err)
	}
	if _, err := app.Request(ctxT(t, time.Second), "other", nil); !errors.Is(err, ports.ErrUnknownNode) {
		t.Fatalf("request elsewhere in single mode: %v", err)
	}
	if err := n.Shutdown(ctxT(t, 5*time.Second)); err != nil {
		t.Fatal(err)
	}
	if err := n.Shutdown(ctxT(t, 5*time.Second)); err != nil {
		t.Fatalf("second shutdown: %v", err)
	}
	if err := n.Start(ctxT(t, time.Second)); !errors.Is(err, ports.ErrClosed) {
		t.Fatalf("start after shutdown: %v", err)
	}
}

// TestRealGossip runs two nodes with the default memberlist adapter on
// loopback sockets (port 0), joined through a seed.
func TestRealGossip(t *testing.T) {
	net := mem.NewNetwork()
	var nodes []*mycorrizal.Node
	seed := ""
	for i := range 2 {
		tr, err := mem.New(net, mem.Config{})
		if err != nil {
			t.Fatal(err)
		}
		opts := []mycorrizal.Option{
			mycorrizal.WithNodeID([]string{"a", "b"}[i]),
			mycorrizal.WithTransport(tr),
			mycorrizal.WithBindAddr("127.0.0.1:0"),
			mycorrizal.WithGossipKey([]byte("0123456789abcdef")),
		}
		if seed != "" {
			opts = append(opts, mycorrizal.WithSeeds(seed))
		}
		n, err := mycorrizal.New(opts...)
		if err != nil {
			t.Fatal(err)
		}
		app, _ := n.RegisterApplication("echo")
		app.OnRequest(func(ctx context.Context, from ports.NodeID, p []byte) ([]byte, error) { return p, nil })
		if err := n.Start(ctxT(t, 10*time.Second)); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = n.Shutdown(context.Background()) })
		if err := n.Ready(ctxT(t, 10*time.Second)); err != nil {
			t.Fatal(err)
		}
		for _, m := range n.Members() {
			if m.ID == n.ID() {
				if strings.HasSuffix(m.GossipAddr, ":0") {
					t.Fatalf("advertised port 0: %s", m.GossipAddr)
				}
				seed = m.GossipAddr
			}
		}
		nodes = append(nodes, n)
	}
	deadline := time.Now().Add(10 * time.Second)
	for len(nodes[0].Members()) != 2 || len(nodes[0].Application("echo").Nodes()) != 1 {
		if time.Now().After(deadline) {
			t.Fatal("nodes did not see each other")
		}
		time.Sleep(20 * time.Millisecond)
	}
	resp, err := nodes[0].Application("echo").Request(ctxT(t, 5*time.Second), "b", []byte("x"))
	if err != nil || string(resp) != "x" {
		t.Fatalf("%q %v", resp, err)
	}
	// An application registered after Start is advertised.
	if _, err := nodes[1].RegisterApplication("late"); err != nil {
		t.Fatal(err)
	}
	deadline = time.Now().Add(10 * time.Second)
	for !hosts(nodes[0].Members(), "b", "late") {
		if time.Now().After(deadline) {
			t.Fatal("late application not advertised")
		}
		time.Sleep(20 * time.Millisecond)
	}
	// Graceful leave is seen as a leave; requests then fail fast.
	if err := nodes[1].Shutdown(ctxT(t, 10*time.Second)); err != nil {
		t.Fatal(err)
	}
	deadline = time.Now().Add(10 * time.Second)
	for len(nodes[0].Members()) != 1 {
		if time.Now().After(deadline) {
			t.Fatal("leave not seen")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if _, err := nodes[0].Application("echo").Request(ctxT(t, 5*time.Second), "b", nil); !errors.Is(err, ports.ErrUnknownNode) {
		t.Fatalf("after leave: %v", err)
	}
}

func hosts(ms []ports.Member, id ports.NodeID, app string) bool {
	for _, m := range ms {
		if m.ID == id {
			return m.Hosts(app)
		}
	}
	return false
}

// startGossipNodes starts nodes on loopback with real gossip sockets, each
// with the given gossip keys, joining the first.
func startGossipNode(t *testing.T, net *mem.Network, id, seed string, keys ...[]byte) *mycorrizal.Node {
	t.Helper()
	tr, err := mem.New(net, mem.Config{})
	if err != nil {
		t.Fatal(err)
	}
	opts := []mycorrizal.Option{
		mycorrizal.WithNodeID(id),
		mycorrizal.WithTransport(tr),
		mycorrizal.WithBindAddr("127.0.0.1:0"),
		mycorrizal.WithGossipKey(keys...),
	}
	if seed != "" {
		opts = append(opts, mycorrizal.WithSeeds(seed))
	}
	n, err := mycorrizal.New(opts...)
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Start(ctxT(t, 10*time.Second)); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = n.Shutdown(context.Background()) })
	if err := n.Ready(ctxT(t, 10*time.Second)); err != nil {
		t.Fatal(err)
	}
	return n
}

func gossipAddr(n *mycorrizal.Node) string {
	for _, m := range n.Members() {
		if m.ID == n.ID() {
			return m.GossipAddr
		}
	}
	return ""
}

func waitMembers(t *testing.T, n *mycorrizal.Node, want int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for len(n.Members()) != want {
		if time.Now().After(deadline) {
			t.Fatalf("%s sees %d members, want %d", n.ID(), len(n.Members()), want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestRotateGossipKeyAcrossCluster(t *testing.T) {
	oldKey, newKey := []byte("0123456789abcdef"), []byte("fedcba9876543210fedcba9876543210")
	net := mem.NewNetwork()
	a := startGossipNode(t, net, "a", "", oldKey)
	b := startGossipNode(t, net, "b", gossipAddr(a), oldKey)
	c := startGossipNode(t, net, "c", gossipAddr(a), oldKey)
	for _, n := range []*mycorrizal.Node{a, b, c} {
		waitMembers(t, n, 3)
	}
	if err := b.RotateGossipKey(ctxT(t, 10*time.Second), newKey); err != nil {
		t.Fatal(err)
	}
	// A node with the retired key is kept out; one with the new key joins.
	stale := startGossipNode(t, net, "stale", gossipAddr(a), oldKey)
	fresh := startGossipNode(t, net, "fresh", gossipAddr(c), newKey)
	for _, n := range []*mycorrizal.Node{a, b, c, fresh} {
		waitMembers(t, n, 4)
	}
	if len(stale.Members()) != 1 {
		t.Fatalf("node with the retired key sees %d members", len(stale.Members()))
	}
	for _, m := range a.Members() {
		if m.ID == "stale" {
			t.Fatal("node with the retired key became a member")
		}
	}
}

func TestRotateGossipKeyNeedsEncryption(t *testing.T) {
	n, err := mycorrizal.New(mycorrizal.WithSingleMode())
	if err != nil {
		t.Fatal(err)
	}
	defer n.Shutdown(context.Background())
	if err := n.RotateGossipKey(context.Background(), []byte("0123456789abcdef")); !errors.Is(err, ports.ErrInvalidConfig) {
		t.Fatalf("got %v", err)
	}
}

// TestBindAddrPortZero: WithBindAddr(":0") binds all interfaces on a port
// the OS picks and advertises that port; it is not mistaken for "no bind
// address given" (the 127.0.0.1:7946 default), nor ignored where gossip
// options are refused.
func TestBindAddrPortZero(t *testing.T) {
	net := mem.NewNetwork()
	var seed string
	var nodes []*mycorrizal.Node
	for _, id := range []string{"a", "b"} {
		tr, err := mem.New(net, mem.Config{})
		if err != nil {
			t.Fatal(err)
		}
		opts := []mycorrizal.Option{
			mycorrizal.WithNodeID(id),
			mycorrizal.WithTransport(tr),
			mycorrizal.WithBindAddr(":0"),
			// Advertise loopback (port 0: the bound one), so the test does
			// not depend on the machine having a private address.
			mycorrizal.WithAdvertiseAddr("127.0.0.1:0"),
		}
		if seed != "" {
			opts = append(opts, mycorrizal.WithSeeds(seed))
		}
		n, err := mycorrizal.New(opts...)
		if err != nil {
			t.Fatal(err)
		}
		if err := n.Start(ctxT(t, 10*time.Second)); err != nil {
			t.Fatalf("start %s with WithBindAddr(\":0\"): %v", id, err)
		}
		t.Cleanup(func() { _ = n.Shutdown(context.Background()) })
		for _, m := range n.Members() {
			if m.ID != n.ID() {
				continue
			}
			if strings.HasSuffix(m.GossipAddr, ":0") || strings.HasSuffix(m.GossipAddr, ":7946") {
				t.Fatalf("%s advertises %s, want the port the OS picked", id, m.GossipAddr)
			}
			seed = m.GossipAddr
		}
		nodes = append(nodes, n)
	}
	deadline := time.Now().Add(10 * time.Second)
	for len(nodes[0].Members()) != 2 {
		if time.Now().After(deadline) {
			t.Fatal("nodes bound with \":0\" did not find each other")
		}
		time.Sleep(20 * time.Millisecond)
	}

	_, err := mycorrizal.New(mycorrizal.WithSingleMode(), mycorrizal.WithBindAddr(":0"))
	if !errors.Is(err, ports.ErrInvalidConfig) || !strings.Contains(err.Error(), "WithSingleMode") {
		t.Errorf("WithSingleMode with WithBindAddr(\":0\"): got %v, want ErrInvalidConfig", err)
	}
}
