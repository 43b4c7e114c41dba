package ports

import (
	"context"
	"io"
	"time"
)

// Stream is an authenticated, reliable, ordered, bidirectional byte stream
// to one peer. Framing lives in the core (package core/wire), so every
// transport carries the same protocol.
//
// Read and Write follow io.Reader and io.Writer and may be called
// concurrently with each other (one reader and one writer at a time). They
// block until data moves, the stream ends, or a deadline set through
// SetDeadline passes; Close and Reset unblock them.
type Stream interface {
	io.Reader
	io.Writer

	// Peer returns the node ID the transport authenticated for the other
	// side (for QUIC, the identity its certificate proves). It never changes
	// and never blocks.
	Peer() NodeID

	// CloseWrite ends this side's writing gracefully: data already written
	// is delivered and the peer then reads io.EOF. Reading continues.
	CloseWrite() error

	// Close ends the stream in both directions: data already written is
	// still delivered, the peer reads io.EOF after it, and this side's
	// pending and later Reads and Writes return an error. Safe to call more
	// than once.
	Close() error

	// Reset aborts the stream in both directions at once: unsent data may
	// be discarded and both sides' Reads and Writes fail with an error that
	// wraps ErrStreamReset. Safe to call more than once and after Close.
	Reset() error

	// SetDeadline sets the read and write deadline; a zero time clears it.
	// A Read or Write blocked past it fails with an error for which
	// errors.Is(err, os.ErrDeadlineExceeded) holds.
	SetDeadline(t time.Time) error
}

// Transport opens and accepts authenticated streams between nodes. QUIC with
// mutual TLS is the default; an in-memory transport serves tests.
//
// Lifecycle: Listen once, then Accept and Open concurrently from any number
// of goroutines, Close once at the end (safe to call more than once). Close
// unblocks Accept and Open and resets every stream.
type Transport interface {
	// Listen starts accepting streams for the local node self and returns the
	// address peers should dial, with any port 0 resolved to the real port.
	// ctx bounds the call itself only.
	Listen(ctx context.Context, self NodeID) (addr string, err error)

	// Accept blocks until a peer opens a stream, ctx ends, or the transport
	// is closed (then it returns an error wrapping ErrClosed).
	Accept(ctx context.Context) (Stream, error)

	// Open opens a new stream to peer at addr (the TransportAddr it
	// advertised). It fails with an error wrapping ErrUnauthenticated when
	// the node at addr proves an identity other than peer, and with one
	// wrapping ErrUnreachable when it cannot be reached. It blocks until the
	// stream is usable or ctx ends. Transports reuse one connection per peer
	// where the technology allows.
	Open(ctx context.Context, peer NodeID, addr string) (Stream, error)

	// Close stops listening, closes every connection and resets every
	// stream, and returns once the transport's goroutines are gone.
	Close() error
}

// PeerCloser is an optional interface of a Transport: ClosePeer closes the
// connection to one peer and resets its streams, for example after the peer
// left membership. It does not block on the network.
type PeerCloser interface {
	ClosePeer(peer NodeID) error
}
