// Package mem is an in-memory implementation of ports.Transport for tests:
// the transport behind Mycorrizal's test kit, and one users can put under
// their own unit tests to run real nodes without sockets, certificates or
// timing noise.
//
// It has the semantics the QUIC transport has, so a test on mem exercises
// the same protocol path as production:
//
//   - Identities are those the Network knows, never self-claimed: a stream
//     accepted by B from A reports Peer() == A because A listens as A, and
//     Open to an address where another node listens fails with an error
//     wrapping ports.ErrUnauthenticated (as mutual TLS would).
//   - Each stream direction has a bounded receive window (Config.Window of
//     the receiving transport): Write blocks while it is full until the
//     reader consumes, which is the backpressure the core relies on.
//   - CloseWrite, Close, Reset and SetDeadline behave as documented on
//     ports.Stream; Transport.Close resets every stream (the peer sees an
//     error wrapping ports.ErrStreamReset, as after a crash).
//   - A Conditions value installed with Network.SetConditions cuts links
//     (new streams fail with ports.ErrUnreachable, bytes in flight wait
//     until the link is up again) and delays delivery.
//
// Errors, all matched with errors.Is: a Read or Write after this side's
// Close, or a Write after CloseWrite, fails with ports.ErrClosed; after the
// peer's Close our Writes fail with ports.ErrStreamReset (QUIC's
// STOP_SENDING) while our Reads still drain its data and see io.EOF; after
// a Reset by either side both sides get ports.ErrStreamReset; after
// Transport.Close its own streams fail with ports.ErrStreamReset and
// ports.ErrClosed and the peers' with ports.ErrStreamReset and
// ports.ErrPeerGone (ClosePeer likewise gives ports.ErrPeerGone); a call
// blocked past the deadline fails with os.ErrDeadlineExceeded.
//
// Two differences from QUIC that code must not rely on: a stream reaches
// the peer's Accept when Open returns, not with its first bytes, and Open
// never waits for a handshake (it fails at once with ports.ErrUnreachable
// when the link is down in either direction).
//
// The transport starts no goroutines: streams are buffers guarded by a
// mutex, and blocked calls wait on channels.
//
// Usage in a test:
//
//	net := mem.NewNetwork()
//	a, _ := mem.New(net, mem.Config{})
//	b, _ := mem.New(net, mem.Config{})
//	defer a.Close()
//	defer b.Close()
//	a.Listen(ctx, "a")
//	addrB, _ := b.Listen(ctx, "b") // "mem:b"
//	go func() {
//		s, _ := b.Accept(ctx) // s.Peer() == "a"
//		io.Copy(s, s)         // echo
//		s.Close()
//	}()
//	s, err := a.Open(ctx, "b", addrB) // s.Peer() == "b"
//
//	net.SetConditions(partition)      // cut links
//	net.SetConditions(nil)            // heal: stalled bytes flow again
package mem
