package ports

import "errors"

// Sentinel errors shared by the core and adapters. They are returned wrapped
// with context (for example "mesh: request to n2 app orders: ..."); test for
// them with errors.Is.
var (
	// ErrClosed is returned by an operation on a component that has been
	// closed or shut down.
	ErrClosed = errors.New("closed")

	// ErrNotStarted is returned by an operation that needs Start first.
	ErrNotStarted = errors.New("not started")

	// ErrUnknownNode is returned when the target node is not a live member
	// of the cluster as this node sees it.
	ErrUnknownNode = errors.New("unknown or unreachable node")

	// ErrUnreachable is returned when a peer cannot be reached over the
	// network (dial refused, no route, partition).
	ErrUnreachable = errors.New("peer unreachable")

	// ErrPeerGone is returned for an operation in flight when the peer left
	// or failed, or its link was closed, before it completed.
	ErrPeerGone = errors.New("peer gone")

	// ErrStreamReset is returned by a Stream's Read or Write after the stream
	// was reset (aborted) by either side.
	ErrStreamReset = errors.New("stream reset")

	// ErrUnauthenticated is returned when a peer fails authentication or
	// claims an identity other than the one it proved.
	ErrUnauthenticated = errors.New("peer not authenticated")

	// ErrAppNotHosted is returned when the target node does not host the
	// application a message or request was addressed to.
	ErrAppNotHosted = errors.New("application not hosted by node")

	// ErrBackpressure is returned when a send could not be queued before the
	// caller's ctx ended because the receiving peer is not keeping up. It
	// always wraps, or is joined with, the ctx error.
	ErrBackpressure = errors.New("peer not keeping up")

	// ErrTooManyRequests is returned when the bounded table of requests in
	// flight stayed full until the caller's ctx ended, or when a peer
	// refused a stream because this node already has as many open to it as
	// it allows.
	ErrTooManyRequests = errors.New("too many requests in flight")

	// ErrVersion is returned when a peer does not speak this node's
	// protocol version.
	ErrVersion = errors.New("unsupported protocol version")

	// ErrRemote is wrapped by the error a caller gets when the remote request
	// handler returned an error or panicked; the message carries the remote
	// error's text.
	ErrRemote = errors.New("remote handler error")

	// ErrFrameTooLarge is returned when a frame or payload exceeds the
	// configured maximum frame size.
	ErrFrameTooLarge = errors.New("frame too large")

	// ErrMalformed is returned when bytes from the network do not decode.
	ErrMalformed = errors.New("malformed input")

	// ErrUnsupportedType is returned by a Codec asked to encode or decode a
	// type it cannot handle.
	ErrUnsupportedType = errors.New("unsupported type for codec")

	// ErrNotFound is returned when a key, bucket or item does not exist.
	ErrNotFound = errors.New("not found")

	// ErrInvalidConfig is wrapped by configuration errors; the message names
	// the offending option.
	ErrInvalidConfig = errors.New("invalid configuration")
)
