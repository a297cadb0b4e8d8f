package delta

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/plantlake/plantlake/delta/storage"
)

// sameTable checks that got (a reader's snapshot) has what want (a fresh,
// listed load) has: version, files, txns and every tombstone, those in a
// checkpoint included.
func sameTable(t *testing.T, gotT *Table, got *Snapshot, wantT *Table, want *Snapshot) {
	t.Helper()
	if got.Version() != want.Version() || !got.Timestamp().Equal(want.Timestamp()) {
		t.Fatalf("version %d at %v, want %d at %v", got.Version(), got.Timestamp(), want.Version(), want.Timestamp())
	}
	if !reflect.DeepEqual(filePaths(got), filePaths(want)) || !reflect.DeepEqual(got.Txns(), want.Txns()) {
		t.Fatalf("files %v txns %v, want %v %v", filePaths(got), got.Txns(), filePaths(want), want.Txns())
	}
	paths := func(tbl *Table, s *Snapshot) []string {
		rs, err := tbl.Tombstones(context.Background(), s)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, r := range rs {
			out = append(out, r.Path)
		}
		slices.Sort(out)
		return out
	}
	if g, w := paths(gotT, got), paths(wantT, want); !reflect.DeepEqual(g, w) {
		t.Fatalf("%d tombstones, want %d", len(g), len(w))
	}
}

// TestSnapshotFollowsWriterByName is a hop's reader following a table
// another process writes, compacts and checkpoints: every Snapshot is the
// latest version with what a listed load of it has, the log is listed only
// for the first load (a listing costs time in proportion to the whole log), and the
// tombstones the reader holds stay bounded (it loads afresh from a newer
// checkpoint once it holds more than maxHeldTombstones).
func TestSnapshotFollowsWriterByName(t *testing.T) {
	defer func(n int) { maxHeldTombstones = n }(maxHeldTombstones)
	maxHeldTombstones = 12
	ctx := context.Background()
	writer, st := newTestTable(t)
	reader := Open(&listCounter{Local: st})
	counted := reader.store.(*listCounter)
	v := int64(0)
	var pending []string
	maxHeld := 0
	for i := range 200 {
		switch {
		case len(pending) == 5:
			req := CommitRequest{ReadVersion: v, Operation: "OPTIMIZE"}
			for _, p := range pending {
				// Removed now: an expired tombstone is dropped by an
				// extension and kept by a load until a checkpoint.
				r := removeAction(p, "2024-01-01")
				ts := time.Now().UnixMilli()
				r.Remove.DeletionTimestamp = &ts
				req.Actions = append(req.Actions, r)
			}
			req.Actions = append(req.Actions, addAction(fmt.Sprintf("day=2024-01-01/c%03d.parquet", i), "2024-01-01"))
			v, pending = mustCommit(t, writer, req), nil
		default:
			p := fmt.Sprintf("day=2024-01-01/a%03d.parquet", i)
			req := appendReq(v, p)
			req.Actions = append(req.Actions, Action{Txn: &Txn{AppID: fmt.Sprintf("ingest/%d", i%3), Version: int64(i)}})
			v, pending = mustCommit(t, writer, req), append(pending, p)
		}
		if i%17 == 16 {
			if _, err := writer.Checkpoint(ctx, v); err != nil {
				t.Fatal(err)
			}
		}
		if i%3 != 0 {
			continue // the reader falls behind by a few commits at times
		}
		got, err := reader.Snapshot(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if got.Version() != v {
			t.Fatalf("reader at version %d, the writer committed %d", got.Version(), v)
		}
		if i == 0 {
			// The first load lists: there is no checkpoint yet.
			counted.logLists.Store(0)
		}
		maxHeld = max(maxHeld, len(got.tombs))
		if i%20 == 0 {
			fresh := Open(st)
			want, err := fresh.Snapshot(ctx)
			if err != nil {
				t.Fatal(err)
			}
			sameTable(t, reader, got, fresh, want)
		}
	}
	if n := counted.logLists.Load(); n != 0 {
		t.Fatalf("the reader listed the log %d times, want 0", n)
	}
	// A reader rebases at the first checkpoint after it crosses the bound:
	// at most the bound plus a checkpoint interval's removes (17 commits,
	// 5 removes every 6).
	if maxHeld <= maxHeldTombstones || maxHeld > maxHeldTombstones+20 {
		t.Fatalf("the reader held up to %d tombstones, want more than %d (the bound was reached) and at most %d", maxHeld, maxHeldTombstones, maxHeldTombstones+20)
	}
}

// TestSnapshotByNameFallsBackToListing covers the ways by name fails: the
// listing then decides, and its answer is what a fresh listed load gives.
func TestSnapshotByNameFallsBackToListing(t *testing.T) {
	ctx := context.Background()
	build := func(t *testing.T) (*Table, *storage.Local, int64) {
		writer, st := newTestTable(t)
		v := int64(0)
		for i := range 12 {
			v = mustCommit(t, writer, appendReq(v, fmt.Sprintf("day=2024-01-01/a%02d.parquet", i)))
			if i == 4 || i == 9 {
				if _, err := writer.Checkpoint(ctx, v); err != nil {
					t.Fatal(err)
				}
			}
		}
		return writer, st, v
	}
	lastCP := func(st *storage.Local) string { return filepath.Join(st.Root(), LogDir, "_last_checkpoint") }
	for _, tc := range []struct {
		name   string
		damage func(t *testing.T, st *storage.Local)
		lists  int64
	}{
		{"the hint names the newest checkpoint", func(*testing.T, *storage.Local) {}, 0},
		{"no hint", func(t *testing.T, st *storage.Local) {
			if err := os.Remove(lastCP(st)); err != nil {
				t.Fatal(err)
			}
		}, 1},
		{"a hint that is not JSON", func(t *testing.T, st *storage.Local) {
			if err := os.WriteFile(lastCP(st), []byte("{version"), 0o644); err != nil {
				t.Fatal(err)
			}
		}, 1},
		{"the hint names a checkpoint that is gone", func(t *testing.T, st *storage.Local) {
			if err := os.WriteFile(lastCP(st), []byte(`{"version":7,"size":9}`), 0o644); err != nil {
				t.Fatal(err)
			}
		}, 1},
		{"the hint names an unreadable checkpoint", func(t *testing.T, st *storage.Local) {
			if err := os.WriteFile(filepath.Join(st.Root(), filepath.FromSlash(CheckpointPath(10))), []byte("not parquet"), 0o644); err != nil {
				t.Fatal(err)
			}
		}, 1},
		{"the hint names an older checkpoint", func(t *testing.T, st *storage.Local) {
			if err := os.WriteFile(lastCP(st), []byte(`{"version":5,"size":7}`), 0o644); err != nil {
				t.Fatal(err)
			}
		}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, st, v := build(t)
			tc.damage(t, st)
			counted := &listCounter{Local: st}
			reader := Open(counted)
			got, err := reader.Snapshot(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if got.Version() != v {
				t.Fatalf("version %d, want %d", got.Version(), v)
			}
			if n := counted.logLists.Load(); n != tc.lists {
				t.Fatalf("listed the log %d times, want %d", n, tc.lists)
			}
			fresh := Open(st)
			want, err := fresh.Snapshot(ctx)
			if err != nil {
				t.Fatal(err)
			}
			sameTable(t, reader, got, fresh, want)
		})
	}
}

// TestSnapshotByNameSeesTheTableGone: a reader whose table was deleted
// under it gets the listing's error, not its cached snapshot.
func TestSnapshotByNameSeesTheTableGone(t *testing.T) {
	ctx := context.Background()
	writer, st := newTestTable(t)
	mustCommit(t, writer, appendReq(0, "day=2024-01-01/a.parquet"))
	reader := Open(st)
	if _, err := reader.Snapshot(ctx); err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(filepath.Join(st.Root(), LogDir)); err != nil {
		t.Fatal(err)
	}
	_, err := reader.Snapshot(ctx)
	if !errors.Is(err, ErrNotATable) {
		t.Fatalf("Snapshot of a deleted table: %v, want ErrNotATable", err)
	}
	if !strings.Contains(err.Error(), LogDir) {
		t.Fatalf("error %q does not name the log folder", err)
	}
}

// TestHistoryByName checks History with a limit against the listed history
// of a log whose oldest commits were cleaned up, with file times out of
// order: the same records, and the log is not listed.
func TestHistoryByName(t *testing.T) {
	ctx := context.Background()
	writer, st := newTestTable(t)
	v := int64(0)
	for i := range 30 {
		v = mustCommit(t, writer, appendReq(v, fmt.Sprintf("day=2024-01-01/a%02d.parquet", i)))
		if v == 10 {
			if _, err := writer.Checkpoint(ctx, v); err != nil {
				t.Fatal(err)
			}
		}
	}
	base := time.Date(2024, 3, 1, 0, 0, 0, 0, time.UTC)
	for u := int64(0); u <= v; u++ {
		ts := base.Add(time.Duration(u) * time.Minute)
		if u%4 == 0 {
			ts = ts.Add(-3 * time.Minute) // a clock that stepped back
		}
		setCommitTime(t, st, u, ts)
	}
	for u := range int64(6) {
		if err := st.Delete(ctx, CommitPath(u)); err != nil {
			t.Fatal(err)
		}
	}
	all, err := Open(st).History(ctx, 0) // no limit: listed
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != int(v)-5 {
		t.Fatalf("listed history has %d records, want %d", len(all), v-5)
	}
	for _, limit := range []int{1, 4, 17, int(v) - 5, 1000} {
		counted := &listCounter{Local: st}
		got, err := Open(counted).History(ctx, limit)
		if err != nil {
			t.Fatal(err)
		}
		if n := counted.logLists.Load(); n != 0 {
			t.Errorf("History(%d) listed the log %d times", limit, n)
		}
		want, err := Open(st).historyListed(ctx, limit)
		if err != nil {
			t.Fatal(err)
		}
		if len(want) != min(limit, len(all)) || !reflect.DeepEqual(got, want) {
			t.Fatalf("History(%d) by name:\n%+v\nlisted:\n%+v", limit, got, want)
		}
	}
}

// TestTimeTravelByName checks SnapshotAt and SnapshotAsOf on a log whose
// oldest commits were cleaned up, against loads from a listing: the same
// snapshots, the same errors, and the log not listed.
func TestTimeTravelByName(t *testing.T) {
	defer func(n int64) { cleanupByNameFrom = n }(cleanupByNameFrom)
	ctx := context.Background()
	writer, st := newTestTable(t)
	v := int64(0)
	for i := range 60 {
		v = mustCommit(t, writer, appendReq(v, fmt.Sprintf("day=2024-01-01/a%02d.parquet", i)))
		if v%7 == 0 {
			if _, err := writer.Checkpoint(ctx, v); err != nil {
				t.Fatal(err)
			}
		}
	}
	base := time.Date(2024, 3, 1, 0, 0, 0, 0, time.UTC)
	for u := int64(0); u <= v; u++ {
		setCommitTime(t, st, u, base.Add(time.Duration(u)*time.Minute))
	}
	// A cleanup left commits 14.. and checkpoints 14.. (checkpoint 7 gone).
	for u := range int64(14) {
		if err := st.Delete(ctx, CommitPath(u)); err != nil {
			t.Fatal(err)
		}
	}
	if err := st.Delete(ctx, CheckpointPath(7)); err != nil {
		t.Fatal(err)
	}
	listedAt := func(u int64) (*Snapshot, error) {
		l, err := listLog(ctx, st)
		if err != nil {
			return nil, err
		}
		if u > l.latestVersion() {
			return nil, ErrVersionNotFound
		}
		if err := l.stat(ctx, u); err != nil {
			return nil, err
		}
		return Open(st).snapshotFrom(ctx, l, u)
	}
	for u := int64(0); u <= v+1; u++ {
		counted := &listCounter{Local: st}
		got, err := Open(counted).SnapshotAt(ctx, u)
		want, werr := listedAt(u)
		if (err == nil) != (werr == nil) {
			t.Fatalf("SnapshotAt(%d): %v, listed: %v", u, err, werr)
		}
		if err != nil {
			continue
		}
		if n := counted.logLists.Load(); n != 0 {
			t.Errorf("SnapshotAt(%d) listed the log %d times", u, n)
		}
		if got.Version() != want.Version() || !reflect.DeepEqual(filePaths(got), filePaths(want)) || !got.Timestamp().Equal(want.Timestamp()) {
			t.Fatalf("SnapshotAt(%d) by name: version %d, %d files at %v; listed: %d, %d files at %v",
				u, got.Version(), len(got.Files()), got.Timestamp(), want.Version(), len(want.Files()), want.Timestamp())
		}
	}
	for m := -2; m <= 62; m++ {
		for _, off := range []time.Duration{0, 30 * time.Second} {
			ts := base.Add(time.Duration(m)*time.Minute + off)
			cleanupByNameFrom = 1 << 62
			want, werr := Open(st).SnapshotAsOf(ctx, ts)
			cleanupByNameFrom = 0
			counted := &listCounter{Local: st}
			got, err := Open(counted).SnapshotAsOf(ctx, ts)
			if werr != nil {
				if err == nil || err.Error() != werr.Error() {
					t.Fatalf("SnapshotAsOf(%v): %v, listed: %v", ts, err, werr)
				}
				continue
			}
			if err != nil || got.Version() != want.Version() {
				t.Fatalf("SnapshotAsOf(%v) by name: %v %v, listed: version %d", ts, got, err, want.Version())
			}
			if n := counted.logLists.Load(); n != 0 {
				t.Errorf("SnapshotAsOf(%v) listed the log %d times", ts, n)
			}
		}
	}
}

// statCounter is a listCounter that also counts Stat calls.
type statCounter struct {
	listCounter
	stats atomic.Int64
}

func (c *statCounter) Stat(ctx context.Context, p string) (storage.FileInfo, error) {
	c.stats.Add(1)
	return c.Local.Stat(ctx, p)
}

// TestSnapshotFarBehindLoadsTheNewerCheckpoint: a reader 300 commits
// behind a writer that checkpointed 10 commits before its latest loads
// that checkpoint instead of stat-ing and reading all 300 commits (on an
// object store, a request each), and a reader far behind with no newer
// checkpoint still extends by name.
func TestSnapshotFarBehindLoadsTheNewerCheckpoint(t *testing.T) {
	ctx := context.Background()
	for _, checkpoint := range []bool{true, false} {
		t.Run(fmt.Sprintf("checkpoint=%v", checkpoint), func(t *testing.T) {
			writer, st := newTestTable(t)
			counted := &statCounter{listCounter: listCounter{Local: st}}
			reader := Open(counted)
			if _, err := reader.Snapshot(ctx); err != nil {
				t.Fatal(err)
			}
			v := int64(0)
			for i := range 300 {
				v = mustCommit(t, writer, appendReq(v, fmt.Sprintf("day=2024-01-01/a%03d.parquet", i)))
				if checkpoint && i == 289 {
					if _, err := writer.Checkpoint(ctx, v); err != nil {
						t.Fatal(err)
					}
				}
			}
			counted.stats.Store(0)
			counted.logLists.Store(0)
			got, err := reader.Snapshot(ctx)
			if err != nil {
				t.Fatal(err)
			}
			fresh := Open(st)
			want, err := fresh.Snapshot(ctx)
			if err != nil {
				t.Fatal(err)
			}
			sameTable(t, reader, got, fresh, want)
			stats, lists := counted.stats.Load(), counted.logLists.Load()
			t.Logf("%d stats, %d listings of the log", stats, lists)
			if lists != 0 {
				t.Errorf("listed the log %d times", lists)
			}
			switch {
			case checkpoint && (got.checkpointVersion != v-10 || stats > farBehind+20):
				t.Errorf("from checkpoint %d with %d stats, want checkpoint %d and at most %d", got.checkpointVersion, stats, v-10, farBehind+20)
			case !checkpoint && got.checkpointVersion != -1:
				t.Errorf("from checkpoint %d, want extended by name", got.checkpointVersion)
			}
		})
	}
}
