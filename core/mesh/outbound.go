package mesh

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/mycorrizal/mycorrizal/core/wire"
	"github.com/mycorrizal/mycorrizal/ports"
)

// response is what a pending request receives: a Response frame or the
// error that ended its link.
type response struct {
	f   wire.Frame
	err error
}

// outLink is one outbound stream (this node to a peer, for one app and
// lane): a sender goroutine writing queued frames and a reader goroutine
// dispatching responses to pending requests.
type outLink struct {
	m   *Mesh
	key outKey

	ready   chan struct{} // closed when the dial finished
	dialErr error         // set before ready is closed

	stream ports.Stream
	snd    *sender

	done     chan struct{} // closed when the link dies
	failOnce sync.Once
	err      error // why it died; set before done is closed

	mu      sync.Mutex
	pending map[uint64]chan response // nil once the link died
}

// link returns the live outbound link for key, opening it on first use.
// Concurrent callers share one dial.
func (m *Mesh) link(ctx context.Context, key outKey) (*outLink, error) {
	// Fast path: a live link, under the read lock only.
	m.mu.RLock()
	l := m.out[key]
	m.mu.RUnlock()
	if l != nil {
		select {
		case <-l.ready:
			if l.dialErr == nil {
				return l, nil
			}
		default:
		}
	}
	for {
		m.mu.Lock()
		if m.closed {
			m.mu.Unlock()
			return nil, errClosed
		}
		if l := m.out[key]; l != nil {
			m.mu.Unlock()
			select {
			case <-l.ready:
			case <-ctx.Done():
				return nil, fmt.Errorf("waiting for stream to %s: %w", key.peer, ctx.Err())
			}
			if l.dialErr != nil {
				// Another caller's dial failed; if only its ctx ended, ours
				// may still succeed.
				if isCtxErr(l.dialErr) && ctx.Err() == nil {
					continue
				}
				return nil, l.dialErr
			}
			return l, nil
		}
		peer, ok := m.peers[key.peer]
		if !ok {
			m.mu.Unlock()
			return nil, fmt.Errorf("%s is not a live member: %w", key.peer, ports.ErrUnknownNode)
		}
		l := &outLink{m: m, key: key, ready: make(chan struct{}), done: make(chan struct{}), pending: make(map[uint64]chan response)}
		m.out[key] = l
		m.mu.Unlock()

		l.dialErr = l.dial(ctx, peer.TransportAddr)
		if l.dialErr != nil {
			m.mu.Lock()
			if m.out[key] == l {
				delete(m.out, key)
			}
			m.mu.Unlock()
		}
		close(l.ready)
		if l.dialErr != nil {
			return nil, l.dialErr
		}
		return l, nil
	}
}

func isCtxErr(err error) bool {
	return errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)
}

// dial opens the stream, queues the init frame and starts the goroutines.
func (l *outLink) dial(ctx context.Context, addr string) error {
	m := l.m
	dctx, cancel := context.WithTimeout(ctx, m.cfg.DialTimeout)
	defer cancel()
	stop := context.AfterFunc(m.ctx, cancel)
	defer stop()
	s, err := m.cfg.Transport.Open(dctx, l.key.peer, addr)
	if err != nil {
		return fmt.Errorf("open stream: %w", err)
	}
	if s.Peer() != l.key.peer {
		_ = s.Reset()
		return fmt.Errorf("stream authenticated as %s: %w", s.Peer(), ports.ErrUnauthenticated)
	}
	init, err := wire.AppendStreamInit(nil, m.cfg.Self, l.key.app, l.key.lane)
	if err != nil {
		_ = s.Reset()
		return err
	}
	l.stream = s
	l.snd = newSender(s, m.cfg.SendBufferSize, l.done, l.fail)
	l.snd.buf = append(l.snd.buf, init...) // first on the stream
	l.snd.wake <- struct{}{}

	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		_ = s.Reset()
		return errClosed
	}
	m.wg.Add(2)
	m.mu.Unlock()
	go func() { defer m.wg.Done(); l.snd.run() }()
	go func() { defer m.wg.Done(); l.readLoop() }()
	return nil
}

// deadErr returns why the link died.
func (l *outLink) deadErr() error {
	<-l.done
	return l.err
}

// fail ends the link once: it records err, resets the stream, removes the
// link from the registry and fails every pending request with err.
func (l *outLink) fail(err error) {
	l.failOnce.Do(func() {
		l.err = err
		close(l.done)
		if l.stream != nil {
			_ = l.stream.Reset()
		}
		m := l.m
		m.mu.Lock()
		if m.out[l.key] == l {
			delete(m.out, l.key)
		}
		m.mu.Unlock()
		l.mu.Lock()
		pending := l.pending
		l.pending = nil
		l.mu.Unlock()
		for _, ch := range pending {
			ch <- response{err: err}
		}
		if !errors.Is(err, ports.ErrClosed) && !errors.Is(err, ports.ErrPeerGone) {
			m.log.Debug("outbound stream ended", "peer", string(l.key.peer), "app", l.key.app, "lane", l.key.lane.String(), "err", err)
		}
	})
}

// addPending registers a request; it fails if the link already died.
func (l *outLink) addPending(id uint64, ch chan response) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.pending == nil {
		return l.err
	}
	l.pending[id] = ch
	return nil
}

// dropPending forgets a request whose caller gave up.
func (l *outLink) dropPending(id uint64) {
	l.mu.Lock()
	if l.pending != nil {
		delete(l.pending, id)
	}
	l.mu.Unlock()
}

// readLoop reads what the acceptor sends back: responses, or a GoAway.
func (l *outLink) readLoop() {
	r := wire.NewReader(l.stream, l.m.cfg.MaxFrameSize)

	for {
		f, err := r.Next()
		if err != nil {
			switch {
			case errors.Is(err, io.EOF):
				err = fmt.Errorf("stream closed by peer: %w", ports.ErrPeerGone)
			case errors.Is(err, ports.ErrStreamReset):
				err = fmt.Errorf("stream reset: %w", ports.ErrPeerGone)
			default:
				err = fmt.Errorf("read: %w", err)
			}
			l.fail(err)
			return
		}
		switch f.Type {
		case wire.TypeResponse:
			l.mu.Lock()
			ch := l.pending[f.ID]
			delete(l.pending, f.ID)
			l.mu.Unlock()
			if ch != nil {
				ch <- response{f: f} // buffered: never blocks
			}
		case wire.TypeGoAway:
			l.fail(goAwayErr(f))
			return
		default:
			l.fail(fmt.Errorf("unexpected %s frame: %w", f.Type, ports.ErrMalformed))
			return
		}
	}
}

// goAwayErr turns a peer's GoAway into an error wrapping the sentinel that
// names its reason. A code this node does not know (from a newer peer) says
// only that the peer ended the stream.
func goAwayErr(f wire.Frame) error {
	var sentinel error
	switch f.Code {
	case wire.CodeProtocolError:
		sentinel = ports.ErrMalformed
	case wire.CodeVersion:
		sentinel = ports.ErrVersion
	case wire.CodeAppNotHosted:
		sentinel = ports.ErrAppNotHosted
	case wire.CodeUnauthenticated:
		sentinel = ports.ErrUnauthenticated
	case wire.CodeFrameTooLarge:
		sentinel = ports.ErrFrameTooLarge
	case wire.CodeTooManyStreams:
		sentinel = ports.ErrTooManyRequests
	default: // CodeNormal, CodeShuttingDown, unknown codes
		sentinel = ports.ErrPeerGone
	}
	return fmt.Errorf("peer refused the stream (%s: %s): %w", f.Code, f.Err, sentinel)
}
