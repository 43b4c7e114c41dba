package memberlist

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	ml "github.com/hashicorp/memberlist"

	"github.com/mycorrizal/mycorrizal/ports"
)

// DefaultTimeout bounds Leave and UpdateLocal when their ctx has no
// deadline: memberlist waits for a broadcast with a timeout, not a ctx.
const DefaultTimeout = 5 * time.Second

// lifecycle is where a Membership is between New and Close.
type lifecycle int

const (
	stateNew lifecycle = iota
	stateStarted
	stateLeft
	stateClosed
)

// Membership is the memberlist implementation of ports.Membership. Create
// it with New; its methods are safe for concurrent use.
type Membership struct {
	cfg    Config
	log    *slog.Logger
	events *eventQueue

	closing   chan struct{} // closed when Close begins
	closeOnce sync.Once
	closeErr  error

	// opMu is held shared by every goroutine calling memberlist's Leave or
	// UpdateNode (Leave panics after Shutdown) and exclusively by Close
	// around Shutdown.
	opMu sync.RWMutex
	// updMu serialises UpdateLocal and Leave, so an update never
	// resurrects a node that has left.
	updMu sync.Mutex
	// bg tracks the goroutines Join, Leave and UpdateLocal run memberlist
	// calls on; Close waits for them. Add only under mu while not closed.
	bg sync.WaitGroup

	mu        sync.Mutex // guards the fields below
	state     lifecycle
	list      *ml.Memberlist
	d         *delegate
	self      ports.LocalMember
	localAddr string
	keyring   *ml.Keyring
	settle    time.Duration // see leaveSettle
}

var _ ports.Membership = (*Membership)(nil)

// New validates cfg and returns an unstarted Membership. It binds nothing:
// Start does. Errors wrap ports.ErrInvalidConfig and name the field.
func New(cfg Config) (*Membership, error) {
	cfg, err := cfg.validate()
	if err != nil {
		return nil, err
	}
	kr, err := newKeyring(cfg.Keyring)
	if err != nil {
		return nil, err
	}
	return &Membership{
		cfg:     cfg,
		log:     cfg.Logger.With("component", "membership"),
		keyring: kr,
		events:  newEventQueue(),
		closing: make(chan struct{}),
	}, nil
}

// Start binds the gossip sockets (or starts on Config.Transport) and begins
// gossiping as self, whose ID becomes the memberlist node name. It fails
// with an error wrapping ErrMetaTooLarge, naming the size and the limit,
// when self's metadata does not fit in MaxMetaSize. It contacts no seed.
// ctx is only checked on entry: binding does not block.
func (m *Membership) Start(ctx context.Context, self ports.LocalMember) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("memberlist: start: %w", err)
	}
	if err := validateLocal(self); err != nil {
		return err
	}
	meta, err := EncodeMeta(metaOf(self, false))
	if err != nil {
		return err
	}

	m.mu.Lock()
	defer m.mu.Unlock()
	switch m.state {
	case stateNew:
	case stateClosed:
		return fmt.Errorf("memberlist: start: %w", ports.ErrClosed)
	default:
		return errors.New("memberlist: start: already started")
	}

	d := newDelegate(string(self.ID), meta, m.events, m.log)
	stdlog := newStdLogger(m.log)
	conf := m.cfg.memberlistConfig(string(self.ID), m.keyring, stdlog)
	conf.Name = string(self.ID)
	conf.Delegate = d
	conf.Events = d
	ownTransport := conf.Transport == nil
	tr, err := transportFor(conf, stdlog)
	if err != nil {
		return err
	}
	conf.Transport = tr
	list, err := ml.Create(conf)
	if err != nil {
		if ownTransport {
			_ = tr.Shutdown()
		}
		return fmt.Errorf("memberlist: start %s: %w", self.ID, err)
	}

	me, ok := d.self() // memberlist reports this node's own join from Create
	if !ok {
		_ = list.Shutdown()
		return fmt.Errorf("memberlist: start %s: memberlist did not report this node", self.ID)
	}
	m.list, m.d, m.self, m.state = list, d, self, stateStarted
	m.keyring = conf.Keyring // memberlist makes one if Tune set SecretKey
	m.localAddr = me.GossipAddr
	m.settle = leaveSettle(conf)
	m.events.start()
	m.log.Info("membership started", "node", self.ID, "gossip_addr", m.localAddr,
		"encrypted", conf.EncryptionEnabled())
	return nil
}

// LocalAddr returns the gossip address ("host:port") advertised to peers,
// with the real port when BindPort was 0. It is empty before Start.
func (m *Membership) LocalAddr() string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.localAddr
}

// Keyring returns memberlist's live keyring, to install, use and remove keys
// at run time (rotation without restart), or nil when gossip is not
// encrypted.
func (m *Membership) Keyring() *ml.Keyring {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.keyring
}

// Members returns the members memberlist believes alive or suspect,
// including this node, sorted by ID; nil before Start and after Close. It
// does not block on the network. Every member reports StateAlive:
// memberlist v0.7.0 does not expose suspicion. A member whose metadata does
// not decode has empty TransportAddr, Version and Apps.
func (m *Membership) Members() []ports.Member {
	m.mu.Lock()
	d, state := m.d, m.state
	m.mu.Unlock()
	if d == nil || state == stateClosed {
		return nil
	}
	return d.snapshot()
}

// Events returns the channel of changes to other members (never this node):
// joined, updated, left, failed. The same channel is returned on every
// call and is closed by Close. A pending event for a member is replaced by
// a newer one for it (a pending join absorbs later updates), so the channel
// never blocks gossip and the backlog is at most one event per member.
func (m *Membership) Events() <-chan ports.MemberEvent { return m.events.out }

// UpdateLocal replaces what this node advertises (self.ID must be the one
// given to Start) and gossips it. It fails with an error wrapping
// ErrMetaTooLarge, leaving the previous metadata in place, when self does
// not fit. It waits until memberlist has broadcast the update, or until
// ctx ends (DefaultTimeout without a deadline); on a timeout the update
// stays queued and is still gossiped. It fails after Leave.
func (m *Membership) UpdateLocal(ctx context.Context, self ports.LocalMember) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("memberlist: update local: %w", err)
	}
	if err := validateLocal(self); err != nil {
		return err
	}
	meta, err := EncodeMeta(metaOf(self, false))
	if err != nil {
		return err
	}
	timeout := timeoutFrom(ctx)
	return m.call(ctx, "update local", func(list *ml.Memberlist) error {
		m.updMu.Lock()
		defer m.updMu.Unlock()
		if err := ctx.Err(); err != nil {
			return err // the caller has gone; do not apply a stale update
		}
		m.mu.Lock()
		switch m.state {
		case stateLeft:
			m.mu.Unlock()
			return fmt.Errorf("memberlist: update local after Leave: %w", ports.ErrClosed)
		case stateClosed:
			m.mu.Unlock()
			return fmt.Errorf("memberlist: update local: %w", ports.ErrClosed)
		}
		if self.ID != m.self.ID {
			m.mu.Unlock()
			return fmt.Errorf("memberlist: update local: node ID %q differs from %q given to Start: %w",
				self.ID, m.self.ID, ports.ErrInvalidConfig)
		}
		m.self = self
		m.d.setMeta(meta)
		m.mu.Unlock()

		if err := list.UpdateNode(timeout); err != nil {
			return fmt.Errorf("memberlist: update local: %v (the update stays queued for gossip): %w",
				err, context.DeadlineExceeded)
		}
		return nil
	})
}

// Close stops gossip without announcing a departure (call Leave first for
// a graceful exit) and shuts memberlist and its transport down. It waits
// for a Leave or UpdateLocal in progress (bounded by its timeout) and for
// join attempts still running (bounded by memberlist's TCPTimeout), stops
// the event pump and closes the Events channel. It returns once this
// adapter's goroutines are gone; memberlist's own exit on their own just
// after, as memberlist offers no way to wait for them. Calling it again
// returns nil.
func (m *Membership) Close() error {
	first := false
	m.closeOnce.Do(func() {
		first = true
		m.closeErr = m.shutdown()
	})
	if !first {
		return nil
	}
	return m.closeErr
}

func (m *Membership) shutdown() error {
	m.mu.Lock()
	list := m.list
	m.state = stateClosed
	m.mu.Unlock()
	close(m.closing)

	var err error
	m.opMu.Lock()
	if list != nil {
		if e := list.Shutdown(); e != nil {
			err = fmt.Errorf("memberlist: close: %w", e)
		}
	}
	m.opMu.Unlock()
	m.bg.Wait()
	m.events.close()
	if list != nil {
		m.log.Info("membership closed")
	}
	return err
}

// call runs fn on a goroutine that Close waits for, holding opMu shared so
// memberlist is not shut down under it, and returns fn's result; it returns
// early when ctx ends or Close begins, fn then finishing in the background
// within the timeout it was given.
func (m *Membership) call(ctx context.Context, op string, fn func(*ml.Memberlist) error) error {
	res := make(chan error, 1)
	ok := m.spawn(func() {
		m.opMu.RLock()
		defer m.opMu.RUnlock()
		list, err := m.running(op)
		if err != nil {
			res <- err
			return
		}
		res <- fn(list)
	})
	if !ok {
		return fmt.Errorf("memberlist: %s: %w", op, ports.ErrClosed)
	}
	select {
	case err := <-res:
		return err
	case <-ctx.Done():
		return fmt.Errorf("memberlist: %s: %w", op, ctx.Err())
	case <-m.closing:
		return fmt.Errorf("memberlist: %s: %w", op, ports.ErrClosed)
	}
}

// spawn runs f on a goroutine tracked by bg, unless Close has begun.
func (m *Membership) spawn(f func()) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.state == stateClosed {
		return false
	}
	m.bg.Add(1)
	go func() {
		defer m.bg.Done()
		f()
	}()
	return true
}

// running returns the memberlist once started and not closed.
func (m *Membership) running(op string) (*ml.Memberlist, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	switch m.state {
	case stateNew:
		return nil, fmt.Errorf("memberlist: %s: %w", op, ports.ErrNotStarted)
	case stateClosed:
		return nil, fmt.Errorf("memberlist: %s: %w", op, ports.ErrClosed)
	}
	return m.list, nil
}

// timeoutFrom turns ctx's deadline into the timeout memberlist takes, never
// 0 (which memberlist reads as "wait forever").
func timeoutFrom(ctx context.Context) time.Duration {
	if dl, ok := ctx.Deadline(); ok {
		return max(time.Until(dl), time.Millisecond)
	}
	return DefaultTimeout
}
