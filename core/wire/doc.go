// Package wire is Mycorrizal's frame protocol: the bytes that travel on every
// transport stream between two nodes, whatever the transport (QUIC or the
// in-memory one).
//
// A stream carries a sequence of frames. Each frame is a 5-byte header, a
// big-endian uint32 length L followed by a one-byte type, and then L-1 bytes
// of body (so L counts the type byte and the body):
//
//	+----------------+--------+----------------------+
//	| length (u32)   | type   | body (length-1 B)    |
//	+----------------+--------+----------------------+
//
// The first frame of every stream is a StreamInit naming the protocol
// version, the sender's node ID, the application and the lane. After it the
// opener sends Data frames (message lane) or Request frames (request lane),
// and the acceptor answers requests with Response frames on the same stream.
// Either side may send a GoAway frame with a code and a reason before it
// closes a stream it refuses or can no longer serve.
//
// Bodies, all integers big-endian:
//
//	StreamInit  version u8 | lane u8 | len u8 | node ID | len u8 | app
//	Data        payload
//	Request     id u64 | timeout ms u32 (0 = none) | payload
//	Response    id u64 | status u8 | len u16 | error text | payload
//	GoAway      code u16 | len u16 | reason
//
// Frame types 0x10-0x1f are reserved for the cache (Mycel) and 0x20-0x2f for
// the event bus (Cytoplasm); a decoder rejects types it does not know.
//
// Every length is checked against the configured maximum frame size before
// anything is allocated, and every body is checked against its own length,
// so input from the network can only produce an error, never a panic or an
// oversized allocation.
package wire
