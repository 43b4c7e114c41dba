package cache_test

import (
	"context"
	"errors"
	"testing"

	"github.com/mycorrizal/mycorrizal/core/cache"
	"github.com/mycorrizal/mycorrizal/core/mesh"
	"github.com/mycorrizal/mycorrizal/ports"
)

// The bucket table is fed by definitions from peers, so it is bounded.
func TestBucketTableBounded(t *testing.T) {
	m, err := mesh.New(mesh.Config{Self: "solo"}) // single mode: no transport
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = m.Close(context.Background()) })
	c, err := cache.New(cache.Config{Mesh: m, MaxBuckets: 2})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	ctx := context.Background()
	for _, name := range []string{"a", "b"} {
		if err := c.CreateBucket(ctx, name, cache.BucketOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.CreateBucket(ctx, "c", cache.BucketOptions{}); !errors.Is(err, ports.ErrInvalidConfig) {
		t.Fatalf("third bucket over a limit of 2: %v", err)
	}
	if err := c.CreateBucket(ctx, "a", cache.BucketOptions{}); err != nil {
		t.Fatalf("re-creating an existing bucket at the limit: %v", err)
	}
	if got := c.Buckets(); len(got) != 2 || got[0] != "a" || got[1] != "b" {
		t.Fatalf("buckets %v", got)
	}
}
