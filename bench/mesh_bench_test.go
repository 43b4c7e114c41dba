package bench

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mycorrizal/mycorrizal/adapters/transport/mem"
	"github.com/mycorrizal/mycorrizal/core/mesh"
	"github.com/mycorrizal/mycorrizal/ports"
)

// pair is two meshes on one in-memory network, each hosting "bench".
type pair struct{ a, b *mesh.Mesh }

func newPair(b *testing.B) pair {
	b.Helper()
	net := mem.NewNetwork()
	var ms []*mesh.Mesh
	var members []ports.Member
	for _, id := range []ports.NodeID{"a", "b"} {
		tr, err := mem.New(net, mem.Config{})
		if err != nil {
			b.Fatal(err)
		}
		addr, err := tr.Listen(context.Background(), id)
		if err != nil {
			b.Fatal(err)
		}
		m, err := mesh.New(mesh.Config{Self: id, Transport: tr})
		if err != nil {
			b.Fatal(err)
		}
		if _, err := m.Register("bench"); err != nil {
			b.Fatal(err)
		}
		if err := m.Start(); err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_ = m.Close(ctx)
			_ = tr.Close()
		})
		ms = append(ms, m)
		members = append(members, ports.Member{ID: id, TransportAddr: addr, Apps: []string{"bench"}, State: ports.StateAlive})
	}
	for _, m := range ms {
		m.SetMembers(members)
	}
	return pair{ms[0], ms[1]}
}

var payloadSizes = []int{64, 4096}

func sizeName(n int) string {
	if n >= 1024 {
		return fmt.Sprintf("%dKiB", n/1024)
	}
	return fmt.Sprintf("%dB", n)
}

// reportLatency adds p50 and p99 in microseconds.
func reportLatency(b *testing.B, lat []time.Duration) {
	if len(lat) == 0 {
		return
	}
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Nanoseconds())/1e3, "p50-µs")
	b.ReportMetric(float64(lat[len(lat)*99/100].Nanoseconds())/1e3, "p99-µs")
}

// BenchmarkMemRequest measures sequential request/response round trips
// between two nodes over the in-memory transport.
func BenchmarkMemRequest(b *testing.B) {
	for _, size := range payloadSizes {
		b.Run(sizeName(size), func(b *testing.B) {
			p := newPair(b)
			p.b.App("bench").OnRequest(func(ctx context.Context, from ports.NodeID, pl []byte) ([]byte, error) { return pl, nil })
			app := p.a.App("bench")
			payload := make([]byte, size)
			ctx := context.Background()
			if _, err := app.Request(ctx, "b", payload); err != nil { // open the stream
				b.Fatal(err)
			}
			lat := make([]time.Duration, 0, b.N)
			b.SetBytes(int64(size))
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				start := time.Now()
				if _, err := app.Request(ctx, "b", payload); err != nil {
					b.Fatal(err)
				}
				lat = append(lat, time.Since(start))
			}
			b.StopTimer()
			reportLatency(b, lat)
		})
	}
}

// BenchmarkMemRequestParallel measures request/response throughput with 64
// concurrent callers.
func BenchmarkMemRequestParallel(b *testing.B) {
	for _, size := range payloadSizes {
		b.Run(sizeName(size)+"/callers=64", func(b *testing.B) {
			p := newPair(b)
			p.b.App("bench").OnRequest(func(ctx context.Context, from ports.NodeID, pl []byte) ([]byte, error) { return pl, nil })
			app := p.a.App("bench")
			payload := make([]byte, size)
			if _, err := app.Request(context.Background(), "b", payload); err != nil {
				b.Fatal(err)
			}
			b.SetBytes(int64(size))
			b.ReportAllocs()
			b.SetParallelism(32) // 2 cores x 32 = 64 callers
			start := time.Now()
			b.RunParallel(func(pb *testing.PB) {
				ctx := context.Background()
				for pb.Next() {
					if _, err := app.Request(ctx, "b", payload); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "ops/s")
		})
	}
}

// BenchmarkMemSend measures one-way message throughput: b.N messages sent
// and handled on the other node.
func BenchmarkMemSend(b *testing.B) {
	for _, size := range payloadSizes {
		b.Run(sizeName(size), func(b *testing.B) {
			p := newPair(b)
			var got atomic.Int64
			var done sync.WaitGroup
			done.Add(1)
			target := int64(b.N) + 1
			p.b.App("bench").OnMessage(func(ctx context.Context, from ports.NodeID, pl []byte) {
				if got.Add(1) == target {
					done.Done()
				}
			})
			app := p.a.App("bench")
			payload := make([]byte, size)
			ctx := context.Background()
			if err := app.Send(ctx, payload, "b"); err != nil {
				b.Fatal(err)
			}
			b.SetBytes(int64(size))
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				if err := app.Send(ctx, payload, "b"); err != nil {
					b.Fatal(err)
				}
			}
			done.Wait()
		})
	}
}
