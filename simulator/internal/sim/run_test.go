package sim

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/plantlake/plantlake/devstack"
	"github.com/plantlake/plantlake/servicekit/grpcserver/tlstest"
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
	t.Logf("published %d in %v (%.1f/s), wall %v, by kind %v", sum.Published, sum.Elapsed, sum.Rate(), time.Since(began), sum.ByKind)

	entries, err := ReadLedger(&ledger)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != count || sum.Planned != count || sum.Published != count || sum.Acked != count {
		t.Fatalf("ledger has %d entries, planned %d, published %d, acked %d; want %d", len(entries), sum.Planned, sum.Published, sum.Acked, count)
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

// TestRunTLSAndLogin publishes over TLS with a user name and password, and
// is refused with a wrong password.
func TestRunTLSAndLogin(t *testing.T) {
	ca := tlstest.NewCA(t, "sim-test-ca")
	pair := ca.Server(t, "mosquitto")
	broker := devstack.MosquittoWith(t, devstack.MosquittoConfig{
		Users: map[string]string{"plant": "s3cret"},
		TLS:   &devstack.MosquittoTLS{CertFile: pair.CertFile, KeyFile: pair.KeyFile},
	})
	plan := testPlan(5)
	plan.Start = time.Time{}
	plan.Rate = 1000
	cfg := RunConfig{Plan: plan, Broker: broker.TLSURL(), CAFile: ca.CertFile, Username: "plant", Password: "s3cret",
		ClientID: "sim-test-tls", QoS: 1, Count: 100}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	sum, err := Run(ctx, cfg)
	if err != nil || sum.Acked != 100 {
		t.Fatalf("over TLS: %+v, %v", sum, err)
	}
	cfg.Password = "wrong"
	if _, err := Run(ctx, cfg); err == nil || !strings.Contains(err.Error(), "connect") {
		t.Fatalf("wrong password: %v, want a connect error", err)
	}
}

// TestRunSurvivesBrokerRestart restarts Mosquitto mid-run: every message is
// still acknowledged (republished after the reconnect) and in the ledger.
func TestRunSurvivesBrokerRestart(t *testing.T) {
	broker := devstack.Mosquitto(t)
	plan := testPlan(6)
	plan.Start = time.Time{}
	plan.Rate = 500
	var ledger bytes.Buffer
	lw := NewLedgerWriter(&ledger)
	var logs syncBuffer
	cfg := RunConfig{Plan: plan, Broker: broker.URL(), ClientID: "sim-test-restart", QoS: 1, Count: 2500, Ledger: lw,
		Logger: slog.New(slog.NewTextHandler(&logs, nil))}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	restarted := make(chan error, 1)
	go func() {
		time.Sleep(2 * time.Second)
		restarted <- broker.Restart()
	}()
	sum, err := Run(ctx, cfg)
	if rerr := <-restarted; rerr != nil {
		t.Fatalf("restart: %v", rerr)
	}
	if err != nil || sum.Acked != 2500 || sum.Unacked != 0 {
		t.Fatalf("across a restart: %+v, %v", sum, err)
	}
	if err := lw.Flush(); err != nil {
		t.Fatal(err)
	}
	entries, err := ReadLedger(&ledger)
	if err != nil {
		t.Fatal(err)
	}
	seqs := map[int64]bool{}
	for _, e := range entries {
		if !e.Acked || seqs[e.Seq] {
			t.Fatalf("entry %d: acked %v, seen before %v", e.Seq, e.Acked, seqs[e.Seq])
		}
		seqs[e.Seq] = true
	}
	if len(seqs) != 2500 {
		t.Fatalf("%d ledger entries, want 2500", len(seqs))
	}
	if !strings.Contains(logs.String(), "mqtt connection lost") {
		t.Errorf("the restart did not cut the connection:\n%s", logs.String())
	}
	t.Logf("retries %d, elapsed %v", sum.Retries, sum.Elapsed)
}

// syncBuffer is a bytes.Buffer safe for the logger's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestRunInterrupted: Ctrl-C mid-run stops publishing; the ledger holds
// exactly what was published, every entry acknowledged.
func TestRunInterrupted(t *testing.T) {
	broker := devstack.Mosquitto(t)
	plan := testPlan(7)
	plan.Start = time.Time{}
	plan.Rate = 200
	var ledger bytes.Buffer
	lw := NewLedgerWriter(&ledger)
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	sum, err := Run(ctx, RunConfig{Plan: plan, Broker: broker.URL(), ClientID: "sim-test-interrupt", QoS: 1, Count: 10000, Ledger: lw})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Run = %v, want the context's error", err)
	}
	if err := lw.Flush(); err != nil {
		t.Fatal(err)
	}
	entries, err := ReadLedger(&ledger)
	if err != nil {
		t.Fatal(err)
	}
	if sum.Published < 100 || sum.Published > 250 || int64(len(entries)) != sum.Published || sum.Acked != sum.Published {
		t.Fatalf("interrupted after 1 s at 200/s: %+v, %d ledger entries", sum, len(entries))
	}
}
