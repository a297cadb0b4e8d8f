package bridge

import (
	"sync"
	"sync/atomic"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/plantlake/plantlake/servicekit/mqttconn"
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
//
// On a connection through mqttconn (useConn) the PUBACKs of QoS 1 readings
// are written to it directly, a released run in one call; paho's ack path
// (m.Ack) costs a packet, a store key formatted with fmt and a channel send
// to paho's writer goroutine per reading, about a tenth of the bridge's CPU.
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
	// that order without holding mu (which the MQTT reader needs) while
	// they are written.
	sending sync.Mutex
	// conn is gen's connection when it is an mqttconn.Conn (useConn).
	conn *mqttconn.Conn
	// run and ids are done's scratch space, used while sending is held.
	run []mqtt.Message
	ids []uint16
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
	q.sending.Lock()
	run := q.run[:0]
	for i := range n {
		run = append(run, q.slots[i].msg)
	}
	clear(q.slots[:n])
	q.slots = q.slots[n:]
	q.head += uint64(n)
	q.n.Store(int64(len(q.slots)))
	conn := q.conn
	q.mu.Unlock()
	q.send(conn, run)
	clear(run)
	q.run = run[:0]
	q.sending.Unlock()
	return forwarded, true
}

// send acknowledges run in order: QoS 1 messages with PUBACKs written to
// conn when it is not nil, any other through paho. q.sending must be held.
func (q *ackQueue) send(conn *mqttconn.Conn, run []mqtt.Message) {
	ids := q.ids[:0]
	for _, m := range run {
		if conn != nil && m.Qos() == 1 {
			ids = append(ids, m.MessageID())
			continue
		}
		if len(ids) > 0 { // those first: the order holds
			conn.WritePubacks(ids...)
			ids = ids[:0]
		}
		m.Ack()
	}
	if len(ids) > 0 {
		conn.WritePubacks(ids...)
	}
	q.ids = ids[:0]
}

// useConn records conn as connection gen's (starting gen's queue when it
// is newer than the current one): the PUBACKs of its QoS 1 readings are
// then written to it directly.
func (q *ackQueue) useConn(gen uint64, conn *mqttconn.Conn) {
	q.mu.Lock()
	defer q.mu.Unlock()
	switch {
	case gen < q.gen:
		return
	case gen > q.gen:
		q.restartLocked(gen)
	}
	q.conn = conn
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
	q.gen, q.head, q.slots, q.conn = gen, 0, nil, nil
	q.n.Store(0)
	return dropped
}

// len returns how many readings wait for their acknowledgement.
func (q *ackQueue) len() int { return int(q.n.Load()) }
