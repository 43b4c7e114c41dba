package integration

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mycorrizal/mycorrizal"
	"github.com/mycorrizal/mycorrizal/adapters/certs/ca"
	"github.com/mycorrizal/mycorrizal/ports"
	"github.com/mycorrizal/mycorrizal/testkit"
)

// Environment of a node process.
const (
	envNodeID    = "MYCO_TEST_NODE_ID"
	envGossip    = "MYCO_TEST_GOSSIP"    // bind host:port
	envTransport = "MYCO_TEST_TRANSPORT" // QUIC listen host:port
	envSeeds     = "MYCO_TEST_SEEDS"     // comma-separated gossip addresses
	envCADir     = "MYCO_TEST_CA_DIR"    // development CA directory
	envFast      = "MYCO_TEST_FAST"      // "1": short reconnect interval
)

func TestMain(m *testing.M) {
	if os.Getenv(envNodeID) != "" {
		os.Exit(runNode())
	}
	testkit.VerifyTestMain(m)
}

// runNode is the node process: it starts a node from the environment,
// hosts "echo" and "chat", and serves commands read from stdin:
//
//	members            -> "members a,b,c"
//	request ID         -> "response TEXT" | "error TEXT"
//	broadcast TEXT     -> "sent" | "error TEXT"
//	quit               -> "bye", after a graceful shutdown
//
// and prints "got FROM TEXT" for each chat message it receives.
func runNode() int {
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	id := os.Getenv(envNodeID)
	certs, err := ca.DevCA(ca.DevConfig{Dir: os.Getenv(envCADir), NodeID: ports.NodeID(id), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		fmt.Println("error", err)
		return 1
	}
	opts := []mycorrizal.Option{
		mycorrizal.WithNodeID(id),
		mycorrizal.WithLogger(logger),
		mycorrizal.WithBindAddr(os.Getenv(envGossip)),
		mycorrizal.WithTransportAddr(os.Getenv(envTransport)),
		mycorrizal.WithCertSource(certs),
		mycorrizal.WithJoinRetry(500 * time.Millisecond),
	}
	if os.Getenv(envFast) == "1" {
		opts = append(opts, mycorrizal.WithReconnect(500*time.Millisecond, time.Hour))
	}
	if s := os.Getenv(envSeeds); s != "" {
		opts = append(opts, mycorrizal.WithSeeds(strings.Split(s, ",")...))
	}
	n, err := mycorrizal.New(opts...)
	if err != nil {
		fmt.Println("error", err)
		return 1
	}
	var out sync.Mutex
	say := func(format string, args ...any) {
		out.Lock()
		defer out.Unlock()
		fmt.Printf(format+"\n", args...)
	}
	echo, _ := n.RegisterApplication("echo")
	echo.OnRequest(func(ctx context.Context, from ports.NodeID, p []byte) ([]byte, error) {
		return []byte(id + ":" + string(p)), nil
	})
	chat, _ := n.RegisterApplication("chat")
	chat.OnMessage(func(ctx context.Context, from ports.NodeID, p []byte) { say("got %s %s", from, p) })

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := n.Start(ctx); err != nil {
		say("error %v", err)
		return 1
	}
	if err := n.Ready(ctx); err != nil {
		say("error %v", err)
		return 1
	}
	say("ready")
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		cmd, arg, _ := strings.Cut(in.Text(), " ")
		switch cmd {
		case "members":
			var ids []string
			for _, m := range n.Members() {
				ids = append(ids, string(m.ID))
			}
			say("members %s", strings.Join(ids, ","))
		case "request":
			rctx, rcancel := context.WithTimeout(context.Background(), 3*time.Second)
			resp, err := echo.Request(rctx, ports.NodeID(arg), []byte("ping"))
			rcancel()
			if err != nil {
				say("error %v", err)
			} else {
				say("response %s", resp)
			}
		case "broadcast":
			bctx, bcancel := context.WithTimeout(context.Background(), 3*time.Second)
			err := chat.Broadcast(bctx, []byte(arg))
			bcancel()
			if err != nil {
				say("error %v", err)
			} else {
				say("sent")
			}
		case "quit":
			sctx, scancel := context.WithTimeout(context.Background(), 10*time.Second)
			err := n.Shutdown(sctx)
			scancel()
			if err != nil {
				say("error %v", err)
				return 1
			}
			say("bye")
			return 0
		default:
			say("error unknown command %q", cmd)
		}
	}
	sctx, scancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer scancel()
	_ = n.Shutdown(sctx)
	return 0
}

// proc is a node process driven by a test.
type proc struct {
	t       *testing.T
	id      string
	gossip  string
	cmd     *exec.Cmd
	stdin   io.WriteCloser
	replies chan string
	got     chan string
	exited  chan struct{}
	mu      sync.Mutex
}

// procSpec says how to start a node process.
type procSpec struct {
	id, gossip, transport string
	seeds                 []string
	caDir                 string
	wrap                  []string // command prefix, e.g. ip netns exec ns1
}

// startProc starts a node process and waits for it to be ready.
func startProc(t *testing.T, s procSpec) *proc {
	t.Helper()
	args := append(append([]string{}, s.wrap...), os.Args[0], "-test.run=^$")
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Env = append(os.Environ(),
		envNodeID+"="+s.id,
		envGossip+"="+s.gossip,
		envTransport+"="+s.transport,
		envSeeds+"="+strings.Join(s.seeds, ","),
		envCADir+"="+s.caDir,
		envFast+"=1",
	)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = &prefixWriter{t: t, prefix: s.id + ": "}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &proc{t: t, id: s.id, gossip: s.gossip, cmd: cmd, stdin: stdin,
		replies: make(chan string, 64), got: make(chan string, 1024), exited: make(chan struct{})}
	go func() {
		defer close(p.exited)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			line := sc.Text()
			if strings.HasPrefix(line, "got ") {
				p.got <- strings.TrimPrefix(line, "got ")
				continue
			}
			p.replies <- line
		}
		_ = cmd.Wait()
	}()
	t.Cleanup(p.kill)
	if r := p.reply(30 * time.Second); r != "ready" {
		t.Fatalf("node %s did not start: %q", s.id, r)
	}
	return p
}

func (p *proc) reply(d time.Duration) string {
	select {
	case r := <-p.replies:
		return r
	case <-p.exited:
		return "exited"
	case <-time.After(d):
		return "timeout"
	}
}

// do sends a command and returns its reply.
func (p *proc) do(cmd string) string {
	p.mu.Lock()
	defer p.mu.Unlock()
	if _, err := fmt.Fprintln(p.stdin, cmd); err != nil {
		return "error " + err.Error()
	}
	return p.reply(15 * time.Second)
}

// members returns the member IDs the node sees, sorted by the node.
func (p *proc) members() []string {
	r := p.do("members")
	list, ok := strings.CutPrefix(r, "members ")
	if !ok {
		return nil
	}
	return strings.Split(list, ",")
}

// quit shuts the node down gracefully and waits for it to exit.
func (p *proc) quit() {
	if r := p.do("quit"); r != "bye" {
		p.t.Errorf("node %s quit: %q", p.id, r)
	}
	select {
	case <-p.exited:
	case <-time.After(15 * time.Second):
		p.t.Errorf("node %s did not exit", p.id)
	}
}

// kill stops the process if it still runs.
func (p *proc) kill() {
	select {
	case <-p.exited:
		return
	default:
	}
	_ = p.cmd.Process.Kill()
	<-p.exited
}

// eventually polls cond until it holds or d passes.
func eventually(t *testing.T, d time.Duration, msg string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within %v: %s", d, msg)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// prefixWriter sends a process's stderr to the test log.
type prefixWriter struct {
	t      *testing.T
	prefix string
	mu     sync.Mutex
	done   bool
}

func (w *prefixWriter) Write(b []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.done {
		for _, line := range strings.Split(strings.TrimRight(string(b), "\n"), "\n") {
			w.t.Log(w.prefix + line)
		}
	}
	return len(b), nil
}
