package delta

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/plantlake/plantlake/delta/storage"
)

// listCounter is a local store that counts listings: of any folder
// (lists) and of the log (logLists).
type listCounter struct {
	*storage.Local
	lists, logLists atomic.Int64
}

func (c *listCounter) count(dir string) {
	c.lists.Add(1)
	if strings.TrimSuffix(dir, "/") == LogDir {
		c.logLists.Add(1)
	}
}

func (c *listCounter) List(ctx context.Context, dir string) ([]storage.FileInfo, error) {
	c.count(dir)
	return c.Local.List(ctx, dir)
}

func (c *listCounter) ListNames(ctx context.Context, dir string) ([]string, error) {
	c.count(dir)
	return c.Local.ListNames(ctx, dir)
}

func (c *listCounter) ListNamesUnordered(ctx context.Context, dir string) ([]string, error) {
	c.count(dir)
	return c.Local.ListNamesUnordered(ctx, dir)
}

// newCountedTable creates a table of testSchema with configuration conf on
// a listCounter, with the clock now.
func newCountedTable(t *testing.T, conf map[string]string, now func() time.Time) (*Table, *listCounter) {
	t.Helper()
	local, err := storage.NewLocal(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	st := &listCounter{Local: local}
	tbl, err := Create(context.Background(), st, Metadata{SchemaString: testSchema, PartitionColumns: []string{"day"}, Configuration: conf},
		Protocol{}, WithClock(now))
	if err != nil {
		t.Fatal(err)
	}
	return tbl, st
}

func sameSnapshot(t *testing.T, got, want *Snapshot) {
	t.Helper()
	if got.Version() != want.Version() || !got.Timestamp().Equal(want.Timestamp()) {
		t.Fatalf("version %d at %v, want %d at %v", got.Version(), got.Timestamp(), want.Version(), want.Timestamp())
	}
	if !reflect.DeepEqual(got.Files(), want.Files()) {
		t.Fatalf("files %v, want %v", filePaths(got), filePaths(want))
	}
	if !reflect.DeepEqual(got.Tombstones(), want.Tombstones()) || !reflect.DeepEqual(got.Txns(), want.Txns()) {
		t.Fatalf("tombstones or txns differ: %v / %v, want %v / %v", got.Tombstones(), got.Txns(), want.Tombstones(), want.Txns())
	}
}

// TestSnapshotAtExtendsByName checks that SnapshotAt past the cached
// snapshot reads the commits after it by name, without listing the log
// (what a checkpoint every few versions of a long-lived table paid in
// proportion to the whole log), gives what a listed load gives, and with
// a commit file gone loads from the checkpoint that covers it, still by
// name.
func TestSnapshotAtExtendsByName(t *testing.T) {
	ctx := context.Background()
	local, err := storage.NewLocal(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	st := &listCounter{Local: local}
	tbl, err := Create(ctx, st, Metadata{SchemaString: testSchema, PartitionColumns: []string{"day"}}, Protocol{})
	if err != nil {
		t.Fatal(err)
	}
	v := int64(0)
	for i := range 5 {
		v = mustCommit(t, tbl, appendReq(v, fmt.Sprintf("day=2024-01-01/a%d.parquet", i)))
	}
	if _, err := tbl.Snapshot(ctx); err != nil {
		t.Fatal(err)
	}
	listed := st.lists.Load()

	// Appends, a compaction's removes, a txn: read by name.
	for i := range 3 {
		req := appendReq(v, fmt.Sprintf("day=2024-01-01/b%d.parquet", i))
		req.Actions = append(req.Actions, Action{Txn: &Txn{AppID: "ingest/0", Version: int64(i)}})
		v = mustCommit(t, tbl, req)
	}
	v = mustCommit(t, tbl, CommitRequest{ReadVersion: v, Operation: "OPTIMIZE", Actions: []Action{
		removeAction("day=2024-01-01/a0.parquet", "2024-01-01"), removeAction("day=2024-01-01/a1.parquet", "2024-01-01"),
		addAction("day=2024-01-01/c0.parquet", "2024-01-01"),
	}})
	got, err := tbl.SnapshotAt(ctx, v)
	if err != nil {
		t.Fatal(err)
	}
	if n := st.lists.Load() - listed; n != 0 {
		t.Fatalf("SnapshotAt listed the log %d times, want 0", n)
	}
	want, err := Open(local).SnapshotAt(ctx, v)
	if err != nil {
		t.Fatal(err)
	}
	sameSnapshot(t, got, want)
	if len(got.Tombstones()) != 2 {
		t.Fatalf("%d tombstones, want 2", len(got.Tombstones()))
	}

	// Beyond the newest commit: not found, as with a listing.
	if _, err := tbl.SnapshotAt(ctx, v+1); err == nil {
		t.Fatalf("SnapshotAt(%d) past the newest commit succeeded", v+1)
	}

	// A commit after the cached snapshot cleaned up (a checkpoint covers
	// it): replay starts at the checkpoint, found by name.
	other := Open(local) // commits that tbl's cache does not hold
	cached := v
	for i := range 3 {
		v = mustCommit(t, other, appendReq(v, fmt.Sprintf("day=2024-01-01/d%d.parquet", i)))
	}
	if _, err := other.Checkpoint(ctx, v); err != nil {
		t.Fatal(err)
	}
	cp := v
	v = mustCommit(t, other, appendReq(v, "day=2024-01-01/e0.parquet"))
	if err := os.Remove(filepath.Join(local.Root(), CommitPath(cached+1))); err != nil {
		t.Fatal(err)
	}
	listed = st.lists.Load()
	got, err = tbl.SnapshotAt(ctx, v)
	if err != nil {
		t.Fatal(err)
	}
	if st.lists.Load() != listed || got.checkpointVersion != cp {
		t.Fatalf("SnapshotAt with a commit file gone: from checkpoint %d (want %d), %d listings (want 0)", got.checkpointVersion, cp, st.lists.Load()-listed)
	}
	want, err = Open(local).SnapshotAt(ctx, v)
	if err != nil {
		t.Fatal(err)
	}
	sameSnapshot(t, got, want)
}

// TestExtendLeavesExpiredTombstones checks that a snapshot extended from
// the cached one drops the tombstones that expired meanwhile (a long-lived
// writer kept every tombstone since it started), keeps the others, and
// that a checkpoint of it matches one of a snapshot loaded afresh.
func TestExtendLeavesExpiredTombstones(t *testing.T) {
	ctx := context.Background()
	now := time.Now()
	clock := func() time.Time { return now }
	tbl, st := newTestTable(t, WithClock(clock))
	v := mustCommit(t, tbl, appendReq(0, "day=2024-01-01/a.parquet", "day=2024-01-01/b.parquet"))
	rm := func(p string, at time.Time) Action {
		ts := at.UnixMilli()
		return Action{Remove: &Remove{Path: p, DeletionTimestamp: &ts, DataChange: true, PartitionValues: map[string]string{"day": "2024-01-01"}}}
	}
	v = mustCommit(t, tbl, CommitRequest{ReadVersion: v, Operation: "DELETE", Actions: []Action{rm("day=2024-01-01/a.parquet", now)}})
	if s, err := tbl.SnapshotAt(ctx, v); err != nil || len(s.Tombstones()) != 1 {
		t.Fatalf("SnapshotAt(%d): %v; want one tombstone", v, err)
	}
	// Eight days on: a's tombstone expired (a week's retention), b's is new.
	now = now.Add(8 * 24 * time.Hour)
	v = mustCommit(t, tbl, CommitRequest{ReadVersion: v, Operation: "DELETE", Actions: []Action{rm("day=2024-01-01/b.parquet", now)}})
	s, err := tbl.SnapshotAt(ctx, v)
	if err != nil {
		t.Fatal(err)
	}
	if got := s.Tombstones(); len(got) != 1 || got[0].Path != "day=2024-01-01/b.parquet" {
		t.Fatalf("tombstones %v, want only b's", got)
	}
	cp, err := tbl.Checkpoint(ctx, v)
	if err != nil {
		t.Fatal(err)
	}
	fresh, err := Open(st, WithClock(clock)).SnapshotAt(ctx, v)
	if err != nil {
		t.Fatal(err)
	}
	_, actions, _, err := tbl.encodeCheckpoint(ctx, fresh, now.Add(-DefaultDeletedFileRetention).UnixMilli())
	if err != nil {
		t.Fatal(err)
	}
	if cp.NumActions != int64(actions) {
		t.Fatalf("checkpoint of the extended snapshot has %d actions, of a fresh load %d", cp.NumActions, actions)
	}
}
