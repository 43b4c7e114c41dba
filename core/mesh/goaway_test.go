package mesh_test

import (
	"context"
	"errors"
	"io"
	"testing"
	"time"

	"github.com/mycorrizal/mycorrizal/adapters/transport/mem"
	"github.com/mycorrizal/mycorrizal/core/mesh"
	"github.com/mycorrizal/mycorrizal/core/wire"
	"github.com/mycorrizal/mycorrizal/ports"
)

// TestTooManyStreamsRefusal: a peer that refuses a stream because this node
// has too many open to it is reported as ErrTooManyRequests, not as
// malformed input.
func TestTooManyStreamsRefusal(t *testing.T) {
	ns := newNodes(t, 2, func(c *mesh.Config) { c.MaxInboundStreamsPerPeer = 1 }, "svc")
	ns[1].m.App("svc").OnRequest(echo)
	// The message stream takes n0's only inbound stream at n1.
	if err := ns[0].m.App("svc").Send(ctxT(t, 5*time.Second), []byte("m"), "n1"); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "message stream accepted", func() bool { return ns[1].m.Stats().InboundStreams == 1 })
	_, err := ns[0].m.App("svc").Request(ctxT(t, 5*time.Second), "n1", []byte("q"))
	if !errors.Is(err, ports.ErrTooManyRequests) || errors.Is(err, ports.ErrMalformed) {
		t.Fatalf("got %v, want ErrTooManyRequests", err)
	}
}

// TestGoAwayReasons: each refusal code a peer sends maps to the sentinel
// that names it.
func TestGoAwayReasons(t *testing.T) {
	for _, tc := range []struct {
		code wire.Code
		want error
	}{
		{wire.CodeVersion, ports.ErrVersion},
		{wire.CodeTooManyStreams, ports.ErrTooManyRequests},
		{wire.CodeProtocolError, ports.ErrMalformed},
		{wire.CodeAppNotHosted, ports.ErrAppNotHosted},
		{wire.CodeUnauthenticated, ports.ErrUnauthenticated},
		{wire.CodeFrameTooLarge, ports.ErrFrameTooLarge},
		{wire.CodeShuttingDown, ports.ErrPeerGone},
		{wire.CodeNormal, ports.ErrPeerGone},
		{wire.Code(999), ports.ErrPeerGone},
	} {
		t.Run(tc.code.String(), func(t *testing.T) {
			ns := newNodes(t, 1, nil, "svc")
			refuser(t, ns[0], "n9", tc.code)
			_, err := ns[0].m.App("svc").Request(ctxT(t, 5*time.Second), "n9", []byte("q"))
			if !errors.Is(err, tc.want) {
				t.Fatalf("goaway %s: got %v, want %v", tc.code, err, tc.want)
			}
			if tc.want != ports.ErrMalformed && errors.Is(err, ports.ErrMalformed) {
				t.Fatalf("goaway %s reported as malformed: %v", tc.code, err)
			}
		})
	}
}

// refuser adds a peer id to n's members that answers every stream with a
// GoAway carrying code.
func refuser(t *testing.T, n *node, id ports.NodeID, code wire.Code) {
	t.Helper()
	tr, err := mem.New(n.net, mem.Config{})
	if err != nil {
		t.Fatal(err)
	}
	addr, err := tr.Listen(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	t.Cleanup(func() { cancel(); _ = tr.Close(); <-done })
	go func() {
		defer close(done)
		for {
			s, err := tr.Accept(ctx)
			if err != nil {
				return
			}
			// As the mesh refuses: GoAway, end of writing, drain until the
			// opener resets, so it reads the GoAway rather than a failed write.
			_ = s.SetDeadline(time.Now().Add(2 * time.Second))
			_, _ = s.Write(wire.AppendGoAway(nil, code, "refused by test"))
			_ = s.CloseWrite()
			_, _ = io.Copy(io.Discard, s)
			_ = s.Close()
		}
	}()
	n.m.HandleEvent(ports.MemberEvent{Type: ports.MemberJoined, Member: ports.Member{ID: id, TransportAddr: addr, Apps: []string{"svc"}, State: ports.StateAlive}})
}
