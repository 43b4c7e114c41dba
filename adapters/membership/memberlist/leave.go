package memberlist

import (
	"context"
	"fmt"
	"math/rand/v2"
	"time"

	ml "github.com/hashicorp/memberlist"

	"github.com/mycorrizal/mycorrizal/ports"
)

// maxLeaveSyncs bounds how many peers Leave syncs the leaving flag with
// directly; the others learn it by gossip.
const maxLeaveSyncs = 16

// Leave announces a graceful departure and waits until it has been
// gossiped or ctx ends (DefaultTimeout without a deadline).
//
// memberlist v0.7.0 does not tell peers whether a node left or failed (see
// the package doc), so Leave first marks this node's metadata as leaving
// and spreads it: memberlist gossips it, and Leave also syncs state
// directly (memberlist's push/pull) with up to 16 peers, waiting at most
// half the time for both. Only then does it send memberlist's leave
// message, which would otherwise overtake the flag and replace it in
// peers' broadcast queues. A peer that still misses the flag reports
// MemberFailed instead of MemberLeft.
//
// Afterwards Join and UpdateLocal fail; call Close next. Syncs still
// running when Leave returns finish in the background within memberlist's
// TCPTimeout, and Close waits for them. Calling Leave again returns nil.
func (m *Membership) Leave(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("memberlist: leave: %w", err)
	}
	deadline := time.Now().Add(timeoutFrom(ctx))
	return m.call(ctx, "leave", func(list *ml.Memberlist) error {
		m.updMu.Lock()
		defer m.updMu.Unlock()
		m.mu.Lock()
		switch m.state {
		case stateLeft:
			m.mu.Unlock()
			return nil
		case stateClosed:
			m.mu.Unlock()
			return fmt.Errorf("memberlist: leave: %w", ports.ErrClosed)
		}
		m.state = stateLeft
		meta, err := EncodeMeta(metaOf(m.self, true))
		if err == nil {
			m.d.setMeta(meta)
		}
		m.mu.Unlock()

		if err == nil {
			m.spreadLeaving(list, time.Now().Add(time.Until(deadline)/2))
		} else {
			m.log.Warn("cannot set the leaving flag; peers will report a failure", "err", err)
		}
		select {
		case <-m.closing:
			return fmt.Errorf("memberlist: leave: %w", ports.ErrClosed)
		default:
		}
		if err := list.Leave(max(time.Until(deadline), time.Millisecond)); err != nil {
			return fmt.Errorf("memberlist: leave: %v: %w", err, context.DeadlineExceeded)
		}
		m.log.Info("left the cluster")
		return nil
	})
}

// spreadLeaving gossips the leaving flag already set in the local metadata
// and syncs it directly with peers, returning by until (or when Close
// begins).
func (m *Membership) spreadLeaving(list *ml.Memberlist, until time.Time) {
	if err := list.UpdateNode(max(time.Until(until), time.Millisecond)); err != nil {
		m.log.Debug("leaving flag not fully gossiped", "err", err)
	}

	var peers []string
	for _, p := range m.d.snapshot() {
		if string(p.ID) != m.d.name {
			peers = append(peers, p.GossipAddr)
		}
	}
	rand.Shuffle(len(peers), func(i, j int) { peers[i], peers[j] = peers[j], peers[i] })
	all := len(peers)
	peers = peers[:min(len(peers), maxLeaveSyncs)]

	done := make(chan bool, len(peers))
	started := 0
	for _, addr := range peers {
		if !m.spawn(func() {
			_, err := list.Join([]string{addr}) // a push/pull carrying our state
			done <- err == nil
		}) {
			return
		}
		started++
	}
	timer := time.NewTimer(max(time.Until(until), 0))
	defer timer.Stop()
	synced := 0
wait:
	for range started {
		select {
		case ok := <-done:
			if ok {
				synced++
			}
		case <-timer.C:
			break wait
		case <-m.closing:
			return
		}
	}
	if synced < all {
		// Let gossip carry the flag to the peers not synced directly
		// before the leave message replaces it (as serf's
		// LeavePropagateDelay does for its leave intent).
		m.sleep(min(m.settle, time.Until(until)))
	}
	m.log.Debug("leaving flag spread", "peers", all, "synced", synced)
}

// leaveSettle is how long Leave lets gossip spread the leaving flag to
// peers it could not sync directly: three gossip rounds.
func leaveSettle(conf *ml.Config) time.Duration {
	round := conf.GossipInterval
	if round <= 0 {
		round = conf.ProbeInterval
	}
	return 3 * round
}

// sleep pauses for d, or until Close begins.
func (m *Membership) sleep(d time.Duration) {
	if d <= 0 {
		return
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-m.closing:
	}
}
