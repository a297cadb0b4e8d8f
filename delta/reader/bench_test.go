package reader

import (
	"context"
	"flag"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/plantlake/plantlake/delta"
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

// BenchmarkReadRaw measures a full scan of a one-file raw table of 100,000 rows: Parquet
// decoding, shaping to the table schema, the partition column.
func BenchmarkReadRaw(b *testing.B) {
	ctx := context.Background()
	const n = 100_000
	st, err := storage.NewLocal(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	tbl, err := delta.Create(ctx, st, delta.Metadata{SchemaString: datafiletest.RawSchemaString, PartitionColumns: datafiletest.RawPartitionColumns}, delta.Protocol{})
	if err != nil {
		b.Fatal(err)
	}
	rec := datafiletest.RawBatch(nil, n, 0, time.Date(2024, 5, 6, 12, 0, 0, 0, time.UTC))
	add, err := datafile.Write(ctx, st, datafile.Options{PartitionColumns: datafiletest.RawPartitionColumns, PartitionValues: map[string]string{"ingest_date": "2024-05-06"}}, rec)
	rec.Release()
	if err != nil {
		b.Fatal(err)
	}
	if _, err := tbl.Commit(ctx, delta.CommitRequest{ReadVersion: 0, Operation: "WRITE", BlindAppend: true, Actions: []delta.Action{{Add: &add}}}); err != nil {
		b.Fatal(err)
	}
	snap, err := tbl.Snapshot(ctx)
	if err != nil {
		b.Fatal(err)
	}
	for _, c := range []struct {
		name string
		opts Options
		want int64
	}{
		{"all columns", Options{}, n},
		{"two columns", Options{Columns: []string{"kafka_offset", "raw_payload"}}, n},
		{"filtered 1 in 10", Options{Filters: []Filter{{Column: "bridge_ts", Op: IsNull}}}, n / 10},
	} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				s, err := New(st, snap, c.opts)
				if err != nil {
					b.Fatal(err)
				}
				var rows int64
				for r, err := range s.Records(ctx) {
					if err != nil {
						b.Fatal(err)
					}
					rows += r.NumRows()
				}
				s.Close()
				if rows != c.want {
					b.Fatalf("%d rows, want %d", rows, c.want)
				}
			}
			b.StopTimer()
			datafiletest.ReportRows(b, n, add.Size)
		})
	}
}
