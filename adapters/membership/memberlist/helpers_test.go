package memberlist_test

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	ml "github.com/hashicorp/memberlist"
	"go.uber.org/goleak"

	membership "github.com/mycorrizal/mycorrizal/adapters/membership/memberlist"
	"github.com/mycorrizal/mycorrizal/ports"
)

// waitTimeout bounds every wait for the cluster to converge.
const waitTimeout = 10 * time.Second

// leakCheck verifies, after every other cleanup of t, that no goroutine
// outlived the test. Call it first.
//
// memberlist's own goroutines stop shortly after Shutdown but cannot be
// waited for (a probe in flight ends within its probe interval, which
// memberlist stretches up to 8x on a loaded machine), so it polls for up
// to leakGrace before the final, failing check.
func leakCheck(t *testing.T) {
	t.Helper()
	t.Cleanup(func() {
		deadline := time.Now().Add(leakGrace)
		for goleak.Find() != nil && time.Now().Before(deadline) {
			time.Sleep(50 * time.Millisecond)
		}
		goleak.VerifyNone(t)
	})
}

// leakGrace bounds how long memberlist's goroutines may take to exit.
const leakGrace = 5 * time.Second

// fastTune shortens memberlist's intervals so tests converge in well under
// a second and detect a failure in a couple of seconds.
func fastTune(c *ml.Config) {
	c.ProbeInterval = 200 * time.Millisecond
	c.ProbeTimeout = 100 * time.Millisecond
	c.GossipInterval = 20 * time.Millisecond
	c.PushPullInterval = 500 * time.Millisecond
	c.GossipToTheDeadTime = 500 * time.Millisecond
	c.TCPTimeout = 2 * time.Second // generous: -race on a loaded machine is slow
}

// testConfig is a loopback, port-0, Local-profile configuration logging to
// sink.
func testConfig(sink *logSink) membership.Config {
	return membership.Config{
		BindAddr: "127.0.0.1",
		Profile:  membership.ProfileLocal,
		Tune:     fastTune,
		Logger:   slog.New(sink.handler()),
	}
}

// node is a started Membership with the events it received.
type node struct {
	*membership.Membership
	self   ports.LocalMember
	events *eventLog
	logs   *logSink
}

// startNode starts a node with the given ID and apps on loopback, port 0.
// mod may adjust its configuration. It is closed at the end of the test.
func startNode(t *testing.T, id string, apps []string, mod func(*membership.Config)) *node {
	t.Helper()
	logs := newLogSink(t, id)
	cfg := testConfig(logs)
	if mod != nil {
		mod(&cfg)
	}
	m, err := membership.New(cfg)
	if err != nil {
		t.Fatalf("New(%s): %v", id, err)
	}
	self := ports.LocalMember{
		ID:            ports.NodeID(id),
		TransportAddr: id + ".transport.test:7000",
		Apps:          apps,
		Version:       "v-" + id,
	}
	if err := m.Start(context.Background(), self); err != nil {
		t.Fatalf("Start(%s): %v", id, err)
	}
	n := &node{Membership: m, self: self, events: collectEvents(m), logs: logs}
	t.Cleanup(func() {
		if err := m.Close(); err != nil {
			t.Errorf("Close(%s): %v", id, err)
		}
		n.events.waitClosed(t)
	})
	return n
}

// join makes n join the cluster through seed and fails the test on error.
func (n *node) join(t *testing.T, seed *node) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	if got, err := n.Join(ctx, []string{seed.LocalAddr()}); err != nil || got != 1 {
		t.Fatalf("%s.Join(%s) = %d, %v; want 1, nil", n.self.ID, seed.self.ID, got, err)
	}
}

// member returns n's view of id.
func (n *node) member(id ports.NodeID) (ports.Member, bool) {
	for _, m := range n.Members() {
		if m.ID == id {
			return m, true
		}
	}
	return ports.Member{}, false
}

// ids returns the IDs of n's members.
func (n *node) ids() []ports.NodeID {
	var out []ports.NodeID
	for _, m := range n.Members() {
		out = append(out, m.ID)
	}
	return out
}

// waitFor polls cond until it holds or waitTimeout passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", waitTimeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// eventLog records what a Membership's Events channel delivered.
type eventLog struct {
	mu     sync.Mutex
	events []ports.MemberEvent
	closed chan struct{}
}

func collectEvents(m *membership.Membership) *eventLog {
	l := &eventLog{closed: make(chan struct{})}
	ch := m.Events()
	go func() {
		defer close(l.closed)
		for ev := range ch {
			l.mu.Lock()
			l.events = append(l.events, ev)
			l.mu.Unlock()
		}
	}()
	return l
}

// find returns the first recorded event of type typ about id matching ok.
func (l *eventLog) find(typ ports.MemberEventType, id ports.NodeID, ok func(ports.Member) bool) (ports.MemberEvent, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, ev := range l.events {
		if ev.Type == typ && ev.Member.ID == id && (ok == nil || ok(ev.Member)) {
			return ev, true
		}
	}
	return ports.MemberEvent{}, false
}

// about returns the recorded events about id, in order.
func (l *eventLog) about(id ports.NodeID) []ports.MemberEvent {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []ports.MemberEvent
	for _, ev := range l.events {
		if ev.Member.ID == id {
			out = append(out, ev)
		}
	}
	return out
}

// waitEvent waits until l holds an event of type typ about id matching ok.
func (l *eventLog) waitEvent(t *testing.T, typ ports.MemberEventType, id ports.NodeID, ok func(ports.Member) bool) ports.MemberEvent {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for {
		if ev, found := l.find(typ, id, ok); found {
			return ev
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for event %v about %s; got %+v", waitTimeout, typ, id, l.about(id))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (l *eventLog) waitClosed(t *testing.T) {
	t.Helper()
	select {
	case <-l.closed:
	case <-time.After(waitTimeout):
		t.Errorf("Events channel not closed %v after Close", waitTimeout)
	}
}

// logSink is a slog destination shared by a node's handlers: it keeps every
// record and forwards Info and above to t.Log until the test's cleanups
// end, dropping what stray goroutines log later.
type logSink struct {
	t    testing.TB
	name string

	mu      sync.Mutex
	done    bool
	records []slog.Record
}

func newLogSink(t testing.TB, name string) *logSink {
	s := &logSink{t: t, name: name}
	t.Cleanup(func() {
		s.mu.Lock()
		s.done = true
		s.mu.Unlock()
	})
	return s
}

func (s *logSink) handler() slog.Handler { return &sinkHandler{sink: s} }

// has reports whether a record at level whose message contains substr was
// logged.
func (s *logSink) has(level slog.Level, substr string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.ContainsFunc(s.records, func(r slog.Record) bool {
		return r.Level == level && strings.Contains(r.Message, substr)
	})
}

type sinkHandler struct {
	sink  *logSink
	attrs []slog.Attr
}

func (h *sinkHandler) Enabled(context.Context, slog.Level) bool { return true }

func (h *sinkHandler) Handle(_ context.Context, r slog.Record) error {
	r = r.Clone()
	r.AddAttrs(h.attrs...)
	s := h.sink
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.records) < 10000 {
		s.records = append(s.records, r)
	}
	if !s.done && r.Level >= logLevel {
		var b strings.Builder
		fmt.Fprintf(&b, "[%s] %s %s", s.name, r.Level, r.Message)
		r.Attrs(func(a slog.Attr) bool {
			fmt.Fprintf(&b, " %s=%v", a.Key, a.Value)
			return true
		})
		s.t.Log(b.String())
	}
	return nil
}

func (h *sinkHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return &sinkHandler{sink: h.sink, attrs: append(slices.Clip(h.attrs), attrs...)}
}

func (h *sinkHandler) WithGroup(string) slog.Handler { return h }

var logLevel = slog.LevelInfo
