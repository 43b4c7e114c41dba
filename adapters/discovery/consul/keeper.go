package consul

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/hashicorp/consul/api"
)

// keep passes r's check every TTL/3 until ctx ends; it closes r.done when
// it returns. Deregister owns it: it cancels ctx and waits for r.done.
// A failed update is logged and retried at the next tick; when the agent
// no longer knows the check (the registration was reaped or the agent lost
// its state), the registration is sent again.
func (c *Consul) keep(ctx context.Context, r *registration) {
	defer close(r.done)
	interval := c.cfg.TTL / 3
	t := time.NewTicker(interval)
	defer t.Stop()
	failing := false
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		err := c.keepOnce(ctx, r)
		if ctx.Err() != nil {
			return
		}
		switch {
		case err != nil:
			failing = true
			c.log.Warn("consul: could not pass the TTL check; retrying", "service", c.cfg.Service,
				"id", r.svc.ID, "check", r.checkID, "retry_in", interval, "err", err)
		case failing:
			failing = false
			c.log.Info("consul: TTL check passing again", "service", c.cfg.Service,
				"id", r.svc.ID, "check", r.checkID)
		}
	}
}

// keepOnce passes the check once, registering again first if the agent
// does not know it. Each call to the agent is bounded by the TTL, after
// which the check has expired anyway.
func (c *Consul) keepOnce(ctx context.Context, r *registration) error {
	ctx, cancel := context.WithTimeout(ctx, c.cfg.TTL)
	defer cancel()
	err := c.pass(ctx, r.checkID)
	if err == nil || !isUnknownCheck(err) {
		return err
	}
	c.log.Warn("consul: the agent lost the registration; registering again", "service", c.cfg.Service,
		"id", r.svc.ID, "check", r.checkID, "err", err)
	if err := c.register(ctx, r); err != nil {
		return err
	}
	return c.pass(ctx, r.checkID)
}

// isUnknownCheck reports whether err says the agent has no TTL check of
// that ID: a 404 from current agents, a 500 naming the missing TTL from
// older ones (and from any agent when the check was replaced by one that
// is not a TTL check).
func isUnknownCheck(err error) bool {
	var se api.StatusError
	if !errors.As(err, &se) {
		return false
	}
	return se.Code == http.StatusNotFound ||
		se.Code == http.StatusInternalServerError && strings.Contains(se.Body, "does not have associated TTL")
}
