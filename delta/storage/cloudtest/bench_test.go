package cloudtest

import (
	"context"
	"flag"
	"fmt"
	"os"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/plantlake/plantlake/delta"
	"github.com/plantlake/plantlake/delta/datafile"
	"github.com/plantlake/plantlake/delta/datafile/datafiletest"
	"github.com/plantlake/plantlake/delta/reader"
	"github.com/plantlake/plantlake/delta/storage"
	"github.com/plantlake/plantlake/devstack"
)

var benchReport = flag.String("bench-report", "", "run the cloud store benchmarks and write a Markdown report to this file (e.g. ../../../bench/results/cloud.md)")

// Sizes of the benchmark; small enough for a 2-core machine shared with
// the servers, large enough that the medians are stable.
const (
	benchRounds    = 5
	benchCommits   = 40     // commits (and bare puts) per round
	benchRows      = 200000 // rows of the Parquet file written and read per round
	commitTemplate = `{"commitInfo":{"timestamp":%d,"operation":"WRITE","operationParameters":{"mode":"Append"},"readVersion":%d,"isBlindAppend":true}}
{"add":{"path":"day=2024-01-01/part-%05d.parquet","partitionValues":{"day":"2024-01-01"},"size":10,"modificationTime":1,"dataChange":true}}
`
)

// storeBench is one store's measurements over the rounds.
type storeBench struct {
	name string
	// per round: rates of the bare loop and of the library
	putRate, commitRate  []float64
	blobWrite, parqWrite []float64 // MB/s
	blobRead, parqRead   []float64 // MB/s
	commitRatio, wRatio  []float64
	rRatio               []float64
	fileBytes            int64
}

func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s) == 0 {
		return 0
	}
	return s[len(s)/2]
}

// TestBenchReport measures, on moto (S3) and Azurite (Azure Blob) in one
// run, commits per second to one table and Parquet write and read
// throughput, each as a ratio to the same store's bare operation: the
// conditional-put loop for commits, putting and getting the same bytes as
// one object for Parquet. Runs only with -bench-report (make bench sets it).
func TestBenchReport(t *testing.T) {
	if *benchReport == "" {
		return
	}
	ctx := context.Background()
	var results []*storeBench
	stores := []struct {
		name string
		st   storage.Store
	}{}
	local, err := storage.NewLocal(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	stores = append(stores, struct {
		name string
		st   storage.Store
	}{"local disk (reference)", local})
	for _, c := range clouds(t) {
		stores = append(stores, struct {
			name string
			st   storage.Store
		}{c.name, c.open(t, "bench")})
	}
	for _, c := range stores {
		b := &storeBench{name: c.name}
		results = append(results, b)
		st := c.st
		tbl, err := delta.Create(ctx, mustSubT(t, st, "table"), delta.Metadata{SchemaString: datafiletest.RawSchemaString, PartitionColumns: datafiletest.RawPartitionColumns}, delta.Protocol{})
		if err != nil {
			t.Fatal(err)
		}
		putSeq, commitSeq := 0, 0
		for round := range benchRounds {
			// Commits: the bare loop puts commit-sized objects with
			// If-None-Match; Table.Commit does the same plus its own work.
			loop := func() float64 {
				start := time.Now()
				for range benchCommits {
					payload := fmt.Sprintf(commitTemplate, time.Now().UnixMilli(), putSeq, putSeq)
					if err := st.PutIfAbsent(ctx, fmt.Sprintf("loop/_delta_log/%020d.json", putSeq), []byte(payload)); err != nil {
						t.Fatal(err)
					}
					putSeq++
				}
				return benchCommits / time.Since(start).Seconds()
			}
			commits := func() float64 {
				start := time.Now()
				for range benchCommits {
					commitSeq++
					p := fmt.Sprintf("ingest_date=2024-01-01/part-%05d.parquet", commitSeq)
					req := delta.CommitRequest{ReadVersion: int64(commitSeq - 1), Operation: "WRITE", BlindAppend: true,
						Actions: []delta.Action{{Add: &delta.Add{Path: p, PartitionValues: map[string]string{"ingest_date": "2024-01-01"}, Size: 10, ModificationTime: 1, DataChange: true}}}}
					if _, err := tbl.Commit(ctx, req); err != nil {
						t.Fatal(err)
					}
				}
				return benchCommits / time.Since(start).Seconds()
			}
			var l, cm float64
			if round%2 == 0 {
				l, cm = loop(), commits()
			} else {
				cm, l = commits(), loop()
			}
			b.putRate, b.commitRate = append(b.putRate, l), append(b.commitRate, cm)
			b.commitRatio = append(b.commitRatio, cm/l)

			// Parquet: write one file with the library, then put the same
			// bytes as a bare object; read both back.
			rec := datafiletest.RawBatch(nil, benchRows, int64(round)*benchRows, time.Date(2024, 5, 6, 12, 0, 0, 0, time.UTC))
			parts, err := datafile.SplitByPartition(ctx, nil, rec, datafiletest.RawPartitionColumns)
			rec.Release()
			if err != nil || len(parts) != 1 {
				t.Fatalf("split: %d parts, %v", len(parts), err)
			}
			dataStore := mustSubT(t, st, fmt.Sprintf("parquet/r%d", round))
			dataTbl, err := delta.Create(ctx, dataStore, delta.Metadata{SchemaString: datafiletest.RawSchemaString, PartitionColumns: datafiletest.RawPartitionColumns}, delta.Protocol{})
			if err != nil {
				t.Fatal(err)
			}
			start := time.Now()
			add, err := datafile.Write(ctx, dataStore, datafile.Options{Compression: datafile.Zstd,
				PartitionColumns: datafiletest.RawPartitionColumns, PartitionValues: parts[0].Values}, parts[0].Record)
			parts[0].Record.Release()
			if err != nil {
				t.Fatal(err)
			}
			pw := time.Since(start).Seconds()
			if _, err := dataTbl.Commit(ctx, delta.CommitRequest{ReadVersion: 0, Operation: "WRITE", BlindAppend: true, Actions: []delta.Action{{Add: &add}}}); err != nil {
				t.Fatal(err)
			}
			rel, err := delta.DataPath(add.Path)
			if err != nil {
				t.Fatal(err)
			}
			raw, err := dataStore.ReadFile(ctx, rel)
			if err != nil {
				t.Fatal(err)
			}
			b.fileBytes = int64(len(raw))
			start = time.Now()
			if err := st.PutIfAbsent(ctx, fmt.Sprintf("blob/r%d.bin", round), raw); err != nil {
				t.Fatal(err)
			}
			bw := time.Since(start).Seconds()
			mb := float64(len(raw)) / 1e6
			b.parqWrite, b.blobWrite = append(b.parqWrite, mb/pw), append(b.blobWrite, mb/bw)
			b.wRatio = append(b.wRatio, bw/pw)

			start = time.Now()
			if _, err := st.ReadFile(ctx, fmt.Sprintf("blob/r%d.bin", round)); err != nil {
				t.Fatal(err)
			}
			br := time.Since(start).Seconds()
			rows, pr := readTable(t, dataTbl)
			if rows != benchRows {
				t.Fatalf("read %d rows, want %d", rows, benchRows)
			}
			b.parqRead, b.blobRead = append(b.parqRead, mb/pr), append(b.blobRead, mb/br)
			b.rRatio = append(b.rRatio, br/pr)
			t.Logf("%s round %d: put %.0f/s commit %.0f/s; parquet write %.1f MB/s (blob %.1f), read %.1f MB/s (blob %.1f)",
				c.name, round, l, cm, mb/pw, mb/bw, mb/pr, mb/br)
		}
	}
	var sb strings.Builder
	fmt.Fprintf(&sb, "# Cloud stores: commits and Parquet throughput\n\n")
	fmt.Fprintf(&sb, "Measured %s on %s/%s, %d CPUs, Go %s, against servers on this machine: moto %s (S3) and Azurite %s (Azure Blob), "+
		"both started by devstack (`go test -run TestBenchReport -bench-report ...` in `delta/storage/cloudtest/`). "+
		"%d rounds, the library and its baseline alternating (order flipped every round); rates are medians over the rounds, "+
		"ratios the median of the per-round ratios. These servers are emulators written in Python and Node.js: the absolute "+
		"numbers say little about S3 or ADLS, the ratios say what the library adds on top of the store's own round trips.\n\n",
		time.Now().UTC().Format("2006-01-02 15:04 UTC"), runtime.GOOS, runtime.GOARCH, runtime.NumCPU(), runtime.Version(),
		devstack.MotoVersion, devstack.AzuriteVersion, benchRounds)
	fmt.Fprintf(&sb, "## Commits to one table (%d per round)\n\n", benchCommits)
	fmt.Fprintf(&sb, "Baseline: a bare loop of conditional puts (`PutIfAbsent`, If-None-Match: *) of commit-sized objects to new keys. "+
		"Library: `Table.Commit` of one-file blind appends to one table.\n\n")
	fmt.Fprintf(&sb, "| store | bare conditional puts/s | `Table.Commit`/s | ratio |\n|---|---:|---:|---:|\n")
	for _, b := range results {
		fmt.Fprintf(&sb, "| %s | %.0f | %.0f | %.2f× |\n", b.name, median(b.putRate), median(b.commitRate), median(b.commitRatio))
	}
	fmt.Fprintf(&sb, "\n## Parquet write and read (%d raw readings, zstd)\n\n", benchRows)
	fmt.Fprintf(&sb, "Write: `datafile.Write` (encode, stats, upload) against a bare conditional put of the same bytes. "+
		"Read: `reader.Scan` of the file (ranged reads, decode to Arrow) against a bare get of the whole object. MB/s of Parquet file bytes.\n\n")
	fmt.Fprintf(&sb, "| store | file MB | write rows/s | write MB/s | bare put MB/s | write ratio | read rows/s | read MB/s | bare get MB/s | read ratio |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, b := range results {
		mb := float64(b.fileBytes) / 1e6
		fmt.Fprintf(&sb, "| %s | %.2f | %.0f | %.1f | %.1f | %.2f× | %.0f | %.1f | %.1f | %.2f× |\n", b.name, mb,
			benchRows*median(b.parqWrite)/mb, median(b.parqWrite), median(b.blobWrite), median(b.wRatio),
			benchRows*median(b.parqRead)/mb, median(b.parqRead), median(b.blobRead), median(b.rRatio))
	}
	fmt.Fprintf(&sb, "\nThe local disk row is the reference: the library's Parquet rates there are as low as on the servers, so on this "+
		"machine encoding and decoding (CPU), not the store, bound Parquet throughput; the raw readings compress about 30:1, which "+
		"makes the bare transfer of the same bytes look fast.\n")
	if err := os.WriteFile(*benchReport, []byte(sb.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("\n%s", sb.String())
}

func mustSubT(t *testing.T, s storage.Store, prefix string) storage.Store {
	t.Helper()
	sub, err := storage.Sub(s, prefix)
	if err != nil {
		t.Fatal(err)
	}
	return sub
}

// readTable scans the latest snapshot of tbl and returns the rows read
// and the seconds the scan took.
func readTable(t *testing.T, tbl *delta.Table) (int64, float64) {
	t.Helper()
	ctx := context.Background()
	snap, err := tbl.Snapshot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	s, err := reader.New(tbl.Store(), snap, reader.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var rows int64
	for rec, err := range s.Records(ctx) {
		if err != nil {
			t.Fatal(err)
		}
		rows += rec.NumRows()
	}
	return rows, time.Since(start).Seconds()
}
