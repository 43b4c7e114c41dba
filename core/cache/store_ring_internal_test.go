package cache

import "testing"

// A ring hands the consumer every published record once, in order, across
// the wrap of the 16-bit position marks, and never an unpublished or
// never-written one.
func TestRingOrderAndMarks(t *testing.T) {
	r := new(ring)
	var got []int32
	apply := func(seq uint16, slot int32) {
		if seq != uint16(slot*2) {
			t.Fatalf("record for slot %d carries seq %d", slot, seq)
		}
		got = append(got, slot)
	}
	r.drain(apply) // an empty ring, never written
	if len(got) != 0 {
		t.Fatalf("drained %d records from an empty ring", len(got))
	}
	next := int32(1)
	for round := 0; round < 10000; round++ { // 10000*8.5 positions: past 65536
		n := 1 + round%ringSize
		for k := range n {
			res := r.add(uint32(next*2), next)
			if want := k == ringSize-1; (res == ringAddedFull) != want || (res != ringAdded && res != ringAddedFull) {
				t.Fatalf("round %d: add %d of %d returned %d", round, k+1, n, res)
			}
			next++
		}
		if n == ringSize && r.add(1, 1) != ringFull {
			t.Fatalf("round %d: a full ring took another record", round)
		}
		before := len(got)
		r.drain(apply)
		if len(got)-before != n {
			t.Fatalf("round %d: drained %d records, want %d", round, len(got)-before, n)
		}
	}
	if r.tail.Load() < 1<<16 {
		t.Fatalf("only %d positions used; the test must pass the 16-bit wrap", r.tail.Load())
	}
	for i, slot := range got {
		if slot != int32(i+1) {
			t.Fatalf("record %d is for slot %d: out of order or lost", i, slot)
		}
	}
}

// A claimed but unpublished record stops the drain until it is published.
func TestRingUnpublishedStopsDrain(t *testing.T) {
	r := new(ring)
	r.add(2, 1)
	r.tail.Add(1) // a producer claimed position 1 and has not written yet
	var got []int32
	r.drain(func(_ uint16, slot int32) { got = append(got, slot) })
	if len(got) != 1 || r.head.Load() != 1 {
		t.Fatalf("drained %v, head %d; want slot 1 only and head 1", got, r.head.Load())
	}
	r.recs[1].Store(packRecord(1, 4, 2))
	r.drain(func(_ uint16, slot int32) { got = append(got, slot) })
	if len(got) != 2 || got[1] != 2 {
		t.Fatalf("after publication drained %v", got)
	}
}

// A slot never written (all zero) does not pass for the record of the
// ring's first position.
func TestRingZeroSlotIsNotARecord(t *testing.T) {
	r := new(ring)
	r.tail.Add(1) // position 0 claimed, not yet written
	r.drain(func(_ uint16, slot int32) { t.Fatalf("drained a record for slot %d that was never written", slot) })
	if r.head.Load() != 0 {
		t.Fatalf("head moved to %d past an unwritten record", r.head.Load())
	}
}
