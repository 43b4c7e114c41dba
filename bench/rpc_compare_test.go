package bench

import (
	"fmt"
	"testing"
)

// BenchmarkRPC compares request/response round trips between two nodes:
// Mycorrizal over QUIC with mutual TLS (a direct link), and an embedded
// NATS server doing request-reply (a broker hop), both on loopback, in the
// same run, with the same payloads and caller counts.
func BenchmarkRPC(b *testing.B) {
	systems := []struct {
		name  string
		start func(*testing.B) requester
	}{
		{"mycorrizal", startMycorrizalPair},
		{"nats", startNATS},
	}
	for _, size := range payloadSizes {
		for _, callers := range callerCounts {
			for _, sys := range systems {
				b.Run(fmt.Sprintf("size=%s/callers=%d/sys=%s", sizeName(size), callers, sys.name), func(b *testing.B) {
					req := sys.start(b)
					runCallers(b, callers, make([]byte, size), req)
				})
			}
		}
	}
}
