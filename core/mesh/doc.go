// Package mesh is Nodosum, Mycorrizal's messaging layer: named applications
// on every node exchange one-way messages and requests with responses over
// authenticated transport streams.
//
// Streams are opened lazily, one per (peer, application, lane) and
// direction: a node's outbound streams (which it opened) and inbound streams
// (which a peer opened) live in separate registries, so the two directions
// never collide. Messages and requests use separate lanes so a slow message
// handler never delays requests.
//
// Backpressure instead of drops: every application has a bounded inbox
// drained by one dispatcher goroutine (so messages from one sender are
// handled in the order sent), and request handlers run with bounded
// concurrency. When a handler falls behind, the stream reader stops reading,
// the transport's flow control fills, the per-stream send queue fills, and
// the sender blocks; a sender whose ctx ends while blocked gets an error
// wrapping ports.ErrBackpressure.
//
// The identity a stream's init frame claims must equal the peer the
// transport authenticated, else the stream is refused.
package mesh
