package mesh_test

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mycorrizal/mycorrizal/core/mesh"
	"github.com/mycorrizal/mycorrizal/core/wire"
	"github.com/mycorrizal/mycorrizal/ports"
)

func TestImpersonationRefused(t *testing.T) {
	ns := newNodes(t, 2, nil, "svc")
	var calls atomic.Int64
	ns[0].m.App("svc").OnMessage(func(ctx context.Context, from ports.NodeID, p []byte) { calls.Add(1) })
	// "mallory" is authenticated by the transport but claims to be n1.
	s := rawStream(t, ns[0].net, "mallory", ns[0])
	buf, _ := wire.AppendStreamInit(nil, "n1", "svc", wire.LaneMessages)
	buf, _ = wire.AppendData(buf, []byte("forged"), wire.DefaultMaxFrameSize)
	if _, err := s.Write(buf); err != nil {
		t.Fatal(err)
	}
	f := readGoAway(t, s)
	if f.Code != wire.CodeUnauthenticated {
		t.Fatalf("goaway code %s, want %s", f.Code, wire.CodeUnauthenticated)
	}
	if !strings.Contains(ns[0].log.String(), "claimed identity differs") {
		t.Fatalf("refusal not logged: %s", ns[0].log.String())
	}
	time.Sleep(50 * time.Millisecond)
	if calls.Load() != 0 {
		t.Fatal("forged message was delivered")
	}
}

func TestOversizeFrameClosesOnlyThatStream(t *testing.T) {
	ns := newNodes(t, 2, func(c *mesh.Config) { c.MaxFrameSize = 64 << 10 }, "svc")
	got := make(chan string, 16)
	ns[0].m.App("svc").OnMessage(func(ctx context.Context, from ports.NodeID, p []byte) { got <- string(from) + ":" + string(p) })
	ns[0].m.App("svc").OnRequest(echo)

	// A healthy stream from n1 exists before and after.
	if err := ns[1].m.App("svc").Send(ctxT(t, 5*time.Second), []byte("before"), "n0"); err != nil {
		t.Fatal(err)
	}
	if m := <-got; m != "n1:before" {
		t.Fatalf("got %q", m)
	}

	s := rawStream(t, ns[0].net, "n9", ns[0])
	buf, _ := wire.AppendStreamInit(nil, "n9", "svc", wire.LaneMessages)
	buf = binary.BigEndian.AppendUint32(buf, 1<<30) // a 1 GiB data frame header
	buf = append(buf, byte(wire.TypeData), 'x', 'x')
	if _, err := s.Write(buf); err != nil {
		t.Fatal(err)
	}
	f := readGoAway(t, s)
	if f.Code != wire.CodeFrameTooLarge {
		t.Fatalf("goaway code %s, want %s", f.Code, wire.CodeFrameTooLarge)
	}
	eventually(t, 5*time.Second, "stream closed", func() bool {
		_ = s.SetDeadline(time.Now().Add(100 * time.Millisecond))
		_, err := s.Read(make([]byte, 1))
		return err != nil && !errors.Is(err, context.DeadlineExceeded) && !strings.Contains(err.Error(), "deadline")
	})
	if !strings.Contains(ns[0].log.String(), "frame too large") || !strings.Contains(ns[0].log.String(), "level=ERROR") {
		t.Fatalf("oversize frame not logged as an error: %s", ns[0].log.String())
	}

	// Other streams keep working.
	if err := ns[1].m.App("svc").Send(ctxT(t, 5*time.Second), []byte("after"), "n0"); err != nil {
		t.Fatal(err)
	}
	if m := <-got; m != "n1:after" {
		t.Fatalf("got %q", m)
	}
	if resp, err := ns[1].m.App("svc").Request(ctxT(t, 5*time.Second), "n0", []byte("q")); err != nil || string(resp) != "n1:q" {
		t.Fatalf("request after oversize frame: %q %v", resp, err)
	}
}

func TestGarbageInitRefused(t *testing.T) {
	ns := newNodes(t, 1, nil, "svc")
	for name, raw := range map[string][]byte{
		"data first":  mustData(t),
		"bad version": {0, 0, 0, 7, byte(wire.TypeStreamInit), 99, 0, 1, 'z', 1, 'a'},
		"garbage":     []byte("GET / HTTP/1.1\r\n\r\n"),
	} {
		t.Run(name, func(t *testing.T) {
			s := rawStream(t, ns[0].net, ports.NodeID("z"), ns[0])
			_, _ = s.Write(raw)
			f := readGoAway(t, s)
			if f.Code == wire.CodeNormal {
				t.Fatalf("refused with code %s", f.Code)
			}
			_ = s.Reset()
		})
	}
	// Still serving.
	ns[0].m.App("svc").OnRequest(echo)
	if _, err := ns[0].m.App("svc").Request(ctxT(t, time.Second), "n0", nil); err != nil {
		t.Fatal(err)
	}
}

func mustData(t *testing.T) []byte {
	b, err := wire.AppendData(nil, []byte("x"), wire.DefaultMaxFrameSize)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestPeerGoneFailsRequestsFast(t *testing.T) {
	ns := newNodes(t, 2, nil, "slow")
	ns[1].m.App("slow").OnRequest(func(ctx context.Context, from ports.NodeID, p []byte) ([]byte, error) {
		<-ctx.Done()
		return nil, ctx.Err()
	})
	done := make(chan error, 1)
	go func() {
		_, err := ns[0].m.App("slow").Request(ctxT(t, 30*time.Second), "n1", nil)
		done <- err
	}()
	eventually(t, 5*time.Second, "request pending", func() bool { return ns[0].m.Stats().PendingRequests == 1 })
	ns[0].m.HandleEvent(ports.MemberEvent{Type: ports.MemberFailed, Member: ports.Member{ID: "n1"}})
	select {
	case err := <-done:
		if !errors.Is(err, ports.ErrPeerGone) {
			t.Fatalf("got %v, want ErrPeerGone", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("request not failed when its peer failed")
	}
	if _, err := ns[0].m.App("slow").Request(ctxT(t, 30*time.Second), "n1", nil); !errors.Is(err, ports.ErrUnknownNode) {
		t.Fatalf("request to a failed peer: %v", err)
	}
}

func TestTransportCrashFailsRequests(t *testing.T) {
	ns := newNodes(t, 2, nil, "slow")
	ns[1].m.App("slow").OnRequest(func(ctx context.Context, from ports.NodeID, p []byte) ([]byte, error) {
		<-ctx.Done()
		return nil, ctx.Err()
	})
	done := make(chan error, 1)
	go func() {
		_, err := ns[0].m.App("slow").Request(ctxT(t, 30*time.Second), "n1", nil)
		done <- err
	}()
	eventually(t, 5*time.Second, "request pending", func() bool { return ns[0].m.Stats().PendingRequests == 1 })
	_ = ns[1].tr.Close()
	select {
	case err := <-done:
		if !errors.Is(err, ports.ErrPeerGone) {
			t.Fatalf("got %v, want ErrPeerGone", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("request not failed when the peer's transport died")
	}
}

func TestCloseFailsPendingAndIsIdempotent(t *testing.T) {
	ns := newNodes(t, 2, nil, "slow")
	ns[1].m.App("slow").OnRequest(func(ctx context.Context, from ports.NodeID, p []byte) ([]byte, error) {
		<-ctx.Done()
		return nil, ctx.Err()
	})
	done := make(chan error, 1)
	go func() {
		_, err := ns[0].m.App("slow").Request(ctxT(t, 30*time.Second), "n1", nil)
		done <- err
	}()
	eventually(t, 5*time.Second, "request pending", func() bool { return ns[0].m.Stats().PendingRequests == 1 })
	if err := ns[0].m.Close(ctxT(t, 5*time.Second)); err != nil {
		t.Fatal(err)
	}
	if err := <-done; !errors.Is(err, ports.ErrClosed) {
		t.Fatalf("got %v, want ErrClosed", err)
	}
	if err := ns[0].m.Close(ctxT(t, 5*time.Second)); err != nil {
		t.Fatal(err)
	}
	if _, err := ns[0].m.App("slow").Request(ctxT(t, time.Second), "n1", nil); !errors.Is(err, ports.ErrClosed) {
		t.Fatalf("after close: %v", err)
	}
	_ = io.EOF
}
