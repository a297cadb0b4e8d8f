package bridge

import (
	"errors"
	"io"
	"sync/atomic"
	"testing"
	"time"
)

func TestWatchdog(t *testing.T) {
	cfg := DefaultConfig()
	cfg.MQTTBroker, cfg.KafkaBrokers, cfg.ClientID = "tcp://127.0.0.1:1883", "127.0.0.1:9092", "watchdog-test"
	b, err := New(cfg, Options{})
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Unix(1_800_000_000, 0)
	silence := 3*cfg.KeepAlive + mqttPingTimeout
	at := func(d time.Duration) int64 { return t0.Add(d).UnixNano() }

	// Connected, the broker heard from just now: fine until the silence
	// limit passes, stuck after.
	b.attemptAt.Store(at(0))
	b.mqttReadAt.Store(at(0))
	b.mqttUp.Store(true)
	if err := b.watchdog(t0.Add(silence)); err != nil {
		t.Fatalf("silent for exactly the limit: %v", err)
	}
	if err := b.watchdog(t0.Add(silence + time.Second)); !errors.Is(err, ErrMQTTStuck) {
		t.Fatalf("silent past the limit: got %v, want ErrMQTTStuck", err)
	}
	// Down, paho retrying: never stuck, however long the broker is away.
	b.mqttUp.Store(false)
	b.lostAt.Store(at(time.Second))
	b.attemptAt.Store(at(time.Hour))
	if err := b.watchdog(t0.Add(time.Hour + time.Second)); err != nil {
		t.Fatalf("down with recent attempts: %v", err)
	}
	// Lost, and no attempt since: stuck after reconnectStall.
	b.lostAt.Store(at(2 * time.Hour))
	if err := b.watchdog(t0.Add(2*time.Hour + reconnectStall)); err != nil {
		t.Fatalf("lost for exactly reconnectStall: %v", err)
	}
	if err := b.watchdog(t0.Add(2*time.Hour + reconnectStall + time.Second)); !errors.Is(err, ErrMQTTStuck) {
		t.Fatalf("lost without attempts past reconnectStall: got %v, want ErrMQTTStuck", err)
	}
	// Connected but never through the batching wrapper (websockets): the
	// read clock is not kept, so silence is not judged.
	b2, err := New(cfg, Options{})
	if err != nil {
		t.Fatal(err)
	}
	b2.mqttUp.Store(true)
	if err := b2.watchdog(t0.Add(24 * time.Hour)); err != nil {
		t.Fatalf("no read clock: %v", err)
	}
}

// TestBatchedConnStampsSocketReads checks the watchdog's read clock moves
// when bytes arrive from the socket and not when paho reads from the buffer.
func TestBatchedConnStampsSocketReads(t *testing.T) {
	client, server := tcpPair(t)
	bc := newBatchedConn(client)
	defer bc.Close()
	var readAt atomic.Int64
	bc.readAt = &readAt
	if _, err := server.Write([]byte("0123456789")); err != nil {
		t.Fatal(err)
	}
	p := make([]byte, 4)
	if _, err := io.ReadFull(bc, p); err != nil {
		t.Fatal(err)
	}
	first := readAt.Load()
	if first == 0 {
		t.Fatal("a read from the socket left the clock at zero")
	}
	readAt.Store(1)
	if _, err := io.ReadFull(bc, p); err != nil { // from the buffer
		t.Fatal(err)
	}
	if got := readAt.Load(); got != 1 {
		t.Fatalf("a read from the buffer moved the clock to %d", got)
	}
}
