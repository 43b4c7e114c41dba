package bench

import (
	"context"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/mycorrizal/mycorrizal"
	"github.com/mycorrizal/mycorrizal/adapters/certs/ca"
	"github.com/mycorrizal/mycorrizal/ports"
)

// startMycorrizalNodes starts n nodes in this process on the embedded
// defaults (memberlist gossip and QUIC with mutual TLS on loopback), with
// certificates from a CA generated for the run, named "a", "b", ... and
// joined through the first. setup, when not nil, runs on each node before
// it starts (to register applications). It returns once every node's mesh
// sees the n-1 others hosting app; the nodes are shut down in b.Cleanup.
func startMycorrizalNodes(b *testing.B, n int, app string, setup func(*mycorrizal.Node) error) []*mycorrizal.Node {
	b.Helper()
	certPEM, keyPEM, err := ca.GenerateCA("bench CA", time.Hour, time.Now())
	if err != nil {
		b.Fatal(err)
	}
	var nodes []*mycorrizal.Node
	seed := ""
	for i := range n {
		id := string(rune('a' + i))
		certs, err := ca.New(ca.Config{CACertPEM: certPEM, CAKeyPEM: keyPEM, NodeID: ports.NodeID(id)})
		if err != nil {
			b.Fatal(err)
		}
		opts := []mycorrizal.Option{
			mycorrizal.WithNodeID(id),
			mycorrizal.WithLogger(slog.New(slog.DiscardHandler)),
			mycorrizal.WithBindAddr("127.0.0.1:0"),
			mycorrizal.WithCertSource(certs),
		}
		if seed != "" {
			opts = append(opts, mycorrizal.WithSeeds(seed))
		}
		node, err := mycorrizal.New(opts...)
		if err != nil {
			b.Fatal(err)
		}
		if setup != nil {
			if err := setup(node); err != nil {
				b.Fatal(err)
			}
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		err = node.Start(ctx)
		if err == nil {
			err = node.Ready(ctx)
		}
		cancel()
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			_ = node.Shutdown(ctx)
		})
		if seed == "" {
			for _, m := range node.Members() {
				if m.ID == node.ID() {
					seed = m.GossipAddr
				}
			}
		}
		nodes = append(nodes, node)
	}
	deadline := time.Now().Add(10 * time.Second)
	for _, node := range nodes {
		a := node.Application(app)
		if a == nil {
			b.Fatalf("node %s does not host %q", node.ID(), app)
		}
		for len(a.Nodes()) != n-1 {
			if time.Now().After(deadline) {
				b.Fatalf("node %s sees %d of the %d other nodes hosting %q", node.ID(), len(a.Nodes()), n-1, app)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	return nodes
}

// startMycorrizalPair starts two nodes, node b hosting an echo application,
// and returns a requester from node a to node b.
func startMycorrizalPair(b *testing.B) requester {
	b.Helper()
	nodes := startMycorrizalNodes(b, 2, "echo", func(n *mycorrizal.Node) error {
		app, err := n.RegisterApplication("echo")
		if err != nil {
			return fmt.Errorf("register echo on %s: %w", n.ID(), err)
		}
		app.OnRequest(func(ctx context.Context, from ports.NodeID, p []byte) ([]byte, error) { return p, nil })
		return nil
	})
	app := nodes[0].Application("echo")
	return func(ctx context.Context, payload []byte) ([]byte, error) {
		return app.Request(ctx, "b", payload)
	}
}
