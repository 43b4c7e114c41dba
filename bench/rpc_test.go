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

// operation performs one request of a comparison. i is the request's
// sequence number, unique across callers and counting from 0 (warm-up
// requests included), so an operation can pick its key from it and
// concurrent callers spread over the keys.
type operation func(ctx context.Context, i int) error

// callerCounts are the concurrent caller counts every RPC comparison runs.
var callerCounts = []int{1, 16, 64}

// runCallers performs b.N echo requests of payload spread over callers
// goroutines and reports p50 and p99 latency (µs) and throughput (ops/s).
func runCallers(b *testing.B, callers int, payload []byte, req requester) {
	b.Helper()
	b.SetBytes(int64(len(payload)))
	runOps(b, callers, func(ctx context.Context, _ int) error {
		resp, err := req(ctx, payload)
		if err != nil {
			return err
		}
		if len(resp) != len(payload) {
			return errShortReply
		}
		return nil
	})
}

// runOps performs b.N operations spread over callers goroutines and
// reports p50 and p99 latency (µs) and throughput (ops/s). Before the
// timer starts, each caller performs 10 operations concurrently, so
// connections and streams (one per caller in a pool) are open.
func runOps(b *testing.B, callers int, op operation) {
	b.Helper()
	ctx := context.Background()
	var (
		seq    atomic.Int64 // the next operation's sequence number
		failed atomic.Value
		wg     sync.WaitGroup
	)
	for range callers {
		wg.Go(func() {
			for range 10 {
				if err := op(ctx, int(seq.Add(1)-1)); err != nil {
					failed.Store(err)
					return
				}
			}
		})
	}
	wg.Wait()
	if err, ok := failed.Load().(error); ok {
		b.Fatal(err)
	}
	warm := seq.Load()
	lats := make([][]time.Duration, callers)
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	for c := range callers {
		wg.Go(func() {
			local := make([]time.Duration, 0, b.N/callers+1)
			for {
				i := seq.Add(1) - 1
				if i-warm >= int64(b.N) {
					break
				}
				t0 := time.Now()
				if err := op(ctx, int(i)); err != nil {
					failed.Store(err)
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
	reportLatency(b, slices.Concat(lats...))
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "ops/s")
}

type benchError string

func (e benchError) Error() string { return string(e) }

const errShortReply = benchError("reply shorter than the request")
