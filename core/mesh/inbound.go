package mesh

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/mycorrizal/mycorrizal/core/wire"
	"github.com/mycorrizal/mycorrizal/ports"
)

// inLink is one inbound stream: a peer opened it to send this node messages
// or requests for one application.
type inLink struct {
	peer   ports.NodeID
	stream ports.Stream
}

// admit registers an accepted stream, enforcing the per-peer bound.
func (m *Mesh) admit(l *inLink) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed || m.inPerPeer[l.peer] >= m.cfg.MaxInboundStreamsPerPeer {
		return false
	}
	m.in[l] = struct{}{}
	m.inPerPeer[l.peer]++
	return true
}

func (m *Mesh) release(l *inLink) {
	m.mu.Lock()
	delete(m.in, l)
	if m.inPerPeer[l.peer]--; m.inPerPeer[l.peer] <= 0 {
		delete(m.inPerPeer, l.peer)
	}
	m.mu.Unlock()
}

// refuseLinger bounds how long a refused stream is drained so the opener
// reads the GoAway instead of failing on a write to a closed stream.
const refuseLinger = 2 * time.Second

// refuse sends a GoAway explaining why, ends its writing side, and drains
// what the opener still sends until it resets the stream (as it does on
// reading the GoAway) or refuseLinger passes; then it closes the stream.
func (m *Mesh) refuse(s ports.Stream, code wire.Code, reason string) {
	stop := context.AfterFunc(m.ctx, func() { _ = s.Reset() })
	defer stop()
	_ = s.SetDeadline(time.Now().Add(refuseLinger))
	if _, err := s.Write(wire.AppendGoAway(nil, code, reason)); err == nil {
		_ = s.CloseWrite()
		_, _ = io.Copy(io.Discard, s)
	}
	_ = s.Close()
}

// serve runs one accepted stream until it ends: it checks the init frame,
// then hands messages or requests to the application.
func (m *Mesh) serve(s ports.Stream) {
	defer m.wg.Done()
	peer := s.Peer()
	l := &inLink{peer: peer, stream: s}
	if !m.admit(l) {
		m.log.Warn("refusing stream: too many from peer", "peer", string(peer))
		m.refuse(s, wire.CodeTooManyStreams, "too many streams from "+string(peer))
		return
	}
	defer m.release(l)

	r := wire.NewReader(s, m.cfg.MaxFrameSize)
	_ = s.SetDeadline(time.Now().Add(m.cfg.InitTimeout))
	f, err := r.Next()
	_ = s.SetDeadline(time.Time{})
	if err != nil {
		m.log.Warn("refusing stream: no valid init frame", "peer", string(peer), "err", err)
		m.refuse(s, wire.CodeProtocolError, "no valid init frame")
		return
	}
	if f.Type != wire.TypeStreamInit {
		m.log.Warn("refusing stream: first frame is not init", "peer", string(peer), "type", f.Type.String())
		m.refuse(s, wire.CodeProtocolError, "first frame must be stream-init")
		return
	}
	if f.Version != wire.Version {
		m.log.Warn("refusing stream: unsupported protocol version", "peer", string(peer), "version", f.Version)
		m.refuse(s, wire.CodeVersion, fmt.Sprintf("version %d not supported, want %d", f.Version, wire.Version))
		return
	}
	if f.From != peer {
		m.log.Warn("refusing stream: claimed identity differs from authenticated peer",
			"claimed", string(f.From), "authenticated", string(peer), "app", f.App)
		m.refuse(s, wire.CodeUnauthenticated, "claimed "+string(f.From)+" but authenticated as "+string(peer))
		return
	}
	app := m.App(f.App)
	if app == nil {
		m.log.Debug("refusing stream: application not hosted", "peer", string(peer), "app", f.App)
		m.refuse(s, wire.CodeAppNotHosted, fmt.Sprintf("node %s does not host application %q", m.cfg.Self, f.App))
		return
	}

	ctx, cancel := context.WithCancel(m.ctx)
	defer cancel()
	if f.Lane == wire.LaneMessages {
		err = app.readMessages(ctx, peer, r)
	} else {
		err = app.readRequests(ctx, peer, s, r)
	}
	switch {
	case err == nil || errors.Is(err, io.EOF) || m.ctx.Err() != nil:
		_ = s.Close()
	case errors.Is(err, ports.ErrFrameTooLarge):
		m.log.Error("closing stream: frame too large", "peer", string(peer), "app", f.App, "err", err)
		m.refuse(s, wire.CodeFrameTooLarge, err.Error())
	case errors.Is(err, ports.ErrMalformed):
		m.log.Error("closing stream: malformed frame", "peer", string(peer), "app", f.App, "err", err)
		m.refuse(s, wire.CodeProtocolError, err.Error())
	default:
		m.log.Debug("inbound stream ended", "peer", string(peer), "app", f.App, "err", err)
		_ = s.Reset()
	}
}
