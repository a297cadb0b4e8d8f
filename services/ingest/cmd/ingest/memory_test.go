package main

import (
	"context"
	"os"
	"regexp"
	"runtime"
	"strconv"
	"testing"
	"time"

	catalogv1 "github.com/plantlake/plantlake/proto/plantlake/catalog/v1"

	"github.com/plantlake/plantlake/services/ingest/internal/rawtable"
	"github.com/plantlake/plantlake/services/ingest/internal/stack"
)

// memoryBoundKiB is the peak RSS ingest must stay under (DESIGN: 256 MiB).
const memoryBoundKiB = 256 << 10

// peakLine is ingest's own report of its peak RSS at the end of --run-once.
var peakLine = regexp.MustCompile(`msg="run-once: done".* peak_rss_kib=(\d+)`)

// TestMemoryBoundLargeRecords: 4000 records of 64 KiB (250 MiB in all) go
// through ingest --run-once on one core (taskset, GOMAXPROCS=1) with its
// peak RSS (VmHWM: sampled from /proc while it runs, and as ingest reports
// it at the end) under 256 MiB: what librdkafka prefetches, what a batch
// holds and what encoding a batch's file takes are bounded by bytes, not by
// counts of records or values that would be small. Measured: 155-165 MiB
// (56 of them the binary's mapped code).
func TestMemoryBoundLargeRecords(t *testing.T) {
	const n = 4000
	e := newEnv(t)
	ctx := context.Background()
	pr, err := stack.NewProducer(e.kafka.Brokers())
	if err != nil {
		t.Fatal(err)
	}
	pr.Shape = stack.Large
	err = pr.ProduceTo(ctx, stack.TopicRaw, 0, n, 0)
	pr.Close()
	if err != nil {
		t.Fatal(err)
	}

	cpu := "1"
	if runtime.NumCPU() < 2 {
		cpu = "0"
	}
	p := e.startOn(cpu, []string{"GOMAXPROCS=1"}, "--run-once", "--topics", stack.TopicRaw)
	deadline := time.After(45 * time.Second)
	for done := false; !done; {
		select {
		case <-p.Done():
			done = true
		case <-time.After(10 * time.Millisecond):
			p.SampleVmHWM()
		case <-deadline:
			t.Fatalf("run-once still running after 45s\n%s", p.LogTail(20))
		}
	}
	if err := p.Wait(); err != nil {
		t.Fatalf("run-once exited with %v\n%s", err, p.LogTail(20))
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

	sampled := p.SampleVmHWM()
	data, err := os.ReadFile(p.LogPath)
	if err != nil {
		t.Fatal(err)
	}
	m := peakLine.FindSubmatch(data)
	if m == nil {
		t.Fatalf("ingest did not report its peak RSS at the end of run-once\n%s", p.LogTail(10))
	}
	reported, err := strconv.ParseInt(string(m[1]), 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	// The report comes before the shutdown, the samples every 10 ms.
	rss := max(sampled, reported)
	t.Logf("%d records of %d KiB on cpu %s: peak RSS %.1f MiB (sampled %.1f), CPU %s", n, stack.LargePayloadBytes>>10, cpu,
		float64(rss)/1024, float64(sampled)/1024, p.CPUTime())
	if rss >= memoryBoundKiB {
		t.Fatalf("peak RSS %.1f MiB, want < %d MiB", float64(rss)/1024, memoryBoundKiB>>10)
	}
}
