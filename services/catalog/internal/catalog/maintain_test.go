package catalog

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"slices"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet/file"

	"github.com/plantlake/plantlake/delta"
	"github.com/plantlake/plantlake/delta/datafile"
	"github.com/plantlake/plantlake/delta/storage"
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

// catalogWithIntFiles returns a catalog bounded by maxMemory holding the
// table raw.m with n files of 100,000 int64 rows (800,000 bytes decoded
// each) in one partition.
func catalogWithIntFiles(t *testing.T, maxMemory int64, n int) *Catalog {
	t.Helper()
	const rows = 100_000
	c, err := New(Config{Warehouse: t.TempDir(), MaxOptimizeMemory: maxMemory}, nil, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	mustCreate(t, c, "raw.m")
	ctx := context.Background()
	store, err := storage.NewLocal(filepath.Join(c.Root(), "raw", "m"))
	if err != nil {
		t.Fatal(err)
	}
	schema := arrow.NewSchema([]arrow.Field{{Name: "id", Type: arrow.PrimitiveTypes.Int64, Nullable: true}}, nil)
	for f := range n {
		b := array.NewInt64Builder(memory.DefaultAllocator)
		for i := range rows {
			b.Append(int64(f*rows + i))
		}
		col := b.NewArray()
		rec := array.NewRecordBatch(schema, []arrow.Array{col}, rows)
		add, err := datafile.Write(ctx, store, datafile.Options{PartitionColumns: []string{"day"},
			PartitionValues: map[string]string{"day": "2024-01-01"}}, rec)
		rec.Release()
		col.Release()
		b.Release()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.Commit(ctx, &CommitRequest{Table: "raw.m", ReadVersion: int64(f), BlindAppend: true, Adds: []delta.Add{add}}); err != nil {
			t.Fatal(err)
		}
	}
	return c
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
