package interop

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet/file"

	"github.com/plantlake/plantlake/delta"
	"github.com/plantlake/plantlake/delta/datafile"
	"github.com/plantlake/plantlake/delta/datafile/datafiletest"
	"github.com/plantlake/plantlake/delta/reader"
	"github.com/plantlake/plantlake/delta/storage"
	"github.com/plantlake/plantlake/devstack"
)

// python runs a script of testdata with args and returns its standard output.
func python(t *testing.T, py, script string, args ...string) []byte {
	t.Helper()
	dir, err := filepath.Abs("testdata")
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(py, append([]string{filepath.Join(dir, script)}, args...)...)
	// No __pycache__ in the work tree.
	cmd.Env = append(os.Environ(), "PYTHONDONTWRITEBYTECODE=1")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s %s: %v\n%s", script, strings.Join(args, " "), err, stderr.String())
	}
	return stdout.Bytes()
}

// canonical encodes rows as sorted JSON strings, numbers normalized, so that rows from Go
// and from Python compare equal when their values are.
func canonical(t *testing.T, rows []map[string]any) []string {
	t.Helper()
	out := make([]string, 0, len(rows))
	for _, r := range rows {
		b, err := json.Marshal(r)
		if err != nil {
			t.Fatalf("encode %v: %v", r, err)
		}
		var v any
		if err := json.Unmarshal(b, &v); err != nil {
			t.Fatal(err)
		}
		b, _ = json.Marshal(v)
		out = append(out, string(b))
	}
	sort.Strings(out)
	return out
}

func sameRows(t *testing.T, what string, got, want []map[string]any) {
	t.Helper()
	g, w := canonical(t, got), canonical(t, want)
	if slices.Equal(g, w) {
		return
	}
	t.Errorf("%s: %d rows, want %d", what, len(g), len(w))
	for i := 0; i < len(g) && i < len(w); i++ {
		if g[i] != w[i] {
			t.Errorf("first difference:\n got %s\nwant %s", g[i], w[i])
			break
		}
	}
}

type drRead struct {
	Version int64            `json:"version"`
	Rows    []map[string]any `json:"rows"`
	Stats   *struct {
		Checked    int      `json:"checked"`
		Violations []string `json:"violations"`
	} `json:"stats"`
}

func readWithDeltaRS(t *testing.T, py, table string, args ...string) drRead {
	t.Helper()
	var r drRead
	out := python(t, py, "dr_read.py", append([]string{table}, args...)...)
	if err := json.Unmarshal(out, &r); err != nil {
		t.Fatalf("dr_read.py output: %v\n%.500s", err, out)
	}
	return r
}

// versionState is what this library read at one version.
type versionState struct {
	version int64
	at      time.Time
	rows    []map[string]any
}

// newRawWriter creates a table of raw's schema in a new folder: partitioned
// by ingest_date when parts says so, otherwise without that column.
func newRawWriter(t *testing.T, parts []string) *writer {
	ctx := context.Background()
	st, err := storage.NewLocal(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	md := delta.Metadata{SchemaString: datafiletest.RawSchemaString, PartitionColumns: parts}
	if len(parts) == 0 {
		raw, _ := datafiletest.RawSchema()
		schema := &delta.StructType{Fields: raw.Fields[:len(raw.Fields)-1]} // no ingest_date
		if md.SchemaString, err = schema.SchemaString(); err != nil {
			t.Fatal(err)
		}
	}
	tbl, err := delta.Create(ctx, st, md, delta.Protocol{})
	if err != nil {
		t.Fatal(err)
	}
	return &writer{t: t, ctx: ctx, st: st, tbl: tbl, parts: parts}
}

// appendThreeHours appends three unpartitioned raw batches of 200 rows, an
// hour apart from at.
func (w *writer) appendThreeHours(at time.Time) {
	for i := 0; i < 3; i++ {
		rec := datafiletest.RawBatch(nil, 200, int64(i)*200, at.Add(time.Duration(i)*time.Hour))
		w.appendRecord(dropLast(rec))
	}
}

// writer builds a table with this library, one operation per version.
type writer struct {
	t     *testing.T
	ctx   context.Context
	st    *storage.Local
	tbl   *delta.Table
	parts []string
	seen  []versionState
}

func (w *writer) record() {
	w.t.Helper()
	snap, err := w.tbl.Snapshot(w.ctx)
	if err != nil {
		w.t.Fatal(err)
	}
	rows, err := reader.Rows(w.ctx, w.st, snap, reader.Options{})
	if err != nil {
		w.t.Fatalf("read version %d: %v", snap.Version(), err)
	}
	w.seen = append(w.seen, versionState{version: snap.Version(), at: snap.Timestamp(), rows: rows})
	// Commit timestamps are milliseconds: keep versions apart for time travel.
	time.Sleep(30 * time.Millisecond)
}

func (w *writer) appendRecord(rec arrow.RecordBatch) {
	w.t.Helper()
	defer rec.Release()
	snap, err := w.tbl.Snapshot(w.ctx)
	if err != nil {
		w.t.Fatal(err)
	}
	var acts []delta.Action
	if len(w.parts) == 0 {
		add, err := datafile.Write(w.ctx, w.st, datafile.Options{Compression: datafile.Zstd}, rec)
		if err != nil {
			w.t.Fatal(err)
		}
		acts = append(acts, delta.Action{Add: &add})
	} else {
		parts, err := datafile.SplitByPartition(w.ctx, nil, rec, w.parts)
		if err != nil {
			w.t.Fatal(err)
		}
		for _, p := range parts {
			add, err := datafile.Write(w.ctx, w.st, datafile.Options{PartitionColumns: w.parts, PartitionValues: p.Values}, p.Record)
			p.Record.Release()
			if err != nil {
				w.t.Fatal(err)
			}
			acts = append(acts, delta.Action{Add: &add})
		}
	}
	if _, err := w.tbl.Commit(w.ctx, delta.CommitRequest{ReadVersion: snap.Version(), Operation: "WRITE", BlindAppend: true, Actions: acts}); err != nil {
		w.t.Fatal(err)
	}
	w.record()
}

// compact rewrites the files matching filters into one file.
func (w *writer) compact(filters []reader.Filter) {
	w.t.Helper()
	snap, err := w.tbl.Snapshot(w.ctx)
	if err != nil {
		w.t.Fatal(err)
	}
	s, err := reader.New(w.st, snap, reader.Options{Filters: filters})
	if err != nil {
		w.t.Fatal(err)
	}
	defer s.Close()
	removed := s.Files()
	if len(removed) < 2 {
		w.t.Fatalf("compaction of %d files", len(removed))
	}
	var recs []arrow.RecordBatch
	for rec, err := range s.Records(w.ctx) {
		if err != nil {
			w.t.Fatal(err)
		}
		rec.Retain()
		recs = append(recs, rec)
	}
	opts := datafile.Options{PartitionColumns: w.parts}
	if len(w.parts) > 0 {
		opts.PartitionValues = removed[0].PartitionValues
	}
	add, err := datafile.Write(w.ctx, w.st, opts, recs...)
	for _, r := range recs {
		r.Release()
	}
	if err != nil {
		w.t.Fatal(err)
	}
	if _, err := w.tbl.Commit(w.ctx, delta.CompactionRequest(snap.Version(), removed, []delta.Add{add}, time.Now())); err != nil {
		w.t.Fatal(err)
	}
	w.record()
}

// stitch stitches the files matching filters into one (datafile.Stitch: their column chunks
// copied, not decoded).
func (w *writer) stitch(filters []reader.Filter) {
	w.t.Helper()
	snap, err := w.tbl.Snapshot(w.ctx)
	if err != nil {
		w.t.Fatal(err)
	}
	s, err := reader.New(w.st, snap, reader.Options{Filters: filters})
	if err != nil {
		w.t.Fatal(err)
	}
	s.Close()
	removed := s.Files()
	add, err := datafile.Stitch(w.ctx, w.st, datafile.StitchOptions{PartitionColumns: w.parts, MinRowGroupRows: 1}, removed)
	if err != nil {
		w.t.Fatalf("stitch %d files: %v", len(removed), err)
	}
	if _, err := w.tbl.Commit(w.ctx, delta.CompactionRequest(snap.Version(), removed, []delta.Add{add}, time.Now())); err != nil {
		w.t.Fatal(err)
	}
	w.record()
}

// removeFiles deletes the rows of the files matching filters (a whole-file delete).
func (w *writer) removeFiles(filters []reader.Filter) {
	w.t.Helper()
	snap, err := w.tbl.Snapshot(w.ctx)
	if err != nil {
		w.t.Fatal(err)
	}
	s, err := reader.New(w.st, snap, reader.Options{Filters: filters})
	if err != nil {
		w.t.Fatal(err)
	}
	s.Close()
	now := time.Now().UnixMilli()
	var acts []delta.Action
	for _, f := range s.Files() {
		size := f.Size
		acts = append(acts, delta.Action{Remove: &delta.Remove{Path: delta.EncodePath(f.Path), DeletionTimestamp: &now, DataChange: true, PartitionValues: f.PartitionValues, Size: &size}})
	}
	if len(acts) == 0 {
		w.t.Fatal("no file to remove")
	}
	if _, err := w.tbl.Commit(w.ctx, delta.CommitRequest{ReadVersion: snap.Version(), Operation: "DELETE", Actions: acts, ReadFiles: nil}); err != nil {
		w.t.Fatal(err)
	}
	w.record()
}

func (w *writer) checkpoint() {
	w.t.Helper()
	snap, err := w.tbl.Snapshot(w.ctx)
	if err != nil {
		w.t.Fatal(err)
	}
	if _, err := w.tbl.Checkpoint(w.ctx, snap.Version()); err != nil {
		w.t.Fatalf("checkpoint: %v", err)
	}
}

// verify reads every recorded version with delta-rs, by version and by timestamp, and checks
// the stats of the latest.
func (w *writer) verify(py string) {
	w.t.Helper()
	root := w.st.Root()
	for i, vs := range w.seen {
		got := readWithDeltaRS(w.t, py, root, "--version", fmt.Sprint(vs.version), "--check-stats")
		if got.Version != vs.version {
			w.t.Errorf("delta-rs loaded version %d, want %d", got.Version, vs.version)
		}
		sameRows(w.t, fmt.Sprintf("delta-rs at version %d", vs.version), got.Rows, vs.rows)
		if got.Stats == nil || (len(vs.rows) > 0 && got.Stats.Checked == 0) {
			w.t.Errorf("version %d: no stats checked", vs.version)
		} else if len(got.Stats.Violations) > 0 {
			w.t.Errorf("version %d: stats disagree with the data: %q", vs.version, got.Stats.Violations)
		}
		// A moment after the commit, before the next one.
		at := vs.at.Add(10 * time.Millisecond)
		if i+1 < len(w.seen) && !at.Before(w.seen[i+1].at) {
			w.t.Fatalf("versions %d and %d committed too close together to travel between", vs.version, w.seen[i+1].version)
		}
		byTime := readWithDeltaRS(w.t, py, root, "--timestamp", at.UTC().Format(time.RFC3339Nano))
		if byTime.Version != vs.version {
			w.t.Errorf("delta-rs at %s loaded version %d, want %d", at.Format(time.RFC3339Nano), byTime.Version, vs.version)
		}
		ours, err := w.tbl.SnapshotAsOf(w.ctx, at)
		if i == len(w.seen)-1 {
			// After the latest commit Delta Lake refuses the timestamp; delta-rs loads the latest.
			if !errors.Is(err, delta.ErrTimestampAfterLatest) {
				w.t.Errorf("SnapshotAsOf(%s) after the latest commit: %v, want ErrTimestampAfterLatest", at, err)
			}
		} else if err != nil {
			w.t.Errorf("SnapshotAsOf(%s): %v", at, err)
		} else if ours.Version() != vs.version {
			w.t.Errorf("SnapshotAsOf(%s) = version %d, want %d", at, ours.Version(), vs.version)
		}
		sameRows(w.t, fmt.Sprintf("delta-rs at %s", at.Format(time.RFC3339Nano)), byTime.Rows, vs.rows)
	}
}

// sameFiltered checks, for each filter, that delta-rs and this reader (which skips files by
// partition values and stats) return the same rows at the latest version. The filters sit on
// the sub-millisecond and truncated-string boundaries where stats go wrong.
func (w *writer) sameFiltered(py string, filters []reader.Filter) {
	w.t.Helper()
	snap, err := w.tbl.Snapshot(w.ctx)
	if err != nil {
		w.t.Fatal(err)
	}
	for _, f := range filters {
		ours, err := reader.Rows(w.ctx, w.st, snap, reader.Options{Filters: []reader.Filter{f}})
		if err != nil {
			w.t.Fatalf("%s: %v", f, err)
		}
		theirs := readWithDeltaRS(w.t, py, w.st.Root(), "--filter", f.Column, string(f.Op), fmt.Sprint(f.Value))
		if len(ours) == 0 {
			w.t.Errorf("%s: no rows; the filter tests nothing", f)
		}
		sameRows(w.t, f.String(), theirs.Rows, ours)
	}
}

func TestDeltaRSReadsOurTables(t *testing.T) {
	py := devstack.Python(t)
	t.Run("raw partitioned by ingest_date", func(t *testing.T) {
		ctx := context.Background()
		st, err := storage.NewLocal(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		tbl, err := delta.Create(ctx, st, delta.Metadata{Name: "plant_sensor_readings", SchemaString: datafiletest.RawSchemaString, PartitionColumns: datafiletest.RawPartitionColumns}, delta.Protocol{})
		if err != nil {
			t.Fatal(err)
		}
		w := &writer{t: t, ctx: ctx, st: st, tbl: tbl, parts: datafiletest.RawPartitionColumns}
		w.record()
		day1 := time.Date(2024, 5, 6, 23, 59, 59, 999_500_000, time.UTC)
		day2 := time.Date(2024, 5, 7, 8, 30, 0, 250_001_000, time.UTC)
		w.appendRecord(datafiletest.RawBatch(nil, 400, 0, day1))
		w.appendRecord(datafiletest.RawBatch(nil, 300, 400, day2))
		w.appendRecord(datafiletest.RawBatch(nil, 100, 700, day1))
		w.compact([]reader.Filter{{Column: "ingest_date", Op: reader.Eq, Value: "2024-05-06"}})
		w.checkpoint()
		w.removeFiles([]reader.Filter{{Column: "ingest_date", Op: reader.Eq, Value: "2024-05-07"}})
		w.appendRecord(datafiletest.RawBatch(nil, 50, 800, day2.Add(24*time.Hour)))
		w.verify(py)
		w.sameFiltered(py, []reader.Filter{
			{Column: "kafka_offset", Op: reader.Ge, Value: "799"},
			{Column: "kafka_offset", Op: reader.Lt, Value: "1"},
			{Column: "kafka_offset", Op: reader.Eq, Value: "399"},
			{Column: "ingest_ts", Op: reader.Ge, Value: "2024-05-06T23:59:59.9995Z"},
			{Column: "ingest_ts", Op: reader.Gt, Value: "2024-05-06T23:59:59.999Z"},
			{Column: "ingest_ts", Op: reader.Le, Value: "2024-05-06T23:59:59.9995Z"},
			{Column: "ingest_ts", Op: reader.Eq, Value: "2024-05-08T08:30:00.250001Z"},
			{Column: "kafka_timestamp", Op: reader.Gt, Value: "2024-05-06T23:59:59.999150Z"},
			{Column: "kafka_key", Op: reader.Ge, Value: "plant/line6/press9"},
			{Column: "kafka_key", Op: reader.Lt, Value: "plant/line0/press2"},
			{Column: "ingest_date", Op: reader.Eq, Value: "2024-05-06"},
		})

		// Vacuum the removed files: the latest version still reads the same.
		time.Sleep(10 * time.Millisecond)
		deleted, err := tbl.Vacuum(ctx, delta.VacuumOptions{Retention: time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		if len(deleted) != 3 {
			t.Errorf("vacuum deleted %q, want the 2 compacted files and the removed one", deleted)
		}
		last := w.seen[len(w.seen)-1]
		got := readWithDeltaRS(t, py, st.Root())
		sameRows(t, "delta-rs after vacuum", got.Rows, last.rows)
	})
	t.Run("unpartitioned", func(t *testing.T) {
		w := newRawWriter(t, nil)
		at := time.Date(2024, 6, 1, 0, 0, 0, 0, time.UTC)
		w.appendThreeHours(at)
		w.compact(nil)
		w.checkpoint()
		w.appendRecord(dropLast(datafiletest.RawBatch(nil, 10, 5000, at)))
		w.verify(py)
	})
}

// TestDeltaRSReadsStitchedFiles: files stitched from other files (a stitched one among them),
// Snappy and Zstd, read by delta-rs as this reader reads them, their stats true to the data.
func TestDeltaRSReadsStitchedFiles(t *testing.T) {
	py := devstack.Python(t)
	t.Run("raw partitioned by ingest_date", func(t *testing.T) {
		w := newRawWriter(t, datafiletest.RawPartitionColumns)
		w.record()
		day1 := time.Date(2024, 5, 6, 23, 59, 59, 999_500_000, time.UTC)
		day2 := time.Date(2024, 5, 7, 8, 30, 0, 250_001_000, time.UTC)
		w.appendRecord(datafiletest.RawBatch(nil, 400, 0, day1))
		w.appendRecord(datafiletest.RawBatch(nil, 300, 400, day2))
		w.appendRecord(datafiletest.RawBatch(nil, 100, 700, day1))
		w.appendRecord(datafiletest.RawBatch(nil, 250, 800, day1))
		day1Only := []reader.Filter{{Column: "ingest_date", Op: reader.Eq, Value: "2024-05-06"}}
		w.stitch(day1Only)
		w.appendRecord(datafiletest.RawBatch(nil, 50, 1050, day1))
		w.stitch(day1Only)
		w.checkpoint()
		w.appendRecord(datafiletest.RawBatch(nil, 20, 1100, day2))
		w.verify(py)
		w.sameFiltered(py, []reader.Filter{
			{Column: "kafka_offset", Op: reader.Ge, Value: "1099"},
			{Column: "kafka_offset", Op: reader.Lt, Value: "1"},
			{Column: "kafka_offset", Op: reader.Eq, Value: "799"},
			{Column: "ingest_ts", Op: reader.Ge, Value: "2024-05-06T23:59:59.9995Z"},
			{Column: "ingest_ts", Op: reader.Le, Value: "2024-05-06T23:59:59.9995Z"},
			{Column: "kafka_key", Op: reader.Ge, Value: "plant/line6/press9"},
			{Column: "ingest_date", Op: reader.Eq, Value: "2024-05-06"},
		})
	})
	t.Run("unpartitioned zstd", func(t *testing.T) {
		w := newRawWriter(t, nil)
		at := time.Date(2024, 6, 1, 0, 0, 0, 0, time.UTC)
		w.appendThreeHours(at)
		w.stitch(nil)
		w.verify(py)
	})
}

// TestDeltaRSReadsEscapedPartitions writes partition values that need Hive escaping and URI
// encoding, a null partition, and a timestamp partition column, and has delta-rs read them.
func TestDeltaRSReadsEscapedPartitions(t *testing.T) {
	py := devstack.Python(t)
	ctx := context.Background()
	st, err := storage.NewLocal(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	const schema = `{"type":"struct","fields":[{"name":"id","type":"long","nullable":true,"metadata":{}},` +
		`{"name":"v","type":"double","nullable":true,"metadata":{}},` +
		`{"name":"p","type":"string","nullable":true,"metadata":{}},` +
		`{"name":"ts","type":"timestamp","nullable":true,"metadata":{}}]}`
	parts := []string{"p", "ts"}
	tbl, err := delta.Create(ctx, st, delta.Metadata{SchemaString: schema, PartitionColumns: parts}, delta.Protocol{})
	if err != nil {
		t.Fatal(err)
	}
	ds, err := delta.ParseSchema(schema)
	if err != nil {
		t.Fatal(err)
	}
	as, err := datafile.ArrowSchema(ds)
	if err != nil {
		t.Fatal(err)
	}
	b := array.NewRecordBuilder(memory.DefaultAllocator, as)
	defer b.Release()
	values := []string{"a/b", "x=y", "100%", "sp ace", "ünï", "q?#[]{}^", "colon:1", ""}
	ts := []int64{1631099471123456, 0, -1}
	var id int64
	for _, p := range values {
		for _, tv := range ts {
			b.Field(0).(*array.Int64Builder).Append(id)
			b.Field(1).(*array.Float64Builder).Append(float64(id) / 3)
			if p == "" {
				b.Field(2).AppendNull()
			} else {
				b.Field(2).(*array.StringBuilder).Append(p)
			}
			if tv < 0 {
				b.Field(3).AppendNull()
			} else {
				b.Field(3).(*array.TimestampBuilder).Append(arrow.Timestamp(tv))
			}
			id++
		}
	}
	w := &writer{t: t, ctx: ctx, st: st, tbl: tbl, parts: parts}
	w.appendRecord(b.NewRecordBatch())
	snap, err := tbl.Snapshot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if n := len(snap.Files()); n != len(values)*len(ts) {
		t.Errorf("%d files, want one per partition: %d", n, len(values)*len(ts))
	}
	got := readWithDeltaRS(t, py, st.Root(), "--check-stats")
	sameRows(t, "delta-rs", got.Rows, w.seen[0].rows)
	if got.Stats == nil || got.Stats.Checked == 0 || len(got.Stats.Violations) > 0 {
		t.Errorf("stats: %+v", got.Stats)
	}
	// Filters on the escaped partition values select the right files.
	for _, p := range values[:len(values)-1] {
		s, err := reader.New(st, snap, reader.Options{Filters: []reader.Filter{{Column: "p", Op: reader.Eq, Value: p}}})
		if err != nil {
			t.Fatal(err)
		}
		s.Close()
		if len(s.Files()) != len(ts) {
			t.Errorf("p = %q: %d files, want %d", p, len(s.Files()), len(ts))
		}
	}
}

// dropLast returns rec without its last column (ingest_date).
func dropLast(rec arrow.RecordBatch) arrow.RecordBatch {
	defer rec.Release()
	sc := rec.Schema()
	fields := sc.Fields()[:sc.NumFields()-1]
	cols := rec.Columns()[:sc.NumFields()-1]
	return array.NewRecordBatch(arrow.NewSchema(fields, nil), cols, rec.NumRows())
}

type drWriteLine struct {
	Op      string           `json:"op"`
	Version int64            `json:"version"`
	Rows    []map[string]any `json:"rows"`
}

func TestWeReadDeltaRSTables(t *testing.T) {
	py := devstack.Python(t)
	ctx := context.Background()
	root := t.TempDir()
	check := func(out []byte) {
		t.Helper()
		st, err := storage.NewLocal(root)
		if err != nil {
			t.Fatal(err)
		}
		tbl := delta.Open(st)
		for _, line := range bytes.Split(bytes.TrimSpace(out), []byte("\n")) {
			var l drWriteLine
			if err := json.Unmarshal(line, &l); err != nil {
				t.Fatalf("dr_write.py: %v: %.300s", err, line)
			}
			t.Run(fmt.Sprintf("v%d %s", l.Version, l.Op), func(t *testing.T) {
				snap, err := tbl.SnapshotAt(ctx, l.Version)
				if err != nil {
					t.Fatal(err)
				}
				rows, err := reader.Rows(ctx, st, snap, reader.Options{})
				if err != nil {
					t.Fatal(err)
				}
				if len(l.Rows) == 0 {
					t.Fatal("delta-rs returned no rows")
				}
				sameRows(t, "rows", rows, l.Rows)
			})
		}
	}
	check(python(t, py, "dr_write.py", root, "ops"))
	check(python(t, py, "dr_write.py", root, "vacuum"))
	root = t.TempDir()
	check(python(t, py, "dr_write.py", root, "partitions"))
}

// TestDeltaRSReadsCheckpointOfManyRowGroups writes a checkpoint of 70,000
// actions, more than one row group of this library's checkpoints (64 Ki
// rows), with tombstones in the second: delta-rs loads the same files
// from it, and this library's fresh load lists every tombstone.
func TestDeltaRSReadsCheckpointOfManyRowGroups(t *testing.T) {
	py := devstack.Python(t)
	ctx := context.Background()
	st, err := storage.NewLocal(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	tbl, err := delta.Create(ctx, st, delta.Metadata{Name: "many", SchemaString: datafiletest.RawSchemaString,
		PartitionColumns: datafiletest.RawPartitionColumns}, delta.Protocol{})
	if err != nil {
		t.Fatal(err)
	}
	const files, removed = 70_000, 5_000
	req := delta.CommitRequest{ReadVersion: 0, Operation: "WRITE", BlindAppend: true}
	name := func(i int) string { return fmt.Sprintf("ingest_date=2024-05-06/part-%05d.parquet", i) }
	for i := range files {
		req.Actions = append(req.Actions, delta.Action{Add: &delta.Add{Path: name(i), Size: 100, ModificationTime: 1, DataChange: true,
			PartitionValues: map[string]string{"ingest_date": "2024-05-06"}}})
	}
	v, err := tbl.Commit(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().UnixMilli()
	del := delta.CommitRequest{ReadVersion: v, Operation: "DELETE"}
	for i := files - removed; i < files; i++ {
		del.Actions = append(del.Actions, delta.Action{Remove: &delta.Remove{Path: name(i), DeletionTimestamp: &now, DataChange: true,
			PartitionValues: map[string]string{"ingest_date": "2024-05-06"}}})
	}
	if v, err = tbl.Commit(ctx, del); err != nil {
		t.Fatal(err)
	}
	res, err := tbl.Checkpoint(ctx, v)
	if err != nil {
		t.Fatal(err)
	}
	if res.NumActions != files+2 {
		t.Fatalf("checkpoint of %d actions, want %d", res.NumActions, files+2)
	}
	cp, err := os.Open(filepath.Join(st.Root(), res.Path))
	if err != nil {
		t.Fatal(err)
	}
	pf, err := file.NewParquetReader(cp)
	if err != nil {
		t.Fatal(err)
	}
	if pf.NumRowGroups() < 2 {
		t.Errorf("checkpoint of %d actions in %d row group(s), want several", res.NumActions, pf.NumRowGroups())
	}
	pf.Close()
	// Only the checkpoint describes the files now.
	for c := range v {
		if err := os.Remove(filepath.Join(st.Root(), delta.CommitPath(c))); err != nil {
			t.Fatal(err)
		}
	}
	var got struct {
		Version int64    `json:"version"`
		Files   []string `json:"files"`
	}
	out := python(t, py, "dr_files.py", st.Root())
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatalf("dr_files.py output: %v\n%.500s", err, out)
	}
	if got.Version != v || len(got.Files) != files-removed || got.Files[0] != name(0) || got.Files[len(got.Files)-1] != name(files-removed-1) {
		t.Errorf("delta-rs read version %d with %d files (%v ... %v), want version %d with %d files", got.Version, len(got.Files),
			got.Files[:min(1, len(got.Files))], got.Files[max(0, len(got.Files)-1):], v, files-removed)
	}
	fresh := delta.Open(st)
	s, err := fresh.Snapshot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	tombs, err := fresh.Tombstones(ctx, s)
	if err != nil {
		t.Fatal(err)
	}
	if s.NumFiles() != files-removed || len(tombs) != removed || len(s.Tombstones()) != 0 {
		t.Errorf("fresh load: %d files, %d tombstones (%d in memory), want %d, %d (none in memory)",
			s.NumFiles(), len(tombs), len(s.Tombstones()), files-removed, removed)
	}
}
