package sim

import (
	"bytes"
	"context"
	"sync"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/plantlake/plantlake/devstack"
)

type received struct {
	topic   string
	payload []byte
	at      time.Time
}

// subscribe collects every message on plant/# at QoS 1.
func subscribe(t *testing.T, broker string) (get func() []received) {
	t.Helper()
	var mu sync.Mutex
	var got []received
	opts := mqtt.NewClientOptions().AddBroker(broker).SetClientID("sim-test-subscriber").SetCleanSession(true).
		SetOrderMatters(false)
	c := mqtt.NewClient(opts)
	if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("subscriber connect: %v", tok.Error())
	}
	t.Cleanup(func() { c.Disconnect(100) })
	tok := c.Subscribe("plant/#", 1, func(_ mqtt.Client, m mqtt.Message) {
		r := received{topic: m.Topic(), payload: bytes.Clone(m.Payload()), at: time.Now()}
		mu.Lock()
		got = append(got, r)
		mu.Unlock()
	})
	if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("subscribe: %v", tok.Error())
	}
	return func() []received {
		mu.Lock()
		defer mu.Unlock()
		return append([]received(nil), got...)
	}
}

// TestRunPublishesTheLedger publishes to a real Mosquitto and checks that
// what a subscriber receives is exactly what the ledger says, at the rate.
func TestRunPublishesTheLedger(t *testing.T) {
	broker := devstack.Mosquitto(t)
	get := subscribe(t, broker.URL())

	const count, rate = 2000, 500.0
	var ledger bytes.Buffer
	lw := NewLedgerWriter(&ledger)
	plan := testPlan(3)
	plan.Start = time.Time{}
	plan.Rate = rate
	cfg := RunConfig{Plan: plan, Broker: broker.URL(), ClientID: "sim-test", QoS: 1, Count: count,
		Publishers: 2, Ledger: lw}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	began := time.Now()
	sum, err := Run(ctx, cfg)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	if err := lw.Flush(); err != nil {
		t.Fatal(err)
	}

	// Rate: message i is due at i/rate, so the last at (count-1)/rate.
	want := time.Duration(float64(count-1) / rate * float64(time.Second))
	if sum.Elapsed < want || sum.Elapsed > want+want/10 {
		t.Errorf("published %d messages in %v, want %v (+10 %%) at %v/s", count, sum.Elapsed, want, rate)
	}
	t.Logf("published %d in %v (%.1f/s), wall %v, by kind %v", sum.Planned, sum.Elapsed, sum.Rate(), time.Since(began), sum.ByKind)

	entries, err := ReadLedger(&ledger)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != count || sum.Planned != count || sum.Acked != count {
		t.Fatalf("ledger has %d entries, planned %d, acked %d; want %d", len(entries), sum.Planned, sum.Acked, count)
	}

	// Every message arrives (QoS 1 on a healthy broker: exactly once here).
	deadline := time.Now().Add(20 * time.Second)
	for len(get()) < count && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	got := get()
	if len(got) != count {
		t.Fatalf("subscriber received %d messages, ledger has %d", len(got), count)
	}
	arrived := map[string]int{}
	for _, r := range got {
		arrived[r.topic+"\x00"+string(r.payload)]++
	}
	bySeq := map[int64]Entry{}
	kinds := map[Kind]int64{}
	for _, e := range entries {
		bySeq[e.Seq] = e
		kinds[e.Kind]++
		k := e.Topic + "\x00" + string(e.Payload)
		if arrived[k] == 0 {
			t.Fatalf("ledger entry %d (%s) never arrived: %s %.100q", e.Seq, e.Kind, e.Topic, e.Payload)
		}
		arrived[k]--
		if !e.Acked || e.Attempts != 1 {
			t.Errorf("entry %d: acked %v after %d attempts", e.Seq, e.Acked, e.Attempts)
		}
	}
	for k, n := range arrived {
		if n != 0 {
			t.Errorf("received %d more than the ledger of %.100q", n, k)
		}
	}

	for kind, n := range sum.ByKind {
		if kinds[kind] != n {
			t.Errorf("%s: ledger has %d, summary %d", kind, kinds[kind], n)
		}
	}
	for _, kind := range []Kind{KindReading, KindDuplicate, KindLate, KindTooLate, KindBroken} {
		if kinds[kind] == 0 {
			t.Errorf("no %s among %d messages", kind, count)
		}
	}
	for _, e := range entries {
		switch {
		case e.Kind == KindDuplicate:
			orig, ok := bySeq[*e.DuplicateOf]
			if !ok || !orig.Kind.Gold() || !bytes.Equal(orig.Payload, e.Payload) || orig.Topic != e.Topic ||
				*orig.TSMicros != *e.TSMicros || *orig.Value != *e.Value {
				t.Errorf("duplicate %d differs from %d", e.Seq, *e.DuplicateOf)
			}
		case e.Kind.Gold():
			if e.TSMicros == nil || e.Value == nil || e.SensorID == "" || e.ErrorCode != "" {
				t.Errorf("gold entry %d lacks its key or value: %+v", e.Seq, e)
			}
		case e.Kind.DeadLetter():
			if e.ErrorCode == "" || e.TSMicros != nil {
				t.Errorf("dead letter entry %d: %+v", e.Seq, e)
			}
		}
	}

	// Pacing, seen from the subscriber: the middle half of the messages
	// arrives in about half the run.
	first, last := got[count/4].at, got[3*count/4].at
	if span := last.Sub(first); span < want/2-want/10 || span > want/2+want/10 {
		t.Errorf("the middle half arrived over %v, want %v ± 10 %%", span, want/2)
	}
}

// TestRunStopsOnDuration checks --duration: the run stops at the schedule's end.
func TestRunStopsOnDuration(t *testing.T) {
	broker := devstack.Mosquitto(t)
	plan := testPlan(4)
	plan.Start = time.Time{}
	plan.Rate = 200
	plan.Shares = Shares{}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	sum, err := Run(ctx, RunConfig{Plan: plan, Broker: broker.URL(), ClientID: "sim-test-duration", QoS: 1, Duration: 1500 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if sum.Planned != 300 || sum.Acked != 300 || sum.ByKind[KindReading] != 300 {
		t.Fatalf("1.5 s at 200/s published %+v, want 300 readings", sum)
	}
}
