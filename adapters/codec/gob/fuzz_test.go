package gob_test

import (
	"errors"
	"math/big"
	"testing"

	"github.com/mycorrizal/mycorrizal/adapters/codec/gob"
	"github.com/mycorrizal/mycorrizal/ports"
)

// FuzzUnmarshal shows that Unmarshal never panics (the fuzzer reports a
// panic as a failure), never runs away with memory, and fails only with
// ErrMalformed, whatever the bytes and whatever the destination.
func FuzzUnmarshal(f *testing.F) {
	c := gob.New()
	for _, v := range []any{
		42, "s", []byte{1, 2}, 3.5, true,
		map[string]int{"a": 1}, map[string][]int{"a": {1, 2}},
		[]Leaf{{1}, {2}}, sampleRec(), sampleEnv(), big.NewInt(-5), chain(3),
	} {
		data, err := c.Marshal(v)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
		f.Add(data[:len(data)/2])
	}
	f.Add(mapBomb(f, 1<<28))
	f.Add([]byte{})

	targets := []func() any{
		func() any { return new(int) },
		func() any { return new(string) },
		func() any { return new([]byte) },
		func() any { return new(map[string]int) },
		func() any { return new(map[string][]int) },
		func() any { return new([]Leaf) },
		func() any { return new(Rec) },
		func() any { return new(Env) },
		func() any { return new(any) },
		func() any { return new(*big.Int) },
		func() any { return new(Node) },
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, target := range targets {
			v := target()
			if err := c.Unmarshal(data, v); err != nil && !errors.Is(err, ports.ErrMalformed) {
				t.Fatalf("Unmarshal into %T: %v, want nil or ErrMalformed", v, err)
			}
		}
	})
}
