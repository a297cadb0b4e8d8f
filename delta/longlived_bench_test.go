package delta

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/plantlake/plantlake/delta/storage"
)

// dayOfCommits is how many commits a pipeline table makes in a day (one
// every 500 ms).
const dayOfCommits = 172_800

// buildDayLog writes n commits as a pipeline table makes them, directly as
// files (a fixture, no fsync): one-file appends, and every 51st commit a
// compaction that removes the 50 files before it and adds one.
func buildDayLog(tb testing.TB, dir string, n int) {
	st, err := storage.NewLocal(dir)
	if err != nil {
		tb.Fatal(err)
	}
	ctx := context.Background()
	if _, err := Create(ctx, st, Metadata{SchemaString: testSchema, PartitionColumns: []string{"day"}}, Protocol{}); err != nil {
		tb.Fatal(err)
	}
	now := time.Now().UnixMilli()
	var pending []string
	for v := 1; v < n; v++ {
		rv := int64(v - 1)
		var acts []Action
		if len(pending) == 50 {
			acts = append(acts, Action{CommitInfo: &CommitInfo{Timestamp: now, Operation: "OPTIMIZE", ReadVersion: &rv}})
			for _, p := range pending {
				ts, size := now, int64(100_000)
				acts = append(acts, Action{Remove: &Remove{Path: p, DeletionTimestamp: &ts, PartitionValues: map[string]string{"day": "2024-01-01"}, Size: &size}})
			}
			a := addAction(fmt.Sprintf("day=2024-01-01/part-c%07d-7f49f4e3-2c9c-4ea7-b6c3-42c9a6fc6070.parquet", v), "2024-01-01")
			a.Add.DataChange = false
			acts, pending = append(acts, a), nil
		} else {
			blind := true
			p := fmt.Sprintf("day=2024-01-01/part-%07d-7f49f4e3-2c9c-4ea7-b6c3-42c9a6fc6070.parquet", v)
			a := addAction(p, "2024-01-01")
			a.Add.Stats = `{"numRecords":1000,"minValues":{"id":1},"maxValues":{"id":999},"nullCount":{"id":0}}`
			acts = []Action{
				{CommitInfo: &CommitInfo{Timestamp: now, Operation: "WRITE", ReadVersion: &rv, IsBlindAppend: &blind}},
				a, {Txn: &Txn{AppID: fmt.Sprintf("ingest/topic/%d", v%6), Version: int64(v)}},
			}
			pending = append(pending, p)
		}
		b, err := MarshalActions(acts)
		if err != nil {
			tb.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, filepath.FromSlash(CommitPath(int64(v)))), b, 0o644); err != nil {
			tb.Fatal(err)
		}
	}
}

// dayOldLog is a store holding a day of a pipeline table's log
// (buildDayLog).
func dayOldLog(b *testing.B) *storage.Local {
	dir := b.TempDir()
	buildDayLog(b, dir, dayOfCommits)
	st, err := storage.NewLocal(dir)
	if err != nil {
		b.Fatal(err)
	}
	return st
}

// BenchmarkDayOldTableCheckpoint is a long-lived writer's checkpoint of a
// table a day old (172,800 commits, ~170,000 tombstones): extending its
// cached snapshot 10 versions, then writing the checkpoint, then (the
// _cleanup variant) the log cleanup that used to follow every checkpoint.
// The log is built once (about 20 s); each op adds 10 commits.
//
//	cd delta && go test -run '^$' -bench DayOldTable -benchtime 5x .
func BenchmarkDayOldTableCheckpoint(b *testing.B) {
	st := dayOldLog(b)
	ctx := context.Background()
	tbl := Open(st)
	v := int64(dayOfCommits - 1)
	if _, err := tbl.SnapshotAt(ctx, v); err != nil {
		b.Fatal(err)
	}
	for _, cleanup := range []bool{false, true} {
		b.Run(fmt.Sprintf("cleanup=%v", cleanup), func(b *testing.B) {
			for b.Loop() {
				b.StopTimer()
				for range 10 {
					v = mustCommit(b, tbl, appendReq(v, fmt.Sprintf("day=2024-01-01/part-x%07d.parquet", v)))
				}
				b.StartTimer()
				res, err := tbl.Checkpoint(ctx, v)
				if err != nil {
					b.Fatal(err)
				}
				if cleanup {
					if _, err := tbl.CleanupMetadata(ctx); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(res.NumActions), "actions")
			}
		})
	}
}

// BenchmarkDayOldTableSnapshot is a reader that follows a table a day old
// (172,800 commits, checkpointed at its last) as the hops do: another
// writer commits a version, the reader asks for the latest snapshot
// (Table.Snapshot, its cached snapshot one version behind). Listing the log
// for it took 0.93 s and 136 MB a call.
//
//	cd delta && go test -run '^$' -bench DayOldTableSnapshot -benchtime 20x .
func BenchmarkDayOldTableSnapshot(b *testing.B) {
	st := dayOldLog(b)
	ctx := context.Background()
	writer, reader := Open(st), Open(st)
	v := int64(dayOfCommits - 1)
	if _, err := writer.SnapshotAt(ctx, v); err != nil {
		b.Fatal(err)
	}
	if _, err := writer.Checkpoint(ctx, v); err != nil {
		b.Fatal(err)
	}
	if _, err := reader.Snapshot(ctx); err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		b.StopTimer()
		v = mustCommit(b, writer, appendReq(v, fmt.Sprintf("day=2024-01-01/part-x%07d.parquet", v)))
		b.StartTimer()
		s, err := reader.Snapshot(ctx)
		if err != nil {
			b.Fatal(err)
		}
		if s.Version() != v {
			b.Fatalf("reader at version %d, want %d", s.Version(), v)
		}
	}
}

// BenchmarkDayOldTableCleanupCheck is the daily metadata cleanup of a table
// a day old (172,800 commits) when nothing has expired yet, listed and by
// name: what finding the expired part of the log costs.
//
//	cd delta && go test -run '^$' -bench DayOldTableCleanupCheck -benchtime 5x -benchmem .
func BenchmarkDayOldTableCleanupCheck(b *testing.B) {
	defer func(n int64) { cleanupByNameFrom = n }(cleanupByNameFrom)
	st := dayOldLog(b)
	ctx := context.Background()
	v := int64(dayOfCommits - 1)
	if _, err := Open(st).Checkpoint(ctx, v); err != nil {
		b.Fatal(err)
	}
	// The log retention's cutoff is the day before the log was written.
	clock := WithClock(func() time.Time { return time.Now().Add(DefaultLogRetention - 24*time.Hour) })
	for _, byName := range []bool{false, true} {
		b.Run(fmt.Sprintf("byName=%v", byName), func(b *testing.B) {
			cleanupByNameFrom = 1 << 62
			if byName {
				cleanupByNameFrom = 0
			}
			tbl := Open(st, clock)
			if _, err := tbl.SnapshotAt(ctx, v); err != nil {
				b.Fatal(err)
			}
			for b.Loop() {
				tbl.cleanedTo = 0
				deleted, err := tbl.CleanupMetadata(ctx)
				if err != nil || len(deleted) != 0 {
					b.Fatalf("cleanup deleted %d files: %v", len(deleted), err)
				}
			}
		})
	}
}

// BenchmarkDayOldTableTimeTravel is a read of a table a day old (172,800
// commits, a checkpoint every 1,000) as of a time in its middle, on a
// fresh Table, listed and by name.
//
//	cd delta && go test -run '^$' -bench DayOldTableTimeTravel -benchtime 5x -benchmem .
func BenchmarkDayOldTableTimeTravel(b *testing.B) {
	defer func(n int64) { cleanupByNameFrom = n }(cleanupByNameFrom)
	st := dayOldLog(b)
	ctx := context.Background()
	w := Open(st)
	for v := int64(1000); v < dayOfCommits; v += 1000 {
		if _, err := w.SnapshotAt(ctx, v); err != nil {
			b.Fatal(err)
		}
		if _, err := w.Checkpoint(ctx, v); err != nil {
			b.Fatal(err)
		}
	}
	mid, err := st.Stat(ctx, CommitPath(dayOfCommits/2))
	if err != nil {
		b.Fatal(err)
	}
	for _, byName := range []bool{false, true} {
		b.Run(fmt.Sprintf("byName=%v", byName), func(b *testing.B) {
			cleanupByNameFrom = 1 << 62
			if byName {
				cleanupByNameFrom = 0
			}
			for b.Loop() {
				s, err := Open(st).SnapshotAsOf(ctx, mid.ModTime)
				if err != nil {
					b.Fatal(err)
				}
				// The fixture writes several commits a millisecond, which
				// a listing's monotonic times spread and raw times do
				// not: the two find different versions.
				if s.Version() <= 0 {
					b.Fatalf("as of the middle: version %d", s.Version())
				}
			}
		})
	}
}
