package delta

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/plantlake/plantlake/delta/storage"
)

var update = flag.Bool("update", false, "rewrite golden files under testdata")

const testSchema = `{"type":"struct","fields":[{"name":"id","type":"long","nullable":true,"metadata":{}},{"name":"day","type":"date","nullable":true,"metadata":{}}]}`

// newTestTable creates a table partitioned by day in a temporary folder.
func newTestTable(t testing.TB, opts ...Option) (*Table, *storage.Local) {
	t.Helper()
	st, err := storage.NewLocal(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	tbl, err := Create(context.Background(), st, Metadata{SchemaString: testSchema, PartitionColumns: []string{"day"}}, Protocol{}, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return tbl, st
}

func addAction(p, day string) Action {
	return Action{Add: &Add{Path: p, PartitionValues: map[string]string{"day": day}, Size: 10, ModificationTime: 1, DataChange: true}}
}

func removeAction(p, day string) Action {
	ts := int64(5)
	return Action{Remove: &Remove{Path: p, DeletionTimestamp: &ts, DataChange: true, PartitionValues: map[string]string{"day": day}}}
}

func appendReq(readVersion int64, paths ...string) CommitRequest {
	req := CommitRequest{ReadVersion: readVersion, Operation: "WRITE", BlindAppend: true}
	for _, p := range paths {
		req.Actions = append(req.Actions, addAction(p, "2024-01-01"))
	}
	return req
}

func mustCommit(t testing.TB, tbl *Table, req CommitRequest) int64 {
	t.Helper()
	v, err := tbl.Commit(context.Background(), req)
	if err != nil {
		t.Fatalf("Commit: %v", err)
	}
	return v
}

func filePaths(s *Snapshot) []string {
	var out []string
	for _, f := range s.Files() {
		out = append(out, f.Path)
	}
	return out
}

// setCommitTime sets the modification time of commit v.
func setCommitTime(t testing.TB, st *storage.Local, v int64, ts time.Time) {
	t.Helper()
	if err := os.Chtimes(filepath.Join(st.Root(), filepath.FromSlash(CommitPath(v))), ts, ts); err != nil {
		t.Fatal(err)
	}
}

func touchData(t testing.TB, st *storage.Local, p string, ts time.Time) {
	t.Helper()
	full := filepath.Join(st.Root(), filepath.FromSlash(p))
	if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(full, []byte(fmt.Sprint(p)), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(full, ts, ts); err != nil {
		t.Fatal(err)
	}
}

func mustLocal(t testing.TB) *storage.Local {
	t.Helper()
	st, err := storage.NewLocal(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return st
}

var testNow = time.Date(2024, 6, 1, 12, 0, 0, 0, time.UTC)
