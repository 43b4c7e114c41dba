package integration

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mycorrizal/mycorrizal"
	"github.com/mycorrizal/mycorrizal/adapters/certs/ca"
	"github.com/mycorrizal/mycorrizal/adapters/discovery/dnssd"
	"github.com/mycorrizal/mycorrizal/ports"
	"github.com/mycorrizal/mycorrizal/testkit/dnsmasq"
)

// These tests run real nodes (memberlist gossip on UDP and TCP, QUIC with
// mutual TLS) in the test process, on several loopback addresses, and give
// them nothing but a DNS name served by a real DNS server (Debian's
// dnsmasq) to find each other by. They skip when dnsmasq is missing,
// unless CI=true.

// headlessName is the name of the "headless service": one A record per
// node, every node on the same gossip port, as in Kubernetes.
const headlessName = "nodes.mycorrizal.test"

// TestDiscoveryDNSHeadless forms a cluster from a headless-service name
// alone, then adds a node to DNS after it started: the running nodes find
// it at their next periodic discovery, without a restart.
func TestDiscoveryDNSHeadless(t *testing.T) {
	if testing.Short() {
		t.Skip("starts dnsmasq and real nodes")
	}
	dnsmasq.Require(t)
	hosts := []string{"127.0.0.1", "127.0.0.2", "127.0.0.3", "127.0.0.4"}
	srv := dnsmasq.Start(t, dnsmasq.Records{A: map[string][]string{headlessName: hosts[:3]}})
	port := commonFreePort(t, hosts...) // after dnsmasq took its port
	caDir := t.TempDir()
	logs := &logBuffer{}
	dumpLogsOnFailure(t, logs)

	var nodes []*mycorrizal.Node
	for i, h := range hosts[:3] {
		nodes = append(nodes, startLoopbackNode(t, caDir, logs, fmt.Sprintf("n%d", i+1), net.JoinHostPort(h, fmt.Sprint(port)),
			mycorrizal.WithDiscovery(headlessResolver(t, srv, port))))
	}
	waitAllSee(t, nodes, "n1", "n2", "n3")

	// n4 has no discovery of its own: only the others' periodic discovery
	// can bring it in. It is published in DNS after it started.
	n4 := startLoopbackNode(t, caDir, logs, "n4", net.JoinHostPort(hosts[3], fmt.Sprint(port)))
	if got := nodeMemberIDs(n4); !slices.Equal(got, []string{"n4"}) {
		t.Fatalf("n4 before it is in DNS sees %v, want only itself", got)
	}
	srv.Set(t, dnsmasq.Records{A: map[string][]string{headlessName: hosts}})
	waitAllSee(t, append(nodes, n4), "n1", "n2", "n3", "n4")
}

// TestDiscoveryDNSSRV forms a cluster from SRV records: three nodes on one
// address with a port each, as a zone's "_mycorrizal._udp" records would
// publish them.
func TestDiscoveryDNSSRV(t *testing.T) {
	if testing.Short() {
		t.Skip("starts dnsmasq and real nodes")
	}
	dnsmasq.Require(t)
	const srvName = "_mycorrizal._udp.mycorrizal.test"
	srv := dnsmasq.Start(t, dnsmasq.Records{}) // first, so it cannot take a gossip port
	recs := dnsmasq.Records{A: map[string][]string{}}
	var gossip []string
	for i := range 3 {
		target := fmt.Sprintf("node%d.mycorrizal.test", i+1)
		port := commonFreePort(t, "127.0.0.1")
		recs.SRV = append(recs.SRV, dnsmasq.SRV{Name: srvName, Target: target, Port: port})
		recs.A[target] = []string{"127.0.0.1"}
		gossip = append(gossip, net.JoinHostPort("127.0.0.1", fmt.Sprint(port)))
	}
	srv.Set(t, recs)
	caDir := t.TempDir()
	logs := &logBuffer{}
	dumpLogsOnFailure(t, logs)

	var nodes []*mycorrizal.Node
	for i, addr := range gossip {
		d, err := dnssd.New(dnssd.Config{Name: srvName, Resolvers: []string{srv.Addr()}, Timeout: time.Second})
		if err != nil {
			t.Fatal(err)
		}
		nodes = append(nodes, startLoopbackNode(t, caDir, logs, fmt.Sprintf("s%d", i+1), addr, mycorrizal.WithDiscovery(d)))
	}
	waitAllSee(t, nodes, "s1", "s2", "s3")
}

// TestDiscoveryDNSOutage checks that a DNS server that cannot be reached is
// logged and changes nothing: a lone node with an unreachable resolver
// still starts, and a formed cluster whose DNS server stops keeps its
// members through several discovery intervals.
func TestDiscoveryDNSOutage(t *testing.T) {
	if testing.Short() {
		t.Skip("starts dnsmasq and real nodes")
	}
	dnsmasq.Require(t)
	caDir := t.TempDir()

	t.Run("unreachable resolver", func(t *testing.T) {
		logs := &logBuffer{}
		dumpLogsOnFailure(t, logs)
		dead := deadResolver(t)
		d, err := dnssd.New(dnssd.Config{Name: headlessName, Mode: dnssd.ModeHeadless, Port: 7946,
			Resolvers: []string{dead}, Timeout: 300 * time.Millisecond, Attempts: 1})
		if err != nil {
			t.Fatal(err)
		}
		port := commonFreePort(t, "127.0.0.1")
		n := startLoopbackNode(t, caDir, logs, "lone", net.JoinHostPort("127.0.0.1", fmt.Sprint(port)), mycorrizal.WithDiscovery(d))
		waitDiscoveryWarnings(t, logs, dead, 1, "lone")
		if got := nodeMemberIDs(n); !slices.Equal(got, []string{"lone"}) {
			t.Fatalf("lone node sees %v", got)
		}
	})

	t.Run("server stops", func(t *testing.T) {
		logs := &logBuffer{}
		dumpLogsOnFailure(t, logs)
		hosts := []string{"127.0.0.1", "127.0.0.2", "127.0.0.3"}
		srv := dnsmasq.Start(t, dnsmasq.Records{A: map[string][]string{headlessName: hosts}})
		port := commonFreePort(t, hosts...)
		var nodes []*mycorrizal.Node
		for i, h := range hosts {
			nodes = append(nodes, startLoopbackNode(t, caDir, logs, fmt.Sprintf("o%d", i+1), net.JoinHostPort(h, fmt.Sprint(port)),
				mycorrizal.WithDiscovery(headlessResolver(t, srv, port))))
		}
		waitAllSee(t, nodes, "o1", "o2", "o3")

		srv.Stop(t)
		// Three failed discoveries each: over a second of discovery
		// intervals (500 ms) without DNS.
		waitDiscoveryWarnings(t, logs, srv.Addr(), 3, "o1", "o2", "o3")
		for _, n := range nodes {
			if got := nodeMemberIDs(n); !slices.Equal(got, []string{"o1", "o2", "o3"}) {
				t.Fatalf("%s lost members while DNS was down: sees %v", n.ID(), got)
			}
		}
	})
}

// startLoopbackNode starts a real node gossiping on gossip, with QUIC on
// the same host, certificates from the development CA in caDir, fast join
// and discovery intervals, and its logs in logs. It shuts the node down when
// the test ends, and waits until the node is Ready.
func startLoopbackNode(t *testing.T, caDir string, logs *logBuffer, id, gossip string, opts ...mycorrizal.Option) *mycorrizal.Node {
	t.Helper()
	logger := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelInfo}))
	certs, err := ca.DevCA(ca.DevConfig{Dir: caDir, NodeID: ports.NodeID(id), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	host, _, err := net.SplitHostPort(gossip)
	if err != nil {
		t.Fatal(err)
	}
	n, err := mycorrizal.New(append([]mycorrizal.Option{
		mycorrizal.WithNodeID(id),
		mycorrizal.WithLogger(logger),
		mycorrizal.WithBindAddr(gossip),
		mycorrizal.WithTransportAddr(net.JoinHostPort(host, "0")),
		mycorrizal.WithCertSource(certs),
		mycorrizal.WithJoinRetry(250 * time.Millisecond),
		mycorrizal.WithDiscoveryInterval(500 * time.Millisecond),
	}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if err := n.Start(ctx); err != nil {
		t.Fatalf("start %s: %v", id, err)
	}
	t.Cleanup(func() {
		sctx, scancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer scancel()
		if err := n.Shutdown(sctx); err != nil {
			t.Errorf("shutdown %s: %v", id, err)
		}
	})
	if err := n.Ready(ctx); err != nil {
		t.Fatalf("%s not ready: %v", id, err)
	}
	return n
}

// headlessResolver returns a headless-mode resolver of headlessName that asks srv
// and pairs every address with port.
func headlessResolver(t *testing.T, srv *dnsmasq.Server, port int) *dnssd.Resolver {
	t.Helper()
	d, err := dnssd.New(dnssd.Config{Name: headlessName, Mode: dnssd.ModeHeadless, Port: port,
		Resolvers: []string{srv.Addr()}, Timeout: 300 * time.Millisecond, Attempts: 1})
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// nodeMemberIDs returns the IDs of the members n sees, sorted.
func nodeMemberIDs(n *mycorrizal.Node) []string {
	var ids []string
	for _, m := range n.Members() {
		ids = append(ids, string(m.ID))
	}
	return ids
}

// waitAllSee waits until every node sees exactly the members want.
func waitAllSee(t *testing.T, nodes []*mycorrizal.Node, want ...string) {
	t.Helper()
	for _, n := range nodes {
		eventually(t, 15*time.Second, fmt.Sprintf("%s sees %v (it sees %v)", n.ID(), want, nodeMemberIDs(n)), func() bool {
			return slices.Equal(nodeMemberIDs(n), want)
		})
	}
}

// waitDiscoveryWarnings waits until logs hold, for each of the nodes ids, at least
// count WARN records about discovery that name the DNS server addr.
func waitDiscoveryWarnings(t *testing.T, logs *logBuffer, addr string, count int, ids ...string) {
	t.Helper()
	eventually(t, 15*time.Second, fmt.Sprintf("%d discovery warnings naming %s from each of %v", count, addr, ids), func() bool {
		found := map[string]int{}
		for _, line := range strings.Split(logs.String(), "\n") {
			if strings.Contains(line, "level=WARN") && strings.Contains(line, "discovery failed") && strings.Contains(line, addr) {
				for _, id := range ids {
					if strings.Contains(line, " node="+id+" ") {
						found[id]++
					}
				}
			}
		}
		for _, id := range ids {
			if found[id] < count {
				return false
			}
		}
		return true
	})
}

// handedOut holds the ports commonFreePort returned, which it never
// returns again: a test takes several before binding any.
var handedOut struct {
	sync.Mutex
	ports map[int]bool
}

// commonFreePort returns a port that was free a moment ago for both UDP
// and TCP on every one of hosts (loopback addresses), and that it has not
// returned before.
func commonFreePort(t *testing.T, hosts ...string) int {
	t.Helper()
	handedOut.Lock()
	defer handedOut.Unlock()
	if handedOut.ports == nil {
		handedOut.ports = map[int]bool{}
	}
	for range 50 {
		port := freePort(t)
		if !handedOut.ports[port] && portFree(port, hosts) {
			handedOut.ports[port] = true
			return port
		}
	}
	t.Fatalf("no port free on all of %v", hosts)
	return 0
}

// portFree reports whether port can be bound for UDP and TCP on each of
// hosts now.
func portFree(port int, hosts []string) bool {
	var closers []interface{ Close() error }
	defer func() {
		for _, c := range closers {
			_ = c.Close()
		}
	}()
	for _, h := range hosts {
		addr := net.JoinHostPort(h, fmt.Sprint(port))
		pc, err := net.ListenPacket("udp", addr)
		if err != nil {
			return false
		}
		closers = append(closers, pc)
		l, err := net.Listen("tcp", addr)
		if err != nil {
			return false
		}
		closers = append(closers, l)
	}
	return true
}

// deadResolver returns "127.0.0.1:port" where nothing answers DNS: a UDP
// port that was free a moment ago, so queries to it are refused.
func deadResolver(t *testing.T) string {
	t.Helper()
	return net.JoinHostPort("127.0.0.1", fmt.Sprint(commonFreePort(t, "127.0.0.1")))
}

// dumpLogsOnFailure logs the nodes' logs when the test fails.
func dumpLogsOnFailure(t *testing.T, logs *logBuffer) {
	t.Helper()
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("node logs:\n%s", logs.String())
		}
	})
}

// logBuffer is a bytes.Buffer safe for concurrent use: the nodes' loggers
// write to it while the test reads it.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *logBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *logBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
