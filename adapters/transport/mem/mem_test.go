package mem_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/mycorrizal/mycorrizal/adapters/transport/mem"
	"github.com/mycorrizal/mycorrizal/ports"
	"github.com/mycorrizal/mycorrizal/testkit/transporttest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func TestConformance(t *testing.T) {
	transporttest.Run(t, func(t *testing.T) transporttest.NewTransport {
		n := mem.NewNetwork()
		return func(id ports.NodeID) ports.Transport {
			tr, err := mem.New(n, mem.Config{})
			if err != nil {
				t.Fatal(err)
			}
			return tr
		}
	})
}

// TestConformanceSmallWindow runs the suite with a window smaller than
// most writes, so every transfer goes through flow control.
func TestConformanceSmallWindow(t *testing.T) {
	transporttest.Run(t, func(t *testing.T) transporttest.NewTransport {
		n := mem.NewNetwork()
		return func(id ports.NodeID) ports.Transport {
			tr, err := mem.New(n, mem.Config{Window: 1000})
			if err != nil {
				t.Fatal(err)
			}
			return tr
		}
	})
}

// conds is a Conditions the tests change while streams run.
type conds struct {
	mu    sync.Mutex
	links map[[2]ports.NodeID]mem.Link
}

func (c *conds) Link(from, to ports.NodeID) mem.Link {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.links[[2]ports.NodeID{from, to}]
}

func (c *conds) set(from, to ports.NodeID, l mem.Link) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.links == nil {
		c.links = make(map[[2]ports.NodeID]mem.Link)
	}
	c.links[[2]ports.NodeID{from, to}] = l
}

// pair is two listening transports on one network.
type pair struct {
	net  *mem.Network
	a, b *mem.Transport
	addr string // b's
}

func newPair(t *testing.T, cfg mem.Config) *pair {
	t.Helper()
	p := &pair{net: mem.NewNetwork()}
	var err error
	if p.a, err = mem.New(p.net, cfg); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.a.Close() })
	if p.b, err = mem.New(p.net, cfg); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.b.Close() })
	ctx := context.Background()
	if _, err := p.a.Listen(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	if p.addr, err = p.b.Listen(ctx, "b"); err != nil {
		t.Fatal(err)
	}
	return p
}

// connect opens a stream a→b and accepts it.
func (p *pair) connect(t *testing.T) (sa, sb ports.Stream) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	sa, err := p.a.Open(ctx, "b", p.addr)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	sb, err = p.b.Accept(ctx)
	if err != nil {
		t.Fatalf("Accept: %v", err)
	}
	for _, s := range []ports.Stream{sa, sb} {
		_ = s.SetDeadline(time.Now().Add(10 * time.Second))
	}
	return sa, sb
}

// eventually polls cond until it holds or 5 s pass.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

func TestNewValidates(t *testing.T) {
	n := mem.NewNetwork()
	for _, cfg := range []mem.Config{{Window: -1}, {Window: mem.MaxWindow + 1}} {
		if _, err := mem.New(n, cfg); !errors.Is(err, ports.ErrInvalidConfig) {
			t.Errorf("New(%+v) = %v; want ErrInvalidConfig", cfg, err)
		}
	}
	if _, err := mem.New(nil, mem.Config{}); !errors.Is(err, ports.ErrInvalidConfig) {
		t.Errorf("New(nil) = %v; want ErrInvalidConfig", err)
	}
}

func TestListen(t *testing.T) {
	n := mem.NewNetwork()
	ctx := context.Background()
	a, _ := mem.New(n, mem.Config{})
	defer a.Close()
	addr, err := a.Listen(ctx, "a")
	if err != nil || addr != "mem:a" || addr != mem.Addr("a") {
		t.Fatalf("Listen = %q, %v; want mem:a", addr, err)
	}
	if _, err := a.Listen(ctx, "a2"); err == nil {
		t.Error("second Listen succeeded")
	}
	dup, _ := mem.New(n, mem.Config{})
	defer dup.Close()
	if _, err := dup.Listen(ctx, "a"); !errors.Is(err, mem.ErrAddrInUse) {
		t.Errorf("Listen on a live address = %v; want ErrAddrInUse", err)
	}
	if _, err := dup.Listen(ctx, ""); !errors.Is(err, ports.ErrInvalidConfig) {
		t.Errorf("Listen with an empty ID = %v; want ErrInvalidConfig", err)
	}
	// A restarted node takes the address back once the old one closed.
	_ = a.Close()
	if _, err := dup.Listen(ctx, "a"); err != nil {
		t.Errorf("Listen after the old node closed: %v", err)
	}
	if _, err := a.Listen(ctx, "a3"); !errors.Is(err, ports.ErrClosed) {
		t.Errorf("Listen after Close = %v; want ErrClosed", err)
	}
}

func TestNotStarted(t *testing.T) {
	n := mem.NewNetwork()
	tr, _ := mem.New(n, mem.Config{})
	defer tr.Close()
	ctx := context.Background()
	if _, err := tr.Accept(ctx); !errors.Is(err, ports.ErrNotStarted) {
		t.Errorf("Accept before Listen = %v; want ErrNotStarted", err)
	}
	if _, err := tr.Open(ctx, "b", "mem:b"); !errors.Is(err, ports.ErrNotStarted) {
		t.Errorf("Open before Listen = %v; want ErrNotStarted", err)
	}
}

func TestOpenUnknownAddress(t *testing.T) {
	p := newPair(t, mem.Config{})
	if _, err := p.a.Open(context.Background(), "ghost", "mem:ghost"); !errors.Is(err, ports.ErrUnreachable) {
		t.Errorf("Open to an unknown address = %v; want ErrUnreachable", err)
	}
}

func TestDownMakesOpenFail(t *testing.T) {
	p := newPair(t, mem.Config{})
	c := &conds{}
	p.net.SetConditions(c)
	for _, dir := range [][2]ports.NodeID{{"a", "b"}, {"b", "a"}} {
		c.set(dir[0], dir[1], mem.Link{Down: true})
		if _, err := p.a.Open(context.Background(), "b", p.addr); !errors.Is(err, ports.ErrUnreachable) {
			t.Errorf("Open with link %s→%s down = %v; want ErrUnreachable", dir[0], dir[1], err)
		}
		c.set(dir[0], dir[1], mem.Link{})
	}
	// Identity is not revealed across a partition: unreachable wins.
	c.set("a", "b", mem.Link{Down: true})
	if _, err := p.a.Open(context.Background(), "x", p.addr); !errors.Is(err, ports.ErrUnreachable) {
		t.Errorf("Open claiming the wrong peer across a partition = %v; want ErrUnreachable", err)
	}
	p.net.SetConditions(nil)
	sa, _ := p.connect(t)
	_ = sa.Close()
}

// TestDownStallsAndResumes: bytes written while a link is down wait, none
// is lost, and they flow once the partition heals; the other direction is
// unaffected.
func TestDownStallsAndResumes(t *testing.T) {
	p := newPair(t, mem.Config{Window: 4096})
	sa, sb := p.connect(t)
	c := &conds{}
	c.set("a", "b", mem.Link{Down: true})
	p.net.SetConditions(c)

	data := bytes.Repeat([]byte("0123456789abcdef"), 1024) // 16 KiB: four windows
	var mu sync.Mutex
	var written int
	wrote := make(chan error, 1)
	go func() {
		for off := 0; off < len(data); off += 1000 {
			n, err := sa.Write(data[off:min(off+1000, len(data))])
			mu.Lock()
			written += n
			mu.Unlock()
			if err != nil {
				wrote <- err
				return
			}
		}
		wrote <- sa.CloseWrite()
	}()

	got := make(chan []byte, 1)
	readErr := make(chan error, 1)
	go func() {
		b, err := io.ReadAll(sb)
		got <- b
		readErr <- err
	}()

	// The writer fills the window and stalls; the reader gets nothing.
	eventually(t, "writer to fill the window", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return written >= 3000
	})
	time.Sleep(50 * time.Millisecond)
	mu.Lock()
	w := written
	mu.Unlock()
	if w > 4096 {
		t.Fatalf("writer queued %d bytes past a 4096-byte window during the partition", w)
	}
	select {
	case b := <-got:
		t.Fatalf("reader returned %d bytes during the partition", len(b))
	default:
	}

	// The reverse direction still works.
	if _, err := sb.Write([]byte("pong")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 4)
	if _, err := io.ReadFull(sa, buf); err != nil || string(buf) != "pong" {
		t.Fatalf("reverse Read = %q, %v", buf, err)
	}

	p.net.SetConditions(nil) // heal
	select {
	case err := <-wrote:
		if err != nil {
			t.Fatalf("writer: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("writer did not finish after the partition healed")
	}
	if b := <-got; !bytes.Equal(b, data) {
		t.Errorf("received %d bytes, differing from the %d sent", len(b), len(data))
	}
	if err := <-readErr; err != nil {
		t.Errorf("reader: %v", err)
	}
}

// TestPokeReevaluates: a Conditions that changes its answers in place is
// re-read after Poke.
func TestPokeReevaluates(t *testing.T) {
	p := newPair(t, mem.Config{})
	sa, sb := p.connect(t)
	c := &conds{}
	c.set("a", "b", mem.Link{Down: true})
	p.net.SetConditions(c)
	if _, err := sa.Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
	res := make(chan error, 1)
	go func() {
		_, err := io.ReadFull(sb, make([]byte, 1))
		res <- err
	}()
	time.Sleep(20 * time.Millisecond)
	c.set("a", "b", mem.Link{}) // changed in place: readers not woken yet
	p.net.Poke()
	select {
	case err := <-res:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Read did not resume after Poke")
	}
}

func TestDelay(t *testing.T) {
	const delay = 100 * time.Millisecond
	p := newPair(t, mem.Config{})
	sa, sb := p.connect(t)
	c := &conds{}
	c.set("a", "b", mem.Link{Delay: delay})
	p.net.SetConditions(c)

	start := time.Now()
	if _, err := sa.Write([]byte("late")); err != nil {
		t.Fatal(err)
	}
	if err := sa.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	// b→a has no delay.
	if _, err := sb.Write([]byte("now")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 3)
	if _, err := io.ReadFull(sa, buf); err != nil || string(buf) != "now" {
		t.Fatalf("undelayed Read = %q, %v", buf, err)
	}
	got, err := io.ReadAll(sb)
	if err != nil || string(got) != "late" {
		t.Fatalf("delayed Read = %q, %v", got, err)
	}
	if el := time.Since(start); el < delay {
		t.Errorf("delayed bytes arrived after %v; want at least %v", el, delay)
	}
}

// TestWriteBlocksOnWindow: one Write larger than the window returns only
// once the reader consumed enough.
func TestWriteBlocksOnWindow(t *testing.T) {
	p := newPair(t, mem.Config{Window: 1024})
	sa, sb := p.connect(t)
	data := bytes.Repeat([]byte{7}, 10_000)
	res := make(chan error, 1)
	go func() {
		_, err := sa.Write(data)
		res <- err
	}()
	time.Sleep(20 * time.Millisecond)
	select {
	case err := <-res:
		t.Fatalf("Write of 10000 bytes into a 1024-byte window returned (%v) with no reader", err)
	default:
	}
	got := make([]byte, len(data))
	if _, err := io.ReadFull(sb, got); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("ReadFull = %v", err)
	}
	if err := <-res; err != nil {
		t.Fatal(err)
	}
}

// TestWriteCopies: the caller may reuse its buffer at once.
func TestWriteCopies(t *testing.T) {
	p := newPair(t, mem.Config{})
	sa, sb := p.connect(t)
	buf := []byte("first")
	if _, err := sa.Write(buf); err != nil {
		t.Fatal(err)
	}
	copy(buf, "XXXXX")
	got := make([]byte, 5)
	if _, err := io.ReadFull(sb, got); err != nil || string(got) != "first" {
		t.Fatalf("Read = %q, %v; want \"first\"", got, err)
	}
}

// TestAcceptBacklog: Open blocks while the peer's backlog is full, until
// its ctx ends; an accepted stream makes room.
func TestAcceptBacklog(t *testing.T) {
	p := newPair(t, mem.Config{})
	ctx := context.Background()
	for i := range mem.AcceptBacklog {
		if _, err := p.a.Open(ctx, "b", p.addr); err != nil {
			t.Fatalf("Open %d: %v", i, err)
		}
	}
	short, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
	defer cancel()
	if _, err := p.a.Open(short, "b", p.addr); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Open into a full backlog = %v; want DeadlineExceeded", err)
	}
	if _, err := p.b.Accept(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := p.a.Open(ctx, "b", p.addr); err != nil {
		t.Fatalf("Open after Accept made room: %v", err)
	}
}

// TestPeerCrashErrors: the peer of a closed transport can tell a crash
// (ErrPeerGone) from a reset.
func TestPeerCrashErrors(t *testing.T) {
	p := newPair(t, mem.Config{})
	sa, sb := p.connect(t)
	_ = p.a.Close()
	if _, err := sb.Read(make([]byte, 1)); !errors.Is(err, ports.ErrStreamReset) || !errors.Is(err, ports.ErrPeerGone) {
		t.Errorf("peer Read = %v; want ErrStreamReset and ErrPeerGone", err)
	}
	if _, err := sa.Read(make([]byte, 1)); !errors.Is(err, ports.ErrStreamReset) || !errors.Is(err, ports.ErrClosed) {
		t.Errorf("local Read = %v; want ErrStreamReset and ErrClosed", err)
	}
}

// TestAllocs: a small Write+Read round trip allocates at most the copy of
// the written bytes.
func TestAllocs(t *testing.T) {
	p := newPair(t, mem.Config{})
	sa, sb := p.connect(t)
	msg, buf := make([]byte, 64), make([]byte, 64)
	allocs := testing.AllocsPerRun(1000, func() {
		if _, err := sa.Write(msg); err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(sb, buf); err != nil {
			t.Fatal(err)
		}
	})
	t.Logf("%v allocations per 64-byte Write+Read", allocs)
	if allocs > 1 {
		t.Errorf("Write+Read of 64 bytes: %v allocations; want at most 1", allocs)
	}
}

// TestFinishedStreamsForgotten: a transport tracks a stream end only until
// it is finished, however it finishes, so its registry stays bounded by the
// streams in use.
func TestFinishedStreamsForgotten(t *testing.T) {
	p := newPair(t, mem.Config{})
	check := func(what string, wantA, wantB int) {
		t.Helper()
		if a, b := mem.Streams(p.a), mem.Streams(p.b); a != wantA || b != wantB {
			t.Fatalf("%s: a tracks %d streams, b %d; want %d, %d", what, a, b, wantA, wantB)
		}
	}

	sa, sb := p.connect(t)
	check("open", 1, 1)
	_ = sa.Close()
	check("after one Close", 0, 1)
	_ = sb.Close()
	check("after both Close", 0, 0)

	// Ended both ways and read to io.EOF, without Close.
	sa, sb = p.connect(t)
	_ = sa.CloseWrite()
	_ = sb.CloseWrite()
	if _, err := io.ReadAll(sa); err != nil {
		t.Fatal(err)
	}
	check("a read to EOF", 0, 1)
	if _, err := io.ReadAll(sb); err != nil {
		t.Fatal(err)
	}
	check("both read to EOF", 0, 0)

	sa, _ = p.connect(t)
	_ = sa.Reset()
	check("after Reset", 0, 0)

	_, _ = p.connect(t)
	_ = p.a.ClosePeer("b")
	check("after ClosePeer", 0, 0)

	// An Open abandoned while the backlog is full leaves nothing behind.
	for range mem.AcceptBacklog {
		if _, err := p.a.Open(context.Background(), "b", p.addr); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	if _, err := p.a.Open(ctx, "b", p.addr); err == nil {
		t.Fatal("Open into a full backlog succeeded")
	}
	check("after an abandoned Open", mem.AcceptBacklog, mem.AcceptBacklog)
}
