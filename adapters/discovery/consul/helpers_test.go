package consul

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mycorrizal/mycorrizal/ports"
	"github.com/mycorrizal/mycorrizal/testkit/discoverytest"
)

// logBuffer collects a logger's output for assertions and copies it to
// the test log.
type logBuffer struct {
	t   testing.TB
	mu  sync.Mutex
	buf bytes.Buffer
}

// Write implements io.Writer.
func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.t.Log(strings.TrimRight(string(p), "\n"))
	return l.buf.Write(p)
}

// String returns everything logged so far.
func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// countLines returns how many logged lines contain all of parts.
func (l *logBuffer) countLines(parts ...string) int {
	n := 0
	for line := range strings.SplitSeq(l.String(), "\n") {
		ok := line != ""
		for _, p := range parts {
			ok = ok && strings.Contains(line, p)
		}
		if ok {
			n++
		}
	}
	return n
}

// newLogger returns a debug-level logger writing to a logBuffer.
func newLogger(t testing.TB) (*slog.Logger, *logBuffer) {
	lb := &logBuffer{t: t}
	return slog.New(slog.NewTextHandler(io.Writer(lb), &slog.HandlerOptions{Level: slog.LevelDebug})), lb
}

// newTestConsul returns a Consul asking f, with cfg's zero fields set for
// tests, deregistered (which stops its TTL updater) at cleanup.
func newTestConsul(t testing.TB, f *fakeAgent, cfg Config) *Consul {
	t.Helper()
	if cfg.Address == "" {
		cfg.Address = f.addr()
	}
	if cfg.Service == "" {
		cfg.Service = "mycorrizal"
	}
	if cfg.Logger == nil {
		cfg.Logger, _ = newLogger(t)
	}
	c, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := c.Deregister(ctx); err != nil {
			t.Logf("cleanup Deregister: %v", err)
		}
		c.regMu.Lock()
		defer c.regMu.Unlock()
		if c.reg != nil {
			<-c.reg.done
		}
	})
	return c
}

// eventually polls cond every 10ms until it holds or d passes.
func eventually(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, d)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// discoverNow calls Discover with a 5s timeout.
func discoverNow(t testing.TB, c *Consul) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	addrs, err := c.Discover(ctx)
	if err != nil {
		t.Fatalf("Discover: %v", err)
	}
	return normalize(addrs)
}

// fakeBackend is a discoverytest.Backend over a fake agent.
type fakeBackend struct{ f *fakeAgent }

var _ discoverytest.Backend = fakeBackend{}

// Discovery implements discoverytest.Backend.
func (b fakeBackend) Discovery(t *testing.T) ports.Discovery {
	return newTestConsul(t, b.f, Config{WaitTime: 5 * time.Second})
}

// SetInstances implements discoverytest.Backend.
func (b fakeBackend) SetInstances(t *testing.T, addrs []string) { b.f.setInstances(t, addrs) }

// Break implements discoverytest.Backend: every later request gets a 500.
func (b fakeBackend) Break(t *testing.T) bool {
	b.f.fail("*", 500)
	return true
}

// testRegistration is the registration the tests announce.
func testRegistration() ports.Registration {
	return ports.Registration{
		ID: "node-a", Addr: "127.0.0.9", Port: 7009,
		Tags: []string{"gossip"}, Meta: map[string]string{"version": "1"},
	}
}
