package simnet_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"

	"github.com/mycorrizal/mycorrizal/ports"
	"github.com/mycorrizal/mycorrizal/testkit/simnet"
)

// dial opens a stream from a to b and returns both ends.
func dial(t testing.TB, a, b *simnet.MemberlistTransport) (client, server net.Conn) {
	t.Helper()
	client, err := a.DialAddressTimeout(memberlist.Address{Addr: b.Addr(), Name: string(b.ID())}, time.Second)
	if err != nil {
		t.Fatalf("dial %s -> %s: %v", a.ID(), b.ID(), err)
	}
	t.Cleanup(func() { _ = client.Close() })
	select {
	case server = <-b.StreamCh():
	case <-time.After(time.Second):
		t.Fatal("stream not accepted")
	}
	t.Cleanup(func() { _ = server.Close() })
	return client, server
}

// exchange writes msg on w and reads it back on r.
func exchange(w, r net.Conn, msg string) error {
	errc := make(chan error, 1)
	go func() {
		_, err := w.Write([]byte(msg))
		errc <- err
	}()
	buf := make([]byte, len(msg))
	_ = r.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, rerr := io.ReadFull(r, buf)
	_ = r.SetReadDeadline(time.Time{})
	werr := <-errc
	if err := errors.Join(werr, rerr); err != nil {
		return err
	}
	if string(buf) != msg {
		return fmt.Errorf("read %q, want %q", buf, msg)
	}
	return nil
}

func TestStreamCarriesBytesAndHasDeadlines(t *testing.T) {
	n := simnet.New(1)
	a, b := bind(t, n, "a", 1), bind(t, n, "b", 2)
	client, server := dial(t, a, b)

	if err := exchange(client, server, "push"); err != nil {
		t.Fatal(err)
	}
	if err := exchange(server, client, "pull"); err != nil {
		t.Fatal(err)
	}
	if client.LocalAddr().String() != a.Addr() || client.RemoteAddr().String() != b.Addr() ||
		server.LocalAddr().String() != b.Addr() || server.RemoteAddr().String() != a.Addr() {
		t.Errorf("addresses: client %s->%s, server %s->%s",
			client.LocalAddr(), client.RemoteAddr(), server.LocalAddr(), server.RemoteAddr())
	}

	_ = server.SetDeadline(time.Now().Add(20 * time.Millisecond))
	if _, err := server.Read(make([]byte, 1)); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("Read past deadline: %v, want os.ErrDeadlineExceeded", err)
	}

	_ = client.Close()
	_ = server.SetDeadline(time.Time{})
	if _, err := server.Read(make([]byte, 1)); err != io.EOF {
		t.Errorf("Read after peer Close: %v, want io.EOF", err)
	}
	if st := n.Stats(); st.StreamsOpened != 1 {
		t.Errorf("StreamsOpened = %d, want 1", st.StreamsOpened)
	}
}

func TestDialFailures(t *testing.T) {
	n := simnet.New(1)
	a, b := bind(t, n, "a", 1), bind(t, n, "b", 2)

	if _, err := a.DialTimeout("10.0.0.99:7946", time.Second); !errors.Is(err, ports.ErrUnreachable) {
		t.Errorf("dial unbound address: %v, want ErrUnreachable", err)
	}

	n.Partition([]ports.NodeID{"a"})
	if _, err := a.DialTimeout(b.Addr(), time.Second); !errors.Is(err, ports.ErrUnreachable) {
		t.Errorf("dial across partition: %v, want ErrUnreachable", err)
	}
	n.Heal()

	// A full accept queue refuses the next dial.
	for range simnet.StreamQueueLen {
		c, err := a.DialTimeout(b.Addr(), time.Second)
		if err != nil {
			t.Fatalf("dial: %v", err)
		}
		defer c.Close()
	}
	if _, err := a.DialTimeout(b.Addr(), time.Second); !errors.Is(err, ports.ErrUnreachable) {
		t.Errorf("dial with full accept queue: %v, want ErrUnreachable", err)
	}
	for range simnet.StreamQueueLen {
		_ = (<-b.StreamCh()).Close()
	}

	_ = b.Shutdown()
	if _, err := a.DialTimeout(b.Addr(), time.Second); !errors.Is(err, ports.ErrUnreachable) {
		t.Errorf("dial shut-down transport: %v, want ErrUnreachable", err)
	}
	_ = a.Shutdown()
	if _, err := a.DialTimeout(b.Addr(), time.Second); !errors.Is(err, ports.ErrClosed) {
		t.Errorf("dial from shut-down transport: %v, want ErrClosed", err)
	}
	if _, err := a.WriteTo([]byte("x"), b.Addr()); !errors.Is(err, ports.ErrClosed) {
		t.Errorf("write from shut-down transport: %v, want ErrClosed", err)
	}
	if st := n.Stats(); st.StreamsRefused != 4 {
		t.Errorf("StreamsRefused = %d, want 4", st.StreamsRefused)
	}
}

func TestDialTakesARoundTripAndTimesOut(t *testing.T) {
	n := simnet.New(1)
	a, b := bind(t, n, "a", 1), bind(t, n, "b", 2)
	const oneWay = 150 * time.Millisecond
	n.Delay("a", "b", oneWay, 0)
	n.Delay("b", "a", oneWay, 0)

	start := time.Now()
	c, err := a.DialTimeout(b.Addr(), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	_ = c.Close()
	if took := time.Since(start); took < 2*oneWay {
		t.Errorf("dial took %v, want at least one round trip (%v)", took, 2*oneWay)
	}

	start = time.Now()
	_, err = a.DialTimeout(b.Addr(), 20*time.Millisecond)
	if !errors.Is(err, os.ErrDeadlineExceeded) || !errors.Is(err, ports.ErrUnreachable) {
		t.Errorf("dial with timeout shorter than the round trip: %v", err)
	}
	if took := time.Since(start); took >= 2*oneWay {
		t.Errorf("timed-out dial took %v, want about its 20ms timeout, not the round trip", took)
	}
}

func TestPartitionClosesStreamsThatCrossIt(t *testing.T) {
	n := simnet.New(1)
	a, b, c := bind(t, n, "a", 1), bind(t, n, "b", 2), bind(t, n, "c", 3)
	abClient, abServer := dial(t, a, b)
	bcClient, bcServer := dial(t, b, c)

	n.Partition([]ports.NodeID{"a"}, []ports.NodeID{"b", "c"})

	for _, end := range []net.Conn{abClient, abServer} {
		_ = end.SetReadDeadline(time.Now().Add(time.Second))
		if _, err := end.Read(make([]byte, 1)); err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
			t.Errorf("read on a cut stream: %v, want a closed-connection error at once", err)
		}
	}
	if err := exchange(bcClient, bcServer, "still here"); err != nil {
		t.Errorf("stream inside one group broken by the partition: %v", err)
	}
	if st := n.Stats(); st.StreamsCut != 1 {
		t.Errorf("StreamsCut = %d, want 1", st.StreamsCut)
	}
}

func TestShutdownAndRebind(t *testing.T) {
	n := simnet.New(1)
	a, b := bind(t, n, "a", 1), bind(t, n, "b", 2)

	if _, err := n.Transport("x", a.Addr()); !errors.Is(err, simnet.ErrInUse) {
		t.Errorf("bind a held address: %v, want ErrInUse", err)
	}
	if _, err := n.Transport("a", "10.0.0.9:7946"); !errors.Is(err, simnet.ErrInUse) {
		t.Errorf("bind a held node ID: %v, want ErrInUse", err)
	}

	client, server := dial(t, b, a)           // a stream a accepted
	queued, err := b.DialTimeout(a.Addr(), 0) // one a never accepted
	if err != nil {
		t.Fatal(err)
	}
	defer queued.Close()
	n.Delay("b", "a", time.Hour, 0) // a packet a will never get
	send(t, b, a, []byte("x"))

	var wg sync.WaitGroup
	for range 3 { // idempotent, also concurrently
		wg.Go(func() { _ = a.Shutdown() })
	}
	wg.Wait()
	_ = a.Shutdown()

	for _, end := range []net.Conn{client, server, queued} {
		_ = end.SetReadDeadline(time.Now().Add(time.Second))
		if _, err := end.Read(make([]byte, 1)); err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
			t.Errorf("read on a stream of a shut-down transport: %v, want a closed-connection error", err)
		}
	}

	// A restart: the same ID binds the same address again and works.
	n.Heal()
	a2 := bind(t, n, "a", 1)
	send(t, b, a2, []byte("hello again"))
	if p, ok := recv(t, a2, 10*time.Second); !ok || string(p.Buf) != "hello again" {
		t.Fatal("rebound transport does not receive")
	}
	if _, ok := recv(t, a2, 10*time.Millisecond); ok {
		t.Fatal("rebound transport received a packet addressed to its predecessor")
	}
}

func TestTransportRejectsBadBindings(t *testing.T) {
	n := simnet.New(1)
	for _, tc := range []struct {
		id   ports.NodeID
		addr string
	}{
		{"a", "node-a:7946"}, // memberlist needs an IP
		{"a", "10.0.0.1"},
		{"a", "10.0.0.1:0"},
		{"", "10.0.0.1:7946"},
		{ports.NodeID(bytes.Repeat([]byte("x"), ports.MaxNodeIDLen+1)), "10.0.0.1:7946"},
	} {
		if _, err := n.Transport(tc.id, tc.addr); !errors.Is(err, ports.ErrInvalidConfig) {
			t.Errorf("Transport(%.10q, %q) = %v, want ErrInvalidConfig", tc.id, tc.addr, err)
		}
	}
	// IPv6 works, and v4-in-v6 is the same address as v4.
	v6, err := n.Transport("v6", "[fd00::1]:7946")
	if err != nil {
		t.Fatalf("IPv6 bind: %v", err)
	}
	defer v6.Shutdown()
	if ip, _, _ := v6.FinalAdvertiseAddr("", 0); len(ip) != net.IPv6len {
		t.Errorf("IPv6 advertise address %v has %d bytes", ip, len(ip))
	}
	bind(t, n, "v4", 5)
	if _, err := n.Transport("mapped", "[::ffff:10.0.0.5]:7946"); !errors.Is(err, simnet.ErrInUse) {
		t.Errorf("v4-mapped spelling of a held address: %v, want ErrInUse", err)
	}
}
