package delta

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/parquet/file"
	"github.com/apache/arrow-go/v18/parquet/schema"

	"github.com/plantlake/plantlake/delta/storage"
)

// buildHistory writes a table with appends, deletes, txns, a metadata change
// and awkward paths, returning its store.
func buildHistory(t testing.TB, commits int) *storage.Local {
	t.Helper()
	tbl, st := newTestTable(t, WithClock(func() time.Time { return testNow }))
	v := int64(0)
	for i := 1; i <= commits; i++ {
		day := "2024-01-0" + string(rune('1'+i%3))
		req := CommitRequest{ReadVersion: v, Operation: "WRITE", BlindAppend: true, Actions: []Action{
			addAction(EncodePath("day="+day+"/f "+string(rune('a'+i%26))+"%"+itoa(i)+".parquet"), day),
			{Txn: &Txn{AppID: "app-" + itoa(i%4), Version: int64(i)}},
		}}
		if i%5 == 0 {
			req.BlindAppend = false
			prev := "day=2024-01-0" + string(rune('1'+(i-1)%3)) + "/f " + string(rune('a'+(i-1)%26)) + "%" + itoa(i-1) + ".parquet"
			ts := testNow.UnixMilli() - int64(i%2)*int64(30*24*time.Hour/time.Millisecond) // half of them expired
			req.Actions = append(req.Actions, Action{Remove: &Remove{Path: EncodePath(prev), DeletionTimestamp: &ts, DataChange: true}})
		}
		if i == 7 {
			req.BlindAppend = false
			req.Actions = append(req.Actions, Action{MetaData: &Metadata{ID: "id", SchemaString: testSchema, PartitionColumns: []string{"day"},
				Configuration: map[string]string{"delta.appendOnly": "false"}}})
		}
		v = mustCommit(t, tbl, req)
	}
	return st
}

func itoa(i int) string { b, _ := json.Marshal(i); return string(b) }

// snapshotView is what must be equal with and without a checkpoint.
type snapshotView struct {
	Version  int64
	Protocol Protocol
	Metadata Metadata
	Files    []Add
	Txns     []Txn
}

func view(s *Snapshot) snapshotView {
	return snapshotView{s.Version(), s.Protocol(), s.Metadata(), s.Files(), s.Txns()}
}

func TestCheckpointReplayEqualsLogReplay(t *testing.T) {
	ctx := context.Background()
	st := buildHistory(t, 23)
	want, err := Open(st).Snapshot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	tbl := Open(st, WithClock(func() time.Time { return testNow }))
	res, err := tbl.Checkpoint(ctx, 20)
	if err != nil {
		t.Fatal(err)
	}
	if res.Version != 20 || res.NumOfAddFiles == 0 {
		t.Fatalf("checkpoint result %+v", res)
	}
	got, err := Open(st).Snapshot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got.checkpointVersion != 20 {
		t.Fatalf("replay started at %d, want checkpoint 20", got.checkpointVersion)
	}
	if !reflect.DeepEqual(view(got), view(want)) {
		t.Errorf("snapshot from checkpoint differs:\n got %+v\nwant %+v", view(got), view(want))
	}
	fresh := Open(st)
	at20, err := fresh.SnapshotAt(ctx, 20)
	if err != nil {
		t.Fatal(err)
	}
	tombs, err := fresh.Tombstones(ctx, at20)
	if err != nil {
		t.Fatal(err)
	}
	if len(tombs) == 0 {
		t.Error("no tombstone read from checkpoint 20")
	}
	// Only unexpired tombstones are kept in the checkpoint.
	for _, r := range tombs {
		if *r.DeletionTimestamp <= testNow.Add(-DefaultDeletedFileRetention).UnixMilli() {
			t.Errorf("expired tombstone %s kept", r.Path)
		}
	}
	lc, ok := readLastCheckpoint(ctx, st)
	if !ok || lc.Version != 20 || lc.NumOfAddFiles == nil || *lc.NumOfAddFiles != res.NumOfAddFiles {
		t.Errorf("_last_checkpoint = %+v, %v", lc, ok)
	}
}

func TestLastCheckpointHint(t *testing.T) {
	cases := []struct {
		name    string
		content *string // nil: delete the file
	}{
		{"missing", nil},
		{"empty", ptr("")},
		{"not json", ptr("{garbage")},
		{"points at a missing checkpoint", ptr(`{"version":3,"size":4}`)},
		{"points past the log", ptr(`{"version":99,"size":4}`)},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			st := buildHistory(t, 12)
			want, err := Open(st).Snapshot(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := Open(st).Checkpoint(ctx, 10); err != nil {
				t.Fatal(err)
			}
			p := filepath.Join(st.Root(), LogDir, "_last_checkpoint")
			if tc.content == nil {
				if err := os.Remove(p); err != nil {
					t.Fatal(err)
				}
			} else if err := os.WriteFile(p, []byte(*tc.content), 0o644); err != nil {
				t.Fatal(err)
			}
			got, err := Open(st).Snapshot(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if got.checkpointVersion != 10 || !reflect.DeepEqual(view(got), view(want)) {
				t.Errorf("snapshot (from checkpoint %d) differs from log replay", got.checkpointVersion)
			}
		})
	}
}

func ptr(s string) *string { return &s }

func TestCorruptCheckpointFallsBack(t *testing.T) {
	ctx := context.Background()
	st := buildHistory(t, 12)
	want, err := Open(st).Snapshot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	tbl := Open(st)
	for _, v := range []int64{5, 10} {
		if _, err := tbl.Checkpoint(ctx, v); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(st.Root(), filepath.FromSlash(CheckpointPath(10))), []byte("PAR1 not parquet"), 0o644); err != nil {
		t.Fatal(err)
	}
	got, err := Open(st).Snapshot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got.checkpointVersion != 5 || !reflect.DeepEqual(view(got), view(want)) {
		t.Errorf("snapshot after a corrupt checkpoint (from %d) differs", got.checkpointVersion)
	}
}

// TestCheckpointGolden pins the Parquet schema and content of a checkpoint.
func TestCheckpointGolden(t *testing.T) {
	ctx := context.Background()
	st := buildHistory(t, 8)
	tbl := Open(st, WithClock(func() time.Time { return testNow }))
	if _, err := tbl.Checkpoint(ctx, -1); err != nil {
		t.Fatal(err)
	}
	f, err := st.Open(ctx, CheckpointPath(8))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	pf, err := file.NewParquetReader(io.NewSectionReader(f, 0, f.Size()))
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	schema.PrintSchema(pf.MetaData().Schema.Root(), &buf, 2)
	checkGolden(t, "checkpoint_schema.golden", buf.Bytes())
	acts, err := readParquetActions(ctx, st, CheckpointPath(8), false)
	if err != nil {
		t.Fatal(err)
	}
	out, err := MarshalActions(acts)
	if err != nil {
		t.Fatal(err)
	}
	checkGolden(t, "checkpoint_actions.golden.jsonl", out)
}

// TestCheckpointInChunks writes a checkpoint in chunks of 4 rows (one row
// group each) and loads it: the same files, txns, metadata and unexpired
// tombstones as replaying the log, and the same actions as the golden file
// written in one chunk.
func TestCheckpointInChunks(t *testing.T) {
	defer func(n int) { checkpointChunkRows = n }(checkpointChunkRows)
	checkpointChunkRows = 4
	ctx := context.Background()
	st := buildHistory(t, 23)
	want, err := Open(st, WithClock(func() time.Time { return testNow })).Snapshot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	tbl := Open(st, WithClock(func() time.Time { return testNow }))
	res, err := tbl.Checkpoint(ctx, -1)
	if err != nil {
		t.Fatal(err)
	}
	f, err := st.Open(ctx, CheckpointPath(23))
	if err != nil {
		t.Fatal(err)
	}
	pf, err := file.NewParquetReader(io.NewSectionReader(f, 0, f.Size()))
	if err != nil {
		t.Fatal(err)
	}
	if groups, want := pf.NumRowGroups(), int((res.NumActions+3)/4); groups != want {
		t.Errorf("%d row groups for %d actions, want %d", groups, res.NumActions, want)
	}
	f.Close()
	reader := Open(st, WithClock(func() time.Time { return testNow }))
	got, err := reader.Snapshot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got.checkpointVersion != 23 {
		t.Fatalf("replay started at %d, want checkpoint 23", got.checkpointVersion)
	}
	if !reflect.DeepEqual(view(got), view(want)) {
		t.Errorf("snapshot from the chunked checkpoint differs:\n got %+v\nwant %+v", view(got), view(want))
	}
	cutoff := testNow.Add(-DefaultDeletedFileRetention).UnixMilli()
	var unexpired []Remove
	for _, r := range want.Tombstones() {
		if *r.DeletionTimestamp > cutoff {
			unexpired = append(unexpired, r)
		}
	}
	if len(unexpired) == 0 {
		t.Fatal("the history has no unexpired tombstone")
	}
	tombs, err := reader.Tombstones(ctx, got)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(tombs, unexpired) {
		t.Errorf("tombstones from the chunked checkpoint:\n got %+v\nwant %+v", tombs, unexpired)
	}
}
