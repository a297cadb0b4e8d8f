package catalog

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/plantlake/plantlake/delta"
	"github.com/plantlake/plantlake/delta/storage"
)

func newTestCatalog(tb testing.TB) *Catalog {
	tb.Helper()
	c, err := New(Config{Warehouse: tb.TempDir()}, nil, slog.New(slog.DiscardHandler))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(c.Close)
	return c
}

func mustCreate(tb testing.TB, c *Catalog, name string) {
	tb.Helper()
	if _, _, err := c.CreateTable(context.Background(), TableDef{Name: name,
		Columns:          []Column{{Name: "id", Type: "long", Nullable: true}, {Name: "day", Type: "date", Nullable: true}},
		PartitionColumns: []string{"day"}}); err != nil {
		tb.Fatal(err)
	}
}

// testSchemaJSON is the schema mustCreate gives a table.
const testSchemaJSON = `{"type":"struct","fields":[{"name":"id","type":"long","nullable":true,"metadata":{}},{"name":"day","type":"date","nullable":true,"metadata":{}}]}`

// dataFile creates a file in the table and returns its add.
func dataFile(tb testing.TB, c *Catalog, table, day, name string) delta.Add {
	tb.Helper()
	schema, tbl, _ := cut(table)
	rel := "day=" + day + "/" + name
	p := filepath.Join(c.Root(), schema, tbl, filepath.FromSlash(rel))
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		tb.Fatal(err)
	}
	if err := os.WriteFile(p, []byte("data"), 0o644); err != nil {
		tb.Fatal(err)
	}
	return delta.Add{Path: rel, Size: 4, DataChange: true, PartitionValues: map[string]string{"day": day}}
}

func cut(s string) (string, string, bool) {
	for i := range s {
		if s[i] == '.' {
			return s[:i], s[i+1:], true
		}
	}
	return s, "", false
}

// TestGroupCommitKeepsTxnConflictsApart queues several blind appends at
// once, two of them with the same txn app id, and checks that the group
// commits the others in one version and aborts only the duplicate.
func TestGroupCommitKeepsTxnConflictsApart(t *testing.T) {
	c := newTestCatalog(t)
	mustCreate(t, c, "raw.g")
	ctx := context.Background()
	tb, err := c.table(ctx, "raw.g", "table")
	if err != nil {
		t.Fatal(err)
	}
	var ps []*prepared
	for i, app := range []string{"a", "b", "a", "c"} {
		req := &CommitRequest{Table: "raw.g", ReadVersion: 0, BlindAppend: true,
			Adds: []delta.Add{dataFile(t, c, "raw.g", "2024-01-01", fmt.Sprintf("f%d", i))},
			Txns: []delta.Txn{{AppID: app, Version: int64(i)}}}
		p, err := tb.prepare(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		ps = append(ps, p)
	}
	// Feed the writer one batch, as if all four were waiting.
	tb.process(ctx, ps)
	var versions []int64
	for i, p := range ps {
		out := <-p.result
		if i == 2 {
			var ce *ConflictError
			if !errors.As(out.err, &ce) || ce.WinnerVersion != 1 {
				t.Fatalf("request %d: %v, want a conflict with version 1", i, out.err)
			}
			continue
		}
		if out.err != nil {
			t.Fatalf("request %d: %v", i, out.err)
		}
		versions = append(versions, out.version)
	}
	// "a","b" share version 1; "c" comes after the aborted "a" and starts
	// a new group.
	if fmt.Sprint(versions) != "[1 1 2]" {
		t.Fatalf("versions %v, want [1 1 2]", versions)
	}
	snap, err := c.Snapshot(ctx, "raw.g", At{})
	if err != nil {
		t.Fatal(err)
	}
	if len(snap.Files) != 3 || snap.Txns["a"] != 0 || snap.Txns["b"] != 1 || snap.Txns["c"] != 3 {
		t.Fatalf("snapshot files %d, txns %v", len(snap.Files), snap.Txns)
	}
	// The log agrees with memory.
	store, _ := storage.NewLocal(filepath.Join(c.Root(), "raw", "g"))
	disk, err := delta.Open(store).Snapshot(ctx)
	if err != nil || disk.Version() != 2 || disk.NumFiles() != 3 {
		t.Fatalf("disk snapshot %v, %v", disk, err)
	}
}

// TestCompactionDoesNotConflictWithAppends: an OPTIMIZE-style commit
// (dataChange=false) after concurrent appends into its partition lands; a
// merge-style commit that read the partition, a non-blind write that names
// no read files (it read the whole table) and a compaction that also
// changes the metadata do not.
func TestCompactionDoesNotConflictWithAppends(t *testing.T) {
	c := newTestCatalog(t)
	mustCreate(t, c, "raw.o")
	ctx := context.Background()
	f1 := dataFile(t, c, "raw.o", "2024-01-01", "f1")
	if _, err := c.Commit(ctx, &CommitRequest{Table: "raw.o", ReadVersion: 0, BlindAppend: true, Adds: []delta.Add{f1}}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Commit(ctx, &CommitRequest{Table: "raw.o", ReadVersion: 1, BlindAppend: true, Adds: []delta.Add{dataFile(t, c, "raw.o", "2024-01-01", "f2")}}); err != nil {
		t.Fatal(err)
	}
	compacted := dataFile(t, c, "raw.o", "2024-01-01", "c1")
	compacted.DataChange = false
	tests := []struct {
		name    string
		req     *CommitRequest
		wantErr error
	}{
		{"merge that read the partition", &CommitRequest{Table: "raw.o", ReadVersion: 1, Operation: "MERGE",
			Removes: []delta.Remove{{Path: f1.Path, DataChange: true}}, ReadFiles: []string{f1.Path}}, ErrConflict},
		{"write that is not blind and names no read files", &CommitRequest{Table: "raw.o", ReadVersion: 1, Operation: "WRITE",
			Adds: []delta.Add{dataFile(t, c, "raw.o", "2024-01-02", "w1")}}, ErrConflict},
		// Rearranging files is not all this commit does (delta.ConflictChecker).
		{"compaction that also changes metadata", &CommitRequest{Table: "raw.o", ReadVersion: 1, Operation: "OPTIMIZE",
			Metadata: &delta.Metadata{SchemaString: testSchemaJSON, PartitionColumns: []string{"day"}},
			Removes:  []delta.Remove{{Path: f1.Path}}, Adds: []delta.Add{compacted}}, ErrConflict},
		{"compaction", &CommitRequest{Table: "raw.o", ReadVersion: 1, Operation: "OPTIMIZE",
			Removes: []delta.Remove{{Path: f1.Path}}, Adds: []delta.Add{compacted}}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := c.Commit(ctx, tc.req)
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("Commit = %v, want %v", err, tc.wantErr)
			}
		})
	}
}

// BenchmarkCommit measures engine commits (no gRPC, no Kafka) from 1 and
// 16 goroutines to one table, and one client committing sequentially as
// deserialize does: each commit reads the version the previous one made and
// adds a file with full stats and a txn. With TMPDIR on a tmpfs, where fsync
// costs nothing, it measures the commit path's CPU (-cpuprofile).
func BenchmarkCommit(b *testing.B) {
	b.Run("sequential", func(b *testing.B) {
		c := newTestCatalog(b)
		mustCreate(b, c, "raw.s")
		adds := make([]delta.Add, b.N)
		for i := range adds {
			adds[i] = dataFile(b, c, "raw.s", "2024-01-01", fmt.Sprintf("f%07d", i))
			adds[i].Stats = `{"numRecords":1000,"minValues":{"id":1,"day":"2024-01-01"},"maxValues":{"id":1000,"day":"2024-01-01"},"nullCount":{"id":0,"day":0}}`
		}
		ctx := context.Background()
		b.ReportAllocs()
		b.ResetTimer()
		for i := range b.N {
			if _, err := c.Commit(ctx, &CommitRequest{Table: "raw.s", ReadVersion: int64(i), BlindAppend: true,
				Adds: adds[i : i+1], Txns: []delta.Txn{{AppID: "deserialize/raw/0", Version: int64(i)}},
				OperationParameters: map[string]string{"mode": "Append"},
				OperationMetrics:    map[string]string{"numFiles": "1", "numOutputRows": "1000", "numOutputBytes": "4"}}); err != nil {
				b.Fatal(err)
			}
		}
	})
	for _, clients := range []int{1, 16} {
		b.Run(fmt.Sprintf("clients=%d", clients), func(b *testing.B) {
			c := newTestCatalog(b)
			mustCreate(b, c, "raw.b")
			adds := make([]delta.Add, b.N)
			for i := range adds {
				adds[i] = dataFile(b, c, "raw.b", "2024-01-01", fmt.Sprintf("f%07d", i))
			}
			b.ResetTimer()
			var wg sync.WaitGroup
			var next sync.Mutex
			n := 0
			for range clients {
				wg.Go(func() {
					for {
						next.Lock()
						i := n
						n++
						next.Unlock()
						if i >= b.N {
							return
						}
						if _, err := c.Commit(context.Background(), &CommitRequest{Table: "raw.b", BlindAppend: true, Adds: []delta.Add{adds[i]}}); err != nil {
							b.Error(err)
							return
						}
					}
				})
			}
			wg.Wait()
		})
	}
}

func TestRequestField(t *testing.T) {
	fields := []string{"metadata", "txns[0]", "removes[0]", "adds[0]"}
	cases := []struct {
		err  delta.CommitError
		want string
	}{
		{delta.CommitError{Action: 3, Field: `add.partitionValues["day"]`}, `adds[0].partition_values["day"]`},
		{delta.CommitError{Action: 3, Field: "add.deletionVector"}, "adds[0].deletion_vector"},
		{delta.CommitError{Action: 2, Field: "remove"}, "removes[0]"},
		{delta.CommitError{Action: 1, Field: "txn.appId"}, "txns[0].app_id"},
		{delta.CommitError{Action: 0, Field: "metaData.schemaString"}, "metadata.schema_json"},
		{delta.CommitError{Action: 0, Field: `metaData.configuration["delta.appendOnly"]`}, `metadata.configuration["delta.appendOnly"]`},
		{delta.CommitError{Action: 0, Field: "metaData.partitionColumns[0]"}, "metadata.partition_columns[0]"},
		{delta.CommitError{Action: -1, Field: "readVersion"}, "read_version"},
	}
	for _, tc := range cases {
		if got := requestField(fields, &tc.err); got != tc.want {
			t.Errorf("requestField(%d, %q) = %q, want %q", tc.err.Action, tc.err.Field, got, tc.want)
		}
	}
}
