package delta

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/plantlake/plantlake/delta/storage"
)

func TestCleanupMetadata(t *testing.T) {
	ctx := context.Background()
	now := time.Date(2024, 6, 1, 12, 0, 0, 0, time.UTC)
	old := now.Add(-40 * 24 * time.Hour)
	tbl, st := newTestTable(t, WithClock(func() time.Time { return now }))
	for i := 1; i <= 12; i++ {
		mustCommit(t, tbl, appendReq(int64(i-1), "day=2024-01-01/f"+itoa(i)+".parquet"))
	}
	for _, v := range []int64{4, 8} {
		if _, err := tbl.Checkpoint(ctx, v); err != nil {
			t.Fatal(err)
		}
	}
	// Versions 0..9 are older than the retention, 10..12 recent.
	for v := int64(0); v <= 12; v++ {
		ts := old.Add(time.Duration(v) * time.Minute)
		if v >= 10 {
			ts = now.Add(-time.Hour)
		}
		setCommitTime(t, st, v, ts)
	}
	want, err := Open(st).Snapshot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	deleted, err := Open(st, WithClock(func() time.Time { return now })).CleanupMetadata(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// The newest checkpoint at or before the cutoff commit (9) is 8: all
	// below 8 goes, checkpoint 8 and commits 8.. stay.
	var wantDeleted []string
	for v := int64(0); v < 8; v++ {
		wantDeleted = append(wantDeleted, CommitPath(v))
	}
	wantDeleted = append(wantDeleted, CheckpointPath(4))
	sortStrings(wantDeleted)
	if !equalStrings(deleted, wantDeleted) {
		t.Errorf("deleted %q\nwant %q", deleted, wantDeleted)
	}
	got, err := Open(st).Snapshot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(view(got), view(want)) {
		t.Errorf("snapshot changed by cleanup")
	}
	if _, err := Open(st).SnapshotAt(ctx, 8); err != nil {
		t.Errorf("SnapshotAt(8) after cleanup: %v", err)
	}
	if _, err := Open(st).SnapshotAt(ctx, 7); !errors.Is(err, ErrVersionNotFound) {
		t.Errorf("SnapshotAt(7) after cleanup = %v, want ErrVersionNotFound", err)
	}
	// Nothing more to do the second time.
	again, err := Open(st, WithClock(func() time.Time { return now })).CleanupMetadata(ctx)
	if err != nil || len(again) != 0 {
		t.Errorf("second cleanup deleted %q, %v", again, err)
	}
}

func TestCleanupWithoutCheckpointKeepsAll(t *testing.T) {
	ctx := context.Background()
	now := time.Date(2024, 6, 1, 12, 0, 0, 0, time.UTC)
	tbl, st := newTestTable(t, WithClock(func() time.Time { return now }))
	for i := 1; i <= 3; i++ {
		mustCommit(t, tbl, appendReq(int64(i-1), "day=2024-01-01/f"+itoa(i)+".parquet"))
		setCommitTime(t, st, int64(i), now.Add(-100*24*time.Hour))
	}
	deleted, err := tbl.CleanupMetadata(ctx)
	if err != nil || len(deleted) != 0 {
		t.Fatalf("cleanup without checkpoint deleted %q, %v", deleted, err)
	}
}

func TestVacuum(t *testing.T) {
	ctx := context.Background()
	now := time.Date(2024, 6, 1, 12, 0, 0, 0, time.UTC)
	oldT, recentT := now.Add(-10*24*time.Hour), now.Add(-time.Hour)
	tbl, st := newTestTable(t, WithClock(func() time.Time { return now }))
	files := map[string]time.Time{
		"day=2024-01-01/live.parquet":        oldT,
		"day=2024-01-01/removed-old.parquet": oldT,
		"day=2024-01-01/removed-new.parquet": oldT,
		"day=2024-01-01/orphan-old.parquet":  oldT,
		"day=2024-01-01/orphan-new.parquet":  recentT,
		"day=2024-01-01/with space.parquet":  oldT,
		"_hidden/x.parquet":                  oldT,
		".tmp-file":                          oldT,
		"nested/deeper/orphan.parquet":       oldT,
	}
	for p, ts := range files {
		touchData(t, st, p, ts)
	}
	mustCommit(t, tbl, appendReq(0, "day=2024-01-01/live.parquet", "day=2024-01-01/removed-old.parquet",
		"day=2024-01-01/removed-new.parquet", "day=2024-01-01/with%20space.parquet"))
	oldDel, newDel := now.Add(-8*24*time.Hour).UnixMilli(), now.Add(-24*time.Hour).UnixMilli()
	mustCommit(t, tbl, CommitRequest{ReadVersion: 1, Operation: "DELETE", Actions: []Action{
		{Remove: &Remove{Path: "day=2024-01-01/removed-old.parquet", DeletionTimestamp: &oldDel, DataChange: true}},
		{Remove: &Remove{Path: "day=2024-01-01/removed-new.parquet", DeletionTimestamp: &newDel, DataChange: true}},
	}})
	want := []string{"day=2024-01-01/orphan-old.parquet", "day=2024-01-01/removed-old.parquet", "nested/deeper/orphan.parquet"}
	dry, err := tbl.Vacuum(ctx, VacuumOptions{DryRun: true})
	if err != nil {
		t.Fatal(err)
	}
	if !equalStrings(dry, want) {
		t.Errorf("dry run %q, want %q", dry, want)
	}
	deleted, err := tbl.Vacuum(ctx, VacuumOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !equalStrings(deleted, want) {
		t.Errorf("deleted %q, want %q", deleted, want)
	}
	for p := range files {
		_, err := st.Stat(ctx, p)
		gone := err != nil
		if gone != contains(want, p) {
			t.Errorf("%s: gone=%v", p, gone)
		}
	}
	// A shorter retention also takes the newer tombstone.
	deleted, err = tbl.Vacuum(ctx, VacuumOptions{Retention: 12 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if !equalStrings(deleted, []string{"day=2024-01-01/removed-new.parquet"}) {
		t.Errorf("short retention deleted %q", deleted)
	}
}

// TestCleanupByNameAsListed checks the metadata cleanup by name against the
// listed one on two copies of a log 50 days long (a commit every 3 hours, a
// checkpoint every 7 versions, checksum files at some versions), day after
// day as the clock moves: both delete the same files, and every version
// from the oldest checkpoint kept on still loads.
func TestCleanupByNameAsListed(t *testing.T) {
	defer func(n int64) { cleanupByNameFrom = n }(cleanupByNameFrom)
	ctx := context.Background()
	base := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	now := base
	clock := func() time.Time { return now }
	build := func() (*Table, *storage.Local) {
		tbl, st := newTestTable(t, WithClock(clock))
		v := int64(0)
		for i := 1; i <= 400; i++ {
			v = mustCommit(t, tbl, appendReq(v, fmt.Sprintf("day=2024-01-01/f%03d.parquet", i)))
			if v%7 == 0 {
				if _, err := tbl.Checkpoint(ctx, v); err != nil {
					t.Fatal(err)
				}
			}
			if v%5 == 0 {
				if err := st.WriteFile(ctx, checksumPath(v), []byte("{}")); err != nil {
					t.Fatal(err)
				}
			}
		}
		for v := int64(0); v <= 400; v++ {
			setCommitTime(t, st, v, base.Add(time.Duration(v)*3*time.Hour))
		}
		return tbl, st
	}
	listed, listedSt := build()
	named, namedSt := build()
	names := func(st *storage.Local) []string {
		infos, err := st.List(ctx, LogDir)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, fi := range infos {
			out = append(out, fi.Name())
		}
		return out
	}
	total := 0
	for day := 28; day <= 52; day += 3 {
		now = base.Add(time.Duration(day) * 24 * time.Hour)
		cleanupByNameFrom = 1 << 62
		want, err := listed.CleanupMetadata(ctx)
		if err != nil {
			t.Fatal(err)
		}
		cleanupByNameFrom = 0
		got, err := named.CleanupMetadata(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if !equalStrings(got, want) {
			t.Fatalf("day %d: by name deleted %q\nlisted deleted %q", day, got, want)
		}
		if g, w := names(namedSt), names(listedSt); !equalStrings(g, w) {
			t.Fatalf("day %d: the logs differ after cleanup: %q\n%q", day, g, w)
		}
		total += len(got)
		s, err := Open(namedSt).Snapshot(ctx)
		if err != nil || s.Version() != 400 {
			t.Fatalf("day %d: latest after cleanup: %v", day, err)
		}
	}
	// On day 52 the cutoff is day 22, the last commit at or before it 176
	// (a commit every 3 hours) and the newest checkpoint before it 175:
	// commits 0..174 are gone, with their checkpoints and checksums.
	if _, err := namedSt.Stat(ctx, CommitPath(174)); !errors.Is(err, storage.ErrNotExist) {
		t.Fatalf("commit 174 after the last cleanup: %v, want it deleted", err)
	}
	if _, err := namedSt.Stat(ctx, CommitPath(175)); err != nil {
		t.Fatalf("commit 175 after the last cleanup: %v", err)
	}
	if want := 175 + 168/7 + 170/5; total != want { // commits 0..174, checkpoints 7..168, checksums 5..170
		t.Fatalf("the cleanups deleted %d files in all, want %d", total, want)
	}
}
