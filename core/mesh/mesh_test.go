package mesh_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mycorrizal/mycorrizal/adapters/transport/mem"
	"github.com/mycorrizal/mycorrizal/core/mesh"
	"github.com/mycorrizal/mycorrizal/core/wire"
	"github.com/mycorrizal/mycorrizal/ports"
)

func echo(ctx context.Context, from ports.NodeID, p []byte) ([]byte, error) {
	return append([]byte(string(from)+":"), p...), nil
}

func TestRequestResponse(t *testing.T) {
	ns := newNodes(t, 3, nil, "echo")
	for _, n := range ns {
		n.m.App("echo").OnRequest(echo)
	}
	for _, a := range ns {
		for _, b := range ns {
			resp, err := a.m.App("echo").Request(ctxT(t, 5*time.Second), b.id, []byte("hi"))
			if err != nil {
				t.Fatalf("%s -> %s: %v", a.id, b.id, err)
			}
			if want := string(a.id) + ":hi"; string(resp) != want {
				t.Fatalf("%s -> %s: got %q, want %q", a.id, b.id, resp, want)
			}
		}
	}
}

func TestConcurrentRequests(t *testing.T) {
	ns := newNodes(t, 2, nil, "echo")
	ns[1].m.App("echo").OnRequest(echo)
	var wg sync.WaitGroup
	errs := make(chan error, 256)
	for i := range 256 {
		wg.Go(func() {
			p := fmt.Appendf(nil, "%d", i)
			resp, err := ns[0].m.App("echo").Request(ctxT(t, 10*time.Second), ns[1].id, p)
			if err == nil && string(resp) != "n0:"+string(p) {
				err = fmt.Errorf("request %d got %q", i, resp)
			}
			if err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if got := ns[0].m.Stats().PendingRequests; got != 0 {
		t.Fatalf("pending after all responses: %d", got)
	}
}

func TestSendInOrderAndBroadcast(t *testing.T) {
	ns := newNodes(t, 3, nil, "chat")
	const count = 500
	var mu sync.Mutex
	got := map[ports.NodeID][]string{}
	for _, n := range ns {
		n.m.App("chat").OnMessage(func(ctx context.Context, from ports.NodeID, p []byte) {
			mu.Lock()
			got[n.id] = append(got[n.id], string(from)+">"+string(p))
			mu.Unlock()
		})
	}
	for i := range count {
		if err := ns[0].m.App("chat").Broadcast(ctxT(t, 5*time.Second), fmt.Appendf(nil, "%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, 10*time.Second, "all messages delivered", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(got["n1"]) == count && len(got["n2"]) == count
	})
	mu.Lock()
	defer mu.Unlock()
	for _, id := range []ports.NodeID{"n1", "n2"} {
		for i, m := range got[id] {
			if want := fmt.Sprintf("n0>%d", i); m != want {
				t.Fatalf("%s message %d: got %q, want %q (order lost)", id, i, m, want)
			}
		}
	}
	if len(got["n0"]) != 0 {
		t.Fatalf("broadcast delivered to the sender itself: %v", got["n0"][:1])
	}
}

func TestSelfDelivery(t *testing.T) {
	ns := newNodes(t, 1, nil, "a")
	app := ns[0].m.App("a")
	app.OnRequest(echo)
	got := make(chan string, 1)
	app.OnMessage(func(ctx context.Context, from ports.NodeID, p []byte) { got <- string(p) })
	resp, err := app.Request(ctxT(t, time.Second), "n0", []byte("x"))
	if err != nil || string(resp) != "n0:x" {
		t.Fatalf("self request: %q, %v", resp, err)
	}
	if err := app.Send(ctxT(t, time.Second), []byte("m"), "n0"); err != nil {
		t.Fatal(err)
	}
	if m := <-got; m != "m" {
		t.Fatalf("self send got %q", m)
	}
}

func TestRemoteHandlerErrorAndPanic(t *testing.T) {
	ns := newNodes(t, 2, nil, "svc")
	ns[1].m.App("svc").OnRequest(func(ctx context.Context, from ports.NodeID, p []byte) ([]byte, error) {
		switch string(p) {
		case "fail":
			return nil, errors.New("order 42 not found")
		case "panic":
			panic("handler exploded")
		}
		return p, nil
	})
	_, err := ns[0].m.App("svc").Request(ctxT(t, 5*time.Second), "n1", []byte("fail"))
	var re *mesh.RemoteError
	if !errors.Is(err, ports.ErrRemote) || !errors.As(err, &re) || re.Message != "order 42 not found" || re.Status != wire.StatusHandlerError {
		t.Fatalf("handler error: got %v", err)
	}
	_, err = ns[0].m.App("svc").Request(ctxT(t, 5*time.Second), "n1", []byte("panic"))
	if !errors.Is(err, ports.ErrRemote) || !strings.Contains(err.Error(), "handler exploded") || !strings.Contains(err.Error(), "panic") {
		t.Fatalf("handler panic: got %v", err)
	}
	// The node keeps serving after a panic.
	if resp, err := ns[0].m.App("svc").Request(ctxT(t, 5*time.Second), "n1", []byte("ok")); err != nil || string(resp) != "ok" {
		t.Fatalf("after panic: %q, %v", resp, err)
	}
	if !strings.Contains(ns[1].log.String(), "request handler panicked") {
		t.Fatal("panic not logged")
	}
}

func TestNoRequestHandler(t *testing.T) {
	ns := newNodes(t, 2, nil, "svc")
	_, err := ns[0].m.App("svc").Request(ctxT(t, 5*time.Second), "n1", []byte("x"))
	if !errors.Is(err, ports.ErrRemote) || !strings.Contains(err.Error(), "no request handler") {
		t.Fatalf("got %v", err)
	}
}

func TestAppNotHostedFailsPromptly(t *testing.T) {
	ns := newNodes(t, 2, nil)
	a, err := ns[0].m.Register("only-on-n0")
	if err != nil {
		t.Fatal(err)
	}
	ctx := ctxT(t, 30*time.Second)
	start := time.Now()
	_, err = a.Request(ctx, "n1", []byte("x"))
	if !errors.Is(err, ports.ErrAppNotHosted) {
		t.Fatalf("got %v, want ErrAppNotHosted", err)
	}
	if !strings.Contains(err.Error(), "only-on-n0") {
		t.Fatalf("error does not name the app: %v", err)
	}
	if ctx.Err() != nil {
		t.Fatalf("failed only at the deadline after %v", time.Since(start))
	}
	t.Logf("app-not-hosted error after %v: %v", time.Since(start), err)
}

func TestUnknownNode(t *testing.T) {
	ns := newNodes(t, 1, nil, "a")
	_, err := ns[0].m.App("a").Request(ctxT(t, 5*time.Second), "ghost", nil)
	if !errors.Is(err, ports.ErrUnknownNode) {
		t.Fatalf("got %v", err)
	}
	if err := ns[0].m.App("a").Send(ctxT(t, 5*time.Second), nil, "ghost"); !errors.Is(err, ports.ErrUnknownNode) {
		t.Fatalf("send: got %v", err)
	}
}

func TestCancelledRequestLeavesPendingTable(t *testing.T) {
	ns := newNodes(t, 2, nil, "slow")
	release := make(chan struct{})
	ns[1].m.App("slow").OnRequest(func(ctx context.Context, from ports.NodeID, p []byte) ([]byte, error) {
		<-release // ignores its ctx, so only the caller's deadline ends the wait
		return nil, nil
	})
	defer close(release)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := ns[0].m.App("slow").Request(ctx, "n1", nil)
		done <- err
	}()
	eventually(t, 5*time.Second, "request pending", func() bool { return ns[0].m.Stats().PendingRequests == 1 })
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v, want context.Canceled", err)
	}
	if got := ns[0].m.Stats().PendingRequests; got != 0 {
		t.Fatalf("cancelled request still pending: %d", got)
	}
	// An expired one too.
	_, err := ns[0].m.App("slow").Request(ctxT(t, 50*time.Millisecond), "n1", nil)
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "no response") {
		t.Fatalf("got %v", err)
	}
	if got := ns[0].m.Stats().PendingRequests; got != 0 {
		t.Fatalf("expired request still pending: %d", got)
	}
}

func TestPendingTableBounded(t *testing.T) {
	ns := newNodes(t, 2, func(c *mesh.Config) { c.MaxPendingRequests = 2 }, "slow")
	release := make(chan struct{})
	ns[1].m.App("slow").OnRequest(func(ctx context.Context, from ports.NodeID, p []byte) ([]byte, error) {
		<-release
		return []byte("done"), nil
	})
	var wg sync.WaitGroup
	for range 2 {
		wg.Go(func() {
			if _, err := ns[0].m.App("slow").Request(ctxT(t, 10*time.Second), "n1", nil); err != nil {
				t.Error(err)
			}
		})
	}
	eventually(t, 5*time.Second, "two pending", func() bool { return ns[0].m.Stats().PendingRequests == 2 })
	_, err := ns[0].m.App("slow").Request(ctxT(t, 100*time.Millisecond), "n1", nil)
	if !errors.Is(err, ports.ErrTooManyRequests) {
		t.Fatalf("got %v, want ErrTooManyRequests", err)
	}
	close(release)
	wg.Wait()
}

func TestBackpressureNotDrop(t *testing.T) {
	ns := newNodes(t, 2, func(c *mesh.Config) { c.InboxSize = 4; c.SendBufferSize = 32 << 10 }, "sink")
	release := make(chan struct{})
	var handled atomic.Int64
	ns[1].m.App("sink").OnMessage(func(ctx context.Context, from ports.NodeID, p []byte) {
		<-release
		handled.Add(1)
	})
	payload := bytes.Repeat([]byte("x"), 8<<10)
	sent := 0
	var err error
	for sent < 10000 {
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		err = ns[0].m.App("sink").Send(ctx, payload, "n1")
		cancel()
		if err != nil {
			break
		}
		sent++
	}
	if !errors.Is(err, ports.ErrBackpressure) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("after %d sends: got %v, want ErrBackpressure", sent, err)
	}
	if !strings.Contains(err.Error(), "not keeping up") {
		t.Fatalf("error does not say the peer is not keeping up: %v", err)
	}
	close(release)
	eventually(t, 10*time.Second, "every accepted message handled", func() bool { return handled.Load() == int64(sent) })
	t.Logf("%d messages accepted before backpressure; all handled", sent)
}

func TestOversizePayloadRefusedBeforeSend(t *testing.T) {
	ns := newNodes(t, 2, func(c *mesh.Config) { c.MaxFrameSize = 4096 }, "a")
	big := make([]byte, 5000)
	if err := ns[0].m.App("a").Send(ctxT(t, time.Second), big, "n1"); !errors.Is(err, ports.ErrFrameTooLarge) {
		t.Fatalf("send: %v", err)
	}
	if _, err := ns[0].m.App("a").Request(ctxT(t, time.Second), "n1", big); !errors.Is(err, ports.ErrFrameTooLarge) {
		t.Fatalf("request: %v", err)
	}
	if s := ns[0].m.Stats(); s.OutboundStreams != 0 {
		t.Fatalf("a stream was opened for an oversize payload: %+v", s)
	}
}

// rawStream opens a stream to target from a transport with identity id on
// target's network, bypassing the mesh.
func rawStream(t *testing.T, net *mem.Network, id ports.NodeID, target *node) ports.Stream {
	t.Helper()
	tr, err := mem.New(net, mem.Config{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tr.Listen(context.Background(), id); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tr.Close() })
	s, err := tr.Open(ctxT(t, 5*time.Second), target.id, target.addr)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func readGoAway(t *testing.T, s ports.Stream) wire.Frame {
	t.Helper()
	_ = s.SetDeadline(time.Now().Add(5 * time.Second))
	f, err := wire.NewReader(s, 0).Next()
	if err != nil {
		t.Fatalf("reading the refusal: %v", err)
	}
	if f.Type != wire.TypeGoAway {
		t.Fatalf("got %s frame, want goaway", f.Type)
	}
	return f
}
