package bench

import (
	"context"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// requester is one side of a request/response comparison: it sends
// payload to an echo service and returns the reply.
type requester func(ctx context.Context, payload []byte) ([]byte, error)

// callerCounts are the concurrent caller counts every RPC comparison runs.
var callerCounts = []int{1, 16, 64}

// runCallers performs b.N requests spread over callers goroutines and
// reports p50 and p99 latency (µs) and throughput (ops/s).
func runCallers(b *testing.B, callers int, payload []byte, req requester) {
	b.Helper()
	ctx := context.Background()
	// Warm up: open connections and streams.
	for range 10 * callers {
		if _, err := req(ctx, payload); err != nil {
			b.Fatal(err)
		}
	}
	var next atomic.Int64
	lats := make([][]time.Duration, callers)
	var wg sync.WaitGroup
	var failed atomic.Value
	b.SetBytes(int64(len(payload)))
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	for c := range callers {
		wg.Go(func() {
			local := make([]time.Duration, 0, b.N/callers+1)
			for next.Add(1) <= int64(b.N) {
				t0 := time.Now()
				resp, err := req(ctx, payload)
				if err != nil {
					failed.Store(err)
					return
				}
				if len(resp) != len(payload) {
					failed.Store(errShortReply)
					return
				}
				local = append(local, time.Since(t0))
			}
			lats[c] = local
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	if err, ok := failed.Load().(error); ok {
		b.Fatal(err)
	}
	all := slices.Concat(lats...)
	slices.Sort(all)
	if len(all) > 0 {
		b.ReportMetric(float64(all[len(all)/2].Nanoseconds())/1e3, "p50-µs")
		b.ReportMetric(float64(all[len(all)*99/100].Nanoseconds())/1e3, "p99-µs")
	}
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "ops/s")
}

type benchError string

func (e benchError) Error() string { return string(e) }

const errShortReply = benchError("reply shorter than the request")
