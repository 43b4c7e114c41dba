package placement_test

import (
	"fmt"
	"math"
	"slices"
	"testing"

	"pgregory.net/rapid"

	"github.com/mycorrizal/mycorrizal/core/placement"
	"github.com/mycorrizal/mycorrizal/ports"
)

func ids(n int) []ports.NodeID {
	out := make([]ports.NodeID, n)
	for i := range out {
		out[i] = ports.NodeID(fmt.Sprintf("node-%d", i))
	}
	return out
}

func TestNoJoinCollisions(t *testing.T) {
	if placement.KeyHash("ab", "c") == placement.KeyHash("a", "bc") {
		t.Fatal(`("ab","c") and ("a","bc") hash alike`)
	}
	if placement.KeyHash("", "abc") == placement.KeyHash("abc", "") {
		t.Fatal("namespace and key are not separated")
	}
}

func TestDeterministicAndOrderIndependent(t *testing.T) {
	a := placement.NewView(1, ids(5))
	rev := ids(5)
	slices.Reverse(rev)
	b := placement.NewView(7, append(rev, rev[0]))
	for k := range 1000 {
		kh := placement.KeyHash("bucket", fmt.Sprint(k))
		oa, _ := a.Owner(kh)
		ob, _ := b.Owner(kh)
		if oa != ob {
			t.Fatalf("key %d: %s vs %s", k, oa, ob)
		}
		if got := a.Owners(nil, kh, 1); got[0] != oa {
			t.Fatalf("Owners[0] %s != Owner %s", got[0], oa)
		}
	}
}

func TestBalance(t *testing.T) {
	v := placement.NewView(1, ids(5))
	count := map[ports.NodeID]int{}
	const keys = 100000
	for k := range keys {
		o, _ := v.Owner(placement.KeyHash("b", fmt.Sprint(k)))
		count[o]++
	}
	for id, c := range count {
		if math.Abs(float64(c)-keys/5) > keys/5*0.05 {
			t.Fatalf("%s owns %d of %d keys: unbalanced (%v)", id, c, keys, count)
		}
	}
}

// Rendezvous property: adding a node moves only keys to the new node, and
// removing one moves only its keys.
func TestMinimalMovement(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		n := rapid.IntRange(1, 12).Draw(t, "nodes")
		nodes := ids(n + 1)
		small := placement.NewView(1, nodes[:n])
		big := placement.NewView(2, nodes)
		key := rapid.String().Draw(t, "key")
		kh := placement.KeyHash("ns", key)
		before, _ := small.Owner(kh)
		after, _ := big.Owner(kh)
		if after != before && after != nodes[n] {
			t.Fatalf("key moved from %s to %s, not to the new node", before, after)
		}
		rf := rapid.IntRange(1, 5).Draw(t, "rf")
		ob := small.Owners(nil, kh, rf)
		oa := big.Owners(nil, kh, rf)
		// The new owners are the old ones with at most the new node inserted.
		var filtered []ports.NodeID
		for _, o := range oa {
			if o != nodes[n] {
				filtered = append(filtered, o)
			}
		}
		if !slices.Equal(filtered, ob[:len(filtered)]) {
			t.Fatalf("owners %v became %v", ob, oa)
		}
	})
}

func TestOwnersMatchesSort(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		n := rapid.IntRange(0, 20).Draw(t, "nodes")
		v := placement.NewView(1, ids(n))
		rf := rapid.IntRange(0, 25).Draw(t, "rf")
		kh := rapid.Uint64().Draw(t, "kh")
		got := v.Owners(nil, kh, rf)
		if len(got) != min(rf, n) {
			t.Fatalf("got %d owners, want %d", len(got), min(rf, n))
		}
		// Each owner outranks every non-owner: removing owners one by one
		// from the view, the next Owner is the next in the list.
		rest := slices.Clone(v.Nodes())
		for _, o := range got {
			want, _ := placement.NewView(1, rest).Owner(kh)
			if o != want {
				t.Fatalf("owners %v: expected %s next", got, want)
			}
			rest = slices.DeleteFunc(rest, func(id ports.NodeID) bool { return id == o })
		}
	})
}

func BenchmarkOwner5(b *testing.B) {
	v := placement.NewView(1, ids(5))
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		v.Owner(placement.KeyHash("sessions", "user:12345678"))
	}
}
