package consul

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/mycorrizal/mycorrizal/ports"
)

// Consul discovers the healthy instances of a Consul service, waits for
// them to change with blocking queries, and registers this node as one of
// them. Create it with New; it is safe for concurrent use.
type Consul struct {
	cfg    Config
	client *api.Client
	http   *http.Client
	log    *slog.Logger

	// mu guards the last answer and its X-Consul-Index, the starting point
	// of WaitChange's blocking queries.
	mu        sync.Mutex
	lastIndex uint64
	lastAddrs []string

	warned warnings

	// regMu serialises Register and Deregister and guards reg, the current
	// registration (nil when none).
	regMu sync.Mutex
	reg   *registration
}

var (
	_ ports.Discovery = (*Consul)(nil)
	_ ports.Registrar = (*Consul)(nil)
	_ ports.Watcher   = (*Consul)(nil)
)

// New validates cfg, fills its defaults, and returns a Consul. It does not
// contact the agent. Errors wrap ports.ErrInvalidConfig and name the field.
func New(cfg Config) (*Consul, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	ac := cfg.apiConfig()
	client, err := api.NewClient(ac)
	if err != nil {
		return nil, fmt.Errorf("consul: TLS or Address: %w: %w", ports.ErrInvalidConfig, err)
	}
	// NewClient built ac.HttpClient (shared with client); bound the size
	// of every answer before the client is used.
	hc := ac.HttpClient
	if hc == nil {
		return nil, fmt.Errorf("consul: the api client has no HTTP client: %w", ports.ErrInvalidConfig)
	}
	hc.Transport = &limitTransport{next: hc.Transport, max: maxResponseBytes}
	return &Consul{cfg: cfg, client: client, http: hc, log: cfg.Logger}, nil
}

// Discover returns the gossip addresses ("host:port") of the instances of
// the service whose checks all pass, without duplicates. Instances with an
// unusable address or port are skipped and logged. It blocks until the
// agent answers or ctx ends; an unreachable agent or an error answer is an
// error. The answer's index becomes the starting point of WaitChange.
func (c *Consul) Discover(ctx context.Context) ([]string, error) {
	addrs, _, err := c.query(ctx, 0)
	return addrs, err
}

// query asks the agent for the passing instances. With index > 0 it is a
// blocking query that returns when the answer's index passes index or
// after Config.WaitTime. It records the answer as the last one seen.
func (c *Consul) query(ctx context.Context, index uint64) ([]string, uint64, error) {
	q := &api.QueryOptions{}
	if index > 0 {
		q.WaitIndex = index
		q.WaitTime = c.cfg.WaitTime
	}
	entries, meta, err := c.client.Health().ServiceMultipleTags(c.cfg.Service, c.cfg.Tags, true, q.WithContext(ctx))
	if err != nil {
		if ctx.Err() != nil {
			return nil, 0, fmt.Errorf("consul: health of service %q: %w", c.cfg.Service, ctx.Err())
		}
		return nil, 0, fmt.Errorf("consul: health of service %q: %w", c.cfg.Service, err)
	}
	addrs := c.addresses(ctx, entries)
	var last uint64
	if meta != nil {
		last = meta.LastIndex
	}
	c.mu.Lock()
	c.lastIndex, c.lastAddrs = last, addrs
	c.mu.Unlock()
	return addrs, last, nil
}

// last returns the last answer seen and its index.
func (c *Consul) last() (uint64, []string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lastIndex, c.lastAddrs
}

// sleep waits for d or until ctx ends, and returns ctx's error if it ended.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
