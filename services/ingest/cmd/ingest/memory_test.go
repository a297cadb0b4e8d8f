package main

import (
	"context"
	"testing"
	"time"

	catalogv1 "github.com/plantlake/plantlake/proto/plantlake/catalog/v1"

	"github.com/plantlake/plantlake/services/ingest/internal/rawtable"
	"github.com/plantlake/plantlake/services/ingest/internal/stack"
)

// memoryBoundKiB is the peak RSS ingest must stay under (DESIGN: 256 MiB).
const memoryBoundKiB = 256 << 10

// TestMemoryBoundLargeRecords: 64 KiB records, 250 MiB of them in all, go
// through ingest --run-once with its peak RSS (from wait4's rusage) under
// 256 MiB: what librdkafka prefetches and what a batch holds are bounded by
// bytes, not by a count of records that would be small.
func TestMemoryBoundLargeRecords(t *testing.T) {
	const n = 4000
	e := newEnv(t)
	ctx := context.Background()
	pr, err := stack.NewProducer(e.kafka.Brokers())
	if err != nil {
		t.Fatal(err)
	}
	defer pr.Close()
	pr.Shape = stack.Large
	if err := pr.ProduceTo(ctx, stack.TopicRaw, 0, n, 0); err != nil {
		t.Fatal(err)
	}

	p := e.ingest("--run-once", "--topics", stack.TopicRaw, "--batch-max-age", "1s")
	select {
	case <-p.Done():
		if err := p.Wait(); err != nil {
			t.Fatalf("run-once exited with %v\n%s", err, p.LogTail(20))
		}
	case <-time.After(3 * time.Minute):
		t.Fatalf("run-once still running after 3m\n%s", p.LogTail(20))
	}
	var ingested int64
	for part := range int32(6) {
		resp, err := e.client.GetTransactionVersion(ctx, &catalogv1.GetTransactionVersionRequest{
			Table: rawtable.Name, AppId: rawtable.AppID(stack.TopicRaw, part)})
		if err != nil {
			t.Fatalf("txn of partition %d: %v", part, err)
		}
		if resp.GetFound() {
			ingested += resp.GetVersion() + 1
		}
	}
	if ingested != n {
		t.Fatalf("the raw table's offsets cover %d records, want %d", ingested, n)
	}
	rss := p.MaxRSSKiB()
	t.Logf("%d records of %d KiB: peak RSS %.1f MiB, CPU %s", n, stack.LargePayloadBytes>>10, float64(rss)/1024, p.CPUTime())
	if rss >= memoryBoundKiB {
		t.Fatalf("peak RSS %.1f MiB, want < %d MiB", float64(rss)/1024, memoryBoundKiB>>10)
	}
}
