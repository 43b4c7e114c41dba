package testkit_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"

	"github.com/mycorrizal/mycorrizal/core/cache"
	"github.com/mycorrizal/mycorrizal/ports"
	"github.com/mycorrizal/mycorrizal/testkit"
)

// registerInput and registerOutput are one operation on a key, as
// porcupine sees it.
type registerInput struct {
	key   string
	write bool
	value string // written value ("" for a read)
}

type registerOutput struct {
	value string // read value; "" means not found
}

// registerModel is a map of independent registers, partitioned by key.
var registerModel = porcupine.Model{
	Partition: func(history []porcupine.Operation) [][]porcupine.Operation {
		byKey := map[string][]porcupine.Operation{}
		for _, op := range history {
			k := op.Input.(registerInput).key
			byKey[k] = append(byKey[k], op)
		}
		out := make([][]porcupine.Operation, 0, len(byKey))
		for _, ops := range byKey {
			out = append(out, ops)
		}
		return out
	},
	Init: func() any { return "" },
	Step: func(state, input, output any) (bool, any) {
		in := input.(registerInput)
		if in.write {
			return true, in.value
		}
		return output.(registerOutput).value == state.(string), state
	},
	DescribeOperation: func(input, output any) string {
		in := input.(registerInput)
		if in.write {
			return fmt.Sprintf("set %s=%s", in.key, in.value)
		}
		return fmt.Sprintf("get %s -> %q", in.key, output.(registerOutput).value)
	},
}

// TestQuorumReadsAndWritesAreLinearizable runs concurrent Sets and Gets on
// a few keys from every node of a 3-node cluster, with RF=3, W=2, R=2 (so
// R+W > RF) and no failures, and checks the history with porcupine against
// a register per key.
func TestQuorumReadsAndWritesAreLinearizable(t *testing.T) {
	c := testkit.NewCluster(t, 3)
	createEverywhere(t, c, 0, "lin", cache.BucketOptions{Replicas: 3, WriteQuorum: 2, ReadQuorum: 2})
	const (
		clients   = 9
		opsEach   = 60
		keyCount  = 3
		writeProb = 0.4
	)
	start := time.Now()
	var (
		mu      sync.Mutex
		history []porcupine.Operation
		wg      sync.WaitGroup
	)
	for cl := range clients {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(cl), 99))
			node := c.Node(cl % 3).Cache()
			for i := range opsEach {
				k := fmt.Sprintf("reg-%d", rng.IntN(keyCount))
				in := registerInput{key: k}
				if rng.Float64() < writeProb {
					in.write, in.value = true, fmt.Sprintf("c%d-%d", cl, i)
				}
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				call := time.Since(start).Nanoseconds()
				var out registerOutput
				var err error
				if in.write {
					err = node.Set(ctx, "lin", k, []byte(in.value), 0)
				} else {
					var v []byte
					v, err = node.Get(ctx, "lin", k)
					if errors.Is(err, ports.ErrNotFound) {
						err = nil
					}
					out.value = string(v)
				}
				ret := time.Since(start).Nanoseconds()
				cancel()
				if err != nil {
					t.Errorf("client %d: %v", cl, err)
					return
				}
				mu.Lock()
				history = append(history, porcupine.Operation{ClientId: cl, Input: in, Call: call, Output: out, Return: ret})
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	res := porcupine.CheckOperationsTimeout(registerModel, history, time.Minute)
	if res != porcupine.Ok {
		t.Fatalf("history of %d operations is not linearizable (%v)", len(history), res)
	}
	t.Logf("%d operations on %d keys from %d clients: linearizable", len(history), keyCount, clients)
}
