// Command discovery runs one Mycorrizal node that finds its peers the way
// its environment allows, chosen by one environment variable,
// MYCORRIZAL_DISCOVERY:
//
//   - "static" (a laptop, the default): the gossip addresses in
//     MYCORRIZAL_SEEDS, comma-separated ("127.0.0.1:7946,127.0.0.1:7956");
//     none for the first node.
//   - "dns" (Kubernetes): the name in MYCORRIZAL_DNS_NAME. A headless
//     service name ("mycorrizal.default.svc.cluster.local") resolves to
//     every pod's IP, each paired with MYCORRIZAL_GOSSIP_PORT; a name that
//     starts with "_" is an SRV name
//     ("_gossip._udp.mycorrizal.default.svc.cluster.local") whose records
//     carry the ports.
//   - "consul" (VMs): the healthy instances of the Consul service
//     MYCORRIZAL_CONSUL_SERVICE (default "mycorrizal") known to the agent at
//     CONSUL_HTTP_ADDR (default localhost:8500; CONSUL_HTTP_TOKEN and the
//     other CONSUL_* variables apply). The node registers itself there and
//     deregisters when it shuts down.
//
// Whatever the backend, the node joins what it finds at start, again every
// join-retry interval while it is alone, and every discovery interval
// (MYCORRIZAL_DISCOVERY_INTERVAL, default 30s) once it has peers, so nodes
// may start in any order and new ones are found without restarts. A
// backend that cannot be asked is logged and changes nothing.
//
// Other settings, all optional:
//
//	MYCORRIZAL_ID                  node ID (default a random UUID)
//	MYCORRIZAL_BIND_ADDR           IP for gossip and QUIC, reachable by peers (default 127.0.0.1)
//	MYCORRIZAL_GOSSIP_PORT         gossip port, UDP and TCP (default 7946)
//	MYCORRIZAL_TRANSPORT_PORT      QUIC port, UDP (default 0: any free port, advertised by gossip)
//	MYCORRIZAL_DISCOVERY_INTERVAL  re-discovery period once the node has peers (default 30s)
//	MYCORRIZAL_DNS_RESOLVERS       DNS servers, comma-separated ip:port (default /etc/resolv.conf)
//	MYCORRIZAL_CA_CERT/_KEY        PEM files of the CA every node mints its certificate from
//	                               (default: the development CA of this machine's user cache dir)
//	MYCORRIZAL_GOSSIP_KEY          base64 key of 16, 24 or 32 bytes encrypting gossip
//	MYCORRIZAL_HTTP_ADDR           address of an HTTP server with /ready and /members (default none)
//	MYCORRIZAL_SHUTDOWN_TIMEOUT    bound on the graceful shutdown (default 25s)
//
// The node prints its members every few seconds, and shuts down
// gracefully (deregisters, hands its cache keys to their next owners,
// leaves) on SIGINT or SIGTERM; a second signal kills it at once. The
// signal handling is this program's: the library never installs any.
//
// Three nodes on a laptop:
//
//	MYCORRIZAL_ID=a go run ./examples/discovery
//	MYCORRIZAL_ID=b MYCORRIZAL_GOSSIP_PORT=7956 MYCORRIZAL_SEEDS=127.0.0.1:7946 go run ./examples/discovery
//	MYCORRIZAL_ID=c MYCORRIZAL_GOSSIP_PORT=7966 MYCORRIZAL_SEEDS=127.0.0.1:7946 go run ./examples/discovery
//
// See README.md for Kubernetes (kubernetes.yaml) and Consul.
package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/google/uuid"

	"github.com/mycorrizal/mycorrizal"
	"github.com/mycorrizal/mycorrizal/adapters/certs/ca"
	"github.com/mycorrizal/mycorrizal/adapters/discovery/consul"
	"github.com/mycorrizal/mycorrizal/adapters/discovery/dnssd"
	"github.com/mycorrizal/mycorrizal/adapters/discovery/static"
	"github.com/mycorrizal/mycorrizal/ports"
)

const (
	// printEvery is how often the node prints its members.
	printEvery = 5 * time.Second
	// readyProbeWait bounds how long one /ready request waits for Ready:
	// short, so a probe answers well within its own timeout.
	readyProbeWait = 500 * time.Millisecond
)

func main() {
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	if err := run(logger); err != nil {
		logger.Error("discovery example stopped", "err", err)
		os.Exit(1)
	}
}

// run builds the node from the environment, starts it and serves until
// SIGINT or SIGTERM, then shuts it down.
func run(logger *slog.Logger) error {
	// Signal handling belongs in the program's main, never in the library.
	ctx, stopSignals := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stopSignals()

	shutdownTimeout, err := envDuration("MYCORRIZAL_SHUTDOWN_TIMEOUT", 25*time.Second)
	if err != nil {
		return err
	}
	opts, err := options(logger)
	if err != nil {
		return err
	}
	node, err := mycorrizal.New(opts...)
	if err != nil {
		return err
	}

	var draining atomic.Bool
	stopHTTP, err := serveHTTP(logger, os.Getenv("MYCORRIZAL_HTTP_ADDR"), node, &draining)
	if err != nil {
		return err
	}
	defer stopHTTP()

	startCtx, cancelStart := context.WithTimeout(ctx, 30*time.Second)
	err = node.Start(startCtx)
	cancelStart()
	if err != nil {
		return err
	}
	defer func() {
		// Probes now fail, so Kubernetes stops sending traffic while the
		// node hands its keys over and leaves.
		draining.Store(true)
		// After the first signal, a second one kills the process at once.
		stopSignals()
		logger.Info("shutting down", "timeout", shutdownTimeout)
		sctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
		defer cancel()
		if err := node.Shutdown(sctx); err != nil {
			logger.Error("shutdown", "err", err)
		}
	}()

	logger.Info("waiting until ready (first join attempt made, cache data held)")
	if err := node.Ready(ctx); err != nil {
		if ctx.Err() != nil {
			return nil // a signal during start-up: shut down quietly
		}
		return err
	}
	logger.Info("ready")

	printMembers(node)
	tick := time.NewTicker(printEvery)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
			printMembers(node)
		}
	}
}

// options reads the environment into node options.
func options(logger *slog.Logger) ([]mycorrizal.Option, error) {
	bind := envOr("MYCORRIZAL_BIND_ADDR", "127.0.0.1")
	ip, err := netip.ParseAddr(bind)
	if err != nil || ip.IsUnspecified() {
		return nil, fmt.Errorf("MYCORRIZAL_BIND_ADDR %q: want the IP address peers reach this node at (the pod's or the VM's), not a name or 0.0.0.0", bind)
	}
	gossipPort, err := envPort("MYCORRIZAL_GOSSIP_PORT", 7946)
	if err != nil {
		return nil, err
	}
	transportPort, err := envPort("MYCORRIZAL_TRANSPORT_PORT", 0)
	if err != nil {
		return nil, err
	}
	// mycorrizal.New would read MYCORRIZAL_ID itself; the example needs
	// the ID first, for the certificate it mints.
	id := envOr(mycorrizal.EnvNodeID, uuid.NewString())
	opts := []mycorrizal.Option{
		mycorrizal.WithNodeID(id),
		mycorrizal.WithLogger(logger),
		mycorrizal.WithBindAddr(net.JoinHostPort(ip.String(), strconv.Itoa(gossipPort))),
		mycorrizal.WithTransportAddr(net.JoinHostPort(ip.String(), strconv.Itoa(transportPort))),
	}
	if d, err := envDuration("MYCORRIZAL_DISCOVERY_INTERVAL", 0); err != nil {
		return nil, err
	} else if d > 0 {
		opts = append(opts, mycorrizal.WithDiscoveryInterval(d))
	}

	disc, err := discovery(logger, gossipPort)
	if err != nil {
		return nil, err
	}
	opts = append(opts, mycorrizal.WithDiscovery(disc))

	certFile, keyFile := os.Getenv("MYCORRIZAL_CA_CERT"), os.Getenv("MYCORRIZAL_CA_KEY")
	switch {
	case certFile != "" && keyFile != "":
		// Every node mints its own leaf (CN and URI SAN = its node ID)
		// from the shared CA, which is what peers check.
		certs, err := ca.New(ca.Config{CACertFile: certFile, CAKeyFile: keyFile, NodeID: ports.NodeID(id), Logger: logger})
		if err != nil {
			return nil, err
		}
		opts = append(opts, mycorrizal.WithCertSource(certs))
	case certFile != "" || keyFile != "":
		return nil, errors.New("set both MYCORRIZAL_CA_CERT and MYCORRIZAL_CA_KEY, or neither")
	default:
		// The development CA in the user's cache directory: processes of
		// one machine trust each other, nothing else does. The library
		// logs a warning.
	}

	if k := os.Getenv("MYCORRIZAL_GOSSIP_KEY"); k != "" {
		key, err := base64.StdEncoding.DecodeString(strings.TrimSpace(k))
		if err != nil {
			return nil, fmt.Errorf("MYCORRIZAL_GOSSIP_KEY is not base64: %w", err)
		}
		opts = append(opts, mycorrizal.WithGossipKey(key))
	}
	return opts, nil
}

// discovery builds the backend MYCORRIZAL_DISCOVERY names.
func discovery(logger *slog.Logger, gossipPort int) (ports.Discovery, error) {
	switch kind := envOr("MYCORRIZAL_DISCOVERY", "static"); kind {
	case "static":
		seeds := splitList(os.Getenv("MYCORRIZAL_SEEDS"))
		logger.Info("discovery: static seeds", "seeds", seeds)
		return static.New(seeds...)
	case "dns":
		name := os.Getenv("MYCORRIZAL_DNS_NAME")
		if name == "" {
			return nil, errors.New("MYCORRIZAL_DISCOVERY=dns needs MYCORRIZAL_DNS_NAME, such as mycorrizal.default.svc.cluster.local")
		}
		cfg := dnssd.Config{Name: name, Mode: dnssd.ModeHeadless, Port: gossipPort,
			Resolvers: splitList(os.Getenv("MYCORRIZAL_DNS_RESOLVERS")), Logger: logger}
		if strings.HasPrefix(name, "_") {
			cfg.Mode, cfg.Port = dnssd.ModeSRV, 0 // SRV records carry the ports
		}
		d, err := dnssd.New(cfg)
		if err != nil {
			return nil, err
		}
		logger.Info("discovery: DNS", "name", d.Name(), "mode", cfg.Mode.String(), "resolvers", d.Resolvers())
		return d, nil
	case "consul":
		service := envOr("MYCORRIZAL_CONSUL_SERVICE", "mycorrizal")
		c, err := consul.New(consul.Config{Address: os.Getenv("CONSUL_HTTP_ADDR"), Service: service, Logger: logger})
		if err != nil {
			return nil, err
		}
		logger.Info("discovery: Consul", "service", service, "agent", envOr("CONSUL_HTTP_ADDR", "localhost:8500"))
		return c, nil
	default:
		return nil, fmt.Errorf("MYCORRIZAL_DISCOVERY %q: want static, dns or consul", kind)
	}
}

// serveHTTP serves /ready and /members on addr, if addr is set, until the
// returned function is called; that function stops the server and waits
// for its goroutine.
func serveHTTP(logger *slog.Logger, addr string, node *mycorrizal.Node, draining *atomic.Bool) (stop func(), err error) {
	if addr == "" {
		return func() {}, nil
	}
	mux := http.NewServeMux()
	// /ready answers 200 once the node has made its first join attempt and
	// holds the cache data it owns (Node.Ready), and 503 before that and
	// while it shuts down: a restarted pod takes no traffic without its
	// data.
	mux.HandleFunc("GET /ready", func(w http.ResponseWriter, r *http.Request) {
		if draining.Load() {
			http.Error(w, "shutting down", http.StatusServiceUnavailable)
			return
		}
		ctx, cancel := context.WithTimeout(r.Context(), readyProbeWait)
		defer cancel()
		if err := node.Ready(ctx); err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ready")
	})
	mux.HandleFunc("GET /members", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(node.Members())
	})
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("MYCORRIZAL_HTTP_ADDR: %w", err)
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			logger.Error("HTTP server", "err", err)
		}
	}()
	logger.Info("HTTP server listening", "addr", ln.Addr().String(), "paths", "/ready /members")
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
		<-done
	}, nil
}

// printMembers prints the members the node sees, one line.
func printMembers(node *mycorrizal.Node) {
	members := node.Members()
	parts := make([]string, 0, len(members))
	for _, m := range members {
		parts = append(parts, fmt.Sprintf("%s@%s", m.ID, m.GossipAddr))
	}
	fmt.Printf("%s %s sees %d member(s): %s\n", time.Now().Format(time.TimeOnly), node.ID(), len(members), strings.Join(parts, " "))
}

// envOr returns the environment variable key, or def when it is empty.
func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}

// envPort reads a port number (0 to 65535) from key, def when unset.
func envPort(key string, def int) (int, error) {
	v := os.Getenv(key)
	if v == "" {
		return def, nil
	}
	p, err := strconv.Atoi(v)
	if err != nil || p < 0 || p > 65535 {
		return 0, fmt.Errorf("%s %q: want a port number", key, v)
	}
	return p, nil
}

// envDuration reads a positive duration ("30s") from key, def when unset.
func envDuration(key string, def time.Duration) (time.Duration, error) {
	v := os.Getenv(key)
	if v == "" {
		return def, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		return 0, fmt.Errorf("%s %q: want a positive duration such as 30s", key, v)
	}
	return d, nil
}

// splitList splits a comma-separated list, dropping empty items.
func splitList(s string) []string {
	var out []string
	for _, item := range strings.Split(s, ",") {
		if item = strings.TrimSpace(item); item != "" {
			out = append(out, item)
		}
	}
	return out
}
