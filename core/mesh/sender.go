package mesh

import (
	"context"
	"fmt"
	"runtime"
	"sync"

	"github.com/mycorrizal/mycorrizal/ports"
)

// maxSpareBuf is the largest batch buffer a sender keeps for reuse; a
// bigger one (after a large frame) is left to the garbage collector.
const maxSpareBuf = 1 << 20

// packetSize is about what one network packet carries (QUIC over a
// 1500-byte MTU).
const packetSize = 1200

// sender owns the writing side of one stream. Callers encode their frames
// straight into a shared pending buffer (no per-frame allocation or channel
// hand-off); one goroutine takes the whole buffer and writes it with a
// single transport write, so frames queued while a write is under way go
// out together in the next one (batching that adapts to load: one frame
// per write when idle, many under load).
//
// The pending buffer is bounded: while it holds limit bytes or more,
// callers wait until the writer takes it, which happens only as fast as
// the transport accepts bytes, i.e. as fast as the peer reads. That is the
// backpressure a slow receiver exerts on its senders.
type sender struct {
	stream ports.Stream
	peer   ports.NodeID
	limit  int
	done   <-chan struct{} // closed when the link dies
	fail   func(error)     // called once with the write error

	wake chan struct{} // capacity 1: there is something to write

	mu      sync.Mutex
	buf     []byte        // frames not yet taken by the writer
	spare   []byte        // the writer's previous buffer, for reuse
	space   chan struct{} // closed when the writer takes buf, if waiters
	waiters int
}

func newSender(s ports.Stream, limit int, done <-chan struct{}, fail func(error)) *sender {
	return &sender{
		stream: s, peer: s.Peer(), limit: limit, done: done, fail: fail,
		wake: make(chan struct{}, 1), space: make(chan struct{}),
	}
}

// send appends a frame produced by encode (which must return dst unchanged
// with an error when it fails) to the pending buffer, waiting while the
// buffer is full until ctx ends (an error wrapping ports.ErrBackpressure)
// or the link dies (deadErr). A frame larger than the limit is accepted
// when the buffer is empty, so no frame is refused for its size here.
func (s *sender) send(ctx context.Context, encode func(dst []byte) ([]byte, error), deadErr func() error) error {
	for {
		select {
		case <-s.done:
			return deadErr()
		default:
		}
		s.mu.Lock()
		if len(s.buf) < s.limit {
			var err error
			s.buf, err = encode(s.buf)
			s.mu.Unlock()
			if err != nil {
				return err
			}
			select {
			case s.wake <- struct{}{}:
			default:
			}
			return nil
		}
		s.waiters++
		space := s.space
		s.mu.Unlock()
		select {
		case <-space:
		case <-s.done:
			s.unwait()
			return deadErr()
		case <-ctx.Done():
			s.unwait()
			return fmt.Errorf("%w: %s: send buffer full: %w", ports.ErrBackpressure, s.peer, ctx.Err())
		}
	}
}

func (s *sender) unwait() {
	s.mu.Lock()
	s.waiters--
	s.mu.Unlock()
}

// run writes pending frames until the link dies or a write fails.
func (s *sender) run() {
	for {
		select {
		case <-s.wake:
		case <-s.done:
			return
		}
		// While less than a packet is pending, let goroutines that are
		// about to send run first, so a busy stream's small frames leave in
		// fewer, fuller packets. When nothing else is runnable this returns
		// at once; larger batches already fill packets and go out directly.
		s.mu.Lock()
		small := len(s.buf) < packetSize
		s.mu.Unlock()
		if small {
			runtime.Gosched()
		}
		s.mu.Lock()
		out := s.buf
		s.buf = s.spare[:0]
		s.spare = nil
		if s.waiters > 0 {
			close(s.space)
			s.space = make(chan struct{})
			s.waiters = 0
		}
		s.mu.Unlock()
		if len(out) == 0 {
			continue
		}
		if _, err := s.stream.Write(out); err != nil {
			s.fail(fmt.Errorf("write: %w", err))
			return
		}
		if cap(out) <= maxSpareBuf {
			s.mu.Lock()
			s.spare = out[:0]
			s.mu.Unlock()
		}
	}
}
