package mesh_test

import (
	"bytes"
	"context"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/mycorrizal/mycorrizal/adapters/transport/mem"
	"github.com/mycorrizal/mycorrizal/core/mesh"
	"github.com/mycorrizal/mycorrizal/ports"
)

// logBuf collects log output for assertions.
type logBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// node is one mesh on the test network.
type node struct {
	id   ports.NodeID
	m    *mesh.Mesh
	tr   *mem.Transport
	addr string
	log  *logBuf
	net  *mem.Network
}

// newNodes builds meshes named n0, n1, ... on one in-memory network, each
// hosting the given apps, started and knowing each other.
func newNodes(t *testing.T, count int, tweak func(*mesh.Config), apps ...string) []*node {
	t.Helper()
	net := mem.NewNetwork()
	nodes := make([]*node, count)
	for i := range nodes {
		id := ports.NodeID("n" + string(rune('0'+i)))
		tr, err := mem.New(net, mem.Config{})
		if err != nil {
			t.Fatal(err)
		}
		addr, err := tr.Listen(context.Background(), id)
		if err != nil {
			t.Fatal(err)
		}
		lb := &logBuf{}
		cfg := mesh.Config{Self: id, Transport: tr, Logger: slog.New(slog.NewTextHandler(lb, nil))}
		if tweak != nil {
			tweak(&cfg)
		}
		m, err := mesh.New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		for _, a := range apps {
			if _, err := m.Register(a); err != nil {
				t.Fatal(err)
			}
		}
		if err := m.Start(); err != nil {
			t.Fatal(err)
		}
		nodes[i] = &node{id: id, m: m, tr: tr, addr: addr, log: lb, net: net}
		t.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if err := m.Close(ctx); err != nil {
				t.Errorf("close %s: %v", id, err)
			}
			_ = tr.Close()
		})
	}
	var members []ports.Member
	for _, n := range nodes {
		members = append(members, ports.Member{ID: n.id, TransportAddr: n.addr, Apps: n.m.Apps(), State: ports.StateAlive})
	}
	for _, n := range nodes {
		n.m.SetMembers(members)
	}
	return nodes
}

func ctxT(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func eventually(t *testing.T, d time.Duration, msg string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within %v: %s", d, msg)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
