package mycorrizal

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/mycorrizal/mycorrizal/ports"
)

// Start starts the node: the transport listens, the membership layer starts
// gossiping (advertising the transport address and the registered
// applications), and the node joins its seeds and discovered addresses. A
// failed join is not an error: joining is retried in the background every
// join-retry interval while the node is alone, so nodes may start in any
// order. ctx bounds the start itself. Start may be called once.
func (n *Node) Start(ctx context.Context) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	switch {
	case n.shutdown:
		return fmt.Errorf("mycorrizal: start: %w", ports.ErrClosed)
	case n.started:
		return errors.New("mycorrizal: start: already started")
	}
	if n.single {
		if err := n.mesh.Start(); err != nil {
			return err
		}
		n.started = true
		n.cache.SyncNow()
		n.markReady()
		n.log.Info("node started in single mode")
		return nil
	}
	addr, err := n.transport.Listen(ctx, n.id)
	if err != nil {
		return fmt.Errorf("mycorrizal: start transport: %w", err)
	}
	n.transportAddr = addr
	if err := n.membership.Start(ctx, n.localMember()); err != nil {
		_ = n.transport.Close()
		return fmt.Errorf("mycorrizal: start membership: %w", err)
	}
	n.mesh.SetMembers(n.membership.Members())
	n.cache.Refresh()
	if err := n.mesh.Start(); err != nil {
		_ = n.membership.Close()
		_ = n.transport.Close()
		return err
	}
	n.started = true
	n.wg.Add(1)
	go n.eventLoop()
	n.joinWG.Add(1)
	go n.joinLoop()
	if w, ok := n.discovery.(ports.Watcher); ok {
		n.joinWG.Add(1)
		go n.watchLoop(w)
	}
	if r, ok := n.discovery.(ports.Registrar); ok {
		n.joinWG.Add(1)
		go n.registerLoop(r)
	}
	n.log.Info("node started", "transport", addr, "apps", n.mesh.Apps())
	return nil
}

// Ready blocks until the node has started, made its first attempt to join
// the cluster (successful, or failed because no seed answered yet; the
// attempts continue in the background), and holds the cache data it owns
// (its first sync with the members it found is done), or until ctx ends.
// Use it as a Kubernetes readiness gate: a restarted node takes no traffic
// before it has its data back.
func (n *Node) Ready(ctx context.Context) error {
	select {
	case <-n.ready:
	case <-ctx.Done():
		return fmt.Errorf("mycorrizal: not ready: %w", ctx.Err())
	}
	if err := n.cache.WaitSynced(ctx); err != nil {
		return fmt.Errorf("mycorrizal: not ready: %w", err)
	}
	return nil
}

// Synced reports whether the node currently holds all the cache data it
// owns: false from each membership change until its sync round ends.
func (n *Node) Synced() bool { return n.cache.Synced() }

func (n *Node) markReady() { n.readyOnce.Do(func() { close(n.ready) }) }

// Shutdown leaves the cluster gracefully (peers see the node leave rather
// than fail), closes every stream, and stops every goroutine the node
// started, returning once they are gone or ctx ends. Requests in flight fail
// with ports.ErrClosed. Shutdown is safe to call more than once; later calls
// wait for the first and return its result.
func (n *Node) Shutdown(ctx context.Context) error {
	n.mu.Lock()
	if n.shutdown {
		done := n.shutdownDone
		n.mu.Unlock()
		select {
		case <-done:
			return n.shutdownErr
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	n.shutdown = true
	n.shutdownDone = make(chan struct{})
	started := n.started
	n.mu.Unlock()

	// Stop joining and reconnecting first, so nothing re-joins after Leave.
	n.cancel()
	n.joinWG.Wait()
	var errs []error
	if started && !n.single {
		if err := n.deregister(ctx); err != nil {
			errs = append(errs, fmt.Errorf("deregister from discovery: %w", err))
		}
		// Hand this node's keys to their next owners while it is still a
		// member, so a rolling restart loses nothing.
		if err := n.cache.Handoff(ctx); err != nil {
			n.log.Warn("cache handoff incomplete; the keys' other replicas remain", "err", err)
		}
		// Leave waits for the departure to be gossiped; when every peer is
		// leaving at once nobody is left to hear it, so bound the wait.
		lctx, lcancel := context.WithTimeout(ctx, maxLeaveWait)
		err := n.membership.Leave(lctx)
		lcancel()
		if err != nil && ctx.Err() == nil && errors.Is(err, context.DeadlineExceeded) {
			n.log.Warn("leave not confirmed by any peer; they will detect the departure as a failure", "err", err)
			err = nil
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("leave: %w", err))
		}
	}
	if err := n.cache.Close(); err != nil {
		errs = append(errs, fmt.Errorf("cache: %w", err))
	}
	if err := n.mesh.Close(ctx); err != nil {
		errs = append(errs, err)
	}
	if !n.single {
		if err := n.membership.Close(); err != nil {
			errs = append(errs, fmt.Errorf("membership: %w", err))
		}
		if err := n.transport.Close(); err != nil {
			errs = append(errs, fmt.Errorf("transport: %w", err))
		}
	}
	n.wg.Wait()
	if len(errs) > 0 {
		n.shutdownErr = fmt.Errorf("mycorrizal: shutdown: %w", errors.Join(errs...))
	}
	n.log.Info("node shut down")
	close(n.shutdownDone)
	return n.shutdownErr
}

// maxLeaveWait bounds how long Shutdown waits for its departure to be
// gossiped.
const maxLeaveWait = 3 * time.Second

// eventLoop feeds membership events to the mesh, and remembers failed
// members for reconnection, until the membership layer closes its event
// channel.
func (n *Node) eventLoop() {
	defer n.wg.Done()
	for ev := range n.membership.Events() {
		n.log.Debug("member event", "event", ev.Type.String(), "member", string(ev.Member.ID))
		n.mesh.HandleEvent(ev)
		n.cache.HandleEvent(ev)
		n.reconnect.observe(ev)
		if (ev.Type == ports.MemberLeft || ev.Type == ports.MemberFailed) && len(n.mesh.Peers()) == 0 {
			// The last peer is gone: rediscover now, not at the next tick.
			select {
			case n.alone <- struct{}{}:
			default:
			}
		}
	}
}

// joinLoop joins seeds and discovered addresses at start and whenever the
// node is alone, and tries to reconnect one failed member each reconnect
// interval (memberlist does not heal a partition by itself: it stops
// gossiping with members it declared dead), until Shutdown.
func (n *Node) joinLoop() {
	defer n.joinWG.Done()
	timer := time.NewTimer(0)
	defer timer.Stop()
	lastReconnect := time.Now()
	lastDiscovery := time.Now()
	first := true
	for {
		select {
		case <-n.ctx.Done():
			return
		case <-timer.C:
		case <-n.alone:
		}
		if len(n.membership.Members()) <= 1 {
			n.join()
			lastDiscovery = time.Now()
		} else if n.discovery != nil && time.Since(lastDiscovery) >= n.discoveryInterval {
			lastDiscovery = time.Now()
			n.rediscover("periodic discovery")
		}
		if first {
			first = false
			n.firstSync()
		}
		n.markReady()
		if time.Since(lastReconnect) >= n.reconnect.interval {
			lastReconnect = time.Now()
			if addr, id, ok := n.reconnect.pick(time.Now()); ok {
				n.joinAddrs("reconnect", []string{addr}, "member", string(id))
			}
		}
		timer.Reset(min(n.joinRetry, n.reconnect.interval, n.discoveryInterval))
	}
}

// firstSync starts the cache's first sync once the first join attempt is
// done and its members have reached the mesh (their events are applied
// asynchronously), so the readiness gate reflects the cluster joined, not
// the empty view of a node that has just started.
func (n *Node) firstSync() {
	want := len(n.membership.Members()) - 1
	deadline := time.Now().Add(2 * time.Second)
	for len(n.mesh.Peers()) < want && time.Now().Before(deadline) && n.ctx.Err() == nil {
		time.Sleep(10 * time.Millisecond)
	}
	n.cache.Refresh()
	n.cache.SyncNow()
}

// join makes one attempt to join the configured seeds and discovered
// addresses.
func (n *Node) join() {
	seeds := slices.Clone(n.seeds)
	if n.discovery != nil {
		ctx, cancel := context.WithTimeout(n.ctx, 10*time.Second)
		found, err := n.discovery.Discover(ctx)
		cancel()
		if err != nil {
			n.log.Warn("discovery failed", "err", err)
		}
		seeds = append(seeds, found...)
	}
	if len(seeds) > 0 {
		n.joinAddrs("join", seeds)
	}
}

func (n *Node) joinAddrs(why string, addrs []string, attrs ...any) {
	ctx, cancel := context.WithTimeout(n.ctx, 10*time.Second)
	defer cancel()
	count, err := n.membership.Join(ctx, addrs)
	if n.ctx.Err() != nil {
		return
	}
	if err != nil {
		n.log.Debug(why+" failed", append(attrs, "addrs", addrs, "err", err)...)
		return
	}
	if count > 0 {
		n.log.Info(why+" succeeded", append(attrs, "contacted", count)...)
	}
}
