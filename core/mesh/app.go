package mesh

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"

	"github.com/mycorrizal/mycorrizal/core/wire"
	"github.com/mycorrizal/mycorrizal/ports"
)

// MessageHandler handles a one-way message sent to an application. It is
// called from one goroutine per application, in arrival order (so messages
// from one sender are handled in the order sent); while it runs, further
// messages wait in the application's bounded inbox and then slow their
// senders. ctx ends when the node shuts down. payload belongs to the handler.
// A panic is recovered and logged.
type MessageHandler func(ctx context.Context, from ports.NodeID, payload []byte)

// RequestHandler handles a request and returns the response payload or an
// error, which the caller receives as an error wrapping ports.ErrRemote. It
// is called concurrently: up to the configured request concurrency per
// application, of which one peer's requests take at most the per-peer
// share. ctx carries the caller's deadline and ends when the caller's
// stream closes or the node shuts down. payload belongs to the handler. A
// panic is recovered and reaches the caller as an error.
type RequestHandler func(ctx context.Context, from ports.NodeID, payload []byte) ([]byte, error)

// inMsg is one message waiting in an application's inbox.
type inMsg struct {
	from    ports.NodeID
	payload []byte
}

// App is one named application on this node: it sends messages and requests
// to the same application on other nodes and handles theirs. All methods are
// safe for concurrent use.
type App struct {
	m     *Mesh
	name  string
	onMsg atomic.Pointer[MessageHandler]
	onReq atomic.Pointer[RequestHandler]
	inbox chan inMsg
	slots *slots // bounds request handling, app-wide and per peer
}

func newApp(m *Mesh, name string) *App {
	return &App{
		m:     m,
		name:  name,
		inbox: make(chan inMsg, m.cfg.InboxSize),
		slots: newSlots(m.cfg.RequestConcurrency, m.cfg.RequestConcurrencyPerPeer),
	}
}

// Name returns the application's name.
func (a *App) Name() string { return a.name }

// OnMessage sets the handler for one-way messages; nil removes it. Set it
// before Start: messages that arrive while no handler is set are discarded
// with a warning in the log.
func (a *App) OnMessage(h MessageHandler) {
	if h == nil {
		a.onMsg.Store(nil)
		return
	}
	a.onMsg.Store(&h)
}

// OnRequest sets the handler for requests; nil removes it. Requests that
// arrive while no handler is set fail at the caller with an error wrapping
// ports.ErrRemote.
func (a *App) OnRequest(h RequestHandler) {
	if h == nil {
		a.onReq.Store(nil)
		return
	}
	a.onReq.Store(&h)
}

// Nodes returns the IDs of the live peers, not this node, that host this
// application, sorted.
func (a *App) Nodes() []ports.NodeID { return a.m.nodesHosting(a.name) }

// Send sends payload as a one-way message to each listed node (this node's
// own ID included: it is delivered locally). It returns once the message is
// queued for every node, not when it is handled; messages to one node
// arrive in the order sent. When a node is not keeping up, Send blocks until
// ctx ends and then returns an error wrapping ports.ErrBackpressure; it
// never drops a message silently. The returned error joins one error per
// node that failed, each naming the node. Send does not retain payload.
func (a *App) Send(ctx context.Context, payload []byte, nodes ...ports.NodeID) error {
	if len(payload)+wire.DataOverhead-wire.HeaderSize+1 > a.m.cfg.MaxFrameSize {
		return fmt.Errorf("mesh: send to app %q: payload of %d bytes: %w", a.name, len(payload), ports.ErrFrameTooLarge)
	}
	var errs []error
	for _, n := range nodes {
		if err := a.sendOne(ctx, n, payload); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// Broadcast sends payload to every live peer that hosts this application
// (not to this node), as Send does.
func (a *App) Broadcast(ctx context.Context, payload []byte) error {
	return a.Send(ctx, payload, a.Nodes()...)
}

func (a *App) sendOne(ctx context.Context, node ports.NodeID, payload []byte) error {
	m := a.m
	if node == m.cfg.Self {
		p := make([]byte, len(payload))
		copy(p, payload)
		if err := a.deliver(ctx, node, p); err != nil {
			return fmt.Errorf("mesh: send to %s app %q: %w", node, a.name, err)
		}
		return nil
	}
	if m.cfg.Transport == nil {
		return fmt.Errorf("mesh: send to %s app %q: single mode: %w", node, a.name, ports.ErrUnknownNode)
	}
	l, err := m.link(ctx, outKey{peer: node, app: a.name, lane: wire.LaneMessages})
	if err != nil {
		return fmt.Errorf("mesh: send to %s app %q: %w", node, a.name, err)
	}
	err = l.snd.send(ctx, func(dst []byte) ([]byte, error) {
		return wire.AppendData(dst, payload, m.cfg.MaxFrameSize)
	}, l.deadErr)
	if err != nil {
		return fmt.Errorf("mesh: send to %s app %q: %w", node, a.name, err)
	}
	return nil
}

// deliver puts a message in the inbox, blocking while it is full.
func (a *App) deliver(ctx context.Context, from ports.NodeID, payload []byte) error {
	msg := inMsg{from: from, payload: payload}
	select {
	case a.inbox <- msg:
		return nil
	default:
	}
	select {
	case a.inbox <- msg:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("%w: inbox of app %q full: %w", ports.ErrBackpressure, a.name, ctx.Err())
	case <-a.m.ctx.Done():
		return errClosed
	}
}

// dispatch hands inbox messages to the message handler, one at a time.
func (a *App) dispatch() {
	defer a.m.wg.Done()
	for {
		select {
		case msg := <-a.inbox:
			a.handleMessage(msg)
		case <-a.m.ctx.Done():
			if n := len(a.inbox); n > 0 {
				a.m.log.Warn("discarding unhandled messages at shutdown", "app", a.name, "count", n)
			}
			return
		}
	}
}

func (a *App) handleMessage(msg inMsg) {
	h := a.onMsg.Load()
	if h == nil {
		a.m.log.Warn("message discarded: application has no message handler", "app", a.name, "from", string(msg.from))
		return
	}
	defer func() {
		if r := recover(); r != nil {
			a.m.log.Error("message handler panicked", "app", a.name, "from", string(msg.from), "panic", fmt.Sprint(r))
		}
	}()
	(*h)(a.m.ctx, msg.from, msg.payload)
}

// readMessages reads Data frames from a peer's stream into the inbox until
// the stream ends. A full inbox stops the reading, which is what slows the
// sender down.
func (a *App) readMessages(ctx context.Context, from ports.NodeID, r *wire.Reader) error {
	for {
		f, err := r.Next()
		if err != nil {
			return err
		}
		if f.Type != wire.TypeData {
			return fmt.Errorf("mesh: unexpected %s frame on message stream: %w", f.Type, ports.ErrMalformed)
		}
		if err := a.deliver(ctx, from, f.Payload); err != nil {
			return err
		}
	}
}
