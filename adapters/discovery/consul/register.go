package consul

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/mycorrizal/mycorrizal/ports"
)

// cleanupTimeout bounds the best-effort deregistration after a
// registration whose first check update failed.
const cleanupTimeout = 5 * time.Second

// ErrAlreadyRegistered is returned by Register while an earlier
// registration has not been deregistered.
var ErrAlreadyRegistered = errors.New("consul: already registered")

// registration is the current registration and the goroutine keeping its
// check passing.
type registration struct {
	svc     *api.AgentServiceRegistration
	checkID string
	stop    context.CancelFunc
	done    chan struct{} // closed when the keeper goroutine has returned
}

// Register registers self with the agent as an instance of Config.Service
// (service ID self.ID, address self.Addr and port self.Port, self.Tags and
// self.Meta) with a TTL check "service:<ID>", passes the check at once,
// and starts one goroutine that passes it every TTL/3 until Deregister.
// It blocks until the agent accepted both or ctx ends; on error nothing
// keeps running. Registering again before Deregister returns
// ErrAlreadyRegistered.
func (c *Consul) Register(ctx context.Context, self ports.Registration) error {
	if err := checkRegistration(self); err != nil {
		return err
	}
	c.regMu.Lock()
	defer c.regMu.Unlock()
	if c.reg != nil {
		return fmt.Errorf("%w as %q; Deregister first", ErrAlreadyRegistered, c.reg.svc.ID)
	}
	id := string(self.ID)
	r := &registration{
		svc: &api.AgentServiceRegistration{
			ID:      id,
			Name:    c.cfg.Service,
			Address: self.Addr,
			Port:    self.Port,
			Tags:    slices.Clone(self.Tags),
			Meta:    maps.Clone(self.Meta),
			Check: &api.AgentServiceCheck{
				CheckID:                        "service:" + id,
				Name:                           "mycorrizal node TTL",
				TTL:                            c.cfg.TTL.String(),
				Status:                         api.HealthPassing,
				DeregisterCriticalServiceAfter: c.cfg.DeregisterCriticalServiceAfter.String(),
			},
		},
		checkID: "service:" + id,
	}
	if err := c.register(ctx, r); err != nil {
		if ctx.Err() != nil {
			// The agent may have accepted it before ctx ended.
			c.undo(ctx, id)
		}
		return err
	}
	if err := c.pass(ctx, r.checkID); err != nil {
		c.undo(ctx, id)
		return err
	}
	kctx, stop := context.WithCancel(context.WithoutCancel(ctx))
	r.stop, r.done = stop, make(chan struct{})
	c.reg = r
	go c.keep(kctx, r)
	c.log.Info("consul: registered", "service", c.cfg.Service, "id", id,
		"addr", self.Addr, "port", self.Port, "check", r.checkID, "ttl", c.cfg.TTL)
	return nil
}

// Deregister stops passing the check, waits for the goroutine that did,
// removes the registration from the agent, and releases idle connections
// to the agent. It blocks until the agent confirmed or ctx ends. Without
// a registration it returns nil, so a second call is a no-op; after an
// error the goroutine is stopped anyway and a later call retries the
// removal.
func (c *Consul) Deregister(ctx context.Context) error {
	c.regMu.Lock()
	defer c.regMu.Unlock()
	r := c.reg
	if r == nil {
		return nil
	}
	r.stop()
	select {
	case <-r.done:
	case <-ctx.Done():
		return fmt.Errorf("consul: deregister %q: waiting for the TTL updater to stop: %w", r.svc.ID, ctx.Err())
	}
	if err := c.deregister(ctx, r.svc.ID); err != nil {
		return err
	}
	c.reg = nil
	c.http.CloseIdleConnections()
	c.log.Info("consul: deregistered", "service", c.cfg.Service, "id", r.svc.ID)
	return nil
}

// undo removes the registration id after a Register that failed, on a
// ctx of its own since ctx may be what failed it. It logs what it cannot
// remove: the check then turns critical and Consul reaps the registration
// after DeregisterCriticalServiceAfter.
func (c *Consul) undo(ctx context.Context, id string) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
	defer cancel()
	if err := c.deregister(ctx, id); err != nil {
		c.log.Warn("consul: could not remove a failed registration", "service", c.cfg.Service, "id", id, "err", err)
	}
}

// register sends r's registration to the agent, replacing an earlier one
// with the same ID and its checks.
func (c *Consul) register(ctx context.Context, r *registration) error {
	opts := api.ServiceRegisterOpts{ReplaceExistingChecks: true}.WithContext(ctx)
	if err := c.client.Agent().ServiceRegisterOpts(r.svc, opts); err != nil {
		return fmt.Errorf("consul: register %q as service %q: %w", r.svc.ID, c.cfg.Service, ctxErr(ctx, err))
	}
	return nil
}

// pass sets the TTL check checkID to passing.
func (c *Consul) pass(ctx context.Context, checkID string) error {
	q := (&api.QueryOptions{}).WithContext(ctx)
	if err := c.client.Agent().UpdateTTLOpts(checkID, "", api.HealthPassing, q); err != nil {
		return fmt.Errorf("consul: pass check %q: %w", checkID, ctxErr(ctx, err))
	}
	return nil
}

// deregister removes the service id from the agent. An agent that does not
// know the service (it was reaped, or already removed) counts as success.
func (c *Consul) deregister(ctx context.Context, id string) error {
	q := (&api.QueryOptions{}).WithContext(ctx)
	err := c.client.Agent().ServiceDeregisterOpts(id, q)
	if err == nil || isNotFound(err) {
		return nil
	}
	return fmt.Errorf("consul: deregister %q: %w", id, ctxErr(ctx, err))
}

// checkRegistration validates what Register announces.
func checkRegistration(self ports.Registration) error {
	if self.ID == "" {
		return fmt.Errorf("consul: Registration.ID is required: %w", ports.ErrInvalidConfig)
	}
	if err := checkName(string(self.ID)); err != nil {
		return fmt.Errorf("consul: Registration.ID %w: %w", err, ports.ErrInvalidConfig)
	}
	if self.Port <= 0 || self.Port > 65535 {
		return fmt.Errorf("consul: Registration.Port %d is outside 1..65535: %w", self.Port, ports.ErrInvalidConfig)
	}
	if self.Addr != "" {
		if err := checkHost(self.Addr); err != nil {
			return fmt.Errorf("consul: Registration.Addr: %w: %w", err, ports.ErrInvalidConfig)
		}
	}
	return nil
}

// isNotFound reports whether err is the agent's 404 answer.
func isNotFound(err error) bool {
	var se api.StatusError
	return errors.As(err, &se) && se.Code == http.StatusNotFound
}

// ctxErr returns ctx's error, which explains err, when ctx has ended, and
// err otherwise.
func ctxErr(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return err
}
