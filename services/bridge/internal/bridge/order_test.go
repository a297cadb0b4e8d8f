package bridge

import (
	"io"
	"net"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/plantlake/plantlake/servicekit/mqttconn"
)

// ackRecorder is an MQTT message that records its acknowledgement, so the
// test sees the order in which ackQueue sends them.
type ackRecorder struct {
	id   uint16
	qos0 bool // a QoS 0 message (else QoS 1)
	mu   *sync.Mutex
	log  *[]uint16
}

func (m ackRecorder) Duplicate() bool { return false }
func (m ackRecorder) Qos() byte {
	if m.qos0 {
		return 0
	}
	return 1
}
func (m ackRecorder) Retained() bool    { return false }
func (m ackRecorder) Topic() string     { return "plant/t" }
func (m ackRecorder) MessageID() uint16 { return m.id }
func (m ackRecorder) Payload() []byte   { return nil }
func (m ackRecorder) Ack() {
	m.mu.Lock()
	*m.log = append(*m.log, m.id)
	m.mu.Unlock()
}

func TestAckQueueAcknowledgesInArrivalOrder(t *testing.T) {
	var mu sync.Mutex
	var acked []uint16
	var q ackQueue
	seqs := make([]uint64, 6)
	for i := range seqs {
		seq, ok := q.enqueue(1, ackRecorder{id: uint16(i + 1), mu: &mu, log: &acked}, i == 2)
		if !ok {
			t.Fatalf("enqueue %d refused", i)
		}
		seqs[i] = seq
	}
	// Kafka settles 2, 4, 3 first: nothing may go out before 1.
	for _, i := range []int{1, 3} {
		if n, ok := q.done(1, seqs[i]); !ok || n != 0 {
			t.Fatalf("done(%d) = %d, %v; want 0, true", i, n, ok)
		}
	}
	if n, ok := q.done(1, seqs[2]); !ok || n != 0 { // the replay, also waiting for 1
		t.Fatalf("done(replay) = %d, %v", n, ok)
	}
	if len(acked) != 0 || q.len() != 6 {
		t.Fatalf("acked %v with reading 1 unsettled; len %d", acked, q.len())
	}
	// 1 settles: 1–4 go, in order; 3 is a replay, so 3 forwarded readings.
	if n, ok := q.done(1, seqs[0]); !ok || n != 3 {
		t.Fatalf("done(0) = %d, %v; want 3 forwarded", n, ok)
	}
	if want := []uint16{1, 2, 3, 4}; !slices.Equal(acked, want) {
		t.Fatalf("acked %v, want %v", acked, want)
	}
	if q.len() != 2 {
		t.Fatalf("len = %d, want 2", q.len())
	}
	// 6 is stored, 5 is not; a new connection drops both unacknowledged.
	q.done(1, seqs[5])
	if dropped := q.restart(2); dropped != 1 {
		t.Fatalf("restart dropped %d stored readings, want 1", dropped)
	}
	if n, ok := q.done(1, seqs[4]); ok || n != 0 {
		t.Fatalf("done on the old connection = %d, %v; want nothing sent", n, ok)
	}
	if _, ok := q.enqueue(1, ackRecorder{id: 99, mu: &mu, log: &acked}, false); ok {
		t.Fatal("a reading of the old connection was queued")
	}
	seq, ok := q.enqueue(2, ackRecorder{id: 7, mu: &mu, log: &acked}, false)
	if !ok {
		t.Fatal("enqueue on the new connection refused")
	}
	if n, ok := q.done(2, seq); !ok || n != 1 {
		t.Fatalf("done on the new connection = %d, %v", n, ok)
	}
	if want := []uint16{1, 2, 3, 4, 7}; !slices.Equal(acked, want) || q.len() != 0 {
		t.Fatalf("acked %v (want %v), len %d", acked, want, q.len())
	}
}

// On a connection through mqttconn the queue writes QoS 1 PUBACKs to it
// directly, in arrival order, a released run at a time; a QoS 0 message
// goes through paho (its Ack) in its turn; a new connection's queue has no
// connection until useConn gives it one.
func TestAckQueueWritesPubacksToTheConnection(t *testing.T) {
	raw, server := net.Pipe()
	defer server.Close()
	received := make(chan []byte, 1)
	go func() {
		got, _ := io.ReadAll(server)
		received <- got
	}()
	conn := mqttconn.New(raw, mqttconn.Options{})

	var mu sync.Mutex
	var viaPaho []uint16
	var q ackQueue
	q.useConn(1, conn)
	var seqs []uint64
	for i := range 5 {
		seq, _ := q.enqueue(1, ackRecorder{id: uint16(100 + i), qos0: i == 3, mu: &mu, log: &viaPaho}, false)
		seqs = append(seqs, seq)
	}
	for _, i := range []int{4, 2, 1, 3, 0} { // Kafka's order
		q.done(1, seqs[i])
	}
	q.restart(2) // a new connection: no mqttconn.Conn yet, so paho's path
	seq, _ := q.enqueue(2, ackRecorder{id: 7, mu: &mu, log: &viaPaho}, false)
	q.done(2, seq)
	if err := conn.Close(); err != nil {
		t.Fatal(err)
	}
	var got []byte
	select {
	case got = <-received:
	case <-time.After(5 * time.Second):
		t.Fatal("nothing written within 5 s")
	}
	want := []byte{0x40, 2, 0, 100, 0x40, 2, 0, 101, 0x40, 2, 0, 102, 0x40, 2, 0, 104}
	if !slices.Equal(got, want) {
		t.Fatalf("connection got % x, want % x", got, want)
	}
	if want := []uint16{103, 7}; !slices.Equal(viaPaho, want) {
		t.Fatalf("through paho: %v, want %v (the QoS 0 one and the new connection's)", viaPaho, want)
	}
}
