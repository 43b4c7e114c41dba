// Package quic is the production ports.Transport of Mycorrizal (the
// Nodosum links): authenticated, encrypted streams between nodes over QUIC
// (quic-go) with mutual TLS 1.3. It has the semantics of the in-memory
// transport in adapters/transport/mem, and both pass the conformance suite
// in testkit/transporttest.
//
// # Identity
//
// Every handshake asks the ports.CertSource for this node's certificate
// (server and client side alike), so connections made after a rotation
// present the new one, and for the trusted CAs, against which the peer's
// whole chain is verified at the current time (client certificates for
// client authentication, server certificates for server authentication).
// The peer's node ID is ports.CertNodeID of the verified leaf; Stream.Peer
// returns it. Open(ctx, peer, addr) checks inside the handshake that the
// node at addr proves peer, so a wrong node never completes it and Open
// fails with an error wrapping ports.ErrUnauthenticated. In TLS 1.3 the
// client finishes before the server has checked the client's certificate,
// so the accepting side confirms each connection with an empty
// unidirectional stream once it accepted it, and a dial waits for that:
// a refused certificate makes Open fail (ports.ErrUnauthenticated when the
// TLS alert says the certificate was refused) instead of yielding a
// connection that dies a moment later. The ALPN protocol is "mycorrizal";
// session tickets are off, so every connection presents certificates.
//
// # Connections
//
// Streams to a peer share its connection. Open reuses the newest live
// connection with peer whose address is addr: the one dialed at addr, or
// one the peer dialed from addr (a node dials from its listening socket,
// so the connections a peer opened serve this node's Opens too). A
// connection is therefore keyed by the proven identity and an address,
// which is what makes a peer that restarted at a new address get a fresh
// dial instead of a dead connection. When both nodes dial each other at
// the same moment they may keep two connections; both work, both are
// registered under the peer's ID, and Close and ClosePeer close both. At
// most four connections per peer are kept (the oldest is closed beyond).
//
// Concurrent Opens that need the same dial share it: one goroutine dials,
// bounded by Config.HandshakeTimeout, and callers wait for it or for their
// ctx (a caller that gives up does not cancel the dial for the others).
// A failed dial starts a backoff for that (peer, address): DialBackoffMin,
// doubling per consecutive failure up to DialBackoffMax, with jitter.
// During the backoff Open fails at once with an error wrapping
// ports.ErrUnreachable (and the last dial error) saying when the next
// attempt is allowed; it does not wait even if its ctx would allow it,
// since the caller knows better whether to come back. The dial table is
// bounded by Config.MaxDialEntries (least recently used entry evicted). A
// successful dial clears the entry.
//
// Keep-alives (KeepAlivePeriod) and the idle timeout (MaxIdleTimeout) are
// QUIC's. A connection that ends (closed by either side, idle timeout
// after a peer crashed, stateless reset) is forgotten at once by its
// goroutine, so the next Open dials again. With Config.StatelessResetKey
// set, a peer that restarted on the same address tells this node at once.
//
// # Streams
//
// Each ports.Stream is one bidirectional QUIC stream: CloseWrite sends
// FIN; Close sends FIN and stops reading (STOP_SENDING), so the peer reads
// the data then io.EOF and its Writes fail with ports.ErrStreamReset;
// Reset aborts both directions (RESET_STREAM and STOP_SENDING) and both
// sides' Reads and Writes fail with ports.ErrStreamReset. When the
// connection closes, streams fail with ports.ErrStreamReset joined with
// ports.ErrClosed (this transport closed) or ports.ErrPeerGone (the peer
// closed, ClosePeer, connection lost). A stream on which no Read or Write
// returned for Config.StreamIdleTimeout is reset by the transport's one
// sweeper goroutine (activity costs an atomic load per call).
//
// A stream reaches the peer's Accept with its first bytes, as QUIC
// announces streams with data; the core always writes its init frame
// first. Each connection has one goroutine, which moves the streams the
// peer opens into a bounded accept queue (AcceptBacklog); when it is full
// the peer's Opens block on QUIC's stream limit (MaxIncomingStreams).
//
// # Goroutines
//
// One listener goroutine, one per connection, one sweeper, and one per
// dial in flight. Close closes every connection with an application
// error, then the socket, and returns once they have all ended.
package quic
