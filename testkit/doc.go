// Package testkit runs whole Mycorrizal clusters inside one test process,
// with fault injection, for Mycorrizal's own tests and for users who want to
// test their applications against a real cluster.
//
// NewCluster starts n nodes that run the real core, the real memberlist
// membership adapter (gossiping over a simulated network, package simnet)
// and the in-memory transport on the same simulated network: one network,
// one rule set, so a partition cuts gossip and application traffic alike.
// Faults (Partition, Heal, Drop, Delay, Crash, Restart) are seeded and
// repeatable for a given seed; Eventually and WaitConverged poll a
// condition with a deadline instead of sleeping.
//
//	c := testkit.NewCluster(t, 3, testkit.WithSetup(func(i int, n *mycorrizal.Node) {
//		app, _ := n.RegisterApplication("echo")
//		app.OnRequest(func(ctx context.Context, from ports.NodeID, p []byte) ([]byte, error) {
//			return p, nil
//		})
//	}))
//	resp, err := c.Node(0).Application("echo").Request(ctx, c.ID(1), []byte("hi"))
//
// Conformance suites for adapters live in the sub-packages transporttest and
// codectest.
package testkit
