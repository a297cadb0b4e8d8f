package goldsink

import (
	"fmt"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"time"

	"github.com/plantlake/plantlake/pipeline"
	catalogv1 "github.com/plantlake/plantlake/proto/plantlake/catalog/v1"

	"github.com/plantlake/plantlake/services/merge/internal/bronzetest"
	"github.com/plantlake/plantlake/services/merge/internal/gold"
	"github.com/plantlake/plantlake/services/merge/internal/mergeplan"
)

// Streaming merge: what merge does at about 14,000 readings/s with its
// 250 ms batch age. Every batch holds one instant of 1,750 sensors × 2
// measurements (3,500 readings), 5 % of them redeliveries of the previous
// batch's keys and 1 % late readings of up to 20 batches back (a third
// measurement, new to gold), so that every
// batch's keys fall in the bounds of the newest gold files, which the batch
// must read (or, with the key cache, probe). The benchmark warms gold with
// streamWarm batches, then merges one batch per iteration (run it with a
// fixed count, -benchtime=100x); it reports merge's own CPU per reading of
// Append and Commit (the catalog is another process; building the bronze
// record is left out).

const (
	streamSensors = 1750
	streamWarm    = 30
	streamLateMax = 20
)

// streamBatch returns batch n's readings.
func streamBatch(n int) []bronzetest.Reading { return streamBatchDups(n, true) }

// streamBatchDups returns batch n's readings, whose redeliveries are of
// the previous batch's readings (prev) or of the batch's own (a QoS 1
// redelivery that follows its reading closely, as most of the
// simulator's do).
func streamBatchDups(n int, prev bool) []bronzetest.Reading {
	at := func(tick int) time.Time { return day.Add(time.Duration(tick) * 250 * time.Millisecond) }
	var rs []bronzetest.Reading
	off := int64(n) * 10_000
	add := func(s, m, tick int) {
		rs = append(rs, bronzetest.Reading{SensorID: fmt.Sprintf("sensor%04d", s), Measurement: []string{"pressure", "temperature", "humidity"}[m],
			Line: "l1", Value: float64(tick), TS: at(tick), RawVersion: int64(n + 1), Topic: "raw", Offset: off})
		off++
	}
	for s := range streamSensors {
		for m := range 2 {
			i := s*2 + m
			switch {
			case n > 0 && i%20 == 7 && prev: // a redelivery of the previous batch's reading
				add(s, m, n-1)
			case i%20 == 7: // a redelivery of this batch's reading
				add(s, m, n)
			case n > streamLateMax && i%100 == 13: // a late reading of a device's buffer, 2..20 batches old, new to gold
				add(s, 2, n-2-(i/100)%(streamLateMax-1))
			}
			add(s, m, n)
		}
	}
	return rs
}

// streamCommit merges batch n through batch (the runner keeps one Batch
// for the life of the process); rec is batch n's readings.
func (e *env) streamCommit(batch *mergeplan.Batch, n int, rec arrow.RecordBatch) {
	if err := batch.Append(e.ctx, int64(n+1), rec); err != nil {
		e.t.Fatal(err)
	}
	pos, err := e.sink.Positions(e.ctx, []string{gold.AppID})
	if err != nil {
		e.t.Fatal(err)
	}
	rows := batch.Rows()
	d := batch.Flush()
	if _, err := e.sink.Commit(e.ctx, pipeline.Commit[*mergeplan.Data]{
		ReadVersion: pos.ReadVersion,
		Cut:         pipeline.Cut{Txns: []pipeline.Txn{{AppID: gold.AppID, Version: int64(n + 1)}}, ReadAppIDs: []string{gold.AppID}},
		Data:        d, Rows: rows,
	}); err != nil {
		e.t.Fatal(err)
	}
	batch.Release(d)
}

func BenchmarkStream(b *testing.B) {
	for _, strategy := range []mergeplan.Strategy{mergeplan.FirstWins, mergeplan.LatestWins} {
		for _, cacheBytes := range []int64{0, DefaultKeyCacheBytes} {
			b.Run(fmt.Sprintf("%s/keycache=%d", strategy, cacheBytes), func(b *testing.B) {
				benchStream(b, strategy, cacheBytes)
			})
		}
	}
}

func benchStream(b *testing.B, strategy mergeplan.Strategy, cacheBytes int64) {
	e := newEnvCache(b, strategy, cacheBytes)
	batch := mergeplan.NewBatch(e.spec)
	commit := func(n int) (readings int, cpu time.Duration) {
		rs := streamBatch(n)
		rec := bronzetest.Record(rs)
		defer rec.Release()
		t0 := cpuNow()
		e.streamCommit(batch, n, rec)
		return len(rs), cpuNow() - t0
	}
	for n := range streamWarm {
		commit(n)
	}
	c0 := e.sink.Counts()
	var cpu time.Duration
	readings := 0
	b.ResetTimer()
	for i := range b.N {
		r, c := commit(streamWarm + i)
		readings += r
		cpu += c
	}
	c := e.sink.Counts()
	b.ReportMetric(float64(cpu.Microseconds())/float64(readings), "cpu-µs/reading")
	b.ReportMetric(float64(c.CandidateFiles-c0.CandidateFiles)/float64(b.N), "candidates/batch")
	b.ReportMetric(float64(c.Duplicates-c0.Duplicates)/float64(b.N), "dups/batch")
	b.ReportMetric(float64(c.CachedFiles-c0.CachedFiles)/float64(b.N), "cached/batch")
}

// streamCompactEvery is how often (in batches) BenchmarkStreamCompacted
// compacts gold: in make up at 13,700 readings/s merge read 10 newly
// compacted gold files in 30 s, about one every 12 batches of 250 ms.
const streamCompactEvery = 12

// BenchmarkStreamCompacted is BenchmarkStream (with the key cache) with
// the catalog compacting gold (stitching every file of the partition)
// after every streamCompactEvery batches, as its automatic maintenance
// does in a running stack. The redeliveries are of the previous batch
// (whose file the compaction took: the next batch hits the compacted
// file, which it must read) or inside the batch (as the simulator's
// mostly are: the compacted file is only probed). follow=false emulates
// the sink before it followed gold's log (each compaction swept the cache
// and the compacted file was read whole on first use). It reports
// merge's CPU per reading (the compaction is the catalog's), the files
// read and the compactions.
func BenchmarkStreamCompacted(b *testing.B) {
	for _, strategy := range []mergeplan.Strategy{mergeplan.FirstWins, mergeplan.LatestWins} {
		for _, prev := range []bool{true, false} {
			for _, follow := range []bool{false, true} {
				dups := "inside"
				if prev {
					dups = "prev"
				}
				b.Run(fmt.Sprintf("%s/dups=%s/follow=%v", strategy, dups, follow), func(b *testing.B) {
					benchStreamCompacted(b, strategy, prev, follow)
				})
			}
		}
	}
}

func benchStreamCompacted(b *testing.B, strategy mergeplan.Strategy, prev, follow bool) {
	e := newEnvCatalog(b, strategy, DefaultKeyCacheBytes)
	batch := mergeplan.NewBatch(e.spec)
	compactions := 0
	commit := func(n int) (readings int, cpu time.Duration) {
		if n > 0 && n%streamCompactEvery == 0 {
			resp, err := e.client.Optimize(e.ctx, &catalogv1.OptimizeRequest{Table: gold.Name})
			if err != nil || !resp.GetCommitted() {
				b.Fatalf("optimize: %v %v", resp, err)
			}
			compactions++
		}
		snap, err := e.sink.table.Snapshot(e.ctx)
		if err != nil {
			b.Fatal(err)
		}
		if !follow && snap.Version() != e.sink.keysBase {
			e.sink.keysBase = -1 // sweep only, as before
		}
		rs := streamBatchDups(n, prev)
		rec := bronzetest.Record(rs)
		defer rec.Release()
		t0 := cpuNow()
		e.streamCommit(batch, n, rec)
		return len(rs), cpuNow() - t0
	}
	for n := range streamWarm {
		commit(n)
	}
	c0, k0 := e.sink.Counts(), compactions
	var cpu time.Duration
	readings := 0
	b.ResetTimer()
	for i := range b.N {
		r, c := commit(streamWarm + i)
		readings += r
		cpu += c
	}
	c := e.sink.Counts()
	b.ReportMetric(float64(cpu.Microseconds())/float64(readings), "cpu-µs/reading")
	b.ReportMetric(float64(c.CandidateFiles-c0.CandidateFiles)/float64(b.N), "candidates/batch")
	b.ReportMetric(float64((c.CandidateFiles-c0.CandidateFiles)-(c.CachedFiles-c0.CachedFiles))/float64(b.N), "read/batch")
	b.ReportMetric(float64(c.DerivedFiles-c0.DerivedFiles), "derived")
	b.ReportMetric(float64(compactions-k0), "compactions")
}
