package mesh

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mycorrizal/mycorrizal/core/wire"
	"github.com/mycorrizal/mycorrizal/ports"
)

// RemoteError is the error a Request returns when the remote handler
// returned an error, panicked, or had no handler. It wraps ports.ErrRemote.
type RemoteError struct {
	Node    ports.NodeID
	App     string
	Status  wire.Status
	Message string
}

// Error describes the remote failure.
func (e *RemoteError) Error() string {
	return fmt.Sprintf("mesh: request to %s app %q: %s: %s", e.Node, e.App, e.Status, e.Message)
}

// Unwrap returns ports.ErrRemote.
func (e *RemoteError) Unwrap() error { return ports.ErrRemote }

// Request sends payload to the application on node and waits for the
// response. If ctx has no deadline the configured default request timeout
// applies. Errors wrap: ports.ErrUnknownNode (node is not a live member),
// ports.ErrAppNotHosted (node does not host the application, reported
// promptly by the peer), ports.ErrTooManyRequests (the in-flight table stayed
// full, or the peer refused a stream because this node has too many open to
// it), ports.ErrBackpressure (the peer is not reading), ports.ErrPeerGone
// (the peer failed or left mid-request), ports.ErrRemote (the handler failed;
// see RemoteError), ports.ErrFrameTooLarge, ports.ErrVersion (the peer speaks
// another protocol version), ports.ErrMalformed (the peer found this node's
// frames malformed), or the ctx error when no response came in time. A request to this node's own ID runs the handler directly.
// Request does not retain payload.
func (a *App) Request(ctx context.Context, node ports.NodeID, payload []byte) ([]byte, error) {
	m := a.m
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, m.cfg.DefaultRequestTimeout)
		defer cancel()
	}
	if len(payload)+wire.RequestOverhead-wire.HeaderSize+1 > m.cfg.MaxFrameSize {
		return nil, fmt.Errorf("mesh: request to %s app %q: payload of %d bytes: %w", node, a.name, len(payload), ports.ErrFrameTooLarge)
	}
	if node == m.cfg.Self {
		p := make([]byte, len(payload))
		copy(p, payload)
		resp, status, msg := a.invoke(ctx, node, p)
		if status != wire.StatusOK {
			return nil, &RemoteError{Node: node, App: a.name, Status: status, Message: msg}
		}
		return resp, nil
	}
	if m.cfg.Transport == nil {
		return nil, fmt.Errorf("mesh: request to %s app %q: single mode: %w", node, a.name, ports.ErrUnknownNode)
	}

	select {
	case m.pending <- struct{}{}:
	default:
		select {
		case m.pending <- struct{}{}:
		case <-ctx.Done():
			return nil, fmt.Errorf("mesh: request to %s app %q: %w: %w", node, a.name, ports.ErrTooManyRequests, ctx.Err())
		}
	}
	defer func() { <-m.pending }()

	l, err := m.link(ctx, outKey{peer: node, app: a.name, lane: wire.LaneRequests})
	if err != nil {
		return nil, fmt.Errorf("mesh: request to %s app %q: %w", node, a.name, err)
	}
	id := m.nextID.Add(1)
	ch := respChanPool.Get().(chan response)
	if err := l.addPending(id, ch); err != nil {
		respChanPool.Put(ch)
		return nil, fmt.Errorf("mesh: request to %s app %q: %w", node, a.name, err)
	}
	var timeoutMS uint32
	if dl, ok := ctx.Deadline(); ok {
		timeoutMS = uint32(max(1, min(time.Until(dl).Milliseconds(), 1<<31)))
	}
	err = l.snd.send(ctx, func(dst []byte) ([]byte, error) {
		return wire.AppendRequest(dst, id, timeoutMS, payload, m.cfg.MaxFrameSize)
	}, l.deadErr)
	if err != nil {
		l.dropPending(id)
		return nil, fmt.Errorf("mesh: request to %s app %q: %w", node, a.name, err)
	}
	select {
	case r := <-ch:
		// Whoever sent on ch removed it from the pending table first, so
		// nobody else holds it: it can be reused.
		respChanPool.Put(ch)
		if r.err != nil {
			return nil, fmt.Errorf("mesh: request to %s app %q: %w", node, a.name, r.err)
		}
		return responseResult(node, a.name, r.f)
	case <-ctx.Done():
		l.dropPending(id)
		return nil, fmt.Errorf("mesh: request to %s app %q: no response: %w", node, a.name, ctx.Err())
	}
}

// respChanPool recycles the one-slot channels requests wait on. A channel
// goes back only after its response was received; one whose caller gave up
// may still receive a late response, so it is left to the collector.
var respChanPool = sync.Pool{New: func() any { return make(chan response, 1) }}

func responseResult(node ports.NodeID, app string, f wire.Frame) ([]byte, error) {
	switch f.Status {
	case wire.StatusOK:
		return f.Payload, nil
	case wire.StatusExpired:
		return nil, fmt.Errorf("mesh: request to %s app %q: expired before handling: %w", node, app, context.DeadlineExceeded)
	case wire.StatusShuttingDown:
		return nil, fmt.Errorf("mesh: request to %s app %q: peer shutting down: %w", node, app, ports.ErrPeerGone)
	default:
		return nil, &RemoteError{Node: node, App: app, Status: f.Status, Message: f.Err}
	}
}

// invoke runs the request handler, turning an error or a panic into a
// status and message.
func (a *App) invoke(ctx context.Context, from ports.NodeID, payload []byte) (resp []byte, status wire.Status, msg string) {
	h := a.onReq.Load()
	if h == nil {
		return nil, wire.StatusNoHandler, fmt.Sprintf("application %q on %s has no request handler", a.name, a.m.cfg.Self)
	}
	defer func() {
		if r := recover(); r != nil {
			a.m.log.Error("request handler panicked", "app", a.name, "from", string(from), "panic", fmt.Sprint(r), "stack", string(debug.Stack()))
			resp, status, msg = nil, wire.StatusHandlerPanic, fmt.Sprint(r)
		}
	}()
	resp, err := (*h)(ctx, from, payload)
	if err != nil {
		return nil, wire.StatusHandlerError, err.Error()
	}
	return resp, wire.StatusOK, ""
}

// readRequests reads Request frames from a peer's stream and runs a handler
// for each, with bounded concurrency (see slots), writing responses back on
// the same stream. When the peer's share or all handler slots are busy it
// stops reading, which slows the caller down.
func (a *App) readRequests(ctx context.Context, from ports.NodeID, s ports.Stream, r *wire.Reader) error {
	m := a.m
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var failErr atomic.Pointer[error]
	snd := newSender(s, m.cfg.SendBufferSize, ctx.Done(), func(err error) {
		failErr.Store(&err)
		cancel()
		_ = s.Reset()
	})
	deadErr := func() error {
		if e := failErr.Load(); e != nil {
			return *e
		}
		return fmt.Errorf("mesh: stream from %s closed: %w", from, ports.ErrPeerGone)
	}
	m.wg.Add(1)
	go func() { defer m.wg.Done(); snd.run() }()

	ps := a.slots.join(from)
	defer a.slots.leave(from, ps)
	for {
		f, err := r.Next()
		if err != nil {
			return err
		}
		if f.Type != wire.TypeRequest {
			return fmt.Errorf("mesh: unexpected %s frame on request stream: %w", f.Type, ports.ErrMalformed)
		}
		if err := a.slots.acquire(ctx, from, ps); err != nil {
			return err
		}
		m.wg.Add(1)
		go func() {
			defer m.wg.Done()
			defer a.slots.releasePeer(from, ps)
			a.handleRequest(ctx, from, f, snd, deadErr)
		}()
	}
}

// handleRequest runs the handler for one request and queues its response.
// It holds a run slot only while the handler runs. The response then waits
// for room in the peer's send buffer until the request's deadline at most
// (the caller has given up by then), so a peer that stops reading makes
// this node hold its responses for a bounded time only.
func (a *App) handleRequest(ctx context.Context, from ports.NodeID, f wire.Frame, snd *sender, deadErr func() error) {
	m := a.m
	running := true
	done := func() {
		if running {
			running = false
			a.slots.releaseRun()
		}
	}
	defer done()
	timeout := m.cfg.DefaultRequestTimeout
	if f.Timeout > 0 {
		timeout = time.Duration(f.Timeout) * time.Millisecond
	}
	// The handler sees the caller's deadline; a request that came without
	// one runs without one, and only its response is bounded by default.
	hctx, cancel := ctx, context.CancelFunc(func() {})
	if f.Timeout > 0 {
		hctx, cancel = context.WithTimeout(ctx, timeout)
	}
	defer cancel()
	var (
		resp   []byte
		status wire.Status
		msg    string
	)
	if hctx.Err() != nil {
		status, msg = wire.StatusExpired, "deadline passed before handling"
		if m.ctx.Err() != nil {
			status, msg = wire.StatusShuttingDown, "node shutting down"
		}
	} else {
		resp, status, msg = a.invoke(hctx, from, f.Payload)
	}
	done()

	sctx := hctx
	if f.Timeout == 0 {
		var scancel context.CancelFunc
		sctx, scancel = context.WithTimeout(ctx, timeout)
		defer scancel()
	}
	encode := func(dst []byte) ([]byte, error) {
		out, err := wire.AppendResponse(dst, f.ID, status, msg, resp, m.cfg.MaxFrameSize)
		if err != nil {
			return wire.AppendResponse(dst, f.ID, wire.StatusHandlerError,
				fmt.Sprintf("response of %d bytes exceeds the frame limit", len(resp)), nil, m.cfg.MaxFrameSize)
		}
		return out, nil
	}
	// A full send buffer past the deadline means the peer is not reading:
	// the response is dropped (whole, so the stream stays well framed).
	if err := snd.send(sctx, encode, deadErr); err != nil && !errors.Is(err, ports.ErrPeerGone) && ctx.Err() == nil {
		m.log.Debug("dropped a response the peer did not read in time", "app", a.name, "to", string(from), "err", err)
	}
}
