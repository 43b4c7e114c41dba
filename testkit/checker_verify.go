package testkit

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/anishathalye/porcupine"

	"github.com/mycorrizal/mycorrizal/ports"
)

// Check checks the recorded history and the settled cluster; call it after
// Stop, once the faults are undone and the cluster has settled
// (Nemesis.Settle). Every invariant is checked in turn:
//
//   - during the schedule, no read returned a value nobody wrote, and no Get
//     missed a key known present where docs/CONSISTENCY.md says it cannot
//     (misses it does not promise against are counted in Excused);
//   - after settling, every key reads back through every running node as
//     its last acknowledged write left it, or as a later write whose outcome
//     is unknown left it, a deleted key staying deleted;
//   - every key's owners hold its latest version, and no other node holds
//     anything of it;
//   - the histories of buckets with R+W>RF are linearizable (porcupine,
//     a register per key).
//
// Losses the documentation allows (see Observe) are counted in Excused, not
// reported.
//
// faults are the faults applied (Nemesis.Events): they classify misses and
// are shown around each violation. nil means those Observe saw.
func (ch *Checker) Check(ctx context.Context, faults []FaultEvent) *Report {
	ch.mu.Lock()
	defer ch.mu.Unlock()
	if faults != nil {
		ch.faults = slices.Clone(faults)
	}
	start := time.Now()
	r := &Report{Ops: map[string]int{}, Keys: len(ch.order), Faults: slices.Clone(ch.faults)}
	for _, bk := range ch.order {
		h := ch.keys[bk]
		for _, o := range slices.Concat(h.writes, h.reads) {
			name := o.kind.String()
			if o.kind == OpGetOrLoad && o.loaded {
				name += " loaded"
			}
			r.Ops[name+" "+o.outcome.String()]++
		}
	}
	ch.checkReads(r)
	ch.cfg.Logf("checker: history of %d keys checked; reading every key through every node", len(ch.order))
	ch.checkFinal(ctx, r)
	ch.checkCopies(ctx, r)
	ch.checkLinearizable(r)
	ch.cfg.Logf("checker: checks took %v", time.Since(start).Round(time.Millisecond))
	return r
}

// faultsSince lists the faults from t on (at most 10, then a count).
func (ch *Checker) faultsSince(t time.Duration) string {
	var parts []string
	for _, f := range ch.faults {
		if at := f.At.Sub(ch.epoch); at >= t && f.Step >= 0 {
			parts = append(parts, fmt.Sprintf("+%.1fs %v", at.Seconds(), f.Fault))
		}
	}
	if len(parts) > 10 {
		parts = append(parts[:10], fmt.Sprintf("and %d more", len(parts)-10))
	}
	return strings.Join(parts, "; ")
}

// during lists the node faults (crash, stop, restart, join) in progress
// while o ran, as " during stop node 2", or "".
func (ch *Checker) during(o *op) string {
	var parts []string
	for _, f := range ch.faults {
		switch f.Kind {
		case FaultCrash, FaultStop, FaultRestart, FaultJoin:
		default:
			continue
		}
		from := f.At.Sub(ch.epoch)
		if from <= o.end && from+f.Took >= o.start {
			parts = append(parts, f.Fault.String())
		}
	}
	if len(parts) == 0 {
		return ""
	}
	return " during " + strings.Join(parts, ", ")
}

// around lists the faults from 6 s before to 1 s after t.
func (ch *Checker) around(t time.Duration) string {
	var parts []string
	for _, f := range ch.faults {
		at := f.At.Sub(ch.epoch)
		if at >= t-6*time.Second && at <= t+time.Second {
			parts = append(parts, fmt.Sprintf("+%.1fs %v", at.Seconds(), f.Fault))
		}
	}
	return strings.Join(parts, "; ")
}

// unpromised reports whether a miss in [from, to] of a key of a bucket with
// the given RF falls where the documentation makes no promise: a partition
// (and Recovery after its heal), a crash taken while writes were pending or
// replicas unsynced (until Recovery after the node is back), and, for RF=1,
// packet loss (a node wrongly declared dead hands its keys' ownership to a
// node without them).
func (ch *Checker) unpromised(from, to time.Duration, rf int) bool {
	for k, f := range ch.faults {
		var until time.Duration = 1<<62 - 1
		switch {
		case f.Kind == FaultPartition, f.Kind == FaultDrop && rf == 1:
			for _, g := range ch.faults[k+1:] {
				if g.Kind == FaultHeal {
					until = g.At.Sub(ch.epoch) + ch.cfg.Recovery
					break
				}
			}
		case f.Kind == FaultCrash && !f.Replicated:
			for _, g := range ch.faults[k+1:] {
				if (g.Kind == FaultRestart || g.Kind == FaultJoin) && g.Node == f.Node {
					until = g.At.Sub(ch.epoch) + g.Took + ch.cfg.Recovery
					break
				}
			}
		default:
			continue
		}
		if at := f.At.Sub(ch.epoch); at <= to && until >= from {
			return true
		}
	}
	return false
}

// checkReads checks every read made during the schedule.
func (ch *Checker) checkReads(r *Report) {
	for _, bk := range ch.order {
		h := ch.keys[bk]
		rf, _ := quorums(h.spec.Options, ch.c.Len())
		for _, rd := range slices.Concat(h.reads, h.writes) {
			miss := rd.kind == OpGetOrLoad && rd.loaded // its loader ran: the key read as missing
			if !miss && (rd.kind != OpGet && rd.kind != OpGetOrLoad || rd.outcome == OutcomeFailed) {
				continue
			}
			// Writes started before the read ended may be visible to it
			// (a loading GetOrLoad's read comes before its own write).
			k := 0
			for k < len(h.writes) && h.writes[k].start <= rd.end && h.writes[k] != rd {
				k++
			}
			got := keyState{absent: miss || rd.outcome == OutcomeNotFound}
			if !got.absent {
				got.value = rd.value
			}
			if !got.absent && !writtenBy(h.writes, k)[rd.value] {
				r.Add(Violation{Kind: ViolationPhantom, Bucket: bk.bucket, Key: bk.key, Node: rd.node, At: rd.start,
					Expected: "a value written before the read ended", Observed: fmt.Sprintf("%q", rd.value), Faults: ch.around(rd.start)})
				continue
			}
			// Only a read with no write in flight, at least MissGrace
			// after the last write was acknowledged, is judged further.
			if k == 0 || h.writes[k-1].end > rd.start-ch.cfg.MissGrace || !h.writes[k-1].acked() {
				continue
			}
			want := possibleStates(h.writes, k)
			if want[got] {
				continue
			}
			if crash, ok := h.exposed(k, rd.start); ok && h.lossStates(k, crash)[got] {
				if got.absent {
					r.excuse(ExcusedCrashMiss)
				} else {
					r.excuse(ExcusedStale)
				}
				continue
			}
			outside := ch.unpromised(rd.start, rd.end, rf)
			kind := ViolationFalseMiss
			switch {
			case got.absent && outside:
				r.excuse(ExcusedMiss)
				continue
			case !got.absent && (!linearizable(h.spec, ch.c.Len()) || outside):
				r.excuse(ExcusedStale)
				continue
			case !got.absent:
				kind = ViolationStale
			}
			w := h.writes[k-1]
			obs := got.String()
			if miss {
				obs += ": GetOrLoad ran its loader"
			}
			r.Add(Violation{Kind: kind, Bucket: bk.bucket, Key: bk.key, Node: rd.node, At: rd.start,
				Expected: want.String(), Observed: fmt.Sprintf("%s (last write: %v through node %d, acknowledged at +%.2fs%s)", obs, w.kind, w.node, w.end.Seconds(), ch.during(w)),
				Faults: ch.around(rd.start)})
		}
	}
}

// linearizable reports whether a bucket has R+W>RF: docs/CONSISTENCY.md's
// condition for read-your-writes and linearizability.
func linearizable(spec BucketSpec, n int) bool {
	rf, w := quorums(spec.Options, n)
	return max(1, min(spec.Options.ReadQuorum, rf))+w > rf
}

// checkFinal reads every key through every running node.
func (ch *Checker) checkFinal(ctx context.Context, r *Report) {
	type result struct {
		node  int
		bk    bucketKey
		state keyState
		err   error
	}
	var (
		mu      sync.Mutex
		results []result
		wg      sync.WaitGroup
	)
	for i := range ch.c.Len() {
		if !ch.c.Running(i) {
			continue
		}
		node := ch.c.Node(i)
		wg.Go(func() {
			var local []result
			for _, bk := range ch.order {
				rctx, cancel := context.WithTimeout(ctx, ch.cfg.OpTimeout)
				v, err := node.Cache().Get(rctx, bk.bucket, bk.key)
				cancel()
				res := result{node: i, bk: bk, state: keyState{value: string(v)}}
				switch {
				case errors.Is(err, ports.ErrNotFound):
					res.state = keyState{absent: true}
				case err != nil:
					res.err = err
				}
				local = append(local, res)
			}
			mu.Lock()
			results = append(results, local...)
			mu.Unlock()
		})
	}
	wg.Wait()
	at := ch.since()
	byKey := map[bucketKey][]result{}
	for _, res := range results {
		byKey[res.bk] = append(byKey[res.bk], res)
	}
	for _, bk := range ch.order {
		h := ch.keys[bk]
		n := len(h.writes)
		if n == 0 {
			continue // only read, never written
		}
		want := possibleStates(h.writes, n)
		crash, exposed := h.exposed(n, at)
		var bad []string
		kind, excused := "", false
		for _, res := range byKey[bk] {
			switch {
			case res.err != nil:
				kind = ViolationReadError
				bad = append(bad, fmt.Sprintf("node %d: %v", res.node, res.err))
			case want[res.state]:
			case exposed && h.lossStates(n, crash)[res.state]:
				excused = true
			default:
				if kind == "" {
					kind = ViolationWrongValue
					if res.state.absent {
						kind = ViolationLost
					}
				}
				bad = append(bad, fmt.Sprintf("node %d: %v", res.node, res.state))
			}
		}
		if excused && len(bad) == 0 {
			r.excuse(ExcusedLoss)
		}
		if len(bad) == 0 {
			continue
		}
		j := lastAcked(h.writes, n)
		desc := "no acknowledged write"
		if j >= 0 {
			w := h.writes[j]
			desc = fmt.Sprintf("%v through node %d acknowledged at +%.2fs%s", w.kind, w.node, w.end.Seconds(), ch.during(w))
		}
		expected := want.String()
		if len(want) == 0 {
			expected = "nothing: a SetTTL succeeded where no value can be live"
		}
		r.Add(Violation{Kind: kind, Bucket: bk.bucket, Key: bk.key, Node: -1, At: at,
			Expected: fmt.Sprintf("%v (last: %s)", expected, desc), Observed: fmt.Sprintf("%d of %d nodes read %s", len(bad), len(byKey[bk]), strings.Join(bad, ", ")),
			Faults: ch.faultsSince(h.writes[n-1].start - time.Second), History: describe(h)})
	}
}

// copyProblem is what is wrong with one key's copies, or "".
func (ch *Checker) copyProblem(bk bucketKey) (kind, desc string) {
	var ownersSeen []ports.NodeID
	var latest uint64
	type rec struct {
		version uint64
		tomb    bool
		found   bool
	}
	recs := map[ports.NodeID]rec{}
	for i := range ch.c.Len() {
		if !ch.c.Running(i) {
			continue
		}
		cc := ch.c.Node(i).Cache()
		owners := cc.Replicas(bk.bucket, bk.key)
		if ownersSeen == nil {
			ownersSeen = owners
		} else if !slices.Equal(owners, ownersSeen) {
			return ViolationViews, fmt.Sprintf("node %d: %v, another: %v", i, owners, ownersSeen)
		}
		v, _, tomb, found := cc.LocalRecord(bk.bucket, bk.key)
		recs[ch.c.ID(i)] = rec{v, tomb, found}
		if found {
			latest = max(latest, v)
		}
	}
	if latest == 0 {
		return "", "" // nothing anywhere: never written successfully
	}
	for _, o := range ownersSeen {
		if rc := recs[o]; !rc.found || rc.version != latest {
			return ViolationCopies, fmt.Sprintf("owner %s holds version %d (found %v), latest %d; owners %v", o, rc.version, rc.found, latest, ownersSeen)
		}
	}
	for id, rc := range recs {
		if rc.found && !slices.Contains(ownersSeen, id) {
			what := "value"
			if rc.tomb {
				what = "tombstone"
			}
			return ViolationForeign, fmt.Sprintf("%s holds a %s at version %d; owners %v", id, what, rc.version, ownersSeen)
		}
	}
	return "", ""
}

// checkCopies checks that each key's owners hold its latest version and no
// other node holds it, allowing up to 5 s for copies to be dropped.
func (ch *Checker) checkCopies(ctx context.Context, r *Report) {
	var problems []bucketKey
	for _, bk := range ch.order {
		if kind, _ := ch.copyProblem(bk); kind != "" {
			problems = append(problems, bk)
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for len(problems) > 0 && time.Now().Before(deadline) && ctx.Err() == nil {
		time.Sleep(200 * time.Millisecond)
		problems = slices.DeleteFunc(problems, func(bk bucketKey) bool {
			kind, _ := ch.copyProblem(bk)
			return kind == ""
		})
	}
	at := ch.since()
	for _, bk := range problems {
		kind, desc := ch.copyProblem(bk)
		if kind == "" {
			continue
		}
		h := ch.keys[bk]
		if _, ok := h.exposed(len(h.writes), at); ok && kind == ViolationCopies {
			r.excuse(ExcusedLoss)
			continue
		}
		rf, _ := quorums(h.spec.Options, ch.c.Len())
		var last time.Duration
		if n := len(h.writes); n > 0 {
			last = h.writes[n-1].start
		}
		r.Add(Violation{Kind: kind, Bucket: bk.bucket, Key: bk.key, Node: -1, At: at,
			Expected: fmt.Sprintf("%d copies at the latest version, on the owners only", rf), Observed: desc, Faults: ch.faultsSince(last - time.Second)})
	}
}

// regInput is one operation on a key as porcupine sees it.
type regInput struct {
	kind  OpKind
	value string // Set's value, GetOrLoad's loaded value
	// unknown: a write whose outcome is unknown (it may not have applied).
	unknown bool
}

// registerModel is one key's register: its state a keyState.
var registerModel = porcupine.NondeterministicModel{
	Init: func() []any { return []any{keyState{absent: true}} },
	Step: func(state, input, output any) []any {
		st, in := state.(keyState), input.(regInput)
		var next keyState
		switch in.kind {
		case OpGet:
			if output.(keyState) == st {
				return []any{st}
			}
			return nil
		case OpSetTTL:
			if !st.absent {
				return []any{st}
			}
			return nil
		case OpSet:
			next = keyState{value: in.value}
		case OpDelete:
			next = keyState{absent: true}
		}
		if in.unknown {
			return []any{st, next}
		}
		return []any{next}
	},
}

// checkLinearizable runs porcupine on each key of the buckets with R+W>RF
// (RF=1 included). Reads made where the documentation promises nothing
// (see unpromised: during a partition the minority serves stale reads) are
// left out. A key whose history is still not linearizable is a violation
// unless the documentation allows it: a crash that may have lost its write
// (see Observe), or clock offsets large enough to reorder two of its
// writes (last write wins by clock). Those are counted in Excused and the
// first few listed in Notes.
func (ch *Checker) checkLinearizable(r *Report) {
	model := registerModel.ToModel()
	never := int64(0)
	for _, h := range ch.keys {
		for _, o := range slices.Concat(h.writes, h.reads) {
			never = max(never, int64(o.end))
		}
	}
	never += int64(time.Hour)
	timeouts, excusedShown, dropped := 0, 0, 0
	for _, bk := range ch.order {
		h := ch.keys[bk]
		rf, w := quorums(h.spec.Options, ch.c.Len())
		rq := max(1, min(h.spec.Options.ReadQuorum, rf))
		if rq+w <= rf || len(h.writes) == 0 {
			continue
		}
		var hist []porcupine.Operation
		skew := time.Duration(0)
		for _, o := range slices.Concat(h.writes, h.reads) {
			skew = max(skew, o.maxOffset, -o.minOffset)
			in := regInput{kind: o.kind, value: o.value, unknown: o.outcome == OutcomeFailed}
			var out any
			ret := int64(o.end)
			switch {
			case o.kind == OpGet, o.kind == OpGetOrLoad && !o.loaded:
				if o.outcome == OutcomeFailed {
					continue
				}
				if ch.unpromised(o.start, o.end, rf) {
					dropped++
					continue
				}
				in.kind = OpGet
				out = keyState{absent: o.outcome == OutcomeNotFound, value: o.value}
			case o.kind == OpSetTTL:
				// A failed SetTTL changes no value; one that found no copy
				// touched none, and the documentation allows it to find
				// none during a move.
				if o.outcome != OutcomeOK {
					continue
				}
				if ch.unpromised(o.start, o.end, rf) {
					dropped++
					continue
				}
			case o.kind == OpGetOrLoad:
				// Its loader ran: the key read as missing (unless that was
				// where nothing is promised), then the owner stored the
				// value, maybe (the caller is not told), maybe after the
				// call returned.
				if !ch.unpromised(o.start, o.end, rf) {
					hist = append(hist, porcupine.Operation{ClientId: o.client, Input: regInput{kind: OpGet}, Call: int64(o.start), Output: keyState{absent: true}, Return: int64(o.end)})
				}
				in = regInput{kind: OpSet, value: o.value, unknown: true}
				ret = never
			default:
				if in.unknown {
					ret = never
				}
			}
			hist = append(hist, porcupine.Operation{ClientId: o.client, Input: in, Call: int64(o.start), Output: out, Return: ret})
		}
		switch porcupine.CheckOperationsTimeout(model, hist, 2*time.Second) {
		case porcupine.Illegal:
			obs := fmt.Sprintf("a history of %d operations that is not", len(hist))
			if skew > 0 {
				obs += fmt.Sprintf(" (clock offsets up to %v were in force)", skew)
			}
			if why := ch.linExcuse(h); why != "" {
				r.excuse(ExcusedNonLinearizable)
				if excusedShown++; excusedShown <= 3 {
					r.Notes = append(r.Notes, fmt.Sprintf("not linearizable, allowed (%s): bucket %s key %s: %s", why, bk.bucket, bk.key, describe(h)))
				}
				continue
			}
			r.Add(Violation{Kind: ViolationLinearizability, Bucket: bk.bucket, Key: bk.key, Node: -1, At: h.writes[0].start,
				Expected: "a linearizable history", Observed: obs, History: describe(h), Faults: ch.faultsSince(h.writes[0].start - time.Second)})
		case porcupine.Unknown:
			timeouts++
		}
	}
	if timeouts > 0 {
		r.Notes = append(r.Notes, fmt.Sprintf("linearizability check timed out on %d keys", timeouts))
	}
	if dropped > 0 {
		r.Notes = append(r.Notes, fmt.Sprintf("linearizability: %d reads left out of the histories, made where the documentation promises nothing (a partition and %v after its heal, a crash with writes pending, packet loss for RF=1)", dropped, ch.cfg.Recovery))
	}
}

// linExcuse says why the documentation allows h not to be linearizable, or
// "".
func (ch *Checker) linExcuse(h *keyHistory) string {
	if len(h.exposures) > 0 {
		return "a crash may have lost its latest write"
	}
	for j, a := range h.writes {
		for _, b := range h.writes[j+1:] {
			if b.acked() && mayOutrank(a, b) {
				return "clock offsets can reorder its writes"
			}
		}
	}
	return ""
}

// describe lists a key's operations in time order, for a report.
func describe(h *keyHistory) string {
	ops := slices.Concat(h.writes, h.reads)
	slices.SortFunc(ops, func(a, b *op) int { return int(a.start - b.start) })
	var parts []string
	for _, o := range ops {
		s := fmt.Sprintf("[%.2f-%.2f n%d] %v", o.start.Seconds(), o.end.Seconds(), o.node, o.kind)
		switch {
		case o.kind == OpSet, o.loaded:
			s += " " + o.value
		case o.kind == OpGet || o.kind == OpGetOrLoad:
			if o.outcome == OutcomeOK {
				s += " -> " + o.value
			}
		}
		parts = append(parts, s+" "+o.outcome.String())
	}
	return strings.Join(parts, ", ")
}
