package transporttest

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mycorrizal/mycorrizal/ports"
)

// testOpenAccept: streams open both ways and each end reports the identity
// of the other node.
func testOpenAccept(e *env) {
	a, b := e.node("node-a"), e.node("node-b")
	if a.addr == b.addr {
		e.t.Fatalf("two nodes listen at the same address %q", a.addr)
	}
	sa, sb := e.connect(a, b)
	if got := sa.Peer(); got != b.id {
		e.t.Errorf("opened stream Peer() = %q, want %q", got, b.id)
	}
	if got := sb.Peer(); got != a.id {
		e.t.Errorf("accepted stream Peer() = %q, want %q", got, a.id)
	}
	sb2, sa2 := e.connect(b, a)
	if got := sb2.Peer(); got != a.id {
		e.t.Errorf("reverse: opened stream Peer() = %q, want %q", got, a.id)
	}
	if got := sa2.Peer(); got != b.id {
		e.t.Errorf("reverse: accepted stream Peer() = %q, want %q", got, b.id)
	}
}

// echo copies everything s reads back to it, then closes it.
func echo(s ports.Stream) error {
	if _, err := io.Copy(s, s); err != nil {
		return fmt.Errorf("echo: %w", err)
	}
	return s.Close()
}

// roundTrips writes messages of growing size to s and checks each comes
// back unchanged, then ends writing and expects io.EOF.
func roundTrips(s ports.Stream, seed uint64) error {
	for i := range 64 {
		msg := payload(seed+uint64(i), 1+i*97)
		// Write while reading: a message larger than the windows would
		// otherwise deadlock against the echo, as on any flow-controlled
		// stream.
		wrote := make(chan error, 1)
		go func() {
			_, err := s.Write(msg)
			wrote <- err
		}()
		got := make([]byte, len(msg))
		_, rerr := io.ReadFull(s, got)
		if err := <-wrote; err != nil {
			return fmt.Errorf("write %d: %w", i, err)
		}
		if rerr != nil {
			return fmt.Errorf("read %d: %w", i, rerr)
		}
		if !bytes.Equal(got, msg) {
			return fmt.Errorf("message %d came back changed", i)
		}
	}
	if err := s.CloseWrite(); err != nil {
		return fmt.Errorf("CloseWrite: %w", err)
	}
	if n, err := s.Read(make([]byte, 1)); n != 0 || err != io.EOF {
		return fmt.Errorf("Read after echo ended = %d, %v; want 0, io.EOF", n, err)
	}
	return nil
}

// testEcho: request/response traffic flows both ways on streams opened by
// either side, at the same time.
func testEcho(e *env) {
	a, b := e.node("node-a"), e.node("node-b")
	sa, sb := e.connect(a, b)
	tb, ta := e.connect(b, a)
	echoB := e.async(func() error { return echo(sb) })
	echoA := e.async(func() error { return echo(ta) })
	tripsA := e.async(func() error { return roundTrips(sa, 100) })
	tripsB := e.async(func() error { return roundTrips(tb, 200) })
	for name, ch := range map[string]<-chan error{
		"echo at b": echoB, "echo at a": echoA, "a's round trips": tripsA, "b's round trips": tripsB,
	} {
		if err := e.wait(ch, name); err != nil {
			e.t.Errorf("%s: %v", name, err)
		}
	}
}

// send writes data to s in pieces of varying size, then ends writing.
func send(s ports.Stream, data []byte) error {
	for i := 0; len(data) > 0; i++ {
		n := min(len(data), 1+(i*7919)%(96<<10))
		if _, err := s.Write(data[:n]); err != nil {
			return fmt.Errorf("write: %w", err)
		}
		data = data[n:]
	}
	if err := s.CloseWrite(); err != nil {
		return fmt.Errorf("CloseWrite: %w", err)
	}
	return nil
}

// receive reads s to io.EOF and compares what came with want.
func receive(s ports.Stream, want []byte) error {
	got := make([]byte, len(want))
	if n, err := io.ReadFull(s, got); err != nil {
		return fmt.Errorf("read after %d of %d bytes: %w", n, len(want), err)
	}
	if !bytes.Equal(got, want) {
		return fmt.Errorf("the %d bytes received differ from those sent", len(want))
	}
	var extra [1]byte
	for {
		n, err := s.Read(extra[:])
		switch {
		case n > 0:
			return fmt.Errorf("received more than the %d bytes sent", len(want))
		case err == io.EOF:
			return nil
		case err != nil:
			return fmt.Errorf("read after all %d bytes: %w", len(want), err)
		}
	}
}

// testLargeTransfer: 8 MiB each way at once on one stream arrive intact.
func testLargeTransfer(e *env) {
	const size = 8 << 20
	a, b := e.node("node-a"), e.node("node-b")
	sa, sb := e.connect(a, b)
	ab, ba := payload(1, size), payload(2, size)
	results := []<-chan error{
		e.async(func() error { return send(sa, ab) }),
		e.async(func() error { return send(sb, ba) }),
		e.async(func() error { return receive(sb, ab) }),
		e.async(func() error { return receive(sa, ba) }),
	}
	for i, ch := range results {
		if err := e.wait(ch, "transfer"); err != nil {
			e.t.Errorf("transfer %d: %v", i, err)
		}
	}
}

// testConcurrentStreams: 64 streams between the same pair, opened and used
// concurrently, stay separate.
func testConcurrentStreams(e *env) {
	const streams, size = 64, 32 << 10
	a, b := e.node("node-a"), e.node("node-b")

	actx := e.opCtx()
	accepted := e.async(func() error {
		var wg sync.WaitGroup
		errs := make(chan error, streams)
		for range streams {
			s, err := b.tr.Accept(actx)
			if err != nil {
				errs <- fmt.Errorf("accept: %w", err)
				break
			}
			if s.Peer() != a.id {
				errs <- fmt.Errorf("accepted Peer() = %q, want %q", s.Peer(), a.id)
			}
			_ = s.SetDeadline(time.Now().Add(opTimeout))
			wg.Add(1)
			go func() {
				defer wg.Done()
				if err := echo(s); err != nil {
					errs <- err
				}
			}()
		}
		wg.Wait()
		close(errs)
		return errors.Join(collect(errs)...)
	})

	octx := e.opCtx()
	var wg sync.WaitGroup
	errs := make(chan error, 2*streams)
	for i := range streams {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s, err := a.tr.Open(octx, b.id, b.addr)
			if err != nil {
				errs <- fmt.Errorf("stream %d: open: %w", i, err)
				return
			}
			_ = s.SetDeadline(time.Now().Add(opTimeout))
			data := payload(uint64(1000+i), size)
			sent := make(chan error, 1)
			go func() { sent <- send(s, data) }()
			if err := receive(s, data); err != nil {
				errs <- fmt.Errorf("stream %d: %w", i, err)
			}
			if err := <-sent; err != nil {
				errs <- fmt.Errorf("stream %d: %w", i, err)
			}
			_ = s.Close()
		}()
	}
	done := e.async(func() error { wg.Wait(); close(errs); return nil })
	_ = e.wait(done, "streams")
	for _, err := range collect(errs) {
		e.t.Error(err)
	}
	if err := e.wait(accepted, "acceptor"); err != nil {
		e.t.Error(err)
	}
}

func collect(errs <-chan error) []error {
	var all []error
	for err := range errs {
		all = append(all, err)
	}
	return all
}

// testBackpressure: a writer whose reader stops reading stalls without
// buffering everything, and completes once the reader resumes.
func testBackpressure(e *env) {
	const total, piece = 64 << 20, 32 << 10
	a, b := e.node("node-a"), e.node("node-b")
	sa, sb := e.connect(a, b)

	// The stream carries a pattern of period 251, so any piece of it is
	// pattern[off%251:][:n].
	pattern := make([]byte, 64<<10+251)
	for i := range pattern {
		pattern[i] = byte(i % 251)
	}
	var written atomic.Int64
	writer := e.async(func() error {
		for off := 0; off < total; off += piece {
			n, err := sa.Write(pattern[off%251:][:piece])
			written.Add(int64(n))
			if err != nil {
				return err
			}
		}
		return sa.CloseWrite()
	})

	// Wait until the writer makes no progress for a while.
	deadline := time.Now().Add(opTimeout)
	last, since := written.Load(), time.Now()
	for time.Since(since) < settle {
		if time.Now().After(deadline) {
			e.t.Fatalf("writer never stalled: %d bytes written", written.Load())
		}
		time.Sleep(settle / 10)
		if w := written.Load(); w != last {
			last, since = w, time.Now()
		}
	}
	select {
	case err := <-writer:
		e.t.Fatalf("writer returned (%v) after %d of %d bytes while nobody read", err, written.Load(), total)
	default:
	}
	if last >= total {
		e.t.Fatalf("transport buffered all %d bytes while nobody read", last)
	}
	e.t.Logf("writer stalled after %d bytes", last)

	// Resume reading: everything arrives, in order.
	e.deadline(sb)
	buf := make([]byte, 64<<10)
	var got int
	for {
		n, err := sb.Read(buf)
		if !bytes.Equal(buf[:n], pattern[got%251:][:n]) {
			e.t.Fatalf("bytes %d..%d corrupted", got, got+n)
		}
		got += n
		if err == io.EOF {
			break
		}
		if err != nil {
			e.t.Fatalf("Read after %d bytes: %v", got, err)
		}
	}
	if got != total {
		e.t.Errorf("read %d bytes, want %d", got, total)
	}
	if err := e.wait(writer, "writer"); err != nil {
		e.t.Errorf("writer: %v", err)
	}
}
