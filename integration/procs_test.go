package integration

import (
	"fmt"
	"net"
	"slices"
	"strings"
	"testing"
	"time"
)

// freePort returns a loopback port that was free a moment ago.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.LocalAddr().(*net.UDPAddr).Port
}

// TestThreeProcesses runs three node processes on loopback, with the
// default QUIC transport and a development CA they share through a
// directory: they form a cluster and exchange broadcasts and requests.
func TestThreeProcesses(t *testing.T) {
	if testing.Short() {
		t.Skip("starts processes")
	}
	caDir := t.TempDir()
	var procs []*proc
	var seeds []string
	for i := range 3 {
		gossip := fmt.Sprintf("127.0.0.1:%d", freePort(t))
		procs = append(procs, startProc(t, procSpec{
			id: fmt.Sprintf("p%d", i), gossip: gossip, transport: "127.0.0.1:0",
			seeds: slices.Clone(seeds), caDir: caDir,
		}))
		seeds = append(seeds, gossip)
	}
	want := []string{"p0", "p1", "p2"}
	for _, p := range procs {
		eventually(t, 20*time.Second, p.id+" sees all members", func() bool {
			return slices.Equal(p.members(), want)
		})
	}
	for _, from := range procs {
		for _, to := range procs {
			r := from.do("request " + to.id)
			if r != fmt.Sprintf("response %s:ping", to.id) {
				t.Fatalf("%s -> %s: %q", from.id, to.id, r)
			}
		}
	}
	if r := procs[1].do("broadcast hello-from-p1"); r != "sent" {
		t.Fatalf("broadcast: %q", r)
	}
	for _, p := range []*proc{procs[0], procs[2]} {
		select {
		case m := <-p.got:
			if m != "p1 hello-from-p1" {
				t.Fatalf("%s got %q", p.id, m)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("%s did not get the broadcast", p.id)
		}
	}
	// A graceful leave: the others stop counting it and requests fail fast.
	procs[2].quit()
	eventually(t, 20*time.Second, "leave seen", func() bool {
		return slices.Equal(procs[0].members(), []string{"p0", "p1"})
	})
	if r := procs[0].do("request p2"); !strings.HasPrefix(r, "error") {
		t.Fatalf("request to a node that left: %q", r)
	}
	procs[0].quit()
	procs[1].quit()
}
