package bridge

import (
	"sync"
	"sync/atomic"

	mqtt "github.com/eclipse/paho.mqtt.golang"
)

// ackQueue sends a connection's PUBACKs in the order its PUBLISH packets
// arrived, as MQTT 3.1.1 (section 4.6) asks of a QoS 1 receiver.
//
// Kafka settles readings out of that order (each partition has its own
// batches). Out of order, Mosquitto 2.0.11 does not keep to its in-flight
// window: a paho subscriber acknowledging in reversed runs of ten got
// 149,000 unacknowledged messages over a window of 1,000, one acknowledging
// in order exactly 1,000. (Under bursts of acknowledgements, after a Kafka
// stall, the window leaks in order too; Config.MaxUnacked bounds what the
// bridge then holds.) In order, an acknowledgement waits at most for the
// readings that arrived before it.
//
// A queue serves one MQTT connection (a generation, see Bridge.gen); a new
// connection starts an empty one, and what the old one held is never
// acknowledged (the broker redelivers it).
type ackQueue struct {
	mu   sync.Mutex
	gen  uint64
	head uint64 // sequence number of slots[0]
	// slots are the readings of gen not yet acknowledged, in arrival order.
	slots []ackSlot
	// n is len(slots), for readers that take no lock (the MQTT connection's hold).
	n atomic.Int64
	// sending is held while a released run of acknowledgements is handed
	// to paho, so that two runs released one after the other are sent in
	// that order without holding mu (which the MQTT router needs) while
	// paho takes them.
	sending sync.Mutex
}

type ackSlot struct {
	msg    mqtt.Message
	done   bool // stored in Kafka (or nothing to store): acknowledge in turn
	replay bool // a retained replay, acknowledged without forwarding
}

// enqueue records the arrival of m on connection gen and returns its
// sequence number; replay marks a retained replay, which is acknowledged
// without being forwarded. ok is false for a reading of an older
// connection than the queue's: it is never acknowledged.
func (q *ackQueue) enqueue(gen uint64, m mqtt.Message, replay bool) (seq uint64, ok bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	switch {
	case gen < q.gen:
		return 0, false
	case gen > q.gen:
		q.restartLocked(gen)
	}
	seq = q.head + uint64(len(q.slots))
	q.slots = append(q.slots, ackSlot{msg: m, replay: replay})
	q.n.Store(int64(len(q.slots)))
	return seq, true
}

// done marks reading seq of connection gen ready to acknowledge and sends
// the acknowledgements that are now in turn. It returns how many of them
// were for forwarded readings (not replays), and ok false when gen is no
// longer the queue's connection (nothing sent).
func (q *ackQueue) done(gen, seq uint64) (forwarded int, ok bool) {
	q.mu.Lock()
	if gen != q.gen || seq < q.head || seq-q.head >= uint64(len(q.slots)) {
		q.mu.Unlock()
		return 0, false
	}
	q.slots[seq-q.head].done = true
	if seq != q.head {
		q.mu.Unlock()
		return 0, true
	}
	n := 0
	for n < len(q.slots) && q.slots[n].done {
		if !q.slots[n].replay {
			forwarded++
		}
		n++
	}
	var one mqtt.Message
	var run []mqtt.Message
	if n == 1 {
		one = q.slots[0].msg
	} else {
		run = make([]mqtt.Message, n)
		for i := range run {
			run[i] = q.slots[i].msg
		}
	}
	clear(q.slots[:n])
	q.slots = q.slots[n:]
	q.head += uint64(n)
	q.n.Store(int64(len(q.slots)))
	q.sending.Lock()
	q.mu.Unlock()
	if one != nil {
		one.Ack()
	}
	for _, m := range run {
		m.Ack()
	}
	q.sending.Unlock()
	return forwarded, true
}

// restart starts the queue of connection gen (when newer than the current
// one) and returns how many forwarded readings of the old one were stored
// in Kafka but will not be acknowledged.
func (q *ackQueue) restart(gen uint64) (dropped int) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if gen <= q.gen {
		return 0
	}
	return q.restartLocked(gen)
}

func (q *ackQueue) restartLocked(gen uint64) (dropped int) {
	for _, s := range q.slots {
		if s.done && !s.replay {
			dropped++
		}
	}
	q.gen, q.head, q.slots = gen, 0, nil
	q.n.Store(0)
	return dropped
}

// len returns how many readings wait for their acknowledgement.
func (q *ackQueue) len() int { return int(q.n.Load()) }
