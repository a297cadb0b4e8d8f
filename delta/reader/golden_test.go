package reader

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
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
	"github.com/apache/arrow-go/v18/parquet/pqarrow"

	"github.com/plantlake/plantlake/delta"
	"github.com/plantlake/plantlake/delta/storage"
)

// goldenDir holds the Delta golden tables (see its README.md).
const goldenDir = "../../../shared/testdata/delta-golden"

// Cases that need deletion vectors or column mapping: refused, naming the feature.
var goldenRefused = map[string]string{
	"dv-partitioned-with-checkpoint":                         "deletionVectors",
	"dv-with-columnmapping":                                  "deletionVectors|columnMapping",
	"log-replay-dv-key-cases":                                "deletionVectors",
	"table-with-columnmapping-mode-id":                       "columnMapping",
	"table-with-columnmapping-mode-name":                     "columnMapping",
	"data-skipping-basic-stats-all-types-columnmapping-id":   "columnMapping",
	"data-skipping-basic-stats-all-types-columnmapping-name": "columnMapping",
	"data-reader-timestamp_ntz-id-mode":                      "columnMapping",
	"data-reader-timestamp_ntz-name-mode":                    "columnMapping",
}

// Cases that must fail with a clear error.
var goldenMustFail = map[string]error{
	"deltalog-invalid-protocol-version":                              delta.ErrUnsupportedProtocol,
	"deltalog-state-reconstruction-from-checkpoint-missing-metadata": delta.ErrInvalidLog,
	"deltalog-state-reconstruction-from-checkpoint-missing-protocol": delta.ErrInvalidLog,
	"deltalog-state-reconstruction-without-metadata":                 delta.ErrInvalidLog,
	"deltalog-state-reconstruction-without-protocol":                 delta.ErrInvalidLog,
	"no-delta-log-folder":                                            delta.ErrNotATable,
	"hive":                                                           delta.ErrNotATable,
}

// Cases without expected rows: the snapshot's version and files.
type goldenFiles struct {
	version int64
	files   []string // canonical paths, sorted; nil: only count
	count   int
	modTime map[string]int64
}

var goldenNoExpected = map[string]goldenFiles{
	"checkpoint":                    {version: 14, count: 1},
	"canonicalized-paths-normal-a":  {version: 1, files: []string{}},
	"canonicalized-paths-normal-b":  {version: 1, files: []string{}},
	"canonicalized-paths-special-a": {version: 1, files: []string{}},
	"delete-re-add-same-file-different-transactions": {version: 3, files: []string{"bar", "foo"},
		modTime: map[string]int64{"foo": 1700000000000}},
	"deltalog-commit-info":     {version: 0, files: []string{"abc"}},
	"update-deleted-directory": {version: 0, count: 10},
}

// goldenNoMetadata are no-expected cases whose log has no metaData action at all. Package delta
// refuses a Snapshot without metadata (as it must for deltalog-state-reconstruction-without-
// metadata), so these are checked through the lenient replay, Table.FileList, by version and
// files. Paths are canonical: a relative path leaving the table (the log's "..//Users/...")
// becomes absolute, and "bar%2Dbar.snappy.parquet" is decoded.
var goldenNoMetadata = map[string]func(root string) goldenFiles{
	"data-reader-absolute-paths-escaped-chars": func(root string) goldenFiles {
		abs := filepath.ToSlash(filepath.Clean(root + "/../Users/scott.sandre/connectors/golden-tables/src/test/resources/golden/data-reader-absolute-paths-escaped-chars/foo.snappy.parquet"))
		files := []string{abs, "bar-bar.snappy.parquet"}
		sort.Strings(files)
		return goldenFiles{version: 1, files: files}
	},
}

// TestGolden reads every golden table and checks it by its category in the README.
func TestGolden(t *testing.T) {
	entries, err := os.ReadDir(goldenDir)
	if err != nil {
		t.Fatalf("golden tables: %v", err)
	}
	var rowCases []string
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		name := e.Name()
		_, refused := goldenRefused[name]
		_, fails := goldenMustFail[name]
		_, noExp := goldenNoExpected[name]
		_, noMeta := goldenNoMetadata[name]
		_, statErr := os.Stat(filepath.Join(goldenDir, name, "expected"))
		switch {
		case refused:
			t.Run(name, func(t *testing.T) { goldenRefusedCase(t, name) })
		case fails:
			t.Run(name, func(t *testing.T) { goldenMustFailCase(t, name) })
		case noMeta:
			t.Run(name, func(t *testing.T) { goldenNoMetadataCase(t, name) })
		case noExp:
			t.Run(name, func(t *testing.T) { goldenFilesCase(t, name) })
		case statErr == nil:
			rowCases = append(rowCases, name)
			t.Run(name, func(t *testing.T) { goldenRowsCase(t, name) })
		default:
			t.Errorf("golden case %s has no category", name)
		}
	}
	if len(rowCases) != 51 {
		t.Errorf("%d cases with expected rows, the README says 51: %q", len(rowCases), rowCases)
	}
}

func goldenTable(t *testing.T, name string) (storage.Store, *delta.Table) {
	t.Helper()
	st, err := storage.NewLocal(filepath.Join(goldenDir, name, "delta"))
	if err != nil {
		t.Fatalf("store: %v", err)
	}
	return st, delta.Open(st)
}

// readAll loads the latest snapshot and all its rows.
func readAll(ctx context.Context, st storage.Store, tbl *delta.Table) (*delta.Snapshot, []map[string]any, error) {
	snap, err := tbl.Snapshot(ctx)
	if err != nil {
		return nil, nil, err
	}
	rows, err := Rows(ctx, st, snap, Options{})
	return snap, rows, err
}

func goldenRefusedCase(t *testing.T, name string) {
	st, tbl := goldenTable(t, name)
	_, rows, err := readAll(context.Background(), st, tbl)
	if !errors.Is(err, delta.ErrUnsupportedFeature) {
		t.Fatalf("read gave %d rows and error %v; want an error wrapping ErrUnsupportedFeature", len(rows), err)
	}
	var fe *delta.UnsupportedFeatureError
	if !errors.As(err, &fe) || !slices.Contains(strings.Split(goldenRefused[name], "|"), fe.Feature) {
		t.Fatalf("error %v names no feature among %s", err, goldenRefused[name])
	}
	t.Logf("refused: %v", err)
}

func goldenMustFailCase(t *testing.T, name string) {
	st, tbl := goldenTable(t, name)
	_, rows, err := readAll(context.Background(), st, tbl)
	if !errors.Is(err, goldenMustFail[name]) {
		t.Fatalf("read gave %d rows and error %v; want %v", len(rows), err, goldenMustFail[name])
	}
	t.Logf("failed as it must: %v", err)
}

func goldenFilesCase(t *testing.T, name string) {
	want := goldenNoExpected[name]
	_, tbl := goldenTable(t, name)
	snap, err := tbl.Snapshot(context.Background())
	if err != nil {
		t.Fatalf("snapshot: %v", err)
	}
	if snap.Version() != want.version {
		t.Errorf("version %d, want %d", snap.Version(), want.version)
	}
	files := snap.Files()
	paths := make([]string, 0, len(files))
	for _, f := range files {
		paths = append(paths, f.Path)
	}
	sort.Strings(paths)
	if want.files != nil && !slices.Equal(paths, want.files) {
		t.Errorf("files %q, want %q", paths, want.files)
	}
	if want.files == nil && len(paths) != want.count {
		t.Errorf("%d files (%q), want %d", len(paths), paths, want.count)
	}
	for _, f := range files {
		if ms, ok := want.modTime[f.Path]; ok && f.ModificationTime != ms {
			t.Errorf("%s: modificationTime %d, want %d", f.Path, f.ModificationTime, ms)
		}
	}
}

// goldenNoMetadataCase checks a log without metaData: Snapshot refuses it with ErrInvalidLog
// naming the missing action, and FileList gives exactly the version and files the README names.
func goldenNoMetadataCase(t *testing.T, name string) {
	st, tbl := goldenTable(t, name)
	ctx := context.Background()
	if _, err := tbl.Snapshot(ctx); !errors.Is(err, delta.ErrInvalidLog) || !strings.Contains(err.Error(), "metaData") {
		t.Errorf("snapshot error %v, want ErrInvalidLog about the missing metaData", err)
	}
	fl, err := tbl.FileList(ctx)
	if err != nil {
		t.Fatalf("FileList: %v", err)
	}
	want := goldenNoMetadata[name](st.(storage.Rooted).Root())
	paths := make([]string, 0, len(fl.Files))
	for _, f := range fl.Files {
		paths = append(paths, f.Path)
	}
	t.Logf("version %d, files %q", fl.Version, paths)
	if fl.Version != want.version {
		t.Errorf("version %d, want %d", fl.Version, want.version)
	}
	if !slices.Equal(paths, want.files) {
		t.Errorf("files %q, want %q", paths, want.files)
	}
	if fl.Metadata != nil || fl.Protocol == nil {
		t.Errorf("metadata %v protocol %v, want no metadata and the log's protocol", fl.Metadata, fl.Protocol)
	}
}

func goldenRowsCase(t *testing.T, name string) {
	ctx := context.Background()
	st, tbl := goldenTable(t, name)
	snap, got, err := readAll(ctx, st, tbl)
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	full, err := New(st, snap, Options{})
	if err != nil {
		t.Fatal(err)
	}
	want, err := expectedRows(ctx, filepath.Join(goldenDir, name, "expected"), full.Schema())
	if err != nil {
		t.Fatalf("expected rows: %v", err)
	}
	if name == "data-reader-partition-values" {
		// The expected file holds the wall-clock time written from America/Los_Angeles.
		if err := wallClock(want, "as_timestamp", "America/Los_Angeles"); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("version %d, %d files, %d rows", snap.Version(), len(snap.Files()), len(got))
	compareRows(t, got, want)
}

// expectedRows reads the expected Parquet files, shaped to the table's Arrow schema.
func expectedRows(ctx context.Context, dir string, schema *arrow.Schema) ([]map[string]any, error) {
	var files []string
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.HasSuffix(p, ".parquet") {
			files = append(files, p)
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	rows := []map[string]any{}
	for _, p := range files {
		r, err := readExpectedFile(ctx, p, schema)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", p, err)
		}
		rows = append(rows, r...)
	}
	return rows, nil
}

func readExpectedFile(ctx context.Context, p string, schema *arrow.Schema) ([]map[string]any, error) {
	pf, err := file.OpenParquetFile(p, false)
	if err != nil {
		return nil, err
	}
	defer pf.Close()
	fr, err := pqarrow.NewFileReader(pf, pqarrow.ArrowReadProperties{BatchSize: 1 << 16}, memory.DefaultAllocator)
	if err != nil {
		return nil, err
	}
	tbl, err := fr.ReadTable(ctx)
	if err != nil {
		return nil, err
	}
	defer tbl.Release()
	tr := array.NewTableReader(tbl, 1<<16)
	defer tr.Release()
	var out []map[string]any
	for tr.Next() {
		rec := tr.RecordBatch()
		cols := make([]arrow.Array, schema.NumFields())
		for i, f := range schema.Fields() {
			idx := rec.Schema().FieldIndices(f.Name)
			if len(idx) == 0 {
				return nil, fmt.Errorf("no column %q in %s", f.Name, rec.Schema())
			}
			c, err := conform(ctx, memory.DefaultAllocator, rec.Column(idx[0]), f.Type)
			if err != nil {
				return nil, fmt.Errorf("column %q: %w", f.Name, err)
			}
			defer c.Release()
			cols[i] = c
		}
		shaped := array.NewRecordBatch(schema, cols, rec.NumRows())
		rows, err := RecordRows(shaped)
		shaped.Release()
		if err != nil {
			return nil, err
		}
		out = append(out, rows...)
	}
	return out, tr.Err()
}

// wallClock rewrites a timestamp column of rows to the wall-clock time in zone, as UTC.
func wallClock(rows []map[string]any, col, zone string) error {
	loc, err := time.LoadLocation(zone)
	if err != nil {
		return err
	}
	for _, r := range rows {
		s, ok := r[col].(string)
		if !ok {
			continue
		}
		ts, err := time.Parse(TimestampLayout, s)
		if err != nil {
			return err
		}
		w := ts.In(loc)
		r[col] = time.Date(w.Year(), w.Month(), w.Day(), w.Hour(), w.Minute(), w.Second(), w.Nanosecond(), time.UTC).Format(TimestampLayout)
	}
	return nil
}

// compareRows compares two row multisets by their JSON encodings.
func compareRows(t *testing.T, got, want []map[string]any) {
	t.Helper()
	enc := func(rows []map[string]any) []string {
		out := make([]string, len(rows))
		for i, r := range rows {
			b, err := json.Marshal(r)
			if err != nil {
				t.Fatalf("encode row %v: %v", r, err)
			}
			out[i] = string(b)
		}
		sort.Strings(out)
		return out
	}
	g, w := enc(got), enc(want)
	if slices.Equal(g, w) {
		return
	}
	t.Errorf("got %d rows, want %d", len(g), len(w))
	missing, extra := diff(w, g), diff(g, w)
	for i, r := range missing {
		if i == 5 {
			t.Errorf("... %d more missing", len(missing)-5)
			break
		}
		t.Errorf("missing row %s", r)
	}
	for i, r := range extra {
		if i == 5 {
			t.Errorf("... %d more unexpected", len(extra)-5)
			break
		}
		t.Errorf("unexpected row %s", r)
	}
}

// diff returns the elements of a (sorted) not matched in b (sorted), as multisets.
func diff(a, b []string) []string {
	var out []string
	j := 0
	for _, x := range a {
		for j < len(b) && b[j] < x {
			j++
		}
		if j < len(b) && b[j] == x {
			j++
			continue
		}
		out = append(out, x)
	}
	return out
}

// TestGoldenPruning checks, on every golden table with rows, that skipping files by partition
// values and by the stats Spark wrote never changes a result: for each primitive column and
// a few of its values, each operator returns the same rows with and without pruning.
func TestGoldenPruning(t *testing.T) {
	entries, err := os.ReadDir(goldenDir)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	var scans, pruned int
	for _, e := range entries {
		name := e.Name()
		_, refused := goldenRefused[name]
		_, fails := goldenMustFail[name]
		if _, err := os.Stat(filepath.Join(goldenDir, name, "expected")); err != nil || refused || fails {
			continue
		}
		t.Run(name, func(t *testing.T) {
			st, tbl := goldenTable(t, name)
			snap, all, err := readAll(ctx, st, tbl)
			if err != nil {
				t.Fatal(err)
			}
			schema, _ := snap.Schema()
			for _, f := range schema.Fields {
				k := kindOf(f.Type)
				filters := []Filter{{Column: f.Name, Op: IsNull}, {Column: f.Name, Op: IsNotNull}}
				if k != kOther {
					for _, v := range sampleValues(all, f.Name, k) {
						for _, op := range []Op{Eq, Ne, Lt, Le, Gt, Ge} {
							filters = append(filters, Filter{Column: f.Name, Op: op, Value: v})
						}
					}
				}
				for _, flt := range filters {
					s, err := New(st, snap, Options{Filters: []Filter{flt}})
					if err != nil {
						t.Fatalf("%s: %v", flt, err)
					}
					s.Close()
					scans++
					pruned += s.Pruned()
					if s.Pruned() == 0 {
						continue // the same files are read either way
					}
					got, err := Rows(ctx, st, snap, Options{Filters: []Filter{flt}})
					if err != nil {
						t.Fatalf("%s: %v", flt, err)
					}
					want, err := Rows(ctx, st, snap, Options{Filters: []Filter{flt}, noPrune: true})
					if err != nil {
						t.Fatalf("%s unpruned: %v", flt, err)
					}
					if len(got) != len(want) {
						t.Errorf("%s: %d rows with pruning, %d without (%d files pruned)", flt, len(got), len(want), s.Pruned())
					}
				}
			}
		})
	}
	t.Logf("%d scans, %d files pruned", scans, pruned)
	if pruned == 0 {
		t.Error("no file was ever pruned: the test checks nothing")
	}
}

// sampleValues returns the smallest, a middle and the largest non-null value of a column, as
// the rows hold them.
func sampleValues(rows []map[string]any, col string, k kind) []any {
	type pair struct {
		raw, cmp any
	}
	var vals []pair
	for _, r := range rows {
		v := r[col]
		if v == nil {
			continue
		}
		c, err := coerce(v, k)
		if err != nil {
			continue
		}
		if _, ok := compare(c, c); !ok {
			continue // NaN
		}
		vals = append(vals, pair{v, c})
	}
	if len(vals) == 0 {
		return nil
	}
	sort.Slice(vals, func(i, j int) bool { c, _ := compare(vals[i].cmp, vals[j].cmp); return c < 0 })
	return []any{vals[0].raw, vals[len(vals)/2].raw, vals[len(vals)-1].raw}
}
