package goldsink

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/plantlake/plantlake/delta"
	"github.com/plantlake/plantlake/delta/storage"

	"github.com/plantlake/plantlake/services/merge/internal/bronzetest"
	"github.com/plantlake/plantlake/services/merge/internal/gold"
	"github.com/plantlake/plantlake/services/merge/internal/mergeplan"
)

// BenchmarkWriteNewRows measures writing a batch of 100,000 new rows as
// gold files (the write phase of a first_wins merge).
func BenchmarkWriteNewRows(b *testing.B) {
	store, err := storage.NewLocal(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	spec, _ := mergeplan.NewKeySpec(gold.KeyColumns)
	batch := mergeplan.NewBatch(spec)
	var rs []bronzetest.Reading
	t0 := time.Date(2026, 12, 1, 8, 0, 0, 0, time.UTC)
	for i := range 100_000 {
		rs = append(rs, bronzetest.Reading{SensorID: fmt.Sprintf("sensor%04d", i%500), Measurement: "temperature", Line: "l1",
			Value: float64(i), TS: t0.Add(time.Duration(i/500) * 100 * time.Millisecond), RawVersion: 1, Topic: "raw", Offset: int64(i)})
	}
	rec := bronzetest.Record(rs)
	if err := batch.Append(context.Background(), 1, rec); err != nil {
		b.Fatal(err)
	}
	rec.Release()
	d := batch.Flush()
	s := &Sink{store: store, opts: Options{Strategy: mergeplan.FirstWins, Key: spec, MaxFileRows: DefaultMaxFileRows}}
	p := &plan{d: d, parts: mergeplan.Partitions(d, spec), out: make([]uint8, len(d.Rows))}
	b.ResetTimer()
	for range b.N {
		if _, _, err := s.write(context.Background(), p, func(delta.Add) {}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRewrite measures the write phase of a latest_wins merge that
// replaces 5,000 rows spread over four gold files of 250,000 rows.
func BenchmarkRewrite(b *testing.B) {
	ctx := context.Background()
	store, err := storage.NewLocal(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	table, err := delta.Create(ctx, store, delta.Metadata{Format: delta.Format{Provider: "parquet"}, SchemaString: gold.DeltaSchema,
		PartitionColumns: []string{gold.PartitionColumn}}, delta.Protocol{})
	if err != nil {
		b.Fatal(err)
	}
	t0 := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	spec, _ := mergeplan.NewKeySpec(gold.KeyColumns)
	s := &Sink{store: store, table: table, opts: Options{Strategy: mergeplan.LatestWins, Key: spec, MaxFileRows: DefaultMaxFileRows}}
	gb := gold.NewBuilder(nil)
	var acts []delta.Action
	for f := range 4 {
		for i := range 250_000 {
			n := f*250_000 + i
			r := gold.Row{SensorID: fmt.Sprintf("sensor%04d", n/2000), Measurement: "temperature", Unit: "C", Plant: "p1", Line: "l1",
				Device: "d", MQTTTopic: "plant/l1/d/temperature", KafkaTopic: "raw", Value: float64(n),
				TS: t0.Add(time.Duration(n%2000) * 40 * time.Second).UnixMicro(), EventDate: gold.EventDateOf(t0.UnixMicro()), RawVersion: 1}
			gb.Append(&r)
		}
		rec := gb.NewRecord()
		w := fileWriter{s: s, partition: gold.FormatDate(gold.EventDateOf(t0.UnixMicro())), add: func(a delta.Add) { acts = append(acts, delta.Action{Add: &a}) }}
		if err := w.writeFile(ctx, rec); err != nil {
			b.Fatal(err)
		}
		rec.Release()
	}
	if _, err := table.Commit(ctx, delta.CommitRequest{ReadVersion: 0, Operation: "WRITE", Actions: acts, BlindAppend: true}); err != nil {
		b.Fatal(err)
	}
	snap, err := table.Snapshot(ctx)
	if err != nil {
		b.Fatal(err)
	}
	batch := mergeplan.NewBatch(spec)
	var rs []bronzetest.Reading
	for i := range 5_000 {
		n := i * 200
		rs = append(rs, bronzetest.Reading{SensorID: fmt.Sprintf("sensor%04d", n/2000), Measurement: "temperature", Line: "l1",
			Value: -1, TS: t0.Add(time.Duration(n%2000) * 40 * time.Second), RawVersion: 2, Topic: "raw", Offset: int64(i)})
	}
	rec := bronzetest.Record(rs)
	if err := batch.Append(ctx, 2, rec); err != nil {
		b.Fatal(err)
	}
	rec.Release()
	d := batch.Flush()
	cpu0 := cpuNow()
	b.ResetTimer()
	for range b.N {
		p := &plan{d: d, snap: snap, parts: mergeplan.Partitions(d, spec), out: make([]uint8, len(d.Rows))}
		p.candidates = snap.Files()
		if err := s.match(ctx, p); err != nil {
			b.Fatal(err)
		}
		if len(p.rewrite) != 4 {
			b.Fatalf("%d files to rewrite, want 4", len(p.rewrite))
		}
		if _, updated, err := s.write(ctx, p, func(delta.Add) {}); err != nil || updated != 5000 {
			b.Fatal(updated, err)
		}
	}
	b.ReportMetric(float64((cpuNow()-cpu0).Milliseconds())/float64(b.N), "cpu-ms/op")
}
