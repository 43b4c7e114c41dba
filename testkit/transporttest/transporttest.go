// Package transporttest is the conformance suite of ports.Transport: every
// transport adapter's tests call Run, as adapters of log/slog call
// testing/slogtest, so the in-memory transport the test kit uses and the
// QUIC transport production uses are held to one set of semantics.
//
// An adapter's test supplies a Factory:
//
//	func TestConformance(t *testing.T) {
//		transporttest.Run(t, func(t *testing.T) transporttest.NewTransport {
//			net := mem.NewNetwork()
//			return func(id ports.NodeID) ports.Transport {
//				tr, err := mem.New(net, mem.Config{})
//				if err != nil {
//					t.Fatal(err)
//				}
//				return tr
//			}
//		})
//	}
//
// Each case runs as a subtest with its own Factory call, so cases are
// independent; Run closes every transport it made before the subtest ends.
// The suite needs nothing beyond the standard library and asserts no
// timing other than generous upper bounds, so it runs under -race.
//
// The cases: open and accept with the proven Peer() on both ends; echo
// both ways on streams opened by either side; 8 MiB each way at once;
// 64 concurrent streams between one pair; CloseWrite (peer reads the rest
// then io.EOF, the other direction keeps working); Close (data delivered,
// own Reads and Writes fail, a blocked Read returns, the peer's Writes
// fail); Reset (ports.ErrStreamReset on both sides); deadlines on Read and
// Write (os.ErrDeadlineExceeded, set while blocked, cleared, Write's count
// exact); Accept ended by ctx and by Close (ports.ErrClosed); Open to a
// closed node (ports.ErrUnreachable); Open to one node's address claiming
// another identity (ports.ErrUnauthenticated); backpressure (a writer
// whose reader stops stalls before 64 MiB, and finishes intact once the
// reader resumes); Transport.Close resets its streams (the peer sees
// ports.ErrStreamReset) and fails Open; Close twice; and, for a
// ports.PeerCloser, ClosePeer.
//
// Portability notes for adapter authors. The suite writes on a stream before
// it expects the peer's Accept to return, since QUIC announces a stream
// with its first bytes. After Close or Reset it only requires that the
// peer's Writes fail eventually (QUIC learns it one round trip later). An
// Open to an address where nothing listens must fail with an error
// wrapping ports.ErrUnreachable, or the Open ctx's error when the
// transport can only find out by timing out.
package transporttest

import (
	"context"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/mycorrizal/mycorrizal/ports"
)

// NewTransport makes a transport that is not listening yet and that proves
// the identity id once it listens as id (for QUIC: it holds a certificate
// for id, trusted by every other transport of the same Factory call).
// Transports made by one NewTransport reach each other. It runs on the test
// goroutine and may call t.Fatal.
type NewTransport func(id ports.NodeID) ports.Transport

// Factory prepares one independent network (for mem, a Network; for QUIC, a
// CA on loopback) for the test t and returns the constructor of transports
// on it. Run closes the transports; the factory registers the release of
// anything else it set up with t.Cleanup.
type Factory func(t *testing.T) NewTransport

// Bounds of the suite. They are upper bounds for a failing transport, not
// expectations: a correct in-memory transport passes in milliseconds.
const (
	// opTimeout bounds every blocking call of a case.
	opTimeout = 10 * time.Second
	// settle is how long a blocked writer must make no progress to count
	// as stalled.
	settle = 200 * time.Millisecond
)

// Run runs the conformance suite against the transports f makes, each case
// as a subtest.
func Run(t *testing.T, f Factory) {
	t.Helper()
	cases := []struct {
		name string
		fn   func(*env)
	}{
		{"OpenAccept", testOpenAccept},
		{"Echo", testEcho},
		{"LargeTransfer", testLargeTransfer},
		{"ConcurrentStreams", testConcurrentStreams},
		{"CloseWrite", testCloseWrite},
		{"Close", testClose},
		{"Reset", testReset},
		{"Deadline", testDeadline},
		{"AcceptCancel", testAcceptCancel},
		{"AcceptClose", testAcceptClose},
		{"OpenUnreachable", testOpenUnreachable},
		{"WrongIdentity", testWrongIdentity},
		{"Backpressure", testBackpressure},
		{"TransportCloseResetsStreams", testTransportCloseResets},
		{"CloseTwice", testCloseTwice},
		{"ClosePeer", testClosePeer},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			c.fn(newEnv(t, f))
		})
	}
}

// env is one case's world: its transports and its goroutines.
type env struct {
	t   *testing.T
	mk  NewTransport
	ctx context.Context

	mu      sync.Mutex
	closers []func() error
	wg      sync.WaitGroup
}

// node is a listening transport and the identity it proves.
type node struct {
	tr   ports.Transport
	id   ports.NodeID
	addr string
}

func newEnv(t *testing.T, f Factory) *env {
	t.Helper()
	e := &env{t: t, mk: f(t)}
	if e.mk == nil {
		t.Fatal("transporttest: Factory returned nil")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*opTimeout)
	e.ctx = ctx
	t.Cleanup(func() {
		cancel()
		e.mu.Lock()
		closers := e.closers
		e.mu.Unlock()
		for i := len(closers) - 1; i >= 0; i-- {
			if err := closers[i](); err != nil {
				t.Errorf("transporttest: Close: %v", err)
			}
		}
		done := make(chan struct{})
		go func() { e.wg.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(opTimeout):
			t.Error("transporttest: goroutines of the case still blocked after every transport was closed")
		}
	})
	return e
}

// transport makes a transport for id that the case's cleanup closes.
func (e *env) transport(id ports.NodeID) ports.Transport {
	e.t.Helper()
	tr := e.mk(id)
	if tr == nil {
		e.t.Fatalf("transporttest: NewTransport(%q) returned nil", id)
	}
	e.mu.Lock()
	e.closers = append(e.closers, tr.Close)
	e.mu.Unlock()
	return tr
}

// node makes a transport listening as id.
func (e *env) node(id ports.NodeID) *node {
	e.t.Helper()
	tr := e.transport(id)
	ctx, cancel := context.WithTimeout(e.ctx, opTimeout)
	defer cancel()
	addr, err := tr.Listen(ctx, id)
	if err != nil {
		e.t.Fatalf("Listen(%q): %v", id, err)
	}
	if addr == "" {
		e.t.Fatalf("Listen(%q) returned an empty address", id)
	}
	e.t.Logf("%s listens at %s", id, addr)
	return &node{tr: tr, id: id, addr: addr}
}

// async runs fn on a goroutine the case's cleanup waits for and returns
// its result.
func (e *env) async(fn func() error) <-chan error {
	ch := make(chan error, 1)
	e.wg.Add(1)
	go func() {
		defer e.wg.Done()
		ch <- fn()
	}()
	return ch
}

// wait returns the result of an async call, failing the case if it does
// not come within opTimeout.
func (e *env) wait(ch <-chan error, what string) error {
	e.t.Helper()
	select {
	case err := <-ch:
		return err
	case <-time.After(opTimeout):
		e.t.Fatalf("%s: did not return within %v", what, opTimeout)
		return nil
	}
}

// opCtx returns a ctx bounding one blocking call.
func (e *env) opCtx() context.Context {
	ctx, cancel := context.WithTimeout(e.ctx, opTimeout)
	e.t.Cleanup(cancel)
	return ctx
}

// connect opens a stream from one node to another and returns the opened
// and the accepted end, after one byte went through (QUIC announces a
// stream with its first bytes). Both ends get a generous deadline so a
// broken transport fails the case instead of hanging it.
func (e *env) connect(from, to *node) (opened, accepted ports.Stream) {
	e.t.Helper()
	var acc ports.Stream
	actx := e.opCtx()
	done := e.async(func() error {
		s, err := to.tr.Accept(actx)
		acc = s
		return err
	})
	opened, err := from.tr.Open(e.opCtx(), to.id, to.addr)
	if err != nil {
		e.t.Fatalf("%s: Open(%q, %q): %v", from.id, to.id, to.addr, err)
	}
	e.deadline(opened)
	if _, err := opened.Write([]byte{'H'}); err != nil {
		e.t.Fatalf("%s: first Write: %v", from.id, err)
	}
	if err := e.wait(done, "Accept"); err != nil {
		e.t.Fatalf("%s: Accept: %v", to.id, err)
	}
	accepted = acc
	e.deadline(accepted)
	var b [1]byte
	if _, err := accepted.Read(b[:]); err != nil || b[0] != 'H' {
		e.t.Fatalf("%s: first Read = %q, %v; want \"H\", nil", to.id, b[:], err)
	}
	return opened, accepted
}

// deadline sets a stream's deadline to the generous case bound.
func (e *env) deadline(s ports.Stream) {
	e.t.Helper()
	if err := s.SetDeadline(time.Now().Add(opTimeout)); err != nil {
		e.t.Fatalf("SetDeadline: %v", err)
	}
}

// payload returns n pseudo-random bytes determined by seed.
func payload(seed uint64, n int) []byte {
	var key [32]byte
	key[0], key[1] = byte(seed), byte(seed>>8)
	b := make([]byte, n)
	_, _ = rand.NewChaCha8(key).Read(b)
	return b
}

// writeUntilError writes to s until a Write fails, and returns that error;
// it gives up after opTimeout or limit bytes, returning nil.
func writeUntilError(s ports.Stream, limit int) error {
	if err := s.SetDeadline(time.Now().Add(opTimeout)); err != nil {
		return err
	}
	buf := make([]byte, 1<<10)
	for n := 0; n < limit; n += len(buf) {
		if _, err := s.Write(buf); err != nil {
			return err
		}
	}
	return nil
}
