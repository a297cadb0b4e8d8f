package delta

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
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

// blindAppender commits durable one-file blind appends (plus a txn, as the
// ingest job writes) to one table, one after the other.
type blindAppender struct {
	tbl *Table
	v   int64 // latest committed version
	i   int   // commits made
}

func newBlindAppender(tb testing.TB) *blindAppender {
	tbl, _ := newTestTable(tb)
	return &blindAppender{tbl: tbl}
}

func (a *blindAppender) commit(ctx context.Context) error {
	req := appendReq(a.v, fmt.Sprintf("day=2024-01-01/part-%05d-7f49f4e3-2c9c-4ea7-b6c3-42c9a6fc6070.parquet", a.i))
	req.Actions = append(req.Actions, Action{Txn: &Txn{AppID: "ingest/topic/0", Version: int64(a.i)}})
	v, err := a.tbl.Commit(ctx, req)
	if err != nil {
		return err
	}
	if v != a.v+1 {
		return fmt.Errorf("committed version %d, want %d", v, a.v+1)
	}
	a.v, a.i = v, a.i+1
	return nil
}

// BenchmarkCommitBlindAppend commits durable one-file blind appends to one
// table, one after the other.
func BenchmarkCommitBlindAppend(b *testing.B) {
	a := newBlindAppender(b)
	ctx := context.Background()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := a.commit(ctx); err != nil {
			b.Fatal(err)
		}
	}
}

// putLoop is the bare durable put-if-absent loop a commit cannot beat:
// temporary file, fsync, hard link, remove, folder fsync.
type putLoop struct {
	dir     string
	payload []byte
	i       int
}

func newPutLoop(tb testing.TB) *putLoop {
	return &putLoop{dir: tb.TempDir(), payload: []byte(strings.Repeat("x", 600))}
}

func (l *putLoop) put() error {
	tmp := filepath.Join(l.dir, fmt.Sprintf(".%d.tmp", l.i))
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return err
	}
	if _, err := f.Write(l.payload); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Link(tmp, filepath.Join(l.dir, fmt.Sprintf("%020d.json", l.i))); err != nil {
		return err
	}
	if err := os.Remove(tmp); err != nil {
		return err
	}
	d, err := os.Open(l.dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	d.Close()
	l.i++
	return err
}

// BenchmarkPutIfAbsentLoop is the bare durable put-if-absent loop a commit
// cannot beat: temporary file, fsync, hard link, remove, folder fsync.
func BenchmarkPutIfAbsentLoop(b *testing.B) {
	l := newPutLoop(b)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := l.put(); err != nil {
			b.Fatal(err)
		}
	}
}

// commitComparison is the put-if-absent loop and Table.Commit measured in
// alternating rounds.
type commitComparison struct {
	rounds, perRound   int
	loopRates          []float64 // commits/s per round
	commitRates        []float64
	ratios             []float64 // commit/loop per round
	loopMedian         float64
	commitMedian       float64
	ratioMedian        float64
	ratioMin, ratioMax float64
}

// compareCommitRates measures the put-if-absent loop and Table.Commit in
// alternating rounds of perRound commits each (the order flips every round),
// so both see the same disk: this machine's fsync rate drifts by 2× within
// minutes, which makes two back-to-back runs incomparable. The ratio is the
// median of the per-round ratios.
func compareCommitRates(tb testing.TB, rounds, perRound int) commitComparison {
	tb.Helper()
	ctx := context.Background()
	loop, app := newPutLoop(tb), newBlindAppender(tb)
	timeN := func(op func() error) float64 {
		start := time.Now()
		for i := 0; i < perRound; i++ {
			if err := op(); err != nil {
				tb.Fatal(err)
			}
		}
		return float64(perRound) / time.Since(start).Seconds()
	}
	doLoop := func() error { return loop.put() }
	doCommit := func() error { return app.commit(ctx) }
	// Warm up both (page cache, first directory blocks, code paths).
	for i := 0; i < 20; i++ {
		if err := doLoop(); err != nil {
			tb.Fatal(err)
		}
		if err := doCommit(); err != nil {
			tb.Fatal(err)
		}
	}
	c := commitComparison{rounds: rounds, perRound: perRound}
	for r := 0; r < rounds; r++ {
		var lr, cr float64
		if r%2 == 0 {
			lr, cr = timeN(doLoop), timeN(doCommit)
		} else {
			cr, lr = timeN(doCommit), timeN(doLoop)
		}
		c.loopRates = append(c.loopRates, lr)
		c.commitRates = append(c.commitRates, cr)
		c.ratios = append(c.ratios, cr/lr)
	}
	c.loopMedian, c.commitMedian, c.ratioMedian = median(c.loopRates), median(c.commitRates), median(c.ratios)
	c.ratioMin, c.ratioMax = slices.Min(c.ratios), slices.Max(c.ratios)
	return c
}

// median returns the median of xs (the mean of the middle two for an even
// count); xs is not modified.
func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	n := len(s)
	if n == 0 {
		return 0
	}
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

func TestMedian(t *testing.T) {
	tests := []struct {
		in   []float64
		want float64
	}{
		{nil, 0},
		{[]float64{3}, 3},
		{[]float64{5, 1, 3}, 3},
		{[]float64{4, 1, 3, 2}, 2.5},
	}
	for _, tt := range tests {
		if got := median(tt.in); got != tt.want {
			t.Errorf("median(%v) = %v, want %v", tt.in, got, tt.want)
		}
	}
}

// TestCompareCommitRates runs a tiny interleaved comparison and checks its
// bookkeeping (the rates themselves depend on the disk).
func TestCompareCommitRates(t *testing.T) {
	c := compareCommitRates(t, 3, 5)
	if len(c.loopRates) != 3 || len(c.commitRates) != 3 || len(c.ratios) != 3 {
		t.Fatalf("got %d/%d/%d rounds, want 3", len(c.loopRates), len(c.commitRates), len(c.ratios))
	}
	for i := range c.ratios {
		if c.loopRates[i] <= 0 || c.commitRates[i] <= 0 || c.ratios[i] != c.commitRates[i]/c.loopRates[i] {
			t.Errorf("round %d: loop %v, commit %v, ratio %v", i, c.loopRates[i], c.commitRates[i], c.ratios[i])
		}
	}
	if c.ratioMin > c.ratioMedian || c.ratioMedian > c.ratioMax {
		t.Errorf("ratio min %v, median %v, max %v out of order", c.ratioMin, c.ratioMedian, c.ratioMax)
	}
}

// Rounds of the interleaved commit comparison in the bench report.
const (
	reportRounds   = 15
	reportPerRound = 200
)

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
	cmp := compareCommitRates(t, reportRounds, reportPerRound)
	for i := range cmp.ratios {
		t.Logf("round %2d: loop %6.0f/s, commit %6.0f/s, ratio %.2f", i, cmp.loopRates[i], cmp.commitRates[i], cmp.ratios[i])
	}
	snapCP := run("snapshot, 10,000 commits, checkpoint at 9,990", BenchmarkSnapshot10kCommitsCheckpoint)
	snapNoCP := run("snapshot, 10,000 commits, no checkpoint", BenchmarkSnapshot10kCommitsNoCheckpoint)
	ms := func(r testing.BenchmarkResult) float64 { return float64(r.NsPerOp()) / 1e6 }

	var sb strings.Builder
	fmt.Fprintf(&sb, "# Delta library benchmarks\n\n")
	fmt.Fprintf(&sb, "Measured %s on %s/%s, %d CPUs, Go %s, local disk (`go test -run TestBenchReport -bench-report ...` in `delta/`).\n\n",
		time.Now().UTC().Format("2006-01-02 15:04 UTC"), runtime.GOOS, runtime.GOARCH, runtime.NumCPU(), runtime.Version())
	fmt.Fprintf(&sb, "## Durable commits to one table\n\n")
	fmt.Fprintf(&sb, "Interleaved: %d rounds of %d commits each, loop and `Table.Commit` alternating (order flipped every round), "+
		"because this disk's fsync rate drifts by 2× within minutes. Rates are each side's median over the rounds; "+
		"the ratio is the median of the per-round ratios (range %.2f–%.2f).\n\n",
		cmp.rounds, cmp.perRound, cmp.ratioMin, cmp.ratioMax)
	fmt.Fprintf(&sb, "| what | commits/s | target |\n|---|---:|---|\n")
	fmt.Fprintf(&sb, "| bare put-if-absent loop (temp file, fsync, link, dir fsync) | %.0f | baseline |\n", cmp.loopMedian)
	fmt.Fprintf(&sb, "| `Table.Commit`, one-file blind append + txn | %.0f | ≥ 0.8× loop |\n", cmp.commitMedian)
	fmt.Fprintf(&sb, "| ratio | %.2f× | %s |\n\n", cmp.ratioMedian, verdict(cmp.ratioMedian >= 0.8))
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
