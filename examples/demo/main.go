// Command demo starts a three-node Mycorrizal cluster in one process on the
// embedded defaults and shows it working: membership over real gossip
// sockets on loopback (hashicorp/memberlist, UDP and TCP), application
// traffic over QUIC with mutual TLS (certificates minted by the shared
// development CA), a broadcast, requests with responses between every pair,
// the distributed cache (a replicated bucket, keys set and read across
// nodes, a cluster-wide single-flight load), and a graceful leave that hands
// the leaving node's keys to their next replicas.
//
// It prints what happens and exits by itself within seconds.
//
//	go run ./examples/demo
package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mycorrizal/mycorrizal"
	"github.com/mycorrizal/mycorrizal/core/cache"
	"github.com/mycorrizal/mycorrizal/ports"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		os.Exit(1)
	}
}

func run() error {
	ctx, cancel := context.WithTimeout(context.Background(), 45*time.Second)
	defer cancel()
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))

	var (
		nodes []*mycorrizal.Node
		mu    sync.Mutex
		seen  = map[string][]string{}
	)
	defer func() {
		for _, n := range nodes {
			sctx, scancel := context.WithTimeout(context.Background(), 5*time.Second)
			if err := n.Shutdown(sctx); err != nil {
				fmt.Println("shutdown:", err)
			}
			scancel()
		}
		fmt.Println("all nodes shut down")
	}()

	var seed string
	for i := range 3 {
		opts := []mycorrizal.Option{
			mycorrizal.WithNodeID(fmt.Sprintf("spore-%d", i)),
			mycorrizal.WithLogger(logger),
			mycorrizal.WithBindAddr("127.0.0.1:0"), // three nodes on one host: free ports
		}
		if seed != "" {
			opts = append(opts, mycorrizal.WithSeeds(seed))
		}
		n, err := mycorrizal.New(opts...)
		if err != nil {
			return err
		}
		nodes = append(nodes, n)

		greet, err := n.RegisterApplication("greeter")
		if err != nil {
			return err
		}
		id := n.ID()
		greet.OnRequest(func(ctx context.Context, from ports.NodeID, p []byte) ([]byte, error) {
			return []byte(fmt.Sprintf("hello %s, %s here (you said %q)", from, id, p)), nil
		})
		greet.OnMessage(func(ctx context.Context, from ports.NodeID, p []byte) {
			mu.Lock()
			seen[string(id)] = append(seen[string(id)], fmt.Sprintf("%s from %s", p, from))
			mu.Unlock()
		})

		if err := n.Start(ctx); err != nil {
			return err
		}
		if err := n.Ready(ctx); err != nil {
			return err
		}
		for _, m := range n.Members() {
			if m.ID == n.ID() {
				if seed == "" {
					seed = m.GossipAddr
				}
				fmt.Printf("started %s: gossip on %s, transport %s\n", n.ID(), m.GossipAddr, m.TransportAddr)
			}
		}
	}

	fmt.Println("\n== membership")
	for !converged(nodes) {
		if ctx.Err() != nil {
			return fmt.Errorf("cluster did not converge: %w", ctx.Err())
		}
		time.Sleep(50 * time.Millisecond)
	}
	for _, n := range nodes {
		var ids []string
		for _, m := range n.Members() {
			ids = append(ids, fmt.Sprintf("%s(%s)", m.ID, strings.Join(m.Apps, ",")))
		}
		fmt.Printf("%s sees %s\n", n.ID(), strings.Join(ids, " "))
	}

	fmt.Println("\n== broadcast")
	if err := nodes[0].Application("greeter").Broadcast(ctx, []byte("spores released")); err != nil {
		return err
	}
	for {
		mu.Lock()
		done := len(seen["spore-1"]) == 1 && len(seen["spore-2"]) == 1
		mu.Unlock()
		if done {
			break
		}
		if ctx.Err() != nil {
			return fmt.Errorf("broadcast not delivered: %w", ctx.Err())
		}
		time.Sleep(10 * time.Millisecond)
	}
	mu.Lock()
	for _, id := range []string{"spore-1", "spore-2"} {
		fmt.Printf("%s received %q\n", id, seen[id])
	}
	mu.Unlock()

	fmt.Println("\n== request / response")
	for _, from := range nodes {
		for _, to := range nodes {
			if from == to {
				continue
			}
			start := time.Now()
			rctx, rcancel := context.WithTimeout(ctx, 2*time.Second)
			resp, err := from.Application("greeter").Request(rctx, to.ID(), []byte("ping"))
			rcancel()
			if err != nil {
				return err
			}
			fmt.Printf("%s -> %s: %s (%v)\n", from.ID(), to.ID(), resp, time.Since(start).Round(time.Microsecond))
		}
	}

	fmt.Println("\n== distributed cache (Mycel)")
	// Two copies of each key; a write returns once both have it (the
	// default write quorum, a majority of 2), so any read sees it.
	if err := nodes[0].Cache().CreateBucket(ctx, "sessions", cache.BucketOptions{DefaultTTL: time.Minute, Replicas: 2}); err != nil {
		return err
	}
	for !hasBucket(nodes, "sessions") {
		if ctx.Err() != nil {
			return fmt.Errorf("bucket not known everywhere: %w", ctx.Err())
		}
		time.Sleep(10 * time.Millisecond)
	}
	for i := range 6 {
		key := fmt.Sprintf("user:%d", i)
		if err := nodes[i%3].Cache().Set(ctx, "sessions", key, []byte("session-of-"+key), 0); err != nil {
			return err
		}
	}
	for i := range 6 {
		key := fmt.Sprintf("user:%d", i)
		reader := nodes[(i+1)%3]
		v, err := reader.Cache().Get(ctx, "sessions", key)
		if err != nil {
			return err
		}
		fmt.Printf("%s set on %s, replicas %v, read on %s: %q\n", key, nodes[i%3].ID(), reader.Cache().Replicas("sessions", key), reader.ID(), v)
	}
	var loads atomic.Int32
	var wg sync.WaitGroup
	for _, n := range nodes {
		wg.Go(func() {
			v, err := n.Cache().GetOrLoad(ctx, "sessions", "report", func(ctx context.Context) ([]byte, time.Duration, error) {
				loads.Add(1)
				time.Sleep(100 * time.Millisecond) // an expensive query
				return []byte("computed once by " + string(n.ID())), 0, nil
			})
			if err == nil {
				fmt.Printf("%s GetOrLoad(report) = %q\n", n.ID(), v)
			}
		})
	}
	wg.Wait()
	fmt.Printf("three nodes asked at once; the loader ran %d time(s)\n", loads.Load())

	fmt.Println("\n== graceful leave")
	last := nodes[len(nodes)-1]
	nodes = nodes[:len(nodes)-1]
	sctx, scancel := context.WithTimeout(ctx, 5*time.Second)
	err := last.Shutdown(sctx)
	scancel()
	if err != nil {
		return err
	}
	for len(nodes[0].Members()) != 2 {
		if ctx.Err() != nil {
			return fmt.Errorf("leave not seen: %w", ctx.Err())
		}
		time.Sleep(20 * time.Millisecond)
	}
	rctx, rcancel := context.WithTimeout(ctx, 2*time.Second)
	_, err = nodes[0].Application("greeter").Request(rctx, last.ID(), []byte("still there?"))
	rcancel()
	fmt.Printf("%s left; %s now sees %d members; a request to it fails at once: %v\n", last.ID(), nodes[0].ID(), len(nodes[0].Members()), err)
	// It handed its keys to their next replicas before leaving: nothing is
	// lost, and each key is back to two copies.
	for i := range 6 {
		key := fmt.Sprintf("user:%d", i)
		if _, err := nodes[i%2].Cache().Get(ctx, "sessions", key); err != nil {
			return fmt.Errorf("after the leave: %w", err)
		}
	}
	copies := 0
	for _, n := range nodes {
		s, _ := n.Cache().Stats("sessions")
		copies += s.Entries
	}
	fmt.Printf("after the leave all 6 keys (and the report) are still readable; %d copies on the 2 remaining nodes\n", copies)
	fmt.Println()
	return nil
}

func hasBucket(nodes []*mycorrizal.Node, name string) bool {
	for _, n := range nodes {
		if !slices.Contains(n.Cache().Buckets(), name) {
			return false
		}
	}
	return true
}

func converged(nodes []*mycorrizal.Node) bool {
	for _, n := range nodes {
		if len(n.Members()) != len(nodes) {
			return false
		}
	}
	return true
}
