package service

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/plantlake/plantlake/delta"
	"github.com/plantlake/plantlake/delta/storage"
	catalogv1 "github.com/plantlake/plantlake/proto/plantlake/catalog/v1"
	"github.com/plantlake/plantlake/services/catalog/internal/catalog"
)

// BenchmarkCatalogReport measures the catalog end to end over gRPC and
// writes a Markdown table to bench/results/catalog.md (make bench runs it
// with -benchtime 1x: each workload has a fixed size).
//
//   - the Delta library's bare put-if-absent loop (temporary file, fsync,
//     hard link, folder fsync), the baseline of DESIGN.md section 7;
//   - blind-append commits over gRPC to one table from 16 clients (group
//     commit), from 1 client, and to 16 tables at once;
//   - GetSnapshot of a 10,000-commit table after a checkpoint: the first
//     call after a restart (load from the checkpoint) and warm calls;
//   - Scan rows/s over gRPC.
func BenchmarkCatalogReport(b *testing.B) {
	var rows [][3]string
	add := func(name, result, note string) {
		rows = append(rows, [3]string{name, result, note})
		b.Logf("%-55s %-22s %s", name, result, note)
	}
	for range b.N {
		rows = rows[:0]
		// The disk is shared: measure the baseline right before each
		// commit workload and compare with that.
		loop := putIfAbsentLoop(b, 1000)
		add("Delta put-if-absent loop (library, 1 writer)", fmt.Sprintf("%.0f commits/s", loop), "temp file + fsync + link + dir fsync")
		one := grpcCommits(b, 1, 16, 4000)
		add("Commit over gRPC, 1 table, 16 clients", fmt.Sprintf("%.0f commits/s", one.rate),
			fmt.Sprintf("**%.2f× the loop**; %d commits in %d versions (group commit)", one.rate/loop, one.commits, one.versions))
		seq := oneClient(b, 1000)
		add("Delta put-if-absent loop, interleaved with the next row", fmt.Sprintf("%.0f commits/s", seq.loop),
			fmt.Sprintf("one write of each in turn, %d of each, the client pausing %v after each commit; p50 %d µs", seq.commits, oneClientPause, seq.loopP50.Microseconds()))
		add("Commit over gRPC (TCP loopback), 1 table, 1 client", fmt.Sprintf("%.0f commits/s", seq.grpc),
			fmt.Sprintf("**%.2f× the loop** (tenths of the run %.2f–%.2f×); p50 %d µs; one commit per round trip, no grouping possible",
				seq.ratio, seq.lo, seq.hi, seq.p50.Microseconds()))
		add("Commit over gRPC (Unix socket), 1 table, 1 client", fmt.Sprintf("%.0f commits/s", seq.unix),
			fmt.Sprintf("**%.2f× the loop** (tenths of the run %.2f–%.2f×); p50 %d µs; --unix-socket, the hops' address on one machine; same run, the two in turn",
				seq.unixRatio, seq.unixLo, seq.unixHi, seq.unixP50.Microseconds()))
		loop = putIfAbsentLoop(b, 1000)
		add("Delta put-if-absent loop (again)", fmt.Sprintf("%.0f commits/s", loop), "baseline for the next row")
		many := grpcCommits(b, 16, 16, 4000)
		add("Commit over gRPC, 16 tables, 16 clients", fmt.Sprintf("%.0f commits/s", many.rate), fmt.Sprintf("%.2f× the loop; %d commits in %d versions", many.rate/loop, many.commits, many.versions))

		library, cold, p50, p99, lean, travel := snapshotLatency(b, 10000)
		add("Delta library Snapshot, 10,000-commit table (cold, no gRPC)", fmt.Sprintf("%.1f ms", ms(library)), "checkpoint at 9,990 + 10 commits")
		add("GetSnapshot, 10,000-commit table, first call after restart", fmt.Sprintf("%.1f ms", ms(cold)), "loads the table from the log, then answers")
		add("GetSnapshot, 10,000-commit table, warm, p50 / p99", fmt.Sprintf("%.2f / %.2f ms", ms(p50), ms(p99)), "served from memory; 10,000 files with stats in the response")
		add("GetSnapshot, 10,000-commit table, warm, omit_stats, p50", fmt.Sprintf("%.2f ms", ms(lean)), "10,000 files without stats")
		add("GetSnapshot at version 9,995 (time travel)", fmt.Sprintf("%.1f ms", ms(travel)), "through the Delta library: checkpoint + 5 commits")

		scanRate, nrows := scanThroughput(b, 20, 25000)
		add("Scan over gRPC (one stream, all columns)", fmt.Sprintf("%.0f rows/s", scanRate), fmt.Sprintf("%d rows in 20 Parquet files, rows as JSON Structs", nrows))
	}
	var md strings.Builder
	fmt.Fprintf(&md, "# catalog benchmarks\n\n%s, %d cores, GOMAXPROCS %d, %s; Kafka announcements on.\n\n", time.Now().UTC().Format("2006-01-02 15:04 MST"), runtime.NumCPU(), runtime.GOMAXPROCS(0), runtime.Version())
	md.WriteString("| benchmark | result | notes |\n|---|---|---|\n")
	for _, r := range rows {
		fmt.Fprintf(&md, "| %s | %s | %s |\n", r[0], r[1], r[2])
	}
	md.WriteString("\nTarget (DESIGN.md section 7): commits over gRPC to one table ≥ 0.5× the put-if-absent loop; snapshot of a 10,000-commit table ≤ 100 ms after a checkpoint.\n")
	fmt.Println(md.String())
	out := filepath.Join(repoRoot(b), "bench", "results", "catalog.md")
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		b.Fatal(err)
	}
	if err := os.WriteFile(out, []byte(md.String()), 0o644); err != nil {
		b.Fatal(err)
	}
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// repoRoot finds the repository root (the folder with go.work).
func repoRoot(b *testing.B) string {
	dir, err := os.Getwd()
	if err != nil {
		b.Fatal(err)
	}
	for d := dir; d != "/"; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "go.work")); err == nil {
			return d
		}
	}
	b.Fatalf("no go.work above %s", dir)
	return ""
}

// putIfAbsentLoop is the baseline: n durable put-if-absent writes of small
// commit-sized files, one after the other.
func putIfAbsentLoop(b *testing.B, n int) float64 {
	store, err := storage.NewLocal(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	data := []byte(strings.Repeat(`{"add":{"path":"x.parquet","size":1}}`+"\n", 3))
	ctx := context.Background()
	start := time.Now()
	for i := range n {
		if err := store.PutIfAbsent(ctx, delta.CommitPath(int64(i)), data); err != nil {
			b.Fatal(err)
		}
	}
	return float64(n) / time.Since(start).Seconds()
}

// oneClientPause is the client's pause after each commit in oneClient.
// ONE_CLIENT_PAUSE (a duration; 0 for none) overrides it.
var oneClientPause = func() time.Duration {
	if d, err := time.ParseDuration(os.Getenv("ONE_CLIENT_PAUSE")); err == nil {
		return d
	}
	return 2 * time.Millisecond
}()

// oneClientResult compares one client committing through the catalog
// with the bare loop, interleaved write by write.
type oneClientResult struct {
	commits int
	// commits/s of each, from the summed time of its writes: the loop, the
	// catalog library's Commit called in process (no gRPC, no
	// announcements), the client over gRPC on TCP loopback, and the client
	// over gRPC on the catalog's Unix socket.
	loop, library, grpc, unix float64
	ratio, unixRatio          float64 // grpc / loop, unix / loop
	loopP50, libP50           time.Duration
	p50, unixP50              time.Duration
	lo, hi                    float64 // lowest and highest ratio of a tenth of the writes, TCP
	unixLo, unixHi            float64 // the same over the socket
}

// oneClient alternates n put-if-absent writes of the bare loop with n
// sequential gRPC commits from one client over TCP and n over the
// catalog's Unix socket (to a second table of the same catalog; which of
// the two goes first alternates), one of each in turn, so that all see the
// same disk at the same moment (the disk is shared with the
// other work on the machine, and its fsync latency swings several-fold
// within seconds). Each side's rate is its writes over the time they took.
//
// After each commit, the client pauses (oneClientPause, not counted), as a
// real client does other work between commits (deserialize writes the next
// batch's files): a catalog works on after its reply — the next commit's
// temporary file, the Kafka announcement — and without the pause that work
// would run inside the next measured write of the other side (the loop's,
// or the in-process library's inside the gRPC commit's), charging one
// side's work to the other.
func oneClient(b *testing.B, n int, extra ...string) oneClientResult {
	store, err := storage.NewLocal(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	data := []byte(strings.Repeat(`{"add":{"path":"x.parquet","size":1}}`+"\n", 3))
	wh := b.TempDir()
	sock := filepath.Join(b.TempDir(), "catalog.sock")
	tc := startBenchCatalog(b, wh, append([]string{"--unix-socket", sock}, extra...)...)
	defer tc.stop()
	unixConn := dial(b, "unix://"+sock, "")
	defer unixConn.Close()
	unixClient := catalogv1.NewCatalogServiceClient(unixConn)
	createTable(b, tc.client, "bench.one", nil)
	createTable(b, unixClient, "bench.uds", nil)
	adds := make([]*catalogv1.AddFile, n)
	unixAdds := make([]*catalogv1.AddFile, n)
	libAdds := make([]delta.Add, n)
	// The library's table is in a warehouse of its own, on the same disk.
	libWH := b.TempDir()
	lc := startBenchCatalog(b, libWH)
	createTable(b, lc.client, "bench.lib", nil)
	lc.stop()
	for i := range adds {
		rel := fmt.Sprintf("day=2024-01-01/f%06d.parquet", i)
		adds[i] = putFile(b, wh, "bench.one", rel, 1)
		unixAdds[i] = putFile(b, wh, "bench.uds", rel, 1)
		putFile(b, libWH, "bench.lib", rel, 1)
		libAdds[i] = delta.Add{Path: rel, Size: 1, DataChange: true, PartitionValues: map[string]string{"day": "2024-01-01"}, Stats: `{"numRecords":1}`}
	}
	lib, err := catalog.New(catalog.Config{Warehouse: libWH}, nil, slog.New(slog.DiscardHandler))
	if err != nil {
		b.Fatal(err)
	}
	defer lib.Close()
	ctx := context.Background()
	loopLat, libLat, grpcLat, unixLat := make([]time.Duration, n), make([]time.Duration, n), make([]time.Duration, n), make([]time.Duration, n)
	commit := func(c catalogv1.CatalogServiceClient, table string, i int, adds []*catalogv1.AddFile) time.Duration {
		start := time.Now()
		if _, err := c.Commit(ctx, &catalogv1.CommitRequest{
			Table: table, ReadVersion: int64(i), BlindAppend: true, Adds: adds[i : i+1],
		}); err != nil {
			b.Fatal(err)
		}
		d := time.Since(start)
		time.Sleep(oneClientPause)
		return d
	}
	for i := range n {
		t0 := time.Now()
		if err := store.PutIfAbsent(ctx, delta.CommitPath(int64(i)), data); err != nil {
			b.Fatal(err)
		}
		t1 := time.Now()
		if _, err := lib.Commit(ctx, &catalog.CommitRequest{Table: "bench.lib", ReadVersion: int64(i), BlindAppend: true, Adds: libAdds[i : i+1]}); err != nil {
			b.Fatal(err)
		}
		libLat[i] = time.Since(t1)
		loopLat[i] = t1.Sub(t0)
		time.Sleep(oneClientPause)
		if i%2 == 0 {
			grpcLat[i] = commit(tc.client, "bench.one", i, adds)
			unixLat[i] = commit(unixClient, "bench.uds", i, unixAdds)
		} else {
			unixLat[i] = commit(unixClient, "bench.uds", i, unixAdds)
			grpcLat[i] = commit(tc.client, "bench.one", i, adds)
		}
	}
	sum := func(d []time.Duration) (t time.Duration) {
		for _, x := range d {
			t += x
		}
		return t
	}
	r := oneClientResult{commits: n, lo: math.Inf(1), unixLo: math.Inf(1)}
	r.loop, r.library = float64(n)/sum(loopLat).Seconds(), float64(n)/sum(libLat).Seconds()
	r.grpc, r.unix = float64(n)/sum(grpcLat).Seconds(), float64(n)/sum(unixLat).Seconds()
	r.ratio, r.unixRatio = r.grpc/r.loop, r.unix/r.loop
	for k := 0; k+n/10 <= n; k += n / 10 {
		q := float64(sum(loopLat[k:k+n/10])) / float64(sum(grpcLat[k:k+n/10]))
		r.lo, r.hi = min(r.lo, q), max(r.hi, q)
		q = float64(sum(loopLat[k:k+n/10])) / float64(sum(unixLat[k:k+n/10]))
		r.unixLo, r.unixHi = min(r.unixLo, q), max(r.unixHi, q)
	}
	for _, l := range [][]time.Duration{loopLat, libLat, grpcLat, unixLat} {
		slices.Sort(l)
	}
	r.loopP50, r.libP50, r.p50, r.unixP50 = loopLat[n/2], libLat[n/2], grpcLat[n/2], unixLat[n/2]
	return r
}

// BenchmarkOneClientCommits is the one-client rows of BenchmarkCatalogReport
// alone (x-loop over TCP, unix-x-loop over the catalog's Unix socket), for
// profiling the commit path (-cpuprofile), with and without the Kafka
// announcements.
func BenchmarkOneClientCommits(b *testing.B) {
	b.Run("announce", func(b *testing.B) { benchOneClient(b) })
	b.Run("no-announce", func(b *testing.B) { benchOneClient(b, "--announce=false") })
}

func benchOneClient(b *testing.B, extra ...string) {
	for range b.N {
		r := oneClient(b, 1000, extra...)
		b.ReportMetric(r.ratio, "x-loop")
		b.ReportMetric(r.unixRatio, "unix-x-loop")
		b.ReportMetric(float64(r.unixP50.Microseconds()), "unix-p50-µs")
		b.ReportMetric(r.grpc, "commits/s")
		b.ReportMetric(r.loop, "loop-commits/s")
		b.ReportMetric(float64(r.p50.Microseconds()), "p50-µs")
		b.ReportMetric(float64(r.loopP50.Microseconds()), "loop-p50-µs")
		b.ReportMetric(float64(r.libP50.Microseconds()), "library-p50-µs")
		b.ReportMetric(r.library/r.loop, "library-x-loop")
		b.Logf("tenths of the run: TCP %.2f–%.2f× the loop, Unix socket %.2f–%.2f×", r.lo, r.hi, r.unixLo, r.unixHi)
	}
}

type commitResult struct {
	rate              float64
	commits, versions int64
}

// grpcCommits starts a catalog and commits n one-file blind appends from
// clients goroutines spread over tables tables.
func grpcCommits(b *testing.B, tables, clients, n int) commitResult {
	wh := b.TempDir()
	tc := startBenchCatalog(b, wh)
	names := make([]string, tables)
	for i := range names {
		names[i] = fmt.Sprintf("bench.t%02d", i)
		createTable(b, tc.client, names[i], nil)
	}
	// Files first: the benchmark measures commits, not writing data.
	adds := make([]*catalogv1.AddFile, n)
	for i := range adds {
		table := names[i%tables]
		rel := fmt.Sprintf("day=2024-01-01/f%06d.parquet", i)
		p := filepath.Join(tableDir(wh, table), filepath.FromSlash(rel))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			b.Fatal(err)
		}
		if err := os.WriteFile(p, []byte("x"), 0o644); err != nil {
			b.Fatal(err)
		}
		adds[i] = &catalogv1.AddFile{Path: rel, Size: 1, DataChange: true, PartitionValues: map[string]string{"day": "2024-01-01"}, Stats: `{"numRecords":1}`}
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for range clients {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				table := names[i%tables]
				if _, err := tc.client.Commit(context.Background(), &catalogv1.CommitRequest{
					Table: table, ReadVersion: 0, BlindAppend: true, Adds: []*catalogv1.AddFile{adds[i]},
				}); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	var versions int64
	for _, name := range names {
		snap, err := tc.client.GetSnapshot(context.Background(), &catalogv1.GetSnapshotRequest{Table: name, OmitStats: true})
		if err != nil {
			b.Fatal(err)
		}
		versions += snap.GetVersion()
	}
	tc.stop()
	return commitResult{rate: float64(n) / elapsed.Seconds(), commits: int64(n), versions: versions}
}

// snapshotLatency builds a table of n commits (one file each) with the
// Delta library, checkpoints it, and times GetSnapshot.
func snapshotLatency(b *testing.B, n int) (library, cold, p50, p99, lean, travel time.Duration) {
	wh := b.TempDir()
	tc := startBenchCatalog(b, wh)
	createTable(b, tc.client, "bench.big", nil)
	tc.stop()
	store, err := storage.NewLocal(tableDir(wh, "bench.big"))
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	tbl := delta.Open(store)
	for i := 1; i <= n; i++ {
		if _, err := tbl.Commit(ctx, delta.CommitRequest{ReadVersion: int64(i - 1), Operation: "WRITE", BlindAppend: true,
			Actions: []delta.Action{{Add: &delta.Add{Path: fmt.Sprintf("day=2024-01-01/f%06d.parquet", i), Size: 1,
				PartitionValues: map[string]string{"day": "2024-01-01"}, DataChange: true,
				Stats: `{"numRecords":1,"minValues":{"id":1},"maxValues":{"id":9},"nullCount":{"id":0}}`}}}}); err != nil {
			b.Fatal(err)
		}
		if i == n-10 {
			if _, err := tbl.Checkpoint(ctx, int64(i)); err != nil {
				b.Fatal(err)
			}
		}
	}
	start := time.Now()
	if _, err := delta.Open(store).Snapshot(ctx); err != nil {
		b.Fatal(err)
	}
	library = time.Since(start)
	tc = startBenchCatalog(b, wh)
	defer tc.stop()
	start = time.Now()
	snap, err := tc.client.GetSnapshot(ctx, &catalogv1.GetSnapshotRequest{Table: "bench.big"})
	cold = time.Since(start)
	if err != nil || len(snap.GetFiles()) != n {
		b.Fatalf("GetSnapshot: %d files, %v", len(snap.GetFiles()), err)
	}
	var lat []time.Duration
	for range 100 {
		start := time.Now()
		if _, err := tc.client.GetSnapshot(ctx, &catalogv1.GetSnapshotRequest{Table: "bench.big"}); err != nil {
			b.Fatal(err)
		}
		lat = append(lat, time.Since(start))
	}
	slices.Sort(lat)
	var leanLat []time.Duration
	for range 100 {
		start := time.Now()
		if _, err := tc.client.GetSnapshot(ctx, &catalogv1.GetSnapshotRequest{Table: "bench.big", OmitStats: true}); err != nil {
			b.Fatal(err)
		}
		leanLat = append(leanLat, time.Since(start))
	}
	slices.Sort(leanLat)
	lean = leanLat[len(leanLat)/2]
	start = time.Now()
	if _, err := tc.client.GetSnapshot(ctx, &catalogv1.GetSnapshotRequest{Table: "bench.big", At: &catalogv1.GetSnapshotRequest_Version{Version: int64(n - 5)}}); err != nil {
		b.Fatal(err)
	}
	travel = time.Since(start)
	return library, cold, lat[len(lat)/2], lat[len(lat)*99/100], lean, travel
}

// scanThroughput writes files×rowsPerFile readings and scans them.
func scanThroughput(b *testing.B, files, rowsPerFile int) (float64, int) {
	wh := b.TempDir()
	tc := startBenchCatalog(b, wh)
	defer tc.stop()
	schema := createReadings(b, tc.client, "bench.scan", nil)
	var adds []*catalogv1.AddFile
	for f := range files {
		adds = append(adds, writeReadings(b, wh, "bench.scan", schema, makeReadings(fmt.Sprintf("2024-07-%02d", 1+f%5), f*rowsPerFile, rowsPerFile)))
	}
	if _, err := tc.client.Commit(context.Background(), &catalogv1.CommitRequest{Table: "bench.scan", ReadVersion: 0, BlindAppend: true, Adds: adds}); err != nil {
		b.Fatal(err)
	}
	start := time.Now()
	stream, err := tc.client.Scan(context.Background(), &catalogv1.ScanRequest{Table: "bench.scan"})
	if err != nil {
		b.Fatal(err)
	}
	n := 0
	for {
		resp, err := stream.Recv()
		if err != nil {
			break
		}
		n += len(resp.GetRows())
	}
	if n != files*rowsPerFile {
		b.Fatalf("scanned %d rows, want %d", n, files*rowsPerFile)
	}
	return float64(n) / time.Since(start).Seconds(), n
}

// startBenchCatalog serves a catalog without maintenance and with quiet logs.
func startBenchCatalog(b *testing.B, warehouse string, extra ...string) *testCatalog {
	return startCatalog(b, warehouse, append([]string{"--auto-maintenance=false", "--log-level", "error"}, extra...)...)
}
