package memberlist

import (
	"sync"

	"github.com/mycorrizal/mycorrizal/ports"
)

// eventQueue delivers member events to the consumer of Events without ever
// blocking the producer (memberlist's EventDelegate, called with
// memberlist's node lock held).
//
// It keeps at most one pending event per member plus the order in which
// members first became pending, so its size is bounded by the number of
// members and, when the consumer falls behind, consecutive events for one
// member collapse into the latest. One pump goroutine, started by start and
// stopped by close, moves events to the unbuffered out channel; it owns
// that channel and closes it when it exits.
type eventQueue struct {
	out chan ports.MemberEvent

	mu      sync.Mutex
	pending map[ports.NodeID]ports.MemberEvent
	order   []ports.NodeID // IDs with a pending event, oldest first
	started bool
	closed  bool

	wake chan struct{} // capacity 1: "pending is not empty"
	stop chan struct{}
	done chan struct{}
}

func newEventQueue() *eventQueue {
	return &eventQueue{
		out:     make(chan ports.MemberEvent),
		pending: make(map[ports.NodeID]ports.MemberEvent),
		wake:    make(chan struct{}, 1),
		stop:    make(chan struct{}),
		done:    make(chan struct{}),
	}
}

// push queues ev, replacing a pending event for the same member. It never
// blocks and is a no-op once the queue is closed.
func (q *eventQueue) push(ev ports.MemberEvent) {
	q.mu.Lock()
	if q.closed {
		q.mu.Unlock()
		return
	}
	id := ev.Member.ID
	if old, ok := q.pending[id]; ok {
		ev = coalesce(old, ev)
	} else {
		q.order = append(q.order, id)
	}
	q.pending[id] = ev
	q.mu.Unlock()

	select {
	case q.wake <- struct{}{}:
	default:
	}
}

// coalesce merges a pending event with a newer one for the same member: the
// newer wins, except that a join followed by updates stays a join (with the
// latest data), since the consumer has not seen the member yet.
func coalesce(old, next ports.MemberEvent) ports.MemberEvent {
	if old.Type == ports.MemberJoined && next.Type == ports.MemberUpdated {
		next.Type = ports.MemberJoined
	}
	return next
}

// pop removes and returns the oldest pending event.
func (q *eventQueue) pop() (ports.MemberEvent, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(q.order) == 0 {
		return ports.MemberEvent{}, false
	}
	id := q.order[0]
	q.order[0] = ""
	q.order = q.order[1:]
	if len(q.order) == 0 {
		q.order = nil
	}
	ev := q.pending[id]
	delete(q.pending, id)
	return ev, true
}

// start launches the pump goroutine. It is a no-op after close.
func (q *eventQueue) start() {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.started || q.closed {
		return
	}
	q.started = true
	go q.run()
}

func (q *eventQueue) run() {
	defer close(q.done)
	defer close(q.out)
	for {
		ev, ok := q.pop()
		if !ok {
			select {
			case <-q.wake:
				continue
			case <-q.stop:
				return
			}
		}
		select {
		case q.out <- ev:
		case <-q.stop:
			return
		}
	}
}

// close drops pending events, stops the pump and closes the out channel
// (directly if the pump never started). It returns once the pump has
// exited and is safe to call more than once.
func (q *eventQueue) close() {
	q.mu.Lock()
	if q.closed {
		q.mu.Unlock()
		<-q.done
		return
	}
	q.closed = true
	started := q.started
	q.pending, q.order = nil, nil
	q.mu.Unlock()

	close(q.stop)
	if !started {
		close(q.out)
		close(q.done)
		return
	}
	<-q.done
}
