package bridge

import (
	"errors"
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
	if err := b.watchdog(t0.Add(silence), true); err != nil {
		t.Fatalf("silent for exactly the limit: %v", err)
	}
	if err := b.watchdog(t0.Add(silence+time.Second), true); !errors.Is(err, ErrMQTTStuck) {
		t.Fatalf("silent past the limit: got %v, want ErrMQTTStuck", err)
	}
	// Down, paho retrying: never stuck, however long the broker is away.
	b.mqttUp.Store(false)
	b.lostAt.Store(at(time.Second))
	b.attemptAt.Store(at(time.Hour))
	if err := b.watchdog(t0.Add(time.Hour+time.Second), false); err != nil {
		t.Fatalf("down with recent attempts: %v", err)
	}
	// paho's first reconnect attempt comes before the lost handler runs;
	// the new connection is open but not subscribed yet (a broker sending
	// its backlog first): not stuck, however long the subscribe takes.
	b.attemptAt.Store(at(2 * time.Hour))
	b.lostAt.Store(at(2*time.Hour + time.Millisecond))
	b.mqttReadAt.Store(at(3*time.Hour - time.Second)) // the backlog arriving
	if err := b.watchdog(t0.Add(3*time.Hour), true); err != nil {
		t.Fatalf("reconnected before the lost handler ran: %v", err)
	}
	// Lost, nothing open, and no attempt since: stuck after reconnectStall.
	b.mqttReadAt.Store(0)
	b.attemptAt.Store(at(4 * time.Hour))
	b.lostAt.Store(at(4*time.Hour + time.Second))
	if err := b.watchdog(t0.Add(4*time.Hour+time.Second+reconnectStall), false); err != nil {
		t.Fatalf("lost for exactly reconnectStall: %v", err)
	}
	if err := b.watchdog(t0.Add(4*time.Hour+2*time.Second+reconnectStall), false); !errors.Is(err, ErrMQTTStuck) {
		t.Fatalf("lost without attempts past reconnectStall: got %v, want ErrMQTTStuck", err)
	}
	// The connection of an attempt before the last loss the handler saw
	// read until just now and is being closed (the lost handler runs after
	// the close, which waits on a broker that stopped reading): not stuck
	// until reconnectStall has passed since that read too.
	b.attemptAt.Store(at(5 * time.Hour))
	b.lostAt.Store(at(5*time.Hour + time.Second))
	b.mqttReadAt.Store(at(5*time.Hour + 50*time.Second))
	if err := b.watchdog(t0.Add(5*time.Hour+2*time.Second+reconnectStall), false); err != nil {
		t.Fatalf("lost and no attempt past reconnectStall, but read %s ago: %v", reconnectStall-48*time.Second, err)
	}
	if err := b.watchdog(t0.Add(5*time.Hour+51*time.Second+reconnectStall), false); !errors.Is(err, ErrMQTTStuck) {
		t.Fatalf("nothing read for reconnectStall either: got %v, want ErrMQTTStuck", err)
	}
	// Connected but never through the batching wrapper (websockets): the
	// read clock is not kept, so silence is not judged.
	b2, err := New(cfg, Options{})
	if err != nil {
		t.Fatal(err)
	}
	b2.mqttUp.Store(true)
	if err := b2.watchdog(t0.Add(24*time.Hour), true); err != nil {
		t.Fatalf("no read clock: %v", err)
	}
}
