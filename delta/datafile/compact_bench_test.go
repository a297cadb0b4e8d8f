package datafile_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"syscall"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet/file"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"

	"github.com/plantlake/plantlake/delta"
	"github.com/plantlake/plantlake/delta/datafile"
	"github.com/plantlake/plantlake/delta/datafile/datafiletest"
	"github.com/plantlake/plantlake/delta/storage"
)

// compactionInputs writes files of rows rows each, as ingest (raw) or deserialize (bronze)
// writes them, and returns their adds with paths as a snapshot lists them.
func compactionInputs(b *testing.B, st storage.Store, table string, files, rows int) ([]delta.Add, datafile.Options) {
	b.Helper()
	at := time.Date(2024, 5, 6, 12, 0, 0, 0, time.UTC)
	var opts datafile.Options
	var batch func(i int) arrow.RecordBatch
	switch table {
	case "raw":
		opts = datafile.Options{PartitionColumns: datafiletest.RawPartitionColumns, PartitionValues: map[string]string{"ingest_date": "2024-05-06"}, PlainColumns: []string{"headers"}}
		batch = func(i int) arrow.RecordBatch { return datafiletest.RawBatch(nil, rows, int64(i*rows), at) }
	default:
		opts = datafile.Options{PartitionColumns: datafiletest.BronzePartitionColumns, PartitionValues: map[string]string{"event_date": "2024-05-06"}, PlainColumns: datafiletest.BronzePlainColumns}
		batch = func(i int) arrow.RecordBatch { return datafiletest.BronzeBatch(nil, rows, int64(i*rows), at) }
	}
	var adds []delta.Add
	for i := range files {
		rec := batch(i)
		add, err := datafile.Write(context.Background(), st, opts, rec)
		rec.Release()
		if err != nil {
			b.Fatal(err)
		}
		adds = append(adds, add)
	}
	return adds, opts
}

// rewriteFiles is compaction without stitching, as the catalog does it for a table without a
// sort order: every file decoded to Arrow (64 Ki-row batches) and the rows encoded again.
func rewriteFiles(ctx context.Context, st storage.Store, opts datafile.Options, inputs []delta.Add) (delta.Add, error) {
	var recs []arrow.RecordBatch
	defer func() {
		for _, r := range recs {
			r.Release()
		}
	}()
	for _, in := range inputs {
		f, err := st.Open(ctx, in.Path)
		if err != nil {
			return delta.Add{}, err
		}
		pf, err := file.NewParquetReader(io.NewSectionReader(f, 0, f.Size()))
		if err != nil {
			f.Close()
			return delta.Add{}, err
		}
		fr, err := pqarrow.NewFileReader(pf, pqarrow.ArrowReadProperties{BatchSize: 64 << 10}, memory.DefaultAllocator)
		if err != nil {
			return delta.Add{}, err
		}
		rr, err := fr.GetRecordReader(ctx, nil, nil)
		if err != nil {
			return delta.Add{}, err
		}
		for rr.Next() {
			rec := rr.RecordBatch()
			rec.Retain()
			recs = append(recs, rec)
		}
		if err := rr.Err(); err != nil && !errors.Is(err, io.EOF) {
			return delta.Add{}, err
		}
		rr.Release()
		pf.Close()
		f.Close()
	}
	add, err := datafile.Write(ctx, st, opts, recs...)
	add.DataChange = false
	return add, err
}

// cpuTime is the process's user and system CPU time.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkCompact measures compaction of 50 files of 14,000 rows (a commit's file of raw or
// bronze at some 14,000 readings/s) into one: rewriting (decode and encode) against stitching
// (copy the column chunks). cpu-ns/row is the process's CPU time (all threads, the
// collector's too) per row compacted; the files are written to local disk.
func BenchmarkCompact(b *testing.B) {
	const files, rows = 50, 14_000
	for _, table := range []string{"raw", "bronze"} {
		st, err := storage.NewLocal(b.TempDir())
		if err != nil {
			b.Fatal(err)
		}
		inputs, opts := compactionInputs(b, st, table, files, rows)
		var inBytes int64
		for _, in := range inputs {
			inBytes += in.Size
		}
		for _, mode := range []string{"rewrite", "stitch"} {
			b.Run(table+"/"+mode, func(b *testing.B) {
				ctx := context.Background()
				var out int64
				b.ReportAllocs()
				cpu0 := cpuTime()
				b.ResetTimer()
				for range b.N {
					var add delta.Add
					var err error
					if mode == "stitch" {
						add, err = datafile.Stitch(ctx, st, datafile.StitchOptions{PartitionColumns: opts.PartitionColumns}, inputs)
					} else {
						add, err = rewriteFiles(ctx, st, opts, inputs)
					}
					if err != nil {
						b.Fatal(err)
					}
					out = add.Size
					b.StopTimer()
					if err := st.Delete(ctx, add.Path); err != nil {
						b.Fatal(err)
					}
					b.StartTimer()
				}
				b.StopTimer()
				cpu := cpuTime() - cpu0
				b.ReportMetric(float64(cpu.Nanoseconds())/float64(b.N*files*rows), "cpu-ns/row")
				b.ReportMetric(float64(inBytes)/files/1000, "input-KB/file")
				b.ReportMetric(float64(out)/1e6, "output-MB")
				datafiletest.ReportRows(b, files*rows, out)
			})
		}
	}
}

// BenchmarkReadStitched measures what stitching costs readers: decoding a whole file stitched
// from files of n rows each (280,000 rows in all, so a row group of n rows) with pqarrow, per
// row, against the same rows written as one row group (n = all).
func BenchmarkReadStitched(b *testing.B) {
	const total = 280_000
	ctx := context.Background()
	for _, table := range []string{"raw", "bronze"} {
		for _, n := range []int{250, 1000, 2800, 14_000, total} {
			b.Run(fmt.Sprintf("%s/rows=%d", table, n), func(b *testing.B) {
				st, err := storage.NewLocal(b.TempDir())
				if err != nil {
					b.Fatal(err)
				}
				var path string
				if n == total {
					inputs, _ := compactionInputs(b, st, table, 1, total)
					path = inputs[0].Path
				} else {
					inputs, opts := compactionInputs(b, st, table, total/n, n)
					add, err := datafile.Stitch(ctx, st, datafile.StitchOptions{PartitionColumns: opts.PartitionColumns, MinRowGroupRows: 1}, inputs)
					if err != nil {
						b.Fatal(err)
					}
					path = add.Path
				}
				data, err := st.ReadFile(ctx, path)
				if err != nil {
					b.Fatal(err)
				}
				b.ResetTimer()
				cpu0 := cpuTime()
				for range b.N {
					tbl, err := pqarrow.ReadTable(ctx, bytes.NewReader(data), nil, pqarrow.ArrowReadProperties{BatchSize: 64 << 10}, memory.DefaultAllocator)
					if err != nil {
						b.Fatal(err)
					}
					tbl.Release()
				}
				cpu := cpuTime() - cpu0
				b.ReportMetric(float64(cpu.Nanoseconds())/float64(b.N*total), "read-cpu-ns/row")
				b.ReportMetric(float64(len(data))/1e6, "file-MB")
			})
		}
	}
}
