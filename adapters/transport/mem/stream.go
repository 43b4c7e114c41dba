package mem

import (
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"github.com/mycorrizal/mycorrizal/ports"
)

// maxChunk bounds the bytes one Write copies while holding the stream's
// lock; larger writes are queued in pieces.
const maxChunk = 64 << 10

// Errors of stream operations. Each wraps a ports sentinel.
var (
	errClosed      = fmt.Errorf("mem: stream closed: %w", ports.ErrClosed)
	errWriteClosed = fmt.Errorf("mem: write after CloseWrite: %w", ports.ErrClosed)
	errPeerClosed  = fmt.Errorf("mem: write: peer closed the stream: %w", ports.ErrStreamReset)
	errDeadline    = fmt.Errorf("mem: %w", os.ErrDeadlineExceeded)

	errResetLocal            = fmt.Errorf("mem: stream reset locally: %w", ports.ErrStreamReset)
	errResetRemote           = fmt.Errorf("mem: stream reset by peer: %w", ports.ErrStreamReset)
	errResetTransportClosed  = fmt.Errorf("mem: %w: transport closed (%w)", ports.ErrStreamReset, ports.ErrClosed)
	errResetPeerCrashed      = fmt.Errorf("mem: %w: peer transport closed (%w)", ports.ErrStreamReset, ports.ErrPeerGone)
	errResetPeerClosedLocal  = fmt.Errorf("mem: %w: connection to peer closed (%w)", ports.ErrStreamReset, ports.ErrPeerGone)
	errResetPeerClosedRemote = fmt.Errorf("mem: %w: peer closed the connection (%w)", ports.ErrStreamReset, ports.ErrPeerGone)
)

// chunk is the unread rest of one piece of a Write.
type chunk struct {
	data []byte    // owned copy
	at   time.Time // readable from then on; zero means at once
}

// half is one direction of a stream: a FIFO of chunks bounded by the
// receiver's window. Guarded by its conn's mu, except the signal channels.
type half struct {
	from, to ports.NodeID
	window   int

	chunks   []chunk // chunks[head:] are unread
	head     int
	buffered int // unread bytes

	eof        bool      // the writer ended: io.EOF after the chunks
	eofAt      time.Time // when the end becomes visible (delayed links)
	readDone   bool      // the reader has seen io.EOF
	readerGone bool      // the reader closed: writes fail, nothing is kept

	// Wake-ups, capacity 1, sent without blocking. A woken waiter rechecks
	// the state under the lock.
	readable chan struct{}
	writable chan struct{}
}

// threshold is the free space below which a blocked writer is not woken, so
// a slow reader does not turn a writer's output into tiny chunks.
func (h *half) threshold() int { return max(h.window/4, 1) }

// push appends data, readable at at.
func (h *half) push(data []byte, at time.Time) {
	if len(h.chunks) == cap(h.chunks) && h.head > 0 && h.head >= len(h.chunks)/2 {
		k := copy(h.chunks, h.chunks[h.head:])
		clear(h.chunks[k:])
		h.chunks, h.head = h.chunks[:k], 0
	}
	h.chunks = append(h.chunks, chunk{data: data, at: at})
	h.buffered += len(data)
}

// read copies the bytes readable now into p. If it stopped at a chunk that
// is not readable yet, until is when it will be.
func (h *half) read(p []byte) (n int, until time.Time) {
	var now time.Time
	for h.head < len(h.chunks) && n < len(p) {
		ch := &h.chunks[h.head]
		if !ch.at.IsZero() {
			if now.IsZero() {
				now = time.Now()
			}
			if ch.at.After(now) {
				until = ch.at
				break
			}
			ch.at = time.Time{}
		}
		k := copy(p[n:], ch.data)
		n += k
		ch.data = ch.data[k:]
		if len(ch.data) == 0 {
			*ch = chunk{}
			h.head++
		}
	}
	h.buffered -= n
	if h.head == len(h.chunks) {
		if cap(h.chunks) > 1024 {
			h.chunks = nil
		} else {
			h.chunks = h.chunks[:0]
		}
		h.head = 0
	}
	return n, until
}

// discard drops every unread byte.
func (h *half) discard() {
	h.chunks, h.head, h.buffered = nil, 0, 0
}

// conn is the state two stream ends share.
type conn struct {
	net *Network

	mu       sync.Mutex
	dir      [2]half // dir[i] is written by ends[i] and read by ends[1-i]
	ends     [2]stream
	resetErr [2]error // what each end's Read and Write return once reset
}

// newConn makes a stream between an opener and an acceptor; ends[0] is the
// opener's end, ends[1] the acceptor's.
func newConn(n *Network, opener *Transport, openerID ports.NodeID, acceptor *Transport, acceptorID ports.NodeID) *conn {
	c := &conn{net: n}
	c.dir[0] = newHalf(openerID, acceptorID, acceptor.window)
	c.dir[1] = newHalf(acceptorID, openerID, opener.window)
	c.ends[0] = stream{c: c, side: 0, peer: acceptorID, t: opener, dl: newDeadline()}
	c.ends[1] = stream{c: c, side: 1, peer: openerID, t: acceptor, dl: newDeadline()}
	return c
}

func newHalf(from, to ports.NodeID, window int) half {
	return half{
		from: from, to: to, window: window,
		readable: make(chan struct{}, 1),
		writable: make(chan struct{}, 1),
	}
}

func signal(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// wakeAll wakes every waiter of both directions. Called with c.mu held.
func (c *conn) wakeAll() {
	for i := range c.dir {
		signal(c.dir[i].readable)
		signal(c.dir[i].writable)
	}
}

// settle marks the ends that are finished (reset, or written to the end
// and read to the end or closed) and returns them so the caller releases
// them after unlocking c.mu. Called with c.mu held.
func (c *conn) settle() (fin [2]*stream) {
	for i := range c.ends {
		e := &c.ends[i]
		if e.gone {
			continue
		}
		out, in := &c.dir[i], &c.dir[1-i]
		if c.resetErr[i] != nil || ((out.eof || out.readerGone) && (e.closed || in.readDone)) {
			e.gone = true
			fin[i] = e
		}
	}
	return fin
}

// release unregisters finished ends from their transports. Called without
// c.mu.
func release(fin [2]*stream) {
	for _, e := range fin {
		if e != nil {
			e.t.remove(e)
			e.dl.stop()
		}
	}
}

// reset aborts the stream: end side gets mine, the other end theirs. It is
// a no-op once the stream was reset or both ends are finished.
func (c *conn) reset(side int, mine, theirs error) {
	c.mu.Lock()
	if c.resetErr[0] != nil || (c.ends[0].gone && c.ends[1].gone) {
		c.mu.Unlock()
		return
	}
	c.resetErr[side], c.resetErr[1-side] = mine, theirs
	c.dir[0].discard()
	c.dir[1].discard()
	c.wakeAll()
	fin := c.settle()
	c.mu.Unlock()
	release(fin)
}

// stream is one end of a conn: a ports.Stream.
type stream struct {
	c    *conn
	side int
	peer ports.NodeID
	t    *Transport
	dl   *deadline

	// Guarded by c.mu.
	closed bool // Close was called
	gone   bool // finished and unregistered from t
}

var _ ports.Stream = (*stream)(nil)

// Peer returns the node the network knows at the other end.
func (s *stream) Peer() ports.NodeID { return s.peer }

// Read reads the bytes readable now, blocking until some are, the writer
// ended (io.EOF), the stream is closed or reset, or the deadline passes.
func (s *stream) Read(p []byte) (int, error) {
	c := s.c
	in := &c.dir[1-s.side]
	for {
		c.mu.Lock()
		switch {
		case c.resetErr[s.side] != nil:
			err := c.resetErr[s.side]
			c.mu.Unlock()
			return 0, err
		case s.closed:
			c.mu.Unlock()
			return 0, errClosed
		case in.readDone:
			c.mu.Unlock()
			return 0, io.EOF
		case len(p) == 0:
			c.mu.Unlock()
			return 0, nil
		}

		var wake <-chan struct{} // set while the link is down
		var until time.Time      // set while the next bytes are delayed
		if in.buffered > 0 || in.eof {
			if c.net.conds.Load() != nil {
				// Take the wake channel before asking the link, so a heal
				// in between is not missed.
				if w := c.net.woken(); c.net.link(in.from, in.to).Down {
					wake = w
				}
			}
			if wake == nil {
				n, next := in.read(p)
				if n > 0 {
					if in.window-in.buffered >= in.threshold() {
						signal(in.writable)
					}
					if in.buffered > 0 || in.eof {
						signal(in.readable) // for a concurrent reader, if any
					}
					c.mu.Unlock()
					return n, nil
				}
				until = next
				if in.buffered == 0 && in.eof {
					if in.eofAt.IsZero() || !in.eofAt.After(time.Now()) {
						in.readDone = true
						fin := c.settle()
						c.mu.Unlock()
						release(fin)
						return 0, io.EOF
					}
					until = in.eofAt
				}
			}
		}
		c.mu.Unlock()

		var timer *time.Timer
		var fire <-chan time.Time
		if !until.IsZero() {
			timer = time.NewTimer(time.Until(until))
			fire = timer.C
		}
		select {
		case <-in.readable:
		case <-wake:
		case <-fire:
		case <-s.dl.wait():
			if timer != nil {
				timer.Stop()
			}
			return 0, errDeadline
		}
		if timer != nil {
			timer.Stop()
		}
	}
}

// Write copies p into the stream, blocking while the peer's window is full
// until the reader consumes, the stream is closed or reset, or the deadline
// passes. It returns how many bytes were queued.
func (s *stream) Write(p []byte) (int, error) {
	c := s.c
	out := &c.dir[s.side]
	total := 0
	for {
		c.mu.Lock()
		var err error
		switch {
		case c.resetErr[s.side] != nil:
			err = c.resetErr[s.side]
		case s.closed:
			err = errClosed
		case out.eof:
			err = errWriteClosed
		case out.readerGone:
			err = errPeerClosed
		}
		if err != nil || len(p) == 0 {
			c.mu.Unlock()
			return total, err
		}
		space := out.window - out.buffered
		if space > 0 && space >= min(len(p), out.threshold()) {
			k := min(space, len(p), maxChunk)
			buf := make([]byte, k)
			copy(buf, p)
			var at time.Time
			if c.net.conds.Load() != nil {
				if d := c.net.link(out.from, out.to).Delay; d > 0 {
					at = time.Now().Add(d)
				}
			}
			out.push(buf, at)
			signal(out.readable)
			c.mu.Unlock()
			total += k
			p = p[k:]
			continue
		}
		c.mu.Unlock()

		select {
		case <-out.writable:
		case <-s.dl.wait():
			return total, errDeadline
		}
	}
}

// CloseWrite ends this side's writing: the peer reads what was written,
// then io.EOF. It is a no-op when already done; after a reset it returns
// the reset error.
func (s *stream) CloseWrite() error {
	c := s.c
	c.mu.Lock()
	if err := c.resetErr[s.side]; err != nil {
		c.mu.Unlock()
		return err
	}
	c.endWrite(s.side)
	fin := c.settle()
	c.mu.Unlock()
	release(fin)
	return nil
}

// endWrite marks the direction written by side as ended. Called with c.mu
// held.
func (c *conn) endWrite(side int) {
	out := &c.dir[side]
	if out.eof {
		return
	}
	out.eof = true
	if c.net.conds.Load() != nil {
		if d := c.net.link(out.from, out.to).Delay; d > 0 {
			out.eofAt = time.Now().Add(d)
		}
	}
	signal(out.readable)
	signal(out.writable)
}

// Close ends both directions: what was written is still delivered and the
// peer then reads io.EOF; bytes the peer sent and this side did not read
// are dropped, and the peer's later Writes fail with an error wrapping
// ports.ErrStreamReset. This side's pending and later Reads and Writes fail
// with an error wrapping ports.ErrClosed. It is idempotent.
func (s *stream) Close() error {
	c := s.c
	c.mu.Lock()
	if s.closed || c.resetErr[s.side] != nil {
		c.mu.Unlock()
		return nil
	}
	s.closed = true
	c.endWrite(s.side)
	in := &c.dir[1-s.side]
	in.readerGone = true
	in.discard()
	c.wakeAll()
	fin := c.settle()
	c.mu.Unlock()
	release(fin)
	return nil
}

// Reset aborts the stream: unread bytes in both directions are dropped and
// both sides' Reads and Writes fail with an error wrapping
// ports.ErrStreamReset. It is idempotent; after both sides finished
// normally it changes nothing.
func (s *stream) Reset() error {
	s.c.reset(s.side, errResetLocal, errResetRemote)
	return nil
}

// SetDeadline sets the deadline of blocked and later Reads and Writes;
// the zero time clears it.
func (s *stream) SetDeadline(t time.Time) error {
	s.dl.set(t)
	return nil
}
