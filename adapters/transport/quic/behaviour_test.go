package quic_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mycorrizal/mycorrizal/adapters/transport/quic"
	"github.com/mycorrizal/mycorrizal/ports"
)

// TestConnectionReuse: concurrent Opens to one peer share one dial and one
// connection, and the peer's Opens back reuse it too.
func TestConnectionReuse(t *testing.T) {
	ca := newCA(t, "ca")
	a, b := caNode(t, ca, "a", quic.Config{}), caNode(t, ca, "b", quic.Config{})
	const n = 16
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for range n {
		wg.Go(func() {
			s, err := a.tr.Open(opCtx(t), b.id, b.addr)
			if err != nil {
				errs <- err
				return
			}
			_ = s.Reset()
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("concurrent Open: %v", err)
	}
	if got := quic.Conns(a.tr, b.id); got != 1 {
		t.Errorf("a has %d connections with b after %d concurrent Opens; want 1", got, n)
	}
	eventually(t, 5*time.Second, "b to register the connection", func() bool { return quic.Conns(b.tr, a.id) == 1 })
	connect(t, b, a)
	if ga, gb := quic.Conns(a.tr, b.id), quic.Conns(b.tr, a.id); ga != 1 || gb != 1 {
		t.Errorf("after b opened a stream back: a has %d connections, b %d; want 1 and 1", ga, gb)
	}
}

// TestClosePeerErrors: ClosePeer resets the peer's streams on both sides
// with errors wrapping ErrStreamReset and ErrPeerGone, forgets the
// connections, and the next Open dials again; other peers are untouched.
func TestClosePeerErrors(t *testing.T) {
	ca := newCA(t, "ca")
	a, b, c := caNode(t, ca, "a", quic.Config{}), caNode(t, ca, "b", quic.Config{}), caNode(t, ca, "c", quic.Config{})
	sa, sb := connect(t, a, b)
	tc, _ := connect(t, a, c)
	blocked := make(chan error, 1)
	go func() {
		_, err := sb.Read(make([]byte, 1))
		blocked <- err
	}()
	if err := a.tr.ClosePeer(b.id); err != nil {
		t.Fatal(err)
	}
	if got := quic.Conns(a.tr, b.id); got != 0 {
		t.Errorf("a keeps %d connections with b after ClosePeer", got)
	}
	if _, err := sa.Read(make([]byte, 1)); !errors.Is(err, ports.ErrStreamReset) || !errors.Is(err, ports.ErrPeerGone) {
		t.Errorf("local Read after ClosePeer = %v; want ErrStreamReset and ErrPeerGone", err)
	}
	if _, err := sa.Write([]byte("x")); !errors.Is(err, ports.ErrStreamReset) {
		t.Errorf("local Write after ClosePeer = %v; want ErrStreamReset", err)
	}
	select {
	case err := <-blocked:
		if !errors.Is(err, ports.ErrStreamReset) || !errors.Is(err, ports.ErrPeerGone) {
			t.Errorf("peer's blocked Read after ClosePeer = %v; want ErrStreamReset and ErrPeerGone", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("peer's blocked Read did not return after ClosePeer")
	}
	if _, err := tc.Write([]byte("still here")); err != nil {
		t.Errorf("stream with c after ClosePeer(b): %v", err)
	}
	eventually(t, 5*time.Second, "b to forget the closed connection", func() bool { return quic.Conns(b.tr, a.id) == 0 })
	connect(t, a, b)
	if got := quic.Conns(a.tr, b.id); got != 1 {
		t.Errorf("a has %d connections with b after re-dialing; want 1", got)
	}
}

// TestTransportCloseErrors: after Close, our streams fail with
// ErrStreamReset and ErrClosed, the peer's with ErrStreamReset and
// ErrPeerGone.
func TestTransportCloseErrors(t *testing.T) {
	ca := newCA(t, "ca")
	a, b := caNode(t, ca, "a", quic.Config{}), caNode(t, ca, "b", quic.Config{})
	sa, sb := connect(t, a, b)
	if err := a.tr.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := sa.Read(make([]byte, 1)); !errors.Is(err, ports.ErrStreamReset) || !errors.Is(err, ports.ErrClosed) {
		t.Errorf("own Read after Close = %v; want ErrStreamReset and ErrClosed", err)
	}
	if _, err := sb.Read(make([]byte, 1)); !errors.Is(err, ports.ErrStreamReset) || !errors.Is(err, ports.ErrPeerGone) {
		t.Errorf("peer Read after Close = %v; want ErrStreamReset and ErrPeerGone", err)
	}
	eventually(t, 5*time.Second, "b to forget the connection", func() bool { return quic.Conns(b.tr, a.id) == 0 })
}

// TestStreamIdleTimeout: a stream with no Read or Write returning for
// StreamIdleTimeout is reset on both sides; a busy one is not; finished
// streams are forgotten.
func TestStreamIdleTimeout(t *testing.T) {
	ca := newCA(t, "ca")
	const idle = 300 * time.Millisecond
	a := caNode(t, ca, "a", quic.Config{StreamIdleTimeout: idle})
	b := caNode(t, ca, "b", quic.Config{StreamIdleTimeout: time.Hour})

	quiet, quietB := connect(t, a, b)
	busy, busyB := connect(t, a, b)
	start := time.Now()
	peerRead := make(chan error, 1)
	go func() {
		_, err := quietB.Read(make([]byte, 1))
		peerRead <- err
	}()
	stop := make(chan struct{})
	busyDone := make(chan error, 1)
	go func() { // keep busy moving every 50 ms
		buf := make([]byte, 1)
		for {
			select {
			case <-stop:
				busyDone <- nil
				return
			case <-time.After(50 * time.Millisecond):
			}
			if _, err := busy.Write(buf); err != nil {
				busyDone <- err
				return
			}
			if _, err := io.ReadFull(busyB, buf); err != nil {
				busyDone <- err
				return
			}
		}
	}()

	select {
	case err := <-peerRead:
		elapsed := time.Since(start)
		if !errors.Is(err, ports.ErrStreamReset) {
			t.Errorf("peer Read on the idle stream = %v; want ErrStreamReset", err)
		}
		if elapsed < idle {
			t.Errorf("idle stream reset after %v, before the %v timeout", elapsed, idle)
		}
		t.Logf("idle stream reset after %v", elapsed)
	case <-time.After(10 * idle):
		t.Fatalf("idle stream not reset within %v", 10*idle)
	}
	if _, err := quiet.Write([]byte("x")); !errors.Is(err, ports.ErrStreamReset) || !strings.Contains(err.Error(), "idle") {
		t.Errorf("Write on the idle stream = %v; want ErrStreamReset saying idle", err)
	}
	close(stop)
	if err := <-busyDone; err != nil {
		t.Errorf("busy stream failed: %v", err)
	}

	// Finished streams leave the registry without waiting for the sweeper.
	_ = busy.Close()
	_ = busyB.Close()
	eventually(t, 2*time.Second, "streams to be forgotten", func() bool { return quic.Streams(a.tr) == 0 })
}

// deadAddr returns the address of a UDP socket that swallows packets, so a
// handshake there times out.
func deadAddr(t testing.TB) string {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = pc.Close() })
	return pc.LocalAddr().String()
}

// TestDialBackoff: after a failed dial, a second Open to the same address
// fails at once during the backoff, saying when to retry; the dial table
// stays within MaxDialEntries.
func TestDialBackoff(t *testing.T) {
	ca := newCA(t, "ca")
	a := caNode(t, ca, "a", quic.Config{
		HandshakeTimeout: 200 * time.Millisecond,
		DialBackoffMin:   5 * time.Second,
		DialBackoffMax:   10 * time.Second,
		MaxDialEntries:   2,
	})
	dead := deadAddr(t)
	start := time.Now()
	_, err := a.tr.Open(opCtx(t), "ghost", dead)
	first := time.Since(start)
	if !errors.Is(err, ports.ErrUnreachable) {
		t.Fatalf("Open to a dead address = %v; want ErrUnreachable", err)
	}
	start = time.Now()
	_, err = a.tr.Open(opCtx(t), "ghost", dead)
	second := time.Since(start)
	if !errors.Is(err, ports.ErrUnreachable) || !strings.Contains(err.Error(), "next attempt in") {
		t.Fatalf("second Open = %v; want ErrUnreachable saying when to retry", err)
	}
	if second > 50*time.Millisecond || second > first/2 {
		t.Errorf("second Open took %v (first %v); want it to fail fast", second, first)
	}
	t.Logf("first Open failed after %v, second after %v: %v", first, second, err)

	// More dead addresses than table entries.
	for i := range 3 {
		_, _ = a.tr.Open(opCtx(t), ports.NodeID(fmt.Sprintf("ghost-%d", i)), deadAddr(t))
	}
	if n := quic.DialEntries(a.tr); n > 2 {
		t.Errorf("dial table holds %d entries; want at most MaxDialEntries = 2", n)
	}
}

// TestBackoffExpires: once the backoff passed, Open dials again, and a
// successful dial clears the failure state.
func TestBackoffExpires(t *testing.T) {
	ca := newCA(t, "ca")
	a := caNode(t, ca, "a", quic.Config{
		HandshakeTimeout: 200 * time.Millisecond,
		DialBackoffMin:   100 * time.Millisecond,
		DialBackoffMax:   100 * time.Millisecond,
	})
	// Reserve an address, make the dial there fail, then start b on it.
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := pc.LocalAddr().String()
	if _, err := a.tr.Open(opCtx(t), "b", addr); !errors.Is(err, ports.ErrUnreachable) {
		t.Fatalf("Open to a silent address = %v; want ErrUnreachable", err)
	}
	_ = pc.Close()
	b := caNode(t, ca, "b", quic.Config{ListenAddr: addr})
	eventually(t, 5*time.Second, "Open to succeed after the backoff", func() bool {
		s, err := a.tr.Open(opCtx(t), b.id, b.addr)
		if err != nil {
			return false
		}
		_ = s.Reset()
		return true
	})
	if n := quic.DialEntries(a.tr); n != 0 {
		t.Errorf("dial table holds %d entries after a successful dial; want 0", n)
	}
}

// TestDeadConnectionRedial: when a peer crashes (no CONNECTION_CLOSE), the
// connection is forgotten after MaxIdleTimeout and the next Open reaches
// the restarted peer.
func TestDeadConnectionRedial(t *testing.T) {
	ca := newCA(t, "ca")
	cfg := quic.Config{KeepAlivePeriod: 100 * time.Millisecond, MaxIdleTimeout: 500 * time.Millisecond}
	a := caNode(t, ca, "a", cfg)
	b := caNode(t, ca, "b", cfg)
	sa, _ := connect(t, a, b)
	quic.Crash(b.tr)
	start := time.Now()
	if _, err := sa.Read(make([]byte, 1)); !errors.Is(err, ports.ErrStreamReset) || !errors.Is(err, ports.ErrPeerGone) {
		t.Errorf("Read on a stream to a crashed peer = %v; want ErrStreamReset and ErrPeerGone", err)
	}
	eventually(t, 5*time.Second, "a to forget the dead connection", func() bool { return quic.Conns(a.tr, b.id) == 0 })
	t.Logf("dead connection detected after %v", time.Since(start))

	cfg.ListenAddr = b.addr
	b2 := caNode(t, ca, "b", cfg)
	connect(t, a, b2)
}

// TestStatelessReset: with a StatelessResetKey, a peer that restarted on
// the same address ends the old connection at once, well before the idle
// timeout.
func TestStatelessReset(t *testing.T) {
	ca := newCA(t, "ca")
	key := &[32]byte{1, 2, 3}
	cfg := quic.Config{KeepAlivePeriod: 100 * time.Millisecond, MaxIdleTimeout: time.Minute, StatelessResetKey: key}
	a := caNode(t, ca, "a", cfg)
	b := caNode(t, ca, "b", cfg)
	sa, _ := connect(t, a, b)
	quic.Crash(b.tr)
	cfg.ListenAddr = b.addr
	b2 := caNode(t, ca, "b", cfg)
	start := time.Now()
	readErr := make(chan error, 1)
	go func() {
		_, err := sa.Read(make([]byte, 1))
		readErr <- err
	}()
	select {
	case err := <-readErr:
		if !errors.Is(err, ports.ErrPeerGone) {
			t.Errorf("Read after the peer restarted = %v; want ErrPeerGone", err)
		}
		t.Logf("old connection ended after %v: %v", time.Since(start), err)
	case <-time.After(10 * time.Second):
		t.Fatal("old connection still open 10 s after the peer restarted")
	}
	eventually(t, 2*time.Second, "a to forget the dead connection", func() bool { return quic.Conns(a.tr, b.id) == 0 })
	connect(t, a, b2)
}

// TestOpenCtx: Open honours a ctx that ends while it waits for a dial.
func TestOpenCtx(t *testing.T) {
	ca := newCA(t, "ca")
	a := caNode(t, ca, "a", quic.Config{HandshakeTimeout: 2 * time.Second})
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := a.tr.Open(ctx, "ghost", deadAddr(t))
	if !errors.Is(err, context.DeadlineExceeded) || time.Since(start) > time.Second {
		t.Errorf("Open with a 100 ms ctx = %v after %v; want the ctx error promptly", err, time.Since(start))
	}
}

// TestIPv6: nodes on the IPv6 loopback connect and reuse connections both
// ways.
func TestIPv6(t *testing.T) {
	if pc, err := net.ListenPacket("udp6", "[::1]:0"); err != nil {
		t.Skipf("no IPv6 loopback: %v", err)
	} else {
		_ = pc.Close()
	}
	ca := newCA(t, "ca")
	a := caNode(t, ca, "a", quic.Config{ListenAddr: "[::1]:0"})
	b := caNode(t, ca, "b", quic.Config{ListenAddr: "[::1]:0"})
	connect(t, a, b)
	eventually(t, 5*time.Second, "b to register the connection", func() bool { return quic.Conns(b.tr, a.id) == 1 })
	connect(t, b, a)
	if n := quic.Conns(b.tr, a.id); n != 1 {
		t.Errorf("b has %d connections with a; want the one a dialed, reused", n)
	}
}

// TestCloseUnblocksWrite: Close while a Write is blocked by flow control
// makes the Write return what it queued with ErrClosed; the peer then
// reads exactly that much, then io.EOF. Reset unblocks a Write too.
func TestCloseUnblocksWrite(t *testing.T) {
	ca := newCA(t, "ca")
	a, b := caNode(t, ca, "a", quic.Config{}), caNode(t, ca, "b", quic.Config{})
	for _, how := range []string{"Close", "Reset"} {
		sa, sb := connect(t, a, b)
		type result struct {
			n   int
			err error
		}
		wrote := make(chan result, 1)
		go func() {
			n, err := sa.Write(make([]byte, 64<<20)) // far beyond the windows
			wrote <- result{n, err}
		}()
		time.Sleep(100 * time.Millisecond) // let it block; correctness does not depend on it
		if how == "Close" {
			_ = sa.Close()
		} else {
			_ = sa.Reset()
		}
		var r result
		select {
		case r = <-wrote:
		case <-time.After(5 * time.Second):
			t.Fatalf("%s did not unblock Write", how)
		}
		if how == "Reset" {
			if !errors.Is(r.err, ports.ErrStreamReset) {
				t.Errorf("Write blocked at Reset = %d, %v; want ErrStreamReset", r.n, r.err)
			}
			continue
		}
		// Under load the writer may not have started before Close: then it
		// wrote nothing, which is still consistent if the peer reads nothing.
		if !errors.Is(r.err, ports.ErrClosed) || r.n < 0 || r.n >= 64<<20 {
			t.Errorf("Write blocked at Close = %d, %v; want part written and ErrClosed", r.n, r.err)
		}
		got, err := io.Copy(io.Discard, sb)
		if err != nil || got != int64(r.n) {
			t.Errorf("peer read %d bytes, %v; want the %d Write reported, then io.EOF", got, err, r.n)
		}
	}
}
