package bridge

import (
	"context"
	"slices"
	"testing"
	"time"
)

func readings(n int) []*reading {
	rs := make([]*reading, n)
	for i := range rs {
		rs[i] = &reading{gen: uint64(i)}
	}
	return rs
}

func gens(rs []*reading) []uint64 {
	out := make([]uint64, len(rs))
	for i, r := range rs {
		out[i] = r.gen
	}
	return out
}

func TestInboxTakesInOrderAndSignalsOnce(t *testing.T) {
	in := newInbox(8)
	stopping := make(chan struct{})
	for _, r := range readings(3) {
		in.put(r, stopping)
	}
	if len(in.ready) != 1 {
		t.Fatalf("ready tokens = %d, want 1 (only the put into an empty inbox signals)", len(in.ready))
	}
	got := gens(in.take())
	if want := []uint64{0, 1, 2}; !slices.Equal(got, want) {
		t.Fatalf("take = %v, want %v", got, want)
	}
	if n := in.len(); n != 0 {
		t.Fatalf("len after take = %d", n)
	}
	// A paused pump puts the rest of a batch back in front of newer readings.
	in.put(&reading{gen: 9}, stopping)
	in.putBack(readings(2))
	if got, want := gens(in.take()), []uint64{0, 1, 9}; !slices.Equal(got, want) {
		t.Fatalf("take after putBack = %v, want %v", got, want)
	}
}

func TestInboxOverflowWaitsForRoom(t *testing.T) {
	in := newInbox(2)
	stopping := make(chan struct{})
	for _, r := range readings(5) {
		in.put(r, stopping) // never blocks: 3 of them wait in goroutines
	}
	if n := in.len(); n != 2 {
		t.Fatalf("len = %d, want the capacity 2", n)
	}
	var got []uint64
	deadline := time.Now().Add(10 * time.Second)
	for len(got) < 5 && time.Now().Before(deadline) {
		got = append(got, gens(in.take())...)
		time.Sleep(time.Millisecond)
	}
	in.wait()
	seen := make(map[uint64]bool)
	for _, g := range got {
		seen[g] = true
	}
	if len(got) != 5 || len(seen) != 5 {
		t.Fatalf("took %v, want each of 0…4 once", got)
	}
}

func TestInboxOverflowEndsWhenStopping(t *testing.T) {
	in := newInbox(1)
	stopping := make(chan struct{})
	for _, r := range readings(3) {
		in.put(r, stopping)
	}
	close(stopping)
	done := make(chan struct{})
	go func() { in.wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("overflow goroutines still waiting after stopping closed")
	}
	if n := in.len(); n != 1 {
		t.Fatalf("len = %d, want 1 (the overflowed readings are dropped, unacknowledged)", n)
	}
}

func TestGatherWaitsOnlyWhileDeep(t *testing.T) {
	cfg := DefaultConfig()
	cfg.ClientID = "gather"
	cfg.DeepLinger = 200 * time.Millisecond
	cfg.DeepQueue = 10
	b, err := New(cfg, Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	never := make(chan struct{})

	b.inFlight.Store(9) // shallow: produce at once
	start := time.Now()
	if err := b.gather(ctx, never); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d >= cfg.DeepLinger {
		t.Fatalf("shallow queue: gather waited %v", d)
	}

	b.inbox.put(&reading{}, b.stopping) // 9 in flight + 1 queued: deep
	start = time.Now()
	if err := b.gather(ctx, never); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d < cfg.DeepLinger {
		t.Fatalf("deep queue: gather waited %v, want %v", d, cfg.DeepLinger)
	}
	if n := b.gathered.Load(); n != 1 {
		t.Fatalf("gathered = %d, want 1", n)
	}

	wake := make(chan struct{})
	close(wake) // a pause change cuts the wait short
	start = time.Now()
	if err := b.gather(ctx, wake); err != nil || time.Since(start) >= cfg.DeepLinger {
		t.Fatalf("pause change: err %v after %v", err, time.Since(start))
	}
}
