package datafile_test

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/parquet"
	"github.com/apache/arrow-go/v18/parquet/compress"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"

	"github.com/plantlake/plantlake/delta/datafile"
	"github.com/plantlake/plantlake/delta/datafile/datafiletest"
	"github.com/plantlake/plantlake/delta/storage"
)

var benchMD = flag.String("bench-md", "", "merge benchmark results into this Markdown file (e.g. ../../bench/results/delta-parquet.md)")

func TestMain(m *testing.M) {
	flag.Parse()
	code := m.Run()
	if *benchMD != "" {
		if err := datafiletest.WriteBenchMarkdown(*benchMD, datafiletest.BenchTitle); err != nil {
			fmt.Fprintln(os.Stderr, "bench-md:", err)
			code = 1
		}
	}
	os.Exit(code)
}

// BenchmarkEncodeRaw measures building the Parquet bytes and stats of a raw batch in memory.
func BenchmarkEncodeRaw(b *testing.B) {
	for _, c := range []struct {
		name  string
		codec datafile.Compression
	}{{"snappy", datafile.Snappy}, {"zstd", datafile.Zstd}} {
		b.Run(c.name, func(b *testing.B) {
			const n = 100_000
			rec := datafiletest.RawBatch(nil, n, 0, time.Date(2024, 5, 6, 12, 0, 0, 0, time.UTC))
			defer rec.Release()
			opts := datafile.Options{PartitionColumns: datafiletest.RawPartitionColumns, PartitionValues: map[string]string{"ingest_date": "2024-05-06"}, Compression: c.codec}
			var size int
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				data, _, err := datafile.Encode(opts, rec)
				if err != nil {
					b.Fatal(err)
				}
				size = len(data)
			}
			b.StopTimer()
			datafiletest.ReportRows(b, n, int64(size))
		})
	}
}

// BenchmarkWriteRaw measures Write: encode, durable write to local disk (fsync), stat.
func BenchmarkWriteRaw(b *testing.B) {
	const n = 100_000
	st, err := storage.NewLocal(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	rec := datafiletest.RawBatch(nil, n, 0, time.Date(2024, 5, 6, 12, 0, 0, 0, time.UTC))
	defer rec.Release()
	opts := datafile.Options{PartitionColumns: datafiletest.RawPartitionColumns, PartitionValues: map[string]string{"ingest_date": "2024-05-06"}}
	var size int64
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		add, err := datafile.Write(context.Background(), st, opts, rec)
		if err != nil {
			b.Fatal(err)
		}
		size = add.Size
	}
	b.StopTimer()
	datafiletest.ReportRows(b, n, size)
}

// BenchmarkEncodeRawBareArrow is the baseline: the same batch through pqarrow with its default
// properties and Snappy, no stats of ours, no partition column removed.
func BenchmarkEncodeRawBareArrow(b *testing.B) {
	const n = 100_000
	rec := datafiletest.RawBatch(nil, n, 0, time.Date(2024, 5, 6, 12, 0, 0, 0, time.UTC))
	defer rec.Release()
	props := parquet.NewWriterProperties(parquet.WithCompression(compress.Codecs.Snappy))
	var size int
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		var buf bytes.Buffer
		fw, err := pqarrow.NewFileWriter(rec.Schema(), &buf, props, pqarrow.DefaultWriterProps())
		if err != nil {
			b.Fatal(err)
		}
		if err := fw.WriteBuffered(rec); err != nil {
			b.Fatal(err)
		}
		if err := fw.Close(); err != nil {
			b.Fatal(err)
		}
		size = buf.Len()
	}
	b.StopTimer()
	datafiletest.ReportRows(b, n, int64(size))
}

// BenchmarkSplitByPartition measures splitting a raw batch by ingest_date (one partition, the
// common case).
func BenchmarkSplitByPartition(b *testing.B) {
	const n = 100_000
	rec := datafiletest.RawBatch(nil, n, 0, time.Date(2024, 5, 6, 12, 0, 0, 0, time.UTC))
	defer rec.Release()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		parts, err := datafile.SplitByPartition(context.Background(), nil, rec, datafiletest.RawPartitionColumns)
		if err != nil {
			b.Fatal(err)
		}
		for _, p := range parts {
			p.Record.Release()
		}
	}
	b.StopTimer()
	datafiletest.ReportRows(b, n, 0)
}
