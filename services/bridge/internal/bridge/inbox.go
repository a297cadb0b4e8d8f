package bridge

import "sync"

// inbox hands readings from the goroutine that reads the MQTT connection to
// the pump in batches.
//
// Bridge.accept runs on that goroutine (paho's reader, or its router on a
// websocket connection), so it must never block: a blocked reader stops the
// keep-alive and every other packet. put appends under a mutex and wakes the pump only
// when the inbox was empty; the pump takes a batch of up to the inbox's
// limit at once (take), so under load a reading costs one mutex round and no
// channel operation or goroutine. Readings beyond the limit wait, in order,
// in a backlog that take moves forward batch by batch; what bounds them is
// the number of readings the bridge holds unacknowledged (the broker's
// in-flight window, and Config.MaxUnacked, beyond which the bridge stops
// reading from the broker).
type inbox struct {
	mu    sync.Mutex
	items []*reading
	spare []*reading // the slice the pump gave back, reused by the next batch
	// backlog holds the readings that came while items was full, oldest
	// first.
	backlog []*reading
	limit   int
	// ready holds a token while items may be non-empty.
	ready chan struct{}
}

func newInbox(limit int) *inbox {
	return &inbox{
		items: make([]*reading, 0, limit),
		spare: make([]*reading, 0, limit),
		limit: limit,
		ready: make(chan struct{}, 1),
	}
}

// put adds r without blocking.
func (in *inbox) put(r *reading) {
	in.mu.Lock()
	if len(in.items) >= in.limit || len(in.backlog) > 0 {
		in.backlog = append(in.backlog, r)
		in.mu.Unlock()
		return
	}
	in.items = append(in.items, r)
	wake := len(in.items) == 1
	in.mu.Unlock()
	if wake {
		in.signal()
	}
}

func (in *inbox) signal() {
	select {
	case in.ready <- struct{}{}:
	default:
	}
}

// take returns the readings waiting in the batch, oldest first, and moves
// the next batch forward from the backlog. The slice is the pump's until
// its next take.
func (in *inbox) take() []*reading {
	in.mu.Lock()
	batch := in.items
	clear(in.spare[:cap(in.spare)])
	in.items, in.spare = in.spare[:0], batch
	n := min(in.limit, len(in.backlog))
	in.items = append(in.items, in.backlog[:n]...)
	clear(in.backlog[:n])
	in.backlog = in.backlog[n:]
	if len(in.backlog) == 0 {
		in.backlog = nil // let a burst's array go
	}
	more := len(in.items) > 0
	in.mu.Unlock()
	if more {
		in.signal()
	}
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
	in.signal()
}

// len returns how many readings wait in the inbox, its backlog included.
func (in *inbox) len() int {
	in.mu.Lock()
	defer in.mu.Unlock()
	return len(in.items) + len(in.backlog)
}
