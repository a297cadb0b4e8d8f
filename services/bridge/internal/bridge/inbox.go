package bridge

import "sync"

// inbox hands readings from paho's router goroutine to the pump in batches.
//
// paho calls the bridge's handler on its router goroutine (OrderMatters on),
// so the handler must never block: a blocked router stops paho's reader, and
// with it the keep-alive. put appends under a mutex and wakes the pump only
// when the inbox was empty; the pump takes everything at once (take), so
// under load a reading costs one mutex round and no channel operation or
// goroutine. When the inbox holds its capacity, the reading waits in a
// goroutine of its own (overflow), as every reading did when paho ran the
// handler in a goroutine per message; the broker's in-flight window bounds
// how many wait.
type inbox struct {
	mu    sync.Mutex
	items []*reading
	spare []*reading // the slice the pump gave back, reused by the next batch
	limit int
	// ready holds a token while items may be non-empty.
	ready chan struct{}
	// room is closed and replaced whenever the pump takes a batch; waiting
	// overflow goroutines then try again.
	room chan struct{}
	// overflow counts the goroutines waiting for room; Close waits for them.
	overflow sync.WaitGroup
}

func newInbox(limit int) *inbox {
	return &inbox{
		items: make([]*reading, 0, limit),
		spare: make([]*reading, 0, limit),
		limit: limit,
		ready: make(chan struct{}, 1),
		room:  make(chan struct{}),
	}
}

// put adds r without blocking. When the inbox is full, r waits in an overflow
// goroutine until the pump makes room or stopping is closed (then r is dropped
// unacknowledged and the broker redelivers it).
func (in *inbox) put(r *reading, stopping <-chan struct{}) {
	if in.tryPut(r) {
		return
	}
	in.overflow.Add(1)
	go func() { // owner: the inbox; Bridge.Run waits for it through wait
		defer in.overflow.Done()
		for {
			in.mu.Lock()
			room := in.room
			in.mu.Unlock()
			select {
			case <-room:
			case <-stopping:
				return
			}
			if in.tryPut(r) {
				return
			}
		}
	}()
}

func (in *inbox) tryPut(r *reading) bool {
	in.mu.Lock()
	if len(in.items) >= in.limit {
		in.mu.Unlock()
		return false
	}
	in.items = append(in.items, r)
	wake := len(in.items) == 1
	in.mu.Unlock()
	if wake {
		select {
		case in.ready <- struct{}{}:
		default:
		}
	}
	return true
}

// take returns every reading waiting, oldest first. The slice is the pump's
// until its next take.
func (in *inbox) take() []*reading {
	in.mu.Lock()
	defer in.mu.Unlock()
	batch := in.items
	clear(in.spare[:cap(in.spare)])
	in.items, in.spare = in.spare[:0], batch
	close(in.room)
	in.room = make(chan struct{})
	return batch
}

// putBack returns readings the pump took but did not forward (it was paused
// mid-batch) to the front of the inbox.
func (in *inbox) putBack(rs []*reading) {
	if len(rs) == 0 {
		return
	}
	in.mu.Lock()
	in.items = append(rs[:len(rs):len(rs)], in.items...)
	in.mu.Unlock()
	select {
	case in.ready <- struct{}{}:
	default:
	}
}

// len returns how many readings wait in the inbox (overflow not counted).
func (in *inbox) len() int {
	in.mu.Lock()
	defer in.mu.Unlock()
	return len(in.items)
}

// wait blocks until every overflow goroutine has returned; call it after
// stopping is closed.
func (in *inbox) wait() { in.overflow.Wait() }
