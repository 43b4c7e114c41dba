package mesh

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/mycorrizal/mycorrizal/core/wire"
	"github.com/mycorrizal/mycorrizal/ports"
)

// errClosed is returned for operations on a closed mesh.
var errClosed = fmt.Errorf("mesh %w", ports.ErrClosed)

// outKey names one outbound stream: this node to peer, for app, on lane.
type outKey struct {
	peer ports.NodeID
	app  string
	lane wire.Lane
}

// Mesh is one node's messaging layer: its applications, its streams to and
// from peers, and its view of which peers exist. Create it with New,
// register applications, Start it, feed it membership with SetMembers and
// HandleEvent, and Close it at the end.
type Mesh struct {
	cfg    Config
	log    *slog.Logger
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	pending chan struct{} // semaphore bounding requests in flight
	nextID  atomic.Uint64

	mu        sync.RWMutex
	started   bool
	closed    bool
	apps      map[string]*App
	peers     map[ports.NodeID]ports.Member
	out       map[outKey]*outLink
	in        map[*inLink]struct{}
	inPerPeer map[ports.NodeID]int
}

// New validates cfg and returns a Mesh that is not yet accepting streams.
func New(cfg Config) (*Mesh, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Mesh{
		cfg:       cfg,
		log:       cfg.Logger.With("component", "mesh", "node", string(cfg.Self)),
		ctx:       ctx,
		cancel:    cancel,
		pending:   make(chan struct{}, cfg.MaxPendingRequests),
		apps:      make(map[string]*App),
		peers:     make(map[ports.NodeID]ports.Member),
		out:       make(map[outKey]*outLink),
		in:        make(map[*inLink]struct{}),
		inPerPeer: make(map[ports.NodeID]int),
	}, nil
}

// Self returns this node's ID.
func (m *Mesh) Self() ports.NodeID { return m.cfg.Self }

// Start begins accepting streams from peers. In single mode (no transport)
// it only marks the mesh started. It does not block.
func (m *Mesh) Start() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return fmt.Errorf("mesh: start: %w", ports.ErrClosed)
	}
	if m.started {
		return nil
	}
	m.started = true
	if m.cfg.Transport != nil {
		m.wg.Add(1)
		go m.acceptLoop()
	}
	return nil
}

// Register adds an application named name and returns it. Names are unique
// per node, 1 to 255 bytes. Registering is allowed before and after Start;
// peers learn about the application through membership metadata, which the
// caller updates (see Apps).
func (m *Mesh) Register(name string) (*App, error) {
	if name == "" || len(name) > ports.MaxAppNameLen {
		return nil, fmt.Errorf("mesh: application name %q must be 1 to %d bytes: %w", name, ports.MaxAppNameLen, ports.ErrInvalidConfig)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return nil, fmt.Errorf("mesh: register %q: %w", name, ports.ErrClosed)
	}
	if _, ok := m.apps[name]; ok {
		return nil, fmt.Errorf("mesh: application %q is already registered: %w", name, ports.ErrInvalidConfig)
	}
	a := newApp(m, name)
	m.apps[name] = a
	m.wg.Add(1)
	go a.dispatch()
	return a, nil
}

// App returns the registered application named name, or nil.
func (m *Mesh) App(name string) *App {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return m.apps[name]
}

// Apps returns the names of the registered applications, sorted: what this
// node advertises through membership.
func (m *Mesh) Apps() []string {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return slices.Sorted(maps.Keys(m.apps))
}

// Close stops accepting, resets every stream, fails requests in flight with
// ports.ErrClosed, and waits until every goroutine the mesh started has
// returned or ctx ends. Handlers still running see their ctx cancelled.
// Messages queued but not yet handled are discarded. Safe to call twice.
func (m *Mesh) Close(ctx context.Context) error {
	m.mu.Lock()
	var outs []*outLink
	var ins []*inLink
	if !m.closed {
		m.closed = true
		m.cancel()
		for _, l := range m.out {
			outs = append(outs, l)
		}
		for l := range m.in {
			ins = append(ins, l)
		}
	}
	m.mu.Unlock()
	for _, l := range outs {
		select {
		case <-l.ready:
			l.fail(errClosed)
		default: // still dialing: the dial sees the mesh closed
		}
	}
	for _, l := range ins {
		_ = l.stream.Reset()
	}

	done := make(chan struct{})
	go func() { m.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("mesh: close: handlers still running: %w", ctx.Err())
	}
}

// acceptLoop accepts streams until the mesh closes.
func (m *Mesh) acceptLoop() {
	defer m.wg.Done()
	for {
		s, err := m.cfg.Transport.Accept(m.ctx)
		if err != nil {
			if m.ctx.Err() != nil || errors.Is(err, ports.ErrClosed) {
				return
			}
			m.log.Warn("accept failed", "err", err)
			continue
		}
		m.wg.Add(1)
		go m.serve(s)
	}
}
