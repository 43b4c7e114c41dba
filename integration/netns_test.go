package integration

import (
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"
)

// requireTools skips the test unless it runs as root with the named tools,
// except under CI=true, where their absence fails the test: CI installs
// them (see the Makefile).
func requireTools(t *testing.T, tools ...string) {
	t.Helper()
	var missing []string
	if os.Geteuid() != 0 {
		missing = append(missing, "root")
	}
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			missing = append(missing, tool)
		}
	}
	if len(missing) == 0 {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("CI=true but this test cannot run without: %s", strings.Join(missing, ", "))
	}
	t.Skipf("needs %s (runs in CI)", strings.Join(missing, ", "))
}

// run runs a command, failing the test on error.
func run(t *testing.T, args ...string) {
	t.Helper()
	out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// hosts is a set of network namespaces, each one host with one address,
// joined by a bridge that lives in a namespace of its own (so the machine's
// own network is never touched).
type hosts struct {
	t      *testing.T
	prefix string
	names  []string
	addrs  []string
}

func newHosts(t *testing.T, n int) *hosts {
	h := &hosts{t: t, prefix: fmt.Sprintf("myc%d", os.Getpid()%10000)}
	br := h.prefix + "br"
	t.Cleanup(func() {
		for _, ns := range append(slices.Clone(h.names), br) {
			_ = exec.Command("ip", "netns", "del", ns).Run()
		}
	})
	run(t, "ip", "netns", "add", br)
	run(t, "ip", "-n", br, "link", "add", "br0", "type", "bridge")
	run(t, "ip", "-n", br, "link", "set", "br0", "up")
	for i := range n {
		ns := fmt.Sprintf("%sh%d", h.prefix, i)
		addr := fmt.Sprintf("10.77.0.%d", i+1)
		host, port := fmt.Sprintf("%sv%d", h.prefix, i), fmt.Sprintf("%sp%d", h.prefix, i)
		run(t, "ip", "netns", "add", ns)
		h.names = append(h.names, ns)
		h.addrs = append(h.addrs, addr)
		run(t, "ip", "link", "add", host, "type", "veth", "peer", "name", port)
		run(t, "ip", "link", "set", host, "netns", ns)
		run(t, "ip", "link", "set", port, "netns", br)
		run(t, "ip", "-n", br, "link", "set", port, "master", "br0")
		run(t, "ip", "-n", br, "link", "set", port, "up")
		run(t, "ip", "-n", ns, "link", "set", host, "name", "eth0")
		run(t, "ip", "-n", ns, "addr", "add", addr+"/24", "dev", "eth0")
		run(t, "ip", "-n", ns, "link", "set", "eth0", "up")
		run(t, "ip", "-n", ns, "link", "set", "lo", "up")
	}
	return h
}

// nft runs an nftables command inside host i.
func (h *hosts) nft(i int, args ...string) {
	h.t.Helper()
	run(h.t, append([]string{"ip", "netns", "exec", h.names[i], "nft"}, args...)...)
}

// filter installs an empty input/output filter table in host i.
func (h *hosts) filter(i int) {
	h.nft(i, "add", "table", "inet", "myc")
	h.nft(i, "add", "chain", "inet", "myc", "in", "{ type filter hook input priority 0; policy accept; }")
	h.nft(i, "add", "chain", "inet", "myc", "out", "{ type filter hook output priority 0; policy accept; }")
}

// cut drops everything host i sends or receives on its network interface.
func (h *hosts) cut(i int) {
	h.filter(i)
	h.nft(i, "add", "rule", "inet", "myc", "in", "iifname", "eth0", "drop")
	h.nft(i, "add", "rule", "inet", "myc", "out", "oifname", "eth0", "drop")
}

// lossy drops the given percentage of packets host i receives, at random.
func (h *hosts) lossy(i, percent int) {
	h.filter(i)
	h.nft(i, "add", "rule", "inet", "myc", "in", "iifname", "eth0", "numgen", "random", "mod", "100", "<", fmt.Sprint(percent), "drop")
}

// restore removes host i's filters.
func (h *hosts) restore(i int) { h.nft(i, "delete", "table", "inet", "myc") }

// TestMultiHost runs three nodes on three hosts (network namespaces joined
// by veth pairs and a bridge): one host is cut off with nftables and the
// others see it fail; it is restored and rejoins; with 5% random packet
// loss on every host, requests still succeed.
func TestMultiHost(t *testing.T) {
	requireTools(t, "ip", "nft")
	h := newHosts(t, 3)
	caDir := t.TempDir()
	var procs []*proc
	for i := range 3 {
		var seeds []string
		if i > 0 {
			seeds = []string{h.addrs[0] + ":7946"}
		}
		procs = append(procs, startProc(t, procSpec{
			id: fmt.Sprintf("h%d", i), gossip: h.addrs[i] + ":7946", transport: h.addrs[i] + ":7947",
			seeds: seeds, caDir: caDir, wrap: []string{"ip", "netns", "exec", h.names[i]},
		}))
	}
	all := []string{"h0", "h1", "h2"}
	for _, p := range procs {
		eventually(t, 30*time.Second, p.id+" sees all hosts", func() bool { return slices.Equal(p.members(), all) })
	}
	requestAll(t, procs, 1)

	t.Log("cutting h2 off")
	h.cut(2)
	eventually(t, 40*time.Second, "h0 and h1 see h2 fail", func() bool {
		return slices.Equal(procs[0].members(), []string{"h0", "h1"}) && slices.Equal(procs[1].members(), []string{"h0", "h1"})
	})
	eventually(t, 40*time.Second, "h2 sees the others fail", func() bool { return slices.Equal(procs[2].members(), []string{"h2"}) })
	if r := procs[0].do("request h2"); !strings.HasPrefix(r, "error") {
		t.Fatalf("request to the cut-off host: %q", r)
	}

	t.Log("restoring h2")
	h.restore(2)
	for _, p := range procs {
		eventually(t, 40*time.Second, p.id+" sees h2 rejoin", func() bool { return slices.Equal(p.members(), all) })
	}
	requestAll(t, procs, 1)

	t.Log("5% random packet loss on every host")
	for i := range 3 {
		h.lossy(i, 5)
	}
	requestAll(t, procs, 20)
	for _, p := range procs {
		p.quit()
	}
}

// requestAll sends rounds of requests between every pair of nodes and
// fails the test on any error.
func requestAll(t *testing.T, procs []*proc, rounds int) {
	t.Helper()
	for range rounds {
		for _, from := range procs {
			for _, to := range procs {
				if r := from.do("request " + to.id); r != "response "+to.id+":ping" {
					t.Fatalf("%s -> %s: %q", from.id, to.id, r)
				}
			}
		}
	}
}
