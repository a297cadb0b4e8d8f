package delta

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/plantlake/plantlake/delta/storage"
)

var benchReport = flag.String("bench-report", "", "run the Delta benchmarks and write a Markdown report to this file (e.g. ../bench/results/delta.md)")

// bigTable is a 10,000-commit table built once per test binary.
var (
	bigOnce   sync.Once
	bigRoot   string
	bigErr    error
	bigCommit = 10000
)

// buildBigTable writes commits 0..n-1 directly (no fsync, it is only a
// fixture), each adding one file, plus a checkpoint at n-10 when cp.
func buildBigTable(dir string, n int, cp bool) error {
	st, err := storage.NewLocal(dir)
	if err != nil {
		return err
	}
	ctx := context.Background()
	if _, err := Create(ctx, st, Metadata{SchemaString: testSchema, PartitionColumns: []string{"day"}}, Protocol{}); err != nil {
		return err
	}
	logDir := filepath.Join(dir, LogDir)
	for v := 1; v < n; v++ {
		rv := int64(v - 1)
		blind := true
		acts := []Action{
			{CommitInfo: &CommitInfo{Timestamp: time.Now().UnixMilli(), Operation: "WRITE", ReadVersion: &rv, IsBlindAppend: &blind}},
			addAction(fmt.Sprintf("day=2024-01-01/part-%05d-7f49f4e3-2c9c-4ea7-b6c3-42c9a6fc6070.parquet", v), "2024-01-01"),
			{Txn: &Txn{AppID: fmt.Sprintf("ingest/topic/%d", v%6), Version: int64(v)}},
		}
		// Every file has its own stats, as real files do.
		acts[1].Add.Stats = fmt.Sprintf(`{"numRecords":1000,"minValues":{"id":%d},"maxValues":{"id":%d},"nullCount":{"id":0}}`, v*1000, v*1000+999)
		b, err := MarshalActions(acts)
		if err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(logDir, fmt.Sprintf("%020d.json", v)), b, 0o644); err != nil {
			return err
		}
	}
	if cp {
		if _, err := Open(st).Checkpoint(ctx, int64(n-10)); err != nil {
			return err
		}
	}
	return nil
}

func bigTables(tb testing.TB) (withCP, withoutCP string) {
	bigOnce.Do(func() {
		bigRoot, bigErr = os.MkdirTemp("", "delta-bench-")
		if bigErr == nil {
			bigErr = buildBigTable(filepath.Join(bigRoot, "cp"), bigCommit, true)
		}
		if bigErr == nil {
			bigErr = buildBigTable(filepath.Join(bigRoot, "nocp"), bigCommit, false)
		}
	})
	if bigErr != nil {
		tb.Fatal(bigErr)
	}
	return filepath.Join(bigRoot, "cp"), filepath.Join(bigRoot, "nocp")
}

func benchSnapshot(b *testing.B, dir string) {
	st, err := storage.NewLocal(dir)
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		s, err := Open(st).Snapshot(ctx) // a fresh Table: no cache
		if err != nil {
			b.Fatal(err)
		}
		if s.Version() != int64(bigCommit-1) || s.NumFiles() != bigCommit-1 {
			b.Fatalf("version %d, %d files", s.Version(), s.NumFiles())
		}
	}
}

// BenchmarkSnapshot10kCommitsCheckpoint loads the latest snapshot of a
// 10,000-commit table with a checkpoint 10 versions back.
func BenchmarkSnapshot10kCommitsCheckpoint(b *testing.B) {
	cp, _ := bigTables(b)
	benchSnapshot(b, cp)
}

// BenchmarkSnapshot10kCommitsNoCheckpoint replays all 10,000 commits.
func BenchmarkSnapshot10kCommitsNoCheckpoint(b *testing.B) {
	_, nocp := bigTables(b)
	benchSnapshot(b, nocp)
}

// BenchmarkCommitBlindAppend commits durable one-file blind appends to one
// table, one after the other.
func BenchmarkCommitBlindAppend(b *testing.B) {
	tbl, _ := newTestTable(b)
	ctx := context.Background()
	v := int64(0)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		req := appendReq(v, fmt.Sprintf("day=2024-01-01/part-%05d-7f49f4e3-2c9c-4ea7-b6c3-42c9a6fc6070.parquet", i))
		req.Actions = append(req.Actions, Action{Txn: &Txn{AppID: "ingest/topic/0", Version: int64(i)}})
		var err error
		if v, err = tbl.Commit(ctx, req); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkPutIfAbsentLoop is the bare durable put-if-absent loop a commit
// cannot beat: temporary file, fsync, hard link, remove, folder fsync.
func BenchmarkPutIfAbsentLoop(b *testing.B) {
	dir := b.TempDir()
	payload := []byte(strings.Repeat("x", 600))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		tmp := filepath.Join(dir, fmt.Sprintf(".%d.tmp", i))
		f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := f.Write(payload); err != nil {
			b.Fatal(err)
		}
		if err := f.Sync(); err != nil {
			b.Fatal(err)
		}
		f.Close()
		if err := os.Link(tmp, filepath.Join(dir, fmt.Sprintf("%020d.json", i))); err != nil {
			b.Fatal(err)
		}
		os.Remove(tmp)
		d, err := os.Open(dir)
		if err != nil {
			b.Fatal(err)
		}
		if err := d.Sync(); err != nil {
			b.Fatal(err)
		}
		d.Close()
	}
}

// TestBenchReport runs the benchmarks and writes the Markdown report named
// by -bench-report; without the flag it does nothing (make bench sets it).
func TestBenchReport(t *testing.T) {
	if *benchReport == "" {
		return
	}
	type result struct {
		name string
		r    testing.BenchmarkResult
	}
	run := func(name string, f func(*testing.B)) result {
		r := testing.Benchmark(f)
		t.Logf("%s: %s", name, r)
		return result{name, r}
	}
	// Interleave the commit benchmarks so both see the same disk state.
	loop1 := run("put-if-absent loop", BenchmarkPutIfAbsentLoop)
	commit1 := run("Delta commit", BenchmarkCommitBlindAppend)
	loop2 := run("put-if-absent loop", BenchmarkPutIfAbsentLoop)
	commit2 := run("Delta commit", BenchmarkCommitBlindAppend)
	snapCP := run("snapshot, 10,000 commits, checkpoint at 9,990", BenchmarkSnapshot10kCommitsCheckpoint)
	snapNoCP := run("snapshot, 10,000 commits, no checkpoint", BenchmarkSnapshot10kCommitsNoCheckpoint)
	perSec := func(r testing.BenchmarkResult) float64 { return float64(r.N) / r.T.Seconds() }
	loopRate := (perSec(loop1.r) + perSec(loop2.r)) / 2
	commitRate := (perSec(commit1.r) + perSec(commit2.r)) / 2
	ms := func(r testing.BenchmarkResult) float64 { return float64(r.NsPerOp()) / 1e6 }

	var sb strings.Builder
	fmt.Fprintf(&sb, "# Delta library benchmarks\n\n")
	fmt.Fprintf(&sb, "Measured %s on %s/%s, %d CPUs, Go %s, local disk (`go test -run TestBenchReport -bench-report ...` in `delta/`).\n\n",
		time.Now().UTC().Format("2006-01-02 15:04 UTC"), runtime.GOOS, runtime.GOARCH, runtime.NumCPU(), runtime.Version())
	fmt.Fprintf(&sb, "## Durable commits to one table\n\n")
	fmt.Fprintf(&sb, "| what | commits/s | target |\n|---|---:|---|\n")
	fmt.Fprintf(&sb, "| bare put-if-absent loop (temp file, fsync, link, dir fsync) | %.0f | baseline |\n", loopRate)
	fmt.Fprintf(&sb, "| `Table.Commit`, one-file blind append + txn | %.0f | ≥ 0.8× loop |\n", commitRate)
	fmt.Fprintf(&sb, "| ratio | %.2f× | %s |\n\n", commitRate/loopRate, verdict(commitRate/loopRate >= 0.8))
	fmt.Fprintf(&sb, "## Snapshot load (fresh `Table`, latest version)\n\n")
	fmt.Fprintf(&sb, "| table | ms/snapshot | target |\n|---|---:|---|\n")
	fmt.Fprintf(&sb, "| 10,000 commits, checkpoint at 9,990 | %.1f | ≤ 100 ms %s |\n", ms(snapCP.r), verdict(ms(snapCP.r) <= 100))
	fmt.Fprintf(&sb, "| 10,000 commits, no checkpoint | %.1f | – |\n", ms(snapNoCP.r))
	fmt.Print(sb.String())
	if err := os.MkdirAll(filepath.Dir(*benchReport), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(*benchReport, []byte(sb.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	if bigRoot != "" {
		os.RemoveAll(bigRoot)
	}
}

func verdict(ok bool) string {
	if ok {
		return "met"
	}
	return "**missed**"
}
