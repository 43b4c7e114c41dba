package bench

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/mycorrizal/mycorrizal"
	"github.com/mycorrizal/mycorrizal/adapters/certs/ca"
	"github.com/mycorrizal/mycorrizal/ports"
)

// startMycorrizalPair starts two nodes in this process on the embedded
// defaults (memberlist gossip and QUIC with mutual TLS on loopback), with
// certificates from a CA generated for the run, node b hosting an echo
// application; it returns a requester from node a to node b.
func startMycorrizalPair(b *testing.B) requester {
	b.Helper()
	certPEM, keyPEM, err := ca.GenerateCA("bench CA", time.Hour, time.Now())
	if err != nil {
		b.Fatal(err)
	}
	var nodes []*mycorrizal.Node
	seed := ""
	for _, id := range []string{"a", "b"} {
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
		n, err := mycorrizal.New(opts...)
		if err != nil {
			b.Fatal(err)
		}
		app, err := n.RegisterApplication("echo")
		if err != nil {
			b.Fatal(err)
		}
		app.OnRequest(func(ctx context.Context, from ports.NodeID, p []byte) ([]byte, error) { return p, nil })
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		err = n.Start(ctx)
		if err == nil {
			err = n.Ready(ctx)
		}
		cancel()
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			_ = n.Shutdown(ctx)
		})
		for _, m := range n.Members() {
			if m.ID == n.ID() {
				seed = m.GossipAddr
			}
		}
		nodes = append(nodes, n)
	}
	app := nodes[0].Application("echo")
	deadline := time.Now().Add(10 * time.Second)
	for len(app.Nodes()) != 1 {
		if time.Now().After(deadline) {
			b.Fatal("nodes did not see each other")
		}
		time.Sleep(10 * time.Millisecond)
	}
	return func(ctx context.Context, payload []byte) ([]byte, error) {
		return app.Request(ctx, "b", payload)
	}
}
