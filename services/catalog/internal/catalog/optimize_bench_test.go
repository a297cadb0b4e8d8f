package catalog

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"

	"github.com/plantlake/plantlake/delta"
	"github.com/plantlake/plantlake/delta/datafile"
	"github.com/plantlake/plantlake/delta/datafile/datafiletest"
	"github.com/plantlake/plantlake/delta/storage"
	"github.com/plantlake/plantlake/services/catalog/internal/maintenance"
)

// processCPU is the process's user and system CPU time.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkOptimize measures the catalog's compaction of 50 files of 14,000 rows (a commit's
// file of raw or bronze at some 14,000 readings/s) into one: stitched, rewritten, and rewritten
// sorted by (sensor_id, ts) as gold is. cpu-ns/row is the process's CPU (the collector's
// included) per row compacted; output-MB the compacted file; read-cpu-ns/row the CPU of
// decoding the compacted file whole with pqarrow, the cost a reader pays for its layout.
// MaxOptimizeMemory is raised so that every mode compacts all 50 files.
func BenchmarkOptimize(b *testing.B) {
	const files, rows = 50, 14_000
	at := time.Date(2024, 5, 6, 12, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		table, mode string
	}{
		{"raw", "stitch"}, {"raw", "rewrite"},
		{"bronze", "stitch"}, {"bronze", "rewrite"}, {"bronze", "sorted"},
	} {
		b.Run(tc.table+"/"+tc.mode, func(b *testing.B) {
			ctx := context.Background()
			var cpu, readCPU time.Duration
			var out int64
			for i := range b.N {
				b.StopTimer()
				cfg := Config{Warehouse: b.TempDir(), MaxOptimizeMemory: 4 << 30}
				if tc.mode != "stitch" {
					cfg.StitchMinRowGroupRows = -1
				}
				c, err := New(cfg, nil, slog.New(slog.DiscardHandler))
				if err != nil {
					b.Fatal(err)
				}
				name := "s.t" + fmt.Sprint(i)
				def := TableDef{Name: name, SchemaJSON: datafiletest.RawSchemaString, PartitionColumns: datafiletest.RawPartitionColumns}
				opts := datafile.Options{PartitionColumns: datafiletest.RawPartitionColumns, PartitionValues: map[string]string{"ingest_date": "2024-05-06"}, PlainColumns: []string{"headers"}}
				batch := func(f int) arrow.RecordBatch { return datafiletest.RawBatch(nil, rows, int64(f*rows), at) }
				if tc.table == "bronze" {
					def = TableDef{Name: name, SchemaJSON: datafiletest.BronzeSchemaString, PartitionColumns: datafiletest.BronzePartitionColumns}
					opts = datafile.Options{PartitionColumns: datafiletest.BronzePartitionColumns, PartitionValues: map[string]string{"event_date": "2024-05-06"}, PlainColumns: datafiletest.BronzePlainColumns}
					batch = func(f int) arrow.RecordBatch { return datafiletest.BronzeBatch(nil, rows, int64(f*rows), at) }
				}
				if tc.mode == "sorted" {
					def.Properties = map[string]string{maintenance.PropOptimizeSortBy: "sensor_id,ts"}
				}
				if _, _, err := c.CreateTable(ctx, def); err != nil {
					b.Fatal(err)
				}
				store, err := storage.NewLocal(filepath.Join(c.Root(), "s", "t"+fmt.Sprint(i)))
				if err != nil {
					b.Fatal(err)
				}
				var adds []delta.Add
				for f := range files {
					rec := batch(f)
					add, err := datafile.Write(ctx, store, opts, rec)
					rec.Release()
					if err != nil {
						b.Fatal(err)
					}
					adds = append(adds, add)
				}
				if _, err := c.Commit(ctx, &CommitRequest{Table: name, ReadVersion: 0, BlindAppend: true, Adds: adds}); err != nil {
					b.Fatal(err)
				}
				cpu0 := processCPU()
				b.StartTimer()
				res, err := c.Optimize(ctx, OptimizeRequest{Table: name})
				b.StopTimer()
				cpu += processCPU() - cpu0
				if err != nil || res.FilesRemoved != files || res.FilesAdded != 1 || (res.FilesStitched == 1) != (tc.mode == "stitch") {
					b.Fatalf("Optimize = %+v, %v", res, err)
				}
				out = res.BytesAdded
				snap, err := c.Snapshot(ctx, name, At{})
				if err != nil {
					b.Fatal(err)
				}
				data, err := store.ReadFile(ctx, snap.Files[0].Path)
				if err != nil {
					b.Fatal(err)
				}
				cpu0 = processCPU()
				tbl, err := pqarrow.ReadTable(ctx, bytes.NewReader(data), nil, pqarrow.ArrowReadProperties{BatchSize: 64 << 10}, memory.DefaultAllocator)
				readCPU += processCPU() - cpu0
				if err != nil {
					b.Fatal(err)
				}
				tbl.Release()
				c.Close()
			}
			n := float64(b.N * files * rows)
			b.ReportMetric(float64(cpu.Nanoseconds())/n, "cpu-ns/row")
			b.ReportMetric(float64(readCPU.Nanoseconds())/n, "read-cpu-ns/row")
			b.ReportMetric(float64(out)/1e6, "output-MB")
		})
	}
}
