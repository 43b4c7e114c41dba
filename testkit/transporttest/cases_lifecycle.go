package transporttest

import (
	"context"
	"errors"
	"io"
	"os"
	"time"

	"github.com/mycorrizal/mycorrizal/ports"
)

// testCloseWrite: after CloseWrite the peer reads the rest then io.EOF, and
// the other direction keeps working.
func testCloseWrite(e *env) {
	a, b := e.node("node-a"), e.node("node-b")
	sa, sb := e.connect(a, b)
	if _, err := sa.Write([]byte("hello")); err != nil {
		e.t.Fatalf("Write: %v", err)
	}
	if err := sa.CloseWrite(); err != nil {
		e.t.Fatalf("CloseWrite: %v", err)
	}
	got, err := io.ReadAll(sb)
	if err != nil || string(got) != "hello" {
		e.t.Fatalf("peer read %q, %v; want \"hello\" then io.EOF", got, err)
	}
	if _, err := sa.Write([]byte("more")); err == nil {
		e.t.Error("Write after CloseWrite succeeded")
	}
	if _, err := sb.Write([]byte("world")); err != nil {
		e.t.Fatalf("peer Write after our CloseWrite: %v", err)
	}
	buf := make([]byte, 5)
	if _, err := io.ReadFull(sa, buf); err != nil || string(buf) != "world" {
		e.t.Fatalf("Read after CloseWrite = %q, %v; want \"world\"", buf, err)
	}
	if err := sb.CloseWrite(); err != nil {
		e.t.Fatalf("peer CloseWrite: %v", err)
	}
	if n, err := sa.Read(buf); n != 0 || err != io.EOF {
		e.t.Errorf("Read after both CloseWrite = %d, %v; want 0, io.EOF", n, err)
	}
}

// testClose: Close delivers what was written, then io.EOF; our own Reads
// and Writes fail; a blocked Read is unblocked; the peer's Writes fail
// eventually; Close is idempotent.
func testClose(e *env) {
	a, b := e.node("node-a"), e.node("node-b")
	sa, sb := e.connect(a, b)
	blocked := e.async(func() error {
		_, err := sa.Read(make([]byte, 8))
		return err
	})
	if _, err := sa.Write([]byte("bye")); err != nil {
		e.t.Fatalf("Write: %v", err)
	}
	if err := sa.Close(); err != nil {
		e.t.Fatalf("Close: %v", err)
	}
	if err := e.wait(blocked, "Read blocked at Close"); err == nil || err == io.EOF {
		e.t.Errorf("Read blocked at Close returned %v; want an error", err)
	}
	got, err := io.ReadAll(sb)
	if err != nil || string(got) != "bye" {
		e.t.Errorf("peer read %q, %v; want \"bye\" then io.EOF", got, err)
	}
	if _, err := sa.Read(make([]byte, 1)); err == nil || err == io.EOF {
		e.t.Errorf("Read after Close = %v; want an error", err)
	}
	if _, err := sa.Write([]byte("x")); err == nil {
		e.t.Error("Write after Close succeeded")
	}
	if err := sa.Close(); err != nil {
		e.t.Errorf("second Close: %v", err)
	}
	err = writeUntilError(sb, 1<<30)
	switch {
	case err == nil:
		e.t.Error("peer Writes kept succeeding after Close")
	case errors.Is(err, os.ErrDeadlineExceeded):
		e.t.Error("peer Writes blocked after Close instead of failing")
	}
}

// testReset: Reset makes both sides' Reads and Writes fail with
// ErrStreamReset, unblocking a blocked Read; it is idempotent.
func testReset(e *env) {
	a, b := e.node("node-a"), e.node("node-b")
	sa, sb := e.connect(a, b)
	blocked := e.async(func() error {
		_, err := sb.Read(make([]byte, 8))
		return err
	})
	if err := sa.Reset(); err != nil {
		e.t.Fatalf("Reset: %v", err)
	}
	if err := e.wait(blocked, "peer Read blocked at Reset"); !errors.Is(err, ports.ErrStreamReset) {
		e.t.Errorf("peer Read blocked at Reset = %v; want ErrStreamReset", err)
	}
	if err := writeUntilError(sb, 1<<30); !errors.Is(err, ports.ErrStreamReset) {
		e.t.Errorf("peer Write after Reset = %v; want ErrStreamReset", err)
	}
	if _, err := sb.Read(make([]byte, 1)); !errors.Is(err, ports.ErrStreamReset) {
		e.t.Errorf("peer Read after Reset = %v; want ErrStreamReset", err)
	}
	if _, err := sa.Read(make([]byte, 1)); !errors.Is(err, ports.ErrStreamReset) {
		e.t.Errorf("Read after own Reset = %v; want ErrStreamReset", err)
	}
	if _, err := sa.Write([]byte("x")); !errors.Is(err, ports.ErrStreamReset) {
		e.t.Errorf("Write after own Reset = %v; want ErrStreamReset", err)
	}
	if err := sa.Reset(); err != nil {
		e.t.Errorf("second Reset: %v", err)
	}
	if err := sa.Close(); err != nil {
		e.t.Errorf("Close after Reset: %v", err)
	}

	// Reset after Close is allowed.
	sa2, _ := e.connect(a, b)
	if err := sa2.Close(); err != nil {
		e.t.Fatalf("Close: %v", err)
	}
	if err := sa2.Reset(); err != nil {
		e.t.Errorf("Reset after Close: %v", err)
	}
}

// testDeadline: Reads and Writes blocked past the deadline fail with
// os.ErrDeadlineExceeded; moving or clearing it works while blocked and
// afterwards; Write reports exactly what it queued.
func testDeadline(e *env) {
	a, b := e.node("node-a"), e.node("node-b")
	sa, sb := e.connect(a, b)

	// A deadline passing while Read waits.
	if err := sa.SetDeadline(time.Now().Add(50 * time.Millisecond)); err != nil {
		e.t.Fatalf("SetDeadline: %v", err)
	}
	if _, err := sa.Read(make([]byte, 1)); !errors.Is(err, os.ErrDeadlineExceeded) {
		e.t.Fatalf("Read past deadline = %v; want os.ErrDeadlineExceeded", err)
	}
	// A deadline in the past fails at once.
	if err := sa.SetDeadline(time.Now().Add(-time.Second)); err != nil {
		e.t.Fatalf("SetDeadline: %v", err)
	}
	if _, err := sa.Read(make([]byte, 1)); !errors.Is(err, os.ErrDeadlineExceeded) {
		e.t.Fatalf("Read with a past deadline = %v; want os.ErrDeadlineExceeded", err)
	}
	// Clearing it makes the stream usable again.
	if err := sa.SetDeadline(time.Time{}); err != nil {
		e.t.Fatalf("clear deadline: %v", err)
	}
	if _, err := sb.Write([]byte("x")); err != nil {
		e.t.Fatalf("peer Write: %v", err)
	}
	buf := make([]byte, 1)
	if _, err := io.ReadFull(sa, buf); err != nil || buf[0] != 'x' {
		e.t.Fatalf("Read after clearing the deadline = %q, %v", buf, err)
	}
	// A deadline set while Read is already blocked.
	blocked := e.async(func() error {
		_, err := sa.Read(make([]byte, 1))
		return err
	})
	time.Sleep(10 * time.Millisecond) // let it block; correctness does not depend on it
	if err := sa.SetDeadline(time.Now().Add(50 * time.Millisecond)); err != nil {
		e.t.Fatalf("SetDeadline: %v", err)
	}
	if err := e.wait(blocked, "blocked Read"); !errors.Is(err, os.ErrDeadlineExceeded) {
		e.t.Fatalf("Read blocked before SetDeadline = %v; want os.ErrDeadlineExceeded", err)
	}

	// A Write blocked by flow control past the deadline.
	if err := sa.SetDeadline(time.Now().Add(300 * time.Millisecond)); err != nil {
		e.t.Fatalf("SetDeadline: %v", err)
	}
	chunk := make([]byte, 64<<10)
	var queued int
	var werr error
	for queued < 1<<30 {
		var n int
		n, werr = sa.Write(chunk)
		queued += n
		if werr != nil {
			break
		}
	}
	if !errors.Is(werr, os.ErrDeadlineExceeded) {
		e.t.Fatalf("Write into a full window past the deadline = %v after %d bytes; want os.ErrDeadlineExceeded", werr, queued)
	}
	// What Write reported queued is what arrives.
	if err := sa.SetDeadline(time.Time{}); err != nil {
		e.t.Fatalf("clear deadline: %v", err)
	}
	e.deadline(sb)
	if err := sa.CloseWrite(); err != nil {
		e.t.Fatalf("CloseWrite: %v", err)
	}
	n, err := io.Copy(io.Discard, sb)
	if err != nil || n != int64(queued) {
		e.t.Errorf("peer read %d bytes, %v; want %d (what Write reported) then io.EOF", n, err, queued)
	}
}

// testAcceptCancel: a blocked Accept returns when its ctx ends.
func testAcceptCancel(e *env) {
	a := e.node("node-a")
	ctx, cancel := context.WithCancel(e.ctx)
	res := e.async(func() error {
		_, err := a.tr.Accept(ctx)
		return err
	})
	time.Sleep(10 * time.Millisecond) // let it block; correctness does not depend on it
	cancel()
	if err := e.wait(res, "Accept"); !errors.Is(err, context.Canceled) {
		e.t.Errorf("Accept after cancel = %v; want context.Canceled", err)
	}
}

// testAcceptClose: Close unblocks Accept with ErrClosed, and later Accepts
// fail the same way.
func testAcceptClose(e *env) {
	a := e.node("node-a")
	ctx := e.opCtx()
	res := e.async(func() error {
		_, err := a.tr.Accept(ctx)
		return err
	})
	time.Sleep(10 * time.Millisecond) // let it block; correctness does not depend on it
	if err := a.tr.Close(); err != nil {
		e.t.Fatalf("Close: %v", err)
	}
	if err := e.wait(res, "Accept"); !errors.Is(err, ports.ErrClosed) {
		e.t.Errorf("Accept blocked at Close = %v; want ErrClosed", err)
	}
	if _, err := a.tr.Accept(e.opCtx()); !errors.Is(err, ports.ErrClosed) {
		e.t.Errorf("Accept after Close = %v; want ErrClosed", err)
	}
}

// testOpenUnreachable: Open to an address nothing listens at any more
// fails with ErrUnreachable (or, for transports that can only time out,
// the ctx's error).
func testOpenUnreachable(e *env) {
	a, gone := e.node("node-a"), e.node("node-gone")
	if err := gone.tr.Close(); err != nil {
		e.t.Fatalf("Close: %v", err)
	}
	ctx, cancel := context.WithTimeout(e.ctx, opTimeout/2)
	defer cancel()
	s, err := a.tr.Open(ctx, gone.id, gone.addr)
	switch {
	case err == nil:
		_ = s.Reset()
		e.t.Fatal("Open to a closed node succeeded")
	case ctx.Err() == nil && !errors.Is(err, ports.ErrUnreachable):
		e.t.Errorf("Open to a closed node = %v; want ErrUnreachable", err)
	case ctx.Err() != nil && !errors.Is(err, ports.ErrUnreachable) && !errors.Is(err, ctx.Err()):
		e.t.Errorf("Open to a closed node timed out with %v; want ErrUnreachable or the ctx error", err)
	}

	ctx, cancel = context.WithCancel(e.ctx)
	cancel()
	b := e.node("node-b")
	if s, err := a.tr.Open(ctx, b.id, b.addr); err == nil {
		_ = s.Reset()
		e.t.Error("Open with a cancelled ctx succeeded")
	}
}

// testWrongIdentity: Open to the address of one node while expecting
// another fails with ErrUnauthenticated, whoever is claimed.
func testWrongIdentity(e *env) {
	a, b, c := e.node("node-a"), e.node("node-b"), e.node("node-c")
	for _, claim := range []struct {
		peer ports.NodeID
		addr string
	}{
		{c.id, b.addr},     // b's address, c's identity
		{b.id, c.addr},     // c's address, b's identity
		{a.id, b.addr},     // our own identity
		{"node-x", b.addr}, // an identity nobody has
	} {
		s, err := a.tr.Open(e.opCtx(), claim.peer, claim.addr)
		if err == nil {
			_ = s.Reset()
			e.t.Errorf("Open(%q, %q) succeeded; want ErrUnauthenticated", claim.peer, claim.addr)
			continue
		}
		if !errors.Is(err, ports.ErrUnauthenticated) {
			e.t.Errorf("Open(%q, %q) = %v; want ErrUnauthenticated", claim.peer, claim.addr, err)
		}
	}
	// The right claim still works, and b accepts nothing from the failed
	// attempts first.
	e.connect(a, b)
}

// testTransportCloseResets: closing a transport resets its streams (the
// peer sees ErrStreamReset, as after a crash), unblocks their Reads, and
// makes Open fail.
func testTransportCloseResets(e *env) {
	a, b := e.node("node-a"), e.node("node-b")
	sa, sb := e.connect(a, b)
	tb, ta := e.connect(b, a)
	blocked := e.async(func() error {
		_, err := sb.Read(make([]byte, 8))
		return err
	})
	if err := a.tr.Close(); err != nil {
		e.t.Fatalf("Close: %v", err)
	}
	if err := e.wait(blocked, "peer Read blocked at Close"); !errors.Is(err, ports.ErrStreamReset) {
		e.t.Errorf("peer Read blocked at transport Close = %v; want ErrStreamReset", err)
	}
	if err := writeUntilError(tb, 1<<30); !errors.Is(err, ports.ErrStreamReset) {
		e.t.Errorf("peer Write on a stream it opened = %v; want ErrStreamReset", err)
	}
	if _, err := sa.Read(make([]byte, 1)); err == nil || err == io.EOF {
		e.t.Errorf("Read on a stream of the closed transport = %v; want an error", err)
	}
	if _, err := ta.Write([]byte("x")); err == nil {
		e.t.Error("Write on a stream of the closed transport succeeded")
	}
	if s, err := a.tr.Open(e.opCtx(), b.id, b.addr); !errors.Is(err, ports.ErrClosed) {
		if err == nil {
			_ = s.Reset()
		}
		e.t.Errorf("Open on a closed transport = %v; want ErrClosed", err)
	}
}

// testCloseTwice: Close is idempotent, listening or not.
func testCloseTwice(e *env) {
	a := e.node("node-a")
	for i := range 2 {
		if err := a.tr.Close(); err != nil {
			e.t.Errorf("Close #%d: %v", i+1, err)
		}
	}
	idle := e.transport("node-idle")
	for i := range 2 {
		if err := idle.Close(); err != nil {
			e.t.Errorf("Close #%d of a transport that never listened: %v", i+1, err)
		}
	}
}

// testClosePeer: for transports implementing ports.PeerCloser, ClosePeer
// resets the streams with that peer on both sides and later Opens work.
func testClosePeer(e *env) {
	a, b := e.node("node-a"), e.node("node-b")
	pc, ok := a.tr.(ports.PeerCloser)
	if !ok {
		e.t.Skip("transport does not implement ports.PeerCloser")
	}
	c := e.node("node-c")
	sa, sb := e.connect(a, b)
	tb, ta := e.connect(b, a)
	sc, _ := e.connect(a, c)
	if err := pc.ClosePeer(b.id); err != nil {
		e.t.Fatalf("ClosePeer: %v", err)
	}
	for name, s := range map[string]ports.Stream{"opened": sa, "accepted": ta} {
		if _, err := s.Read(make([]byte, 1)); !errors.Is(err, ports.ErrStreamReset) {
			e.t.Errorf("local %s stream Read after ClosePeer = %v; want ErrStreamReset", name, err)
		}
	}
	for name, s := range map[string]ports.Stream{"accepted": sb, "opened": tb} {
		if _, err := s.Read(make([]byte, 1)); !errors.Is(err, ports.ErrStreamReset) {
			e.t.Errorf("peer's %s stream Read after ClosePeer = %v; want ErrStreamReset", name, err)
		}
	}
	if _, err := sc.Write([]byte("still here")); err != nil {
		e.t.Errorf("stream with another peer after ClosePeer: %v", err)
	}
	e.connect(a, b)
}
