package quic

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/quic-go/quic-go"

	"github.com/mycorrizal/mycorrizal/ports"
)

// Stream error codes (RESET_STREAM and STOP_SENDING) this transport sends.
const (
	codeStreamClosed quic.StreamErrorCode = 1 // Close: stop reading, the peer's Writes fail
	codeStreamReset  quic.StreamErrorCode = 2 // Reset: abort both directions
	codeStreamIdle   quic.StreamErrorCode = 3 // StreamIdleTimeout passed
)

// Errors of stream operations. Each wraps ports sentinels.
var (
	errClosed      = fmt.Errorf("quic: stream closed: %w", ports.ErrClosed)
	errWriteClosed = fmt.Errorf("quic: write after CloseWrite: %w", ports.ErrClosed)
	errPeerClosed  = fmt.Errorf("quic: write: peer closed the stream: %w", ports.ErrStreamReset)
	errDeadline    = fmt.Errorf("quic: %w", os.ErrDeadlineExceeded)

	errResetLocal  = fmt.Errorf("quic: stream reset locally: %w", ports.ErrStreamReset)
	errResetRemote = fmt.Errorf("quic: stream reset by peer: %w", ports.ErrStreamReset)
	errIdleLocal   = fmt.Errorf("quic: stream idle for longer than StreamIdleTimeout: %w", ports.ErrStreamReset)
	errIdleRemote  = fmt.Errorf("quic: stream idle for longer than the peer's StreamIdleTimeout: %w", ports.ErrStreamReset)

	errTransportClosed  = fmt.Errorf("quic: %w: transport closed (%w)", ports.ErrStreamReset, ports.ErrClosed)
	errConnClosedLocal  = fmt.Errorf("quic: %w: connection to peer closed (%w)", ports.ErrStreamReset, ports.ErrPeerGone)
	errConnClosedRemote = fmt.Errorf("quic: %w: peer closed the connection (%w)", ports.ErrStreamReset, ports.ErrPeerGone)
	errPeerTransport    = fmt.Errorf("quic: %w: peer transport closed (%w)", ports.ErrStreamReset, ports.ErrPeerGone)
)

// Stream state flags.
const (
	fClosed    uint32 = 1 << iota // Close was called
	fReset                        // Reset was called, or the stream went idle
	fIdle                         // reset by the idle sweeper
	fWriteDone                    // CloseWrite was called
	fReadDone                     // Read returned io.EOF
	fGone                         // removed from its connection's registry
)

// stream is a ports.Stream on one bidirectional QUIC stream. It adds no
// goroutine and, on the data path, no allocation: Read and Write cost an
// atomic load or two (state, idle clock) around quic-go's calls, and Write
// an uncontended mutex.
type stream struct {
	qs    *quic.Stream
	c     *conn
	epoch *atomic.Uint32 // the transport's idle clock

	// wmu serialises Write, CloseWrite and Close's FIN: quic-go forbids
	// closing the send side concurrently with a Write.
	wmu   sync.Mutex
	state atomic.Uint32
	seen  atomic.Uint32 // idle clock at the last Read or Write
}

var _ ports.Stream = (*stream)(nil)

// touch records activity for the idle sweeper; it writes only when the
// clock moved, so streams in use do not bounce a cache line.
func (s *stream) touch() {
	if e := s.epoch.Load(); s.seen.Load() != e {
		s.seen.Store(e)
	}
}

// Peer returns the node ID the peer's certificate proved.
func (s *stream) Peer() ports.NodeID { return s.c.peer }

// Read reads from the stream; see ports.Stream.
func (s *stream) Read(p []byte) (int, error) {
	if st := s.state.Load(); st&(fClosed|fReset) != 0 {
		return 0, s.localErr(st)
	}
	n, err := s.qs.Read(p)
	s.touch()
	if err != nil {
		if err == io.EOF {
			if s.state.Or(fReadDone)&fWriteDone != 0 {
				s.c.forget(s)
			}
			return n, io.EOF
		}
		return n, s.mapErr(err)
	}
	return n, nil
}

// Write writes to the stream, blocking while flow control is exhausted;
// see ports.Stream.
func (s *stream) Write(p []byte) (int, error) {
	s.wmu.Lock()
	if st := s.state.Load(); st&(fClosed|fReset) != 0 {
		s.wmu.Unlock()
		return 0, s.localErr(st)
	}
	n, err := s.qs.Write(p)
	s.wmu.Unlock()
	s.touch()
	if err != nil {
		return n, s.mapErr(err)
	}
	return n, nil
}

// CloseWrite sends FIN after the data written: the peer reads it, then
// io.EOF. Reading continues. It is a no-op when already done or after
// Close; after a reset it returns the reset error.
func (s *stream) CloseWrite() error {
	st := s.state.Load()
	switch {
	case st&fReset != 0:
		return s.localErr(st)
	case st&(fClosed|fWriteDone) != 0:
		return nil
	}
	s.wmu.Lock()
	err := s.qs.Close()
	st = s.state.Or(fWriteDone)
	s.wmu.Unlock()
	if st&fReadDone != 0 {
		s.c.forget(s)
	}
	if err != nil {
		// The send side was cancelled: by the peer's Close (STOP_SENDING
		// with codeStreamClosed: nothing more to say, as after a finished
		// write) or by a reset.
		cause := context.Cause(s.qs.Context())
		if se, ok := errors.AsType[*quic.StreamError](cause); ok && se.Remote && se.ErrorCode == codeStreamClosed {
			return nil
		}
		return s.mapErr(cause)
	}
	return nil
}

// Close sends FIN after the data written, stops reading (the peer's later
// Writes fail) and fails this side's pending and later Reads and Writes
// with an error wrapping ports.ErrClosed. It is idempotent.
func (s *stream) Close() error {
	for {
		st := s.state.Load()
		if st&(fClosed|fReset) != 0 {
			return nil
		}
		if s.state.CompareAndSwap(st, st|fClosed) {
			break
		}
	}
	if !s.wmu.TryLock() {
		// A Write is blocked (flow control): a past deadline makes it
		// return what it queued, then the FIN follows that.
		_ = s.qs.SetWriteDeadline(time.Unix(1, 0))
		s.wmu.Lock()
	}
	_ = s.qs.Close() // fails only if the send side was already cancelled
	s.wmu.Unlock()
	s.qs.CancelRead(codeStreamClosed)
	s.c.forget(s)
	return nil
}

// Reset aborts both directions: the peer's Reads and Writes fail with an
// error wrapping ports.ErrStreamReset, and so do ours. It is idempotent
// and allowed after Close.
func (s *stream) Reset() error {
	s.abort(fReset, codeStreamReset)
	return nil
}

// abort cancels both directions with code once.
func (s *stream) abort(flags uint32, code quic.StreamErrorCode) {
	for {
		st := s.state.Load()
		if st&fReset != 0 {
			return
		}
		if s.state.CompareAndSwap(st, st|flags) {
			break
		}
	}
	s.qs.CancelWrite(code)
	s.qs.CancelRead(code)
	s.c.forget(s)
}

// SetDeadline sets the read and write deadline; the zero time clears it.
func (s *stream) SetDeadline(t time.Time) error {
	return s.qs.SetDeadline(t)
}

// localErr is the error of a call after this side's Close or Reset.
func (s *stream) localErr(st uint32) error {
	switch {
	case st&fIdle != 0:
		return errIdleLocal
	case st&fReset != 0:
		return errResetLocal
	default:
		return errClosed
	}
}

// mapErr turns an error of quic-go into one wrapping the ports sentinels
// ports.Stream documents. It runs only on the error path.
func (s *stream) mapErr(err error) error {
	if st := s.state.Load(); st&(fClosed|fReset) != 0 {
		return s.localErr(st)
	}
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return errDeadline
	}
	if errors.Is(err, quic.ErrStreamClosed) {
		return errWriteClosed
	}
	if se, ok := errors.AsType[*quic.StreamError](err); ok {
		if !se.Remote {
			return errResetLocal
		}
		switch se.ErrorCode {
		case codeStreamClosed:
			return errPeerClosed
		case codeStreamIdle:
			return errIdleRemote
		default:
			return errResetRemote
		}
	}
	return connErr(err)
}

// connErr maps the error a connection closed with to what its streams
// report.
func connErr(err error) error {
	if ae, ok := errors.AsType[*quic.ApplicationError](err); ok {
		switch {
		case ae.Remote && ae.ErrorCode == codeTransportClosed:
			return errPeerTransport
		case ae.Remote:
			return errConnClosedRemote
		case ae.ErrorCode == codeTransportClosed:
			return errTransportClosed
		default:
			return errConnClosedLocal
		}
	}
	if errors.Is(err, quic.ErrTransportClosed) {
		return errTransportClosed
	}
	return fmt.Errorf("quic: %w: connection lost (%w): %w", ports.ErrStreamReset, ports.ErrPeerGone, err)
}
