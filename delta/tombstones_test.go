package delta

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/plantlake/plantlake/delta/storage"
)

// removeAt is a remove of the file p (partition day=2024-01-01) deleted at.
func removeAt(p string, at time.Time) Action {
	ts := at.UnixMilli()
	return Action{Remove: &Remove{Path: p, DeletionTimestamp: &ts, DataChange: true, PartitionValues: map[string]string{"day": "2024-01-01"}}}
}

// replayedTombstones is every tombstone of version v by a replay of the
// commits from 0 (no checkpoint), deleted after minDeletion, by path.
func replayedTombstones(t *testing.T, tbl *Table, v, minDeletion int64) map[string]int64 {
	t.Helper()
	rp, err := tbl.replayCommits(context.Background(), newReplayState(tbl.root), -1, v)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]int64{}
	for _, r := range rp.state.tombs {
		if *r.DeletionTimestamp > minDeletion {
			out[r.Path] = *r.DeletionTimestamp
		}
	}
	return out
}

// tombstoneSet is Table.Tombstones of s by path, failing on a path listed
// twice.
func tombstoneSet(t *testing.T, tbl *Table, s *Snapshot, minDeletion int64) map[string]int64 {
	t.Helper()
	all, err := tbl.Tombstones(context.Background(), s)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]int64{}
	for _, r := range all {
		if _, twice := out[r.Path]; twice {
			t.Fatalf("tombstone %s listed twice", r.Path)
		}
		if *r.DeletionTimestamp > minDeletion {
			out[r.Path] = *r.DeletionTimestamp
		}
	}
	return out
}

// TestTombstonesStreamFromCheckpoint loads a snapshot from a checkpoint:
// it holds in memory only the removes after the checkpoint, and
// Table.Tombstones lists the checkpoint's too, except those a later commit
// replaced: a file added again, a file removed again (the later deletion
// time wins), with the expired ones left out by the checkpoint.
func TestTombstonesStreamFromCheckpoint(t *testing.T) {
	ctx := context.Background()
	now := time.Now()
	clock := func() time.Time { return now }
	tbl, st := newTestTable(t, WithClock(clock))
	p := func(n string) string { return "day=2024-01-01/" + n + ".parquet" }
	v := mustCommit(t, tbl, appendReq(0, p("a"), p("b"), p("c"), p("d"), p("e")))
	v = mustCommit(t, tbl, CommitRequest{ReadVersion: v, Operation: "DELETE", Actions: []Action{
		removeAt(p("a"), now.Add(-time.Hour)), removeAt(p("b"), now.Add(-30*24*time.Hour)), removeAt(p("c"), now.Add(-time.Hour)),
	}})
	if _, err := tbl.Checkpoint(ctx, v); err != nil {
		t.Fatal(err)
	}
	v = mustCommit(t, tbl, appendReq(v, p("c"), p("f")))
	v = mustCommit(t, tbl, CommitRequest{ReadVersion: v, Operation: "DELETE", Actions: []Action{
		removeAt(p("d"), now), removeAt(p("a"), now), removeAt(p("f"), now),
	}})

	reader := Open(st, WithClock(clock))
	s, err := reader.SnapshotAt(ctx, v)
	if err != nil {
		t.Fatal(err)
	}
	if s.tombBase == nil || s.tombBase.version != 2 {
		t.Fatalf("tombstone base %+v, want checkpoint 2", s.tombBase)
	}
	var held []string
	for _, r := range s.Tombstones() {
		held = append(held, r.Path)
	}
	if want := []string{p("a"), p("d"), p("f")}; !reflect.DeepEqual(held, want) {
		t.Errorf("tombstones in memory %q, want only the removes after the checkpoint %q", held, want)
	}
	cutoff := now.Add(-DefaultDeletedFileRetention).UnixMilli()
	got := tombstoneSet(t, reader, s, cutoff)
	want := replayedTombstones(t, reader, v, cutoff)
	if !reflect.DeepEqual(got, want) {
		t.Errorf("tombstones %v, want %v (log replay)", got, want)
	}
	if got[p("a")] != now.UnixMilli() {
		t.Errorf("a's deletion time %d, want the later remove's %d", got[p("a")], now.UnixMilli())
	}
	if _, ok := got[p("c")]; ok {
		t.Error("c, added again, is still a tombstone")
	}
}

// TestLongLivedWriterHoldsRecentTombstones commits a file and removes the
// one before it 300 times on one Table, as a compacting writer does,
// writing a checkpoint every 25 versions: the cached snapshot holds no
// more tombstones than the removes since the last checkpoint, while
// Table.Tombstones, each checkpoint and a fresh load list them all.
func TestLongLivedWriterHoldsRecentTombstones(t *testing.T) {
	ctx := context.Background()
	now := time.Now()
	clock := func() time.Time { return now }
	tbl, st := newTestTable(t, WithClock(clock))
	name := func(i int) string { return fmt.Sprintf("day=2024-01-01/f%03d.parquet", i) }
	v := mustCommit(t, tbl, appendReq(0, name(0)))
	maxHeld := 0
	for i := 1; i <= 300; i++ {
		req := appendReq(v, name(i))
		req.BlindAppend = false
		req.Actions = append(req.Actions, removeAt(name(i-1), now.Add(-time.Duration(300-i)*time.Minute)))
		v = mustCommit(t, tbl, req)
		if i%25 == 0 {
			if _, err := tbl.Checkpoint(ctx, v); err != nil {
				t.Fatal(err)
			}
		}
		s, err := tbl.SnapshotAt(ctx, v)
		if err != nil {
			t.Fatal(err)
		}
		maxHeld = max(maxHeld, len(s.tombs))
		if i%50 == 0 || i == 299 {
			if got := tombstoneSet(t, tbl, s, 0); len(got) != i {
				t.Fatalf("version %d: %d tombstones, want %d", v, len(got), i)
			}
		}
	}
	if maxHeld > 25 {
		t.Errorf("the writer held up to %d tombstones, want at most the 25 removes between checkpoints", maxHeld)
	}
	s, err := tbl.SnapshotAt(ctx, v)
	if err != nil {
		t.Fatal(err)
	}
	want := replayedTombstones(t, tbl, v, 0)
	if got := tombstoneSet(t, tbl, s, 0); !reflect.DeepEqual(got, want) {
		t.Errorf("long-lived writer's tombstones differ from a log replay: %d against %d", len(got), len(want))
	}
	fresh := Open(st, WithClock(clock))
	fs, err := fresh.SnapshotAt(ctx, v)
	if err != nil {
		t.Fatal(err)
	}
	if fs.checkpointVersion != 301 {
		t.Fatalf("fresh load from checkpoint %d, want 301", fs.checkpointVersion)
	}
	if got := tombstoneSet(t, fresh, fs, 0); !reflect.DeepEqual(got, want) {
		t.Errorf("fresh load's tombstones differ from a log replay: %d against %d", len(got), len(want))
	}
}

// TestVacuumKeepsFilesOfCheckpointTombstones runs the vacuum of TestVacuum
// on a table loaded from a checkpoint, where every tombstone is in the
// checkpoint: a file removed within the retention stays, one removed
// before it goes, as do old orphans.
func TestVacuumKeepsFilesOfCheckpointTombstones(t *testing.T) {
	ctx := context.Background()
	now := time.Date(2024, 6, 1, 12, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	oldT := now.Add(-10 * 24 * time.Hour)
	tbl, st := newTestTable(t, WithClock(clock))
	for _, p := range []string{"day=2024-01-01/live.parquet", "day=2024-01-01/removed-old.parquet",
		"day=2024-01-01/removed-new.parquet", "day=2024-01-01/orphan-old.parquet"} {
		touchData(t, st, p, oldT)
	}
	v := mustCommit(t, tbl, appendReq(0, "day=2024-01-01/live.parquet", "day=2024-01-01/removed-old.parquet", "day=2024-01-01/removed-new.parquet"))
	v = mustCommit(t, tbl, CommitRequest{ReadVersion: v, Operation: "DELETE", Actions: []Action{
		removeAt("day=2024-01-01/removed-old.parquet", now.Add(-8*24*time.Hour)),
		removeAt("day=2024-01-01/removed-new.parquet", now.Add(-24*time.Hour)),
	}})
	if _, err := tbl.Checkpoint(ctx, v); err != nil {
		t.Fatal(err)
	}
	fresh := Open(st, WithClock(clock))
	s, err := fresh.Snapshot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(s.tombs) != 0 || s.tombBase == nil {
		t.Fatalf("%d tombstones in memory, base %v: want none, all in the checkpoint", len(s.tombs), s.tombBase)
	}
	deleted, err := fresh.Vacuum(ctx, VacuumOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"day=2024-01-01/orphan-old.parquet", "day=2024-01-01/removed-old.parquet"}; !equalStrings(deleted, want) {
		t.Errorf("deleted %q, want %q", deleted, want)
	}
	if _, err := st.Stat(ctx, "day=2024-01-01/removed-new.parquet"); err != nil {
		t.Errorf("removed-new, protected by a tombstone in the checkpoint, is gone: %v", err)
	}
}

// TestCheckpointWithBaseGone deletes the checkpoint a long-lived writer
// reads its older tombstones from: the next checkpoint fails with the
// file not found, and the one after it loads afresh and succeeds.
func TestCheckpointWithBaseGone(t *testing.T) {
	ctx := context.Background()
	now := time.Now()
	tbl, st := newTestTable(t, WithClock(func() time.Time { return now }))
	v := mustCommit(t, tbl, appendReq(0, "day=2024-01-01/a.parquet", "day=2024-01-01/b.parquet"))
	v = mustCommit(t, tbl, CommitRequest{ReadVersion: v, Operation: "DELETE", Actions: []Action{removeAt("day=2024-01-01/a.parquet", now)}})
	if _, err := tbl.Checkpoint(ctx, v); err != nil {
		t.Fatal(err)
	}
	v = mustCommit(t, tbl, appendReq(v, "day=2024-01-01/c.parquet"))
	if err := os.Remove(filepath.Join(st.Root(), CheckpointPath(v-1))); err != nil {
		t.Fatal(err)
	}
	if _, err := tbl.Checkpoint(ctx, v); !errors.Is(err, storage.ErrNotExist) {
		t.Fatalf("checkpoint with its base gone: %v, want not found", err)
	}
	if _, err := tbl.Checkpoint(ctx, v); err != nil {
		t.Fatalf("checkpoint after a fresh load: %v", err)
	}
	s, err := Open(st).Snapshot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	tombs, err := Open(st).Tombstones(ctx, s)
	if err != nil {
		t.Fatal(err)
	}
	if len(tombs) != 1 || tombs[0].Path != "day=2024-01-01/a.parquet" {
		t.Errorf("tombstones %v, want a's", tombs)
	}
}

// TestVacuumAtVersionSkipsTheLogListing vacuums a long-lived writer's
// table at the version it knows: the cached snapshot is extended by name
// (no listing of the log, which holds a commit every 500 ms of a month's
// retention on a pipeline table), and the same files are deleted as by a
// vacuum of the listed latest version.
func TestVacuumAtVersionSkipsTheLogListing(t *testing.T) {
	ctx := context.Background()
	now := time.Date(2024, 6, 1, 12, 0, 0, 0, time.UTC)
	tbl, st := newCountedTable(t, nil, func() time.Time { return now })
	local := st.Local
	for _, p := range []string{"day=2024-01-01/a.parquet", "day=2024-01-01/b.parquet", "day=2024-01-01/orphan.parquet"} {
		touchData(t, local, p, now.Add(-10*24*time.Hour))
	}
	v := mustCommit(t, tbl, appendReq(0, "day=2024-01-01/a.parquet", "day=2024-01-01/b.parquet"))
	if _, err := tbl.SnapshotAt(ctx, v); err != nil {
		t.Fatal(err)
	}
	v = mustCommit(t, tbl, CommitRequest{ReadVersion: v, Operation: "DELETE", Actions: []Action{removeAt("day=2024-01-01/b.parquet", now.Add(-8*24*time.Hour))}})
	listed := st.logLists.Load()
	dry, err := tbl.Vacuum(ctx, VacuumOptions{DryRun: true, Version: v})
	if err != nil {
		t.Fatal(err)
	}
	if st.logLists.Load() != listed {
		t.Errorf("vacuum at version %d listed the log %d times", v, st.logLists.Load()-listed)
	}
	want, err := Open(local, WithClock(func() time.Time { return now })).Vacuum(ctx, VacuumOptions{DryRun: true})
	if err != nil {
		t.Fatal(err)
	}
	if !equalStrings(dry, want) || len(want) != 2 {
		t.Errorf("vacuum at version %d would delete %q, of the listed latest %q (want b and the orphan)", v, dry, want)
	}
}

// TestCleanupMetadataOncePerCutoff runs the metadata cleanup twice on one
// day: the second returns without listing the log. The next day's cutoff
// lists it again and deletes what became old.
func TestCleanupMetadataOncePerCutoff(t *testing.T) {
	ctx := context.Background()
	now := time.Date(2024, 6, 1, 12, 0, 0, 0, time.UTC)
	tbl, st := newCountedTable(t, map[string]string{PropLogRetention: "interval 1 day"}, func() time.Time { return now })
	local := st.Local
	v := int64(0)
	for i := range 5 {
		v = mustCommit(t, tbl, appendReq(v, fmt.Sprintf("day=2024-01-01/f%d.parquet", i)))
	}
	if _, err := tbl.Checkpoint(ctx, v); err != nil {
		t.Fatal(err)
	}
	age := func(d time.Duration) {
		for c := range v + 1 {
			p := filepath.Join(local.Root(), filepath.FromSlash(CommitPath(c)))
			if err := os.Chtimes(p, now.Add(-d), now.Add(-d)); err != nil && !os.IsNotExist(err) {
				t.Fatal(err)
			}
		}
	}
	age(time.Hour) // within the retention: nothing to delete
	if deleted, err := tbl.CleanupMetadata(ctx); err != nil || len(deleted) != 0 {
		t.Fatalf("first cleanup: %q, %v; want nothing deleted", deleted, err)
	}
	listed := st.logLists.Load()
	age(3 * 24 * time.Hour) // old now, but the cutoff has not moved
	if deleted, err := tbl.CleanupMetadata(ctx); err != nil || len(deleted) != 0 || st.logLists.Load() != listed {
		t.Fatalf("second cleanup the same day: %q, %v, %d listings; want none", deleted, err, st.logLists.Load()-listed)
	}
	now = now.Add(24 * time.Hour)
	deleted, err := tbl.CleanupMetadata(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(deleted) != int(v) || st.logLists.Load() == listed {
		t.Errorf("next day's cleanup deleted %d files (%q) after %d listings, want the %d commits before checkpoint %d", len(deleted), deleted, st.logLists.Load()-listed, v, v)
	}
}
