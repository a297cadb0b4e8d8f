package catalog

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet/file"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"

	"github.com/plantlake/plantlake/delta"
	"github.com/plantlake/plantlake/delta/datafile"
	"github.com/plantlake/plantlake/delta/storage"
	"github.com/plantlake/plantlake/services/catalog/internal/maintenance"
)

func TestPlanCompaction(t *testing.T) {
	file := func(day string, i int, size int64) delta.Add {
		return delta.Add{Path: fmt.Sprintf("day=%s/f%02d", day, i), Size: size, PartitionValues: map[string]string{"day": day}}
	}
	var files []delta.Add
	for i := range 5 {
		files = append(files, file("a", i, 10)) // 5 small files in a
	}
	files = append(files, file("b", 0, 10), file("b", 1, 100)) // one small, one big in b
	for i := range 3 {
		files = append(files, file("c", i, 30)) // 3 small files in c
	}
	all := func(map[string]string) bool { return true }
	onlyC := func(pv map[string]string) bool { return pv["day"] == "c" }
	shape := func(bins [][]delta.Add) string {
		var s string
		for _, b := range bins {
			s += fmt.Sprintf("[%s×%d]", b[0].PartitionValues["day"], len(b))
		}
		return s
	}
	tests := []struct {
		name     string
		target   int64
		maxFiles int
		maxBytes int64
		minFiles int
		match    func(map[string]string) bool
		want     string
	}{
		{"everything small, most files first", 100, 100, 1 << 20, 2, all, "[a×5][c×3]"},
		{"bins split at the target; c files are not small", 40, 100, 1 << 20, 2, all, "[a×4]"},
		{"file budget", 100, 6, 1 << 20, 2, all, "[a×5]"},
		{"byte budget", 100, 100, 75, 2, all, "[a×5]"},
		{"policy minimum", 100, 100, 1 << 20, 4, all, "[a×5]"},
		{"partition filter", 100, 100, 1 << 20, 2, onlyC, "[c×3]"},
		{"nothing to do", 100, 100, 1 << 20, 6, all, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := shape(planCompaction(files, []string{"day"}, tc.target, tc.maxFiles, tc.maxBytes, tc.minFiles, tc.match))
			if got != tc.want {
				t.Fatalf("bins %s, want %s", got, tc.want)
			}
		})
	}
}

// TestOptimizeBoundsDecodedMemory: a compaction reads files, smallest
// first, only while their decoded rows stay within MaxOptimizeMemory (the
// catalog passed 256 MiB in the end-to-end benchmark when 64 MiB of file
// bytes, several times that decoded, were its only bound); a larger bound
// compacts every file.
func TestOptimizeBoundsDecodedMemory(t *testing.T) {
	const files = 6
	for _, tc := range []struct {
		maxMemory   int64
		wantRemoved int64
	}{{2_000_000, 2}, {3_000_000, 3}, {0, files}} {
		t.Run(fmt.Sprint(tc.maxMemory), func(t *testing.T) {
			c := catalogWithIntFiles(t, tc.maxMemory, files)
			res, err := c.Optimize(context.Background(), OptimizeRequest{Table: "raw.m", TargetFileSize: 1 << 30})
			if err != nil {
				t.Fatal(err)
			}
			if !res.Committed || res.FilesRemoved != tc.wantRemoved || res.FilesAdded != 1 {
				t.Fatalf("Optimize = %+v, want %d files compacted into 1", res, tc.wantRemoved)
			}
		})
	}
}

// TestOptimizeLeavesFullFilesAlone: a file that MaxOptimizeMemory kept from
// growing is as large as a compaction can make it, so it is not small any
// more, however far below the target size it is. Before, such files stayed
// "small" forever: once a partition held enough of them, every commit's
// maintenance read two of them again and rewrote them into one, and the
// catalog spent more CPU per reading than any hop in the end-to-end run.
func TestOptimizeLeavesFullFilesAlone(t *testing.T) {
	const files = 6
	c := catalogWithIntFiles(t, 2_000_000, files) // two files fill a compaction
	ctx := context.Background()
	var removed, added int64
	for i := range files {
		res, err := c.Optimize(ctx, OptimizeRequest{Table: "raw.m", TargetFileSize: 1 << 30})
		if err != nil {
			t.Fatal(err)
		}
		if i >= files/2 && res.Committed {
			t.Fatalf("call %d compacted again: %+v (%d removed, %d added before)", i+1, res, removed, added)
		}
		removed += res.FilesRemoved
		added += res.FilesAdded
	}
	if removed != files || added != files/2 {
		t.Fatalf("compactions removed %d files and added %d, want %d and %d", removed, added, files, files/2)
	}
}

// catalogWithIntFiles returns a catalog bounded by maxMemory, which never
// stitches, holding the table raw.m with n files of 100,000 int64 rows
// (800,000 bytes decoded each) in one partition.
func catalogWithIntFiles(t *testing.T, maxMemory int64, n int) *Catalog {
	t.Helper()
	c, err := New(Config{Warehouse: t.TempDir(), MaxOptimizeMemory: maxMemory, StitchMinRowGroupRows: -1}, nil, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	intFiles(t, c, "raw.m", nil, n, 100_000)
	return c
}

// intFiles creates the table name (id long, partitioned by day) with
// properties props and commits n files of rows int64 ids each, the ids
// 0..n*rows-1, in one partition. It returns the rows written.
func intFiles(t *testing.T, c *Catalog, name string, props map[string]string, n, rows int) []arrow.RecordBatch {
	t.Helper()
	if _, _, err := c.CreateTable(context.Background(), TableDef{Name: name,
		Columns:          []Column{{Name: "id", Type: "long", Nullable: true}, {Name: "day", Type: "date", Nullable: true}},
		PartitionColumns: []string{"day"}, Properties: props}); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	schemaName, tableName, _ := cut(name)
	store, err := storage.NewLocal(filepath.Join(c.Root(), schemaName, tableName))
	if err != nil {
		t.Fatal(err)
	}
	schema := arrow.NewSchema([]arrow.Field{{Name: "id", Type: arrow.PrimitiveTypes.Int64, Nullable: true}}, nil)
	var recs []arrow.RecordBatch
	for f := range n {
		b := array.NewInt64Builder(memory.DefaultAllocator)
		for i := range rows {
			// Descending within a file, so that a sorting rewrite shows.
			b.Append(int64(f*rows + rows - 1 - i))
		}
		col := b.NewArray()
		rec := array.NewRecordBatch(schema, []arrow.Array{col}, int64(rows))
		add, err := datafile.Write(ctx, store, datafile.Options{PartitionColumns: []string{"day"},
			PartitionValues: map[string]string{"day": "2024-01-01"}}, rec)
		col.Release()
		b.Release()
		if err != nil {
			t.Fatal(err)
		}
		recs = append(recs, rec)
		t.Cleanup(rec.Release)
		if _, err := c.Commit(ctx, &CommitRequest{Table: name, ReadVersion: int64(f), BlindAppend: true, Adds: []delta.Add{add}}); err != nil {
			t.Fatal(err)
		}
	}
	return recs
}

// TestOptimizeStitches: files of many rows are stitched, all of them into
// one file (up to MaxOptimizeMemory of file bytes: stitching holds the new
// file, no decoded rows), whose row groups are the inputs' and
// whose stats are what writing the rows would give, in a table with a sort
// order too; files of few rows are rewritten (sorted, when the table has a
// sort order).
func TestOptimizeStitches(t *testing.T) {
	ctx := context.Background()
	c, err := New(Config{Warehouse: t.TempDir(), MaxOptimizeMemory: 8 << 20}, nil, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	for _, tc := range []struct {
		table         string
		props         map[string]string
		files, rows   int
		wantRemoved   int64
		wantStitched  int64
		wantRowGroups int
	}{
		{"raw.large", nil, 6, 100_000, 6, 1, 6},
		{"raw.tiny", nil, 6, 10, 6, 0, 1},
		{"raw.sorted", map[string]string{maintenance.PropOptimizeSortBy: "id"}, 6, 100_000, 6, 1, 6},
		{"raw.sortedtiny", map[string]string{maintenance.PropOptimizeSortBy: "id"}, 6, 10, 6, 0, 1},
	} {
		t.Run(tc.table, func(t *testing.T) {
			recs := intFiles(t, c, tc.table, tc.props, tc.files, tc.rows)
			res, err := c.Optimize(ctx, OptimizeRequest{Table: tc.table})
			if err != nil {
				t.Fatal(err)
			}
			if !res.Committed || res.FilesRemoved != tc.wantRemoved || res.FilesAdded != 1 || res.FilesStitched != tc.wantStitched {
				t.Fatalf("Optimize = %+v, want %d files compacted into 1, %d stitched", res, tc.wantRemoved, tc.wantStitched)
			}
			snap, err := c.Snapshot(ctx, tc.table, At{})
			if err != nil {
				t.Fatal(err)
			}
			schemaName, tableName, _ := cut(tc.table)
			var added delta.Add
			for _, f := range snap.Files {
				if !strings.Contains(f.Stats, fmt.Sprintf(`"numRecords":%d,`, tc.rows)) {
					added = f
				}
			}
			pf, err := file.OpenParquetFile(filepath.Join(c.Root(), schemaName, tableName, filepath.FromSlash(added.Path)), false)
			if err != nil {
				t.Fatal(err)
			}
			defer pf.Close()
			if got := pf.NumRowGroups(); got != tc.wantRowGroups {
				t.Errorf("compacted file has %d row groups, want %d", got, tc.wantRowGroups)
			}
			if tc.props != nil && tc.wantStitched == 0 {
				fr, err := pqarrow.NewFileReader(pf, pqarrow.ArrowReadProperties{}, memory.DefaultAllocator)
				if err != nil {
					t.Fatal(err)
				}
				tbl, err := fr.ReadTable(ctx)
				if err != nil {
					t.Fatal(err)
				}
				var ids []int64
				for _, ch := range tbl.Column(0).Data().Chunks() {
					ids = append(ids, ch.(*array.Int64).Int64Values()...)
				}
				tbl.Release()
				if !slices.IsSorted(ids) {
					t.Errorf("rewritten file of a table sorted by id holds ids %v", ids)
				}
			}
			if tc.wantRemoved == int64(tc.files) {
				_, want, err := datafile.Encode(datafile.Options{}, recs...)
				if err != nil {
					t.Fatal(err)
				}
				wantJSON, _ := want.JSON()
				if added.Stats != wantJSON {
					t.Errorf("compacted file's stats %s, want %s", added.Stats, wantJSON)
				}
			}
			var n, sum int64
			if err := c.Scan(ctx, ScanRequest{Table: tc.table}, func(_ int64, row map[string]any) error {
				n++
				sum += row["id"].(int64)
				return nil
			}); err != nil {
				t.Fatal(err)
			}
			total := int64(tc.files * tc.rows)
			if n != total || sum != total*(total-1)/2 {
				t.Errorf("scan: %d rows summing to %d, want %d rows of ids 0..%d", n, sum, total, total-1)
			}
		})
	}
}

// TestOptimizeKeepsTheWritersEncodings: a string column its writer stored
// without a dictionary (values nearly all distinct) stays without one after
// compaction, and a dictionary column keeps its dictionary.
func TestOptimizeKeepsTheWritersEncodings(t *testing.T) {
	c, err := New(Config{Warehouse: t.TempDir()}, nil, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	ctx := context.Background()
	if _, _, err := c.CreateTable(ctx, TableDef{Name: "raw.s",
		Columns: []Column{{Name: "unique_text", Type: "string", Nullable: true}, {Name: "line", Type: "string", Nullable: true},
			{Name: "day", Type: "date", Nullable: true}},
		PartitionColumns: []string{"day"}}); err != nil {
		t.Fatal(err)
	}
	store, err := storage.NewLocal(filepath.Join(c.Root(), "raw", "s"))
	if err != nil {
		t.Fatal(err)
	}
	schema := arrow.NewSchema([]arrow.Field{
		{Name: "unique_text", Type: arrow.BinaryTypes.String, Nullable: true},
		{Name: "line", Type: arrow.BinaryTypes.String, Nullable: true}}, nil)
	for f := range 3 {
		u, l := array.NewStringBuilder(memory.DefaultAllocator), array.NewStringBuilder(memory.DefaultAllocator)
		for i := range 1000 {
			u.Append(fmt.Sprintf("reading %d of file %d", i, f))
			l.Append(fmt.Sprintf("line%d", i%3))
		}
		cols := []arrow.Array{u.NewArray(), l.NewArray()}
		rec := array.NewRecordBatch(schema, cols, 1000)
		add, err := datafile.Write(ctx, store, datafile.Options{PartitionColumns: []string{"day"},
			PartitionValues: map[string]string{"day": "2024-01-01"}, PlainColumns: []string{"unique_text"}}, rec)
		rec.Release()
		for _, a := range cols {
			a.Release()
		}
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.Commit(ctx, &CommitRequest{Table: "raw.s", ReadVersion: int64(f), BlindAppend: true, Adds: []delta.Add{add}}); err != nil {
			t.Fatal(err)
		}
	}
	res, err := c.Optimize(ctx, OptimizeRequest{Table: "raw.s"})
	if err != nil || !res.Committed || res.FilesAdded != 1 {
		t.Fatalf("Optimize = %+v, %v; want 3 files compacted into 1", res, err)
	}
	snap, err := c.Snapshot(ctx, "raw.s", At{})
	if err != nil {
		t.Fatal(err)
	}
	if len(snap.Files) != 1 {
		t.Fatalf("%d files after compaction, want 1", len(snap.Files))
	}
	pf, err := file.OpenParquetFile(filepath.Join(c.Root(), "raw", "s", filepath.FromSlash(snap.Files[0].Path)), false)
	if err != nil {
		t.Fatal(err)
	}
	defer pf.Close()
	if got := plainColumns(pf); !slices.Equal(got, []string{"unique_text"}) {
		t.Fatalf("compacted file stores %v without a dictionary, want [unique_text]", got)
	}
}

// TestBoundRecopy: a stitch bin never copies a file larger than the files
// that join it together, so a large stitched file waits for as many bytes
// of new files instead of being copied again for every few.
func TestBoundRecopy(t *testing.T) {
	bin := func(sizes ...int64) []delta.Add {
		var b []delta.Add
		for _, s := range sizes {
			b = append(b, delta.Add{Size: s})
		}
		return b
	}
	sizes := func(b []delta.Add) []int64 {
		var s []int64
		for _, f := range b {
			s = append(s, f.Size)
		}
		return s
	}
	for _, tc := range []struct {
		in, want []int64
	}{
		{[]int64{2, 2, 2, 48}, []int64{2, 2, 2}},
		{[]int64{2, 2, 2, 12}, []int64{2, 2, 2, 12}},
		{[]int64{2, 2, 2, 13}, []int64{2, 2, 2}},
		{[]int64{1, 3, 40, 48}, []int64{1, 3, 40, 48}},
		{[]int64{1, 2, 30}, []int64{1, 2}}, // 2 is not above the minimum
		{[]int64{1, 48}, []int64{1}},
		{[]int64{5, 6}, []int64{5, 6}},
		{[]int64{1, 4}, []int64{1, 4}},
	} {
		if got := sizes(boundRecopy(bin(tc.in...), 4)); !slices.Equal(got, tc.want) {
			t.Errorf("boundRecopy(%v) = %v, want %v", tc.in, got, tc.want)
		}
	}
}

// TestOptimizeStitchesWithinMemory: a stitched file is held in memory until
// it is written, so MaxOptimizeMemory bounds it: files of about 400 KB with
// 1 MB of memory are stitched two by two.
func TestOptimizeStitchesWithinMemory(t *testing.T) {
	c, err := New(Config{Warehouse: t.TempDir(), MaxOptimizeMemory: 1 << 20}, nil, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	intFiles(t, c, "raw.m", nil, 6, 100_000)
	res, err := c.Optimize(context.Background(), OptimizeRequest{Table: "raw.m"})
	if err != nil {
		t.Fatal(err)
	}
	if res.FilesRemoved != 6 || res.FilesAdded != 3 || res.FilesStitched != 3 || res.BytesAdded > 3<<20 {
		t.Fatalf("Optimize = %+v, want 6 files stitched into 3 of at most 1 MiB", res)
	}
}
