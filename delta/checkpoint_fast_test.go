package delta

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet"
	"github.com/apache/arrow-go/v18/parquet/file"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"

	"github.com/plantlake/plantlake/delta/storage"
)

// decodeBothWays decodes a Parquet checkpoint with the fast file-action
// decoder and with Arrow alone, and fails unless both give the same actions.
func decodeBothWays(t *testing.T, data []byte) []Action {
	t.Helper()
	ctx := context.Background()
	fast, err := decodeParquetActions(ctx, bytes.NewReader(data), true, false)
	if err != nil {
		t.Fatalf("fast decode: %v", err)
	}
	slow, err := decodeParquetActions(ctx, bytes.NewReader(data), false, false)
	if err != nil {
		t.Fatalf("generic decode: %v", err)
	}
	fb, err := MarshalActions(fast)
	if err != nil {
		t.Fatal(err)
	}
	sb, err := MarshalActions(slow)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(fb, sb) {
		t.Fatalf("fast and generic decoders differ:\nfast:\n%s\ngeneric:\n%s", fb, sb)
	}
	return fast
}

// fastPathErrs is what the fast decoders say of a file, for the add and
// remove columns and for the others: nil when they decode them,
// errNoFastPath when they leave them to Arrow.
func fastPathErrs(t *testing.T, data []byte) (files, others error) {
	t.Helper()
	pf, err := file.NewParquetReader(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	defer pf.Close()
	var fileCols, otherCols []int
	for i := 0; i < pf.MetaData().Schema.NumColumns(); i++ {
		p := pf.MetaData().Schema.Column(i).ColumnPath()
		switch {
		case !checkpointColumns[p[0]] || skippedLeaf(p):
		case p[0] == "add" || p[0] == "remove":
			fileCols = append(fileCols, i)
		default:
			otherCols = append(otherCols, i)
		}
	}
	_, files = fastFileActions(pf, fileCols)
	others = fastOtherActions(pf, otherCols, map[string][]Action{})
	return files, others
}

// TestFastCheckpointDecodeGolden compares both decoders on every Parquet
// checkpoint and sidecar of the golden tables (written by Spark), including
// files with deletion vectors (which take the generic path).
func TestFastCheckpointDecodeGolden(t *testing.T) {
	var files []string
	err := filepath.WalkDir(goldenDir, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.HasSuffix(p, ".parquet") && strings.Contains(filepath.ToSlash(p), "/_delta_log/") {
			files = append(files, p)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 10 {
		t.Fatalf("found %d golden checkpoint files, want at least 10", len(files))
	}
	for _, f := range files {
		name, _ := filepath.Rel(goldenDir, f)
		t.Run(name, func(t *testing.T) {
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			acts := decodeBothWays(t, data)
			if len(acts) == 0 {
				t.Errorf("no actions decoded")
			}
			// Files with deletion vectors take the generic path; the others
			// the fast one.
			hasDV := strings.HasPrefix(name, "dv-")
			files, others := fastPathErrs(t, data)
			if (files != nil) != hasDV || (files != nil && !errors.Is(files, errNoFastPath)) {
				t.Errorf("fast path for files on %s (deletion vectors: %v): %v", name, hasDV, files)
			}
			if others != nil {
				t.Errorf("fast path for other actions on %s: %v", name, others)
			}
		})
	}
}

// TestFastCheckpointDecodeWritten compares both decoders on checkpoints
// this library writes: several pages of files, removes with every optional
// field, tags, null and empty maps, partition values shared and not.
func TestFastCheckpointDecodeWritten(t *testing.T) {
	ctx := context.Background()
	cases := []struct {
		name    string
		commits func(tbl *Table) []CommitRequest
		files   int
		tombs   int
	}{
		{
			name: "many files across pages",
			commits: func(*Table) []CommitRequest {
				req := CommitRequest{ReadVersion: 0, Operation: "WRITE", BlindAppend: true}
				for i := 0; i < 9000; i++ {
					a := addAction(fmt.Sprintf("day=2024-01-%02d/part-%05d.parquet", i%28+1, i), fmt.Sprintf("2024-01-%02d", i%28+1))
					if i%3 == 0 {
						a.Add.Stats = fmt.Sprintf(`{"numRecords":%d}`, i)
					}
					if i%1000 == 0 {
						a.Add.PartitionValues = map[string]string{"day": ""}
					}
					req.Actions = append(req.Actions, a)
				}
				return []CommitRequest{req}
			},
			files: 9000,
		},
		{
			name: "removes, tags, optional fields",
			commits: func(*Table) []CommitRequest {
				base, rv := int64(7), int64(3)
				add1 := addAction("day=2024-01-01/a.parquet", "2024-01-01")
				add1.Add.Tags = map[string]string{"INSERTION_TIME": "1", "k": ""}
				add1.Add.BaseRowID, add1.Add.DefaultRowCommitVersion = &base, &rv
				add1.Add.ClusteringProvider = "liquid"
				add2 := addAction("b c.parquet", "")
				add2.Add.PartitionValues = map[string]string{"day": ""}
				add3 := addAction("day=2024-01-02/c.parquet", "2024-01-02")
				first := CommitRequest{ReadVersion: 0, Operation: "WRITE", Actions: []Action{add1, add2, add3}}
				rm := removeAction("day=2024-01-02/c.parquet", "2024-01-02")
				size, ext := int64(10), true
				rm.Remove.Size, rm.Remove.ExtendedFileMetadata = &size, &ext
				rm.Remove.Tags = map[string]string{"a": "b"}
				rm.Remove.Stats = `{"numRecords":1}`
				rm.Remove.BaseRowID = &base
				now := time.Now().UnixMilli()
				rm.Remove.DeletionTimestamp = &now
				rm2 := Action{Remove: &Remove{Path: "gone.parquet", DataChange: false, DeletionTimestamp: &now}}
				second := CommitRequest{ReadVersion: 1, Operation: "DELETE", Actions: []Action{rm, rm2,
					{Txn: &Txn{AppID: "app", Version: 4}}}}
				return []CommitRequest{first, second}
			},
			files: 2,
			tombs: 2,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tbl, st := newTestTable(t)
			for _, req := range tc.commits(tbl) {
				mustCommit(t, tbl, req)
			}
			res, err := tbl.Checkpoint(ctx, -1)
			if err != nil {
				t.Fatal(err)
			}
			v := res.Version
			data, err := st.ReadFile(ctx, CheckpointPath(v))
			if err != nil {
				t.Fatal(err)
			}
			decodeBothWays(t, data)
			if files, others := fastPathErrs(t, data); files != nil || others != nil {
				t.Errorf("fast path refused the checkpoint: %v, %v", files, others)
			}
			// A fresh table loads from the checkpoint.
			fresh := Open(st)
			s, err := fresh.Snapshot(ctx)
			if err != nil {
				t.Fatal(err)
			}
			tombs, err := fresh.Tombstones(ctx, s)
			if err != nil {
				t.Fatal(err)
			}
			if s.checkpointVersion != v || s.NumFiles() != tc.files || len(tombs) != tc.tombs || len(s.Tombstones()) != 0 {
				t.Errorf("snapshot from checkpoint %d: %d files, %d tombstones (%d in memory); want checkpoint %d, %d files, %d tombstones (none in memory)",
					s.checkpointVersion, s.NumFiles(), len(tombs), len(s.Tombstones()), v, tc.files, tc.tombs)
			}
		})
	}
}

// TestFastCheckpointSharesPartitionMaps checks that files with equal
// partition values share one map after a checkpoint load (the point of
// interning), while their values stay right.
func TestFastCheckpointSharesPartitionMaps(t *testing.T) {
	ctx := context.Background()
	tbl, st := newTestTable(t)
	mustCommit(t, tbl, appendReq(0, "day=2024-01-01/a.parquet", "day=2024-01-01/b.parquet"))
	mustCommit(t, tbl, CommitRequest{ReadVersion: 1, Operation: "WRITE", BlindAppend: true,
		Actions: []Action{addAction("day=2024-01-02/c.parquet", "2024-01-02")}})
	if _, err := tbl.Checkpoint(ctx, -1); err != nil {
		t.Fatal(err)
	}
	acts, err := readParquetActions(ctx, st, CheckpointPath(2), false)
	if err != nil {
		t.Fatal(err)
	}
	byPath := map[string]*Add{}
	for _, a := range acts {
		if a.Add != nil {
			byPath[a.Add.Path] = a.Add
		}
	}
	a, b, c := byPath["day=2024-01-01/a.parquet"], byPath["day=2024-01-01/b.parquet"], byPath["day=2024-01-02/c.parquet"]
	if a == nil || b == nil || c == nil {
		t.Fatalf("checkpoint adds: %v", byPath)
	}
	if a.PartitionValues["day"] != "2024-01-01" || c.PartitionValues["day"] != "2024-01-02" {
		t.Errorf("partition values %v %v", a.PartitionValues, c.PartitionValues)
	}
	if fmt.Sprintf("%p", a.PartitionValues) != fmt.Sprintf("%p", b.PartitionValues) {
		t.Errorf("equal partition values are not shared")
	}
	if fmt.Sprintf("%p", a.PartitionValues) == fmt.Sprintf("%p", c.PartitionValues) {
		t.Errorf("different partition values share a map")
	}
}

// TestMapInterner checks that only maps with equal entries are shared, even
// when keys and values hold the bytes that could separate them.
func TestMapInterner(t *testing.T) {
	in := &mapInterner{}
	cases := []struct{ keys, vals []string }{
		{[]string{"a\x00b"}, []string{""}},
		{[]string{"a"}, []string{"b\x00"}},
		{[]string{"a"}, []string{"b"}},
		{[]string{"a", "b"}, []string{"", ""}},
		{[]string{"ab"}, []string{""}},
		{nil, nil},
	}
	seen := map[string]map[string]string{}
	for _, tc := range cases {
		m := in.intern(tc.keys, tc.vals)
		if len(m) != len(tc.keys) {
			t.Fatalf("intern(%q, %q) = %q", tc.keys, tc.vals, m)
		}
		for i, k := range tc.keys {
			if m[k] != tc.vals[i] {
				t.Errorf("intern(%q, %q) = %q", tc.keys, tc.vals, m)
			}
		}
		p := fmt.Sprintf("%p", m)
		if prev, ok := seen[p]; ok {
			t.Errorf("intern(%q, %q) shares the map of %q", tc.keys, tc.vals, prev)
		}
		seen[p] = m
		if again := in.intern(tc.keys, tc.vals); fmt.Sprintf("%p", again) != p {
			t.Errorf("intern(%q, %q) twice gave two maps", tc.keys, tc.vals)
		}
	}
}

// openCounter is a real local store that counts the opens of each path
// and the listings of the log.
type openCounter struct {
	listCounter
	mu    sync.Mutex
	opens map[string]int
}

func (w *openCounter) Open(ctx context.Context, p string) (storage.File, error) {
	w.mu.Lock()
	w.opens[p]++
	w.mu.Unlock()
	return w.Local.Open(ctx, p)
}

// TestSnapshotLoadsTheHintedCheckpoint checks a first load: the checkpoint
// _last_checkpoint names is read once and the commits after it found by
// name, without listing the log, whether it is the newest checkpoint or an
// older one (a writer that stopped between a checkpoint and its hint), and
// the snapshot is the one log replay gives.
func TestSnapshotLoadsTheHintedCheckpoint(t *testing.T) {
	ctx := context.Background()
	for _, hint := range []int64{10, 5} {
		t.Run(fmt.Sprintf("hint %d of checkpoints 5 and 10", hint), func(t *testing.T) {
			st := buildHistory(t, 12)
			want, err := Open(st).Snapshot(ctx)
			if err != nil {
				t.Fatal(err)
			}
			for _, v := range []int64{5, 10} {
				if _, err := Open(st).Checkpoint(ctx, v); err != nil {
					t.Fatal(err)
				}
			}
			if err := st.WriteFile(ctx, LogDir+"/_last_checkpoint", []byte(fmt.Sprintf(`{"version":%d,"size":1}`, hint))); err != nil {
				t.Fatal(err)
			}
			w := &openCounter{listCounter: listCounter{Local: st}, opens: map[string]int{}}
			got, err := Open(w).Snapshot(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if got.checkpointVersion != hint || !reflect.DeepEqual(view(got), view(want)) {
				t.Errorf("snapshot from checkpoint %d, want %d, same as log replay", got.checkpointVersion, hint)
			}
			if n := w.logLists.Load(); n != 0 {
				t.Errorf("listed the log %d times, want 0", n)
			}
			w.mu.Lock()
			defer w.mu.Unlock()
			for _, v := range []int64{5, 10} {
				want := 0
				if v == hint {
					want = 1
				}
				if got := w.opens[CheckpointPath(v)]; got != want {
					t.Errorf("checkpoint %d opened %d times, want %d", v, got, want)
				}
			}
		})
	}
}

// TestFastCheckpointDecodeRowGroups re-chunks a checkpoint this library
// wrote into row groups of a few rows each (as large checkpoints from other
// writers come) and compares both decoders on it.
func TestFastCheckpointDecodeRowGroups(t *testing.T) {
	ctx := context.Background()
	tbl, st := newTestTable(t)
	req := CommitRequest{ReadVersion: 0, Operation: "WRITE", BlindAppend: true}
	for i := 0; i < 50; i++ {
		a := addAction(fmt.Sprintf("day=2024-01-%02d/part-%05d.parquet", i%3+1, i), fmt.Sprintf("2024-01-%02d", i%3+1))
		a.Add.Stats = fmt.Sprintf(`{"numRecords":%d}`, i)
		req.Actions = append(req.Actions, a)
	}
	mustCommit(t, tbl, req)
	now := time.Now().UnixMilli()
	rm := removeAction("day=2024-01-01/part-00000.parquet", "2024-01-01")
	rm.Remove.DeletionTimestamp = &now
	mustCommit(t, tbl, CommitRequest{ReadVersion: 1, Operation: "DELETE", Actions: []Action{rm, {Txn: &Txn{AppID: "a", Version: 1}}}})
	res, err := tbl.Checkpoint(ctx, -1)
	if err != nil {
		t.Fatal(err)
	}
	data, err := st.ReadFile(ctx, CheckpointPath(res.Version))
	if err != nil {
		t.Fatal(err)
	}
	whole := decodeBothWays(t, data)

	// Re-chunk: read it with Arrow, write it back with 7 rows a row group.
	pf, err := file.NewParquetReader(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	fr, err := pqarrow.NewFileReader(pf, pqarrow.ArrowReadProperties{}, memory.DefaultAllocator)
	if err != nil {
		t.Fatal(err)
	}
	table, err := fr.ReadTable(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer table.Release()
	var buf bytes.Buffer
	props := parquet.NewWriterProperties(parquet.WithMaxRowGroupLength(7), parquet.WithDictionaryDefault(false))
	if err := pqarrow.WriteTable(table, &buf, 7, props, pqarrow.DefaultWriterProps()); err != nil {
		t.Fatal(err)
	}
	chunked := buf.Bytes()
	pf2, err := file.NewParquetReader(bytes.NewReader(chunked))
	if err != nil {
		t.Fatal(err)
	}
	if pf2.NumRowGroups() < 5 {
		t.Fatalf("%d row groups, want several", pf2.NumRowGroups())
	}
	if files, others := fastPathErrs(t, chunked); files != nil || others != nil {
		t.Errorf("fast path refused the re-chunked checkpoint: %v, %v", files, others)
	}
	got := decodeBothWays(t, chunked)
	gb, _ := MarshalActions(got)
	wb, _ := MarshalActions(whole)
	if !bytes.Equal(gb, wb) {
		t.Errorf("re-chunked checkpoint decodes to other actions:\n%s\nwant\n%s", gb, wb)
	}
}
