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
	for _, r := range readings(3) {
		in.put(r)
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
	in.put(&reading{gen: 9})
	in.putBack(readings(2))
	if got, want := gens(in.take()), []uint64{0, 1, 9}; !slices.Equal(got, want) {
		t.Fatalf("take after putBack = %v, want %v", got, want)
	}
}

func TestInboxBacklogKeepsOrderBatchByBatch(t *testing.T) {
	in := newInbox(2)
	for _, r := range readings(5) {
		in.put(r) // never blocks: 3 of them wait in the backlog
	}
	if n := in.len(); n != 5 {
		t.Fatalf("len = %d, want 5 (batch and backlog)", n)
	}
	var batches [][]uint64
	for range 3 {
		select {
		case <-in.ready:
		default:
			t.Fatalf("no ready token with %d readings waiting (took %v)", in.len(), batches)
		}
		batches = append(batches, gens(in.take()))
	}
	want := [][]uint64{{0, 1}, {2, 3}, {4}}
	if !slices.EqualFunc(batches, want, slices.Equal) {
		t.Fatalf("batches = %v, want %v", batches, want)
	}
	if n := in.len(); n != 0 || len(in.ready) != 0 {
		t.Fatalf("after the last batch: len %d, ready tokens %d", n, len(in.ready))
	}
	// A reading put while the backlog is not empty queues behind it.
	for _, r := range readings(3) {
		in.put(r)
	}
	in.put(&reading{gen: 7})
	got := append(gens(in.take()), gens(in.take())...)
	if want := []uint64{0, 1, 2, 7}; !slices.Equal(got, want) {
		t.Fatalf("took %v, want %v", got, want)
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

	b.inbox.put(&reading{}) // 9 in flight + 1 queued: deep
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
