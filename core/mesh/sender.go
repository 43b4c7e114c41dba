package mesh

import (
	"bufio"
	"context"
	"fmt"
	"sync"

	"github.com/mycorrizal/mycorrizal/ports"
)

// bufPool recycles encoded frames between the goroutines that encode them
// and the sender goroutine that writes them.
var bufPool = sync.Pool{New: func() any { b := make([]byte, 0, 512); return &b }}

// maxPooledBuf is the largest buffer returned to bufPool; larger ones are
// left to the garbage collector so the pool does not pin big payloads.
const maxPooledBuf = 64 << 10

func getBuf() *[]byte { return bufPool.Get().(*[]byte) }

func putBuf(b *[]byte) {
	if cap(*b) > maxPooledBuf {
		return
	}
	*b = (*b)[:0]
	bufPool.Put(b)
}

// sender owns the writing side of one stream: encoded frames are queued on a
// bounded channel and one goroutine writes them, coalescing whatever is
// queued into one transport write (batching), flushing when the queue runs
// empty.
type sender struct {
	stream ports.Stream
	queue  chan *[]byte
	done   <-chan struct{} // closed when the link dies
	fail   func(error)     // called once with the write error
	peer   ports.NodeID
}

func newSender(s ports.Stream, size int, done <-chan struct{}, fail func(error)) *sender {
	return &sender{stream: s, queue: make(chan *[]byte, size), done: done, fail: fail, peer: s.Peer()}
}

// enqueue queues an encoded frame, blocking while the queue is full until
// ctx ends (ErrBackpressure) or the link dies (deadErr). Ownership of buf
// passes to the sender on success.
func (s *sender) enqueue(ctx context.Context, buf *[]byte, deadErr func() error) error {
	select {
	case s.queue <- buf:
		return nil
	case <-s.done:
		return deadErr()
	default:
	}
	select {
	case s.queue <- buf:
		return nil
	case <-s.done:
		return deadErr()
	case <-ctx.Done():
		return fmt.Errorf("%w: %s: send queue full: %w", ports.ErrBackpressure, s.peer, ctx.Err())
	}
}

// run writes queued frames until the link dies or a write fails.
func (s *sender) run() {
	w := bufio.NewWriterSize(s.stream, 32<<10)
	for {
		var buf *[]byte
		select {
		case buf = <-s.queue:
		case <-s.done:
			return
		}
		_, err := w.Write(*buf)
		putBuf(buf)
		if err == nil && len(s.queue) == 0 {
			err = w.Flush()
		}
		if err != nil {
			s.fail(fmt.Errorf("write: %w", err))
			return
		}
	}
}
