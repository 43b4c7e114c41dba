package quic_test

import (
	"context"
	"crypto/tls"
	"io"
	"log/slog"
	"testing"
	"time"

	quicgo "github.com/quic-go/quic-go"

	"github.com/mycorrizal/mycorrizal/adapters/transport/quic"
)

// BenchmarkRoundTrip64: sequential 64-byte write, echo, read on one stream
// over loopback. allocs/op counts every goroutine of both transports
// (quic-go's packet handling included), not only the caller's.
func BenchmarkRoundTrip64(b *testing.B) {
	ca := newCA(b, "ca")
	quiet := quic.Config{Logger: slog.New(slog.DiscardHandler)}
	x, y := caNode(b, ca, "x", quiet), caNode(b, ca, "y", quiet)
	sx, sy := connect(b, x, y)
	_ = sx.SetDeadline(time.Time{})
	_ = sy.SetDeadline(time.Time{})
	echoed := make(chan error, 1)
	go func() {
		buf := make([]byte, 64)
		for {
			if _, err := io.ReadFull(sy, buf); err != nil {
				echoed <- nil
				return
			}
			if _, err := sy.Write(buf); err != nil {
				echoed <- err
				return
			}
		}
	}()
	msg := make([]byte, 64)
	reply := make([]byte, 64)
	b.SetBytes(64)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if _, err := sx.Write(msg); err != nil {
			b.Fatal(err)
		}
		if _, err := io.ReadFull(sx, reply); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	_ = sx.CloseWrite()
	if err := <-echoed; err != nil {
		b.Fatal(err)
	}
}

// BenchmarkRawQUICRoundTrip64 is the baseline of BenchmarkRoundTrip64:
// the same exchange on a bare quic-go stream, without this package.
func BenchmarkRawQUICRoundTrip64(b *testing.B) {
	ca := newCA(b, "ca")
	srvCert, cliCert := ca.leaf(b, "y"), ca.leaf(b, "x")
	ln, err := quicgo.ListenAddr("127.0.0.1:0", &tls.Config{
		Certificates: []tls.Certificate{*srvCert}, NextProtos: []string{quic.ALPN},
		ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: ca.pool,
	}, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	ctx := context.Background()
	cc, err := quicgo.DialAddr(ctx, ln.Addr().String(), &tls.Config{
		Certificates: []tls.Certificate{*cliCert}, NextProtos: []string{quic.ALPN},
		RootCAs: ca.pool, ServerName: "y", InsecureSkipVerify: true,
	}, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer cc.CloseWithError(0, "")
	sc, err := ln.Accept(ctx)
	if err != nil {
		b.Fatal(err)
	}
	defer sc.CloseWithError(0, "")
	sx, err := cc.OpenStreamSync(ctx)
	if err != nil {
		b.Fatal(err)
	}
	echoed := make(chan struct{})
	go func() {
		defer close(echoed)
		sy, err := sc.AcceptStream(ctx)
		if err != nil {
			return
		}
		buf := make([]byte, 64)
		for {
			if _, err := io.ReadFull(sy, buf); err != nil {
				return
			}
			if _, err := sy.Write(buf); err != nil {
				return
			}
		}
	}()
	msg, reply := make([]byte, 64), make([]byte, 64)
	b.SetBytes(64)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if _, err := sx.Write(msg); err != nil {
			b.Fatal(err)
		}
		if _, err := io.ReadFull(sx, reply); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	_ = sx.Close()
	<-echoed
}
