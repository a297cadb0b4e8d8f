package delta

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/plantlake/plantlake/delta/storage"
)

const goldenDir = "../../shared/testdata/delta-golden"

func openGolden(t *testing.T, name string) *Table {
	t.Helper()
	st, err := storage.NewLocal(filepath.Join(goldenDir, name, "delta"))
	if err != nil {
		t.Fatal(err)
	}
	return Open(st)
}

func TestGoldenSnapshots(t *testing.T) {
	cases := []struct {
		name     string
		version  int64
		files    []string // canonical paths; nil = do not check
		numFiles int
		modTime  map[string]int64
	}{
		{name: "checkpoint", version: 14, numFiles: 1},
		{name: "canonicalized-paths-normal-a", version: 1, files: []string{}},
		{name: "canonicalized-paths-normal-b", version: 1, files: []string{}},
		{name: "canonicalized-paths-special-a", version: 1, files: []string{}},
		{name: "delete-re-add-same-file-different-transactions", version: 3, files: []string{"bar", "foo"},
			modTime: map[string]int64{"foo": 1700000000000}},
		{name: "deltalog-commit-info", version: 0, files: []string{"abc"}},
		{name: "update-deleted-directory", version: 0, numFiles: 10},
		{name: "multi-part-checkpoint", version: 1, numFiles: -1},
		{name: "corrupted-last-checkpoint-kernel", version: 11, numFiles: -1},
		{name: "v2-checkpoint-json", version: 2, numFiles: -1},
		{name: "v2-checkpoint-parquet", version: 2, numFiles: -1},
		{name: "basic-with-vacuum-protocol-check-feature", version: -1, numFiles: -1},
		{name: "data-reader-timestamp_ntz", version: -1, numFiles: -1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s, err := openGolden(t, tc.name).Snapshot(context.Background())
			if err != nil {
				t.Fatalf("Snapshot: %v", err)
			}
			if tc.version >= 0 && s.Version() != tc.version {
				t.Errorf("version = %d, want %d", s.Version(), tc.version)
			}
			files := s.Files()
			var paths []string
			for _, f := range files {
				paths = append(paths, f.Path)
			}
			t.Logf("version %d files %q", s.Version(), paths)
			if tc.files != nil && !equalStrings(paths, tc.files) {
				t.Errorf("files = %q, want %q", paths, tc.files)
			}
			if tc.numFiles > 0 && len(files) != tc.numFiles {
				t.Errorf("%d files, want %d", len(files), tc.numFiles)
			}
			for _, f := range files {
				if want, ok := tc.modTime[f.Path]; ok && f.ModificationTime != want {
					t.Errorf("%s modificationTime = %d, want %d", f.Path, f.ModificationTime, want)
				}
			}
		})
	}
}

func equalStrings(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestGoldenMustFail(t *testing.T) {
	cases := []struct {
		name string
		want error
	}{
		{"deltalog-invalid-protocol-version", ErrUnsupportedProtocol},
		{"deltalog-state-reconstruction-from-checkpoint-missing-metadata", ErrInvalidLog},
		{"deltalog-state-reconstruction-from-checkpoint-missing-protocol", ErrInvalidLog},
		{"deltalog-state-reconstruction-without-metadata", ErrInvalidLog},
		{"deltalog-state-reconstruction-without-protocol", ErrInvalidLog},
		{"no-delta-log-folder", ErrNotATable},
		{"hive", ErrNotATable},
		{"dv-partitioned-with-checkpoint", ErrUnsupportedFeature},
		{"dv-with-columnmapping", ErrUnsupportedFeature},
		{"log-replay-dv-key-cases", ErrUnsupportedFeature},
		{"table-with-columnmapping-mode-id", ErrUnsupportedFeature},
		{"table-with-columnmapping-mode-name", ErrUnsupportedFeature},
		{"data-skipping-basic-stats-all-types-columnmapping-id", ErrUnsupportedFeature},
		{"data-skipping-basic-stats-all-types-columnmapping-name", ErrUnsupportedFeature},
		{"data-reader-timestamp_ntz-id-mode", ErrUnsupportedFeature},
		{"data-reader-timestamp_ntz-name-mode", ErrUnsupportedFeature},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := openGolden(t, tc.name).Snapshot(context.Background())
			t.Logf("err: %v", err)
			if !errors.Is(err, tc.want) {
				t.Fatalf("Snapshot error = %v, want %v", err, tc.want)
			}
		})
	}
}

// TestGoldenFileList checks the lenient log replay on the golden tables: the
// case without a metaData action that Snapshot refuses is listed by version
// and files, the cases Snapshot reads list the same files, and what no
// replay can list still fails.
func TestGoldenFileList(t *testing.T) {
	absRoot, err := filepath.Abs(filepath.Join(goldenDir, "data-reader-absolute-paths-escaped-chars", "delta"))
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name    string
		version int64
		files   []string // canonical paths, sorted
		rawLog  map[string]string
		wantErr error
	}{
		{
			// The README: version 1, two files, one with an absolute path and
			// one named bar%2Dbar.snappy.parquet in the log. The first is
			// "..//Users/..." in the log: relative, but leaving the table, so
			// its canonical path is absolute.
			name:    "data-reader-absolute-paths-escaped-chars",
			version: 1,
			files: []string{
				filepath.ToSlash(filepath.Clean(absRoot + "/../Users/scott.sandre/connectors/golden-tables/src/test/resources/golden/data-reader-absolute-paths-escaped-chars/foo.snappy.parquet")),
				"bar-bar.snappy.parquet",
			},
			rawLog: map[string]string{"bar%2Dbar.snappy.parquet": "bar-bar.snappy.parquet"},
		},
		{name: "deltalog-commit-info", version: 0, files: []string{"abc"}},
		{name: "delete-re-add-same-file-different-transactions", version: 3, files: []string{"bar", "foo"}},
		{name: "canonicalized-paths-special-a", version: 1, files: []string{}},
		// Lenient: a log without metaData lists; Snapshot refuses it.
		{name: "deltalog-state-reconstruction-without-metadata", version: -1},
		{name: "deltalog-invalid-protocol-version", wantErr: ErrUnsupportedProtocol},
		{name: "no-delta-log-folder", wantErr: ErrNotATable},
		{name: "hive", wantErr: ErrNotATable},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			fl, err := openGolden(t, tc.name).FileList(context.Background())
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("FileList error = %v, want %v", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("FileList: %v", err)
			}
			if tc.version >= 0 && fl.Version != tc.version {
				t.Errorf("version = %d, want %d", fl.Version, tc.version)
			}
			paths := []string{}
			for _, f := range fl.Files {
				paths = append(paths, f.Path)
			}
			t.Logf("version %d files %q", fl.Version, paths)
			if tc.files != nil {
				want := append([]string(nil), tc.files...)
				sortStrings(want)
				if !equalStrings(paths, want) {
					t.Errorf("files = %q, want %q", paths, want)
				}
			}
			for raw, canon := range tc.rawLog {
				if got := CanonicalPath(raw, absRoot); got != canon {
					t.Errorf("CanonicalPath(%q) = %q, want %q", raw, got, canon)
				}
			}
			// Where Snapshot reads the table, both agree.
			if s, err := openGolden(t, tc.name).Snapshot(context.Background()); err == nil {
				if s.Version() != fl.Version || !equalStrings(filePaths(s), paths) {
					t.Errorf("Snapshot: version %d files %q; FileList: version %d files %q", s.Version(), filePaths(s), fl.Version, paths)
				}
			}
		})
	}
}

// TestFileListAt lists written tables at each version, including one
// without a metaData action and one whose protocol this library cannot read.
func TestFileListAt(t *testing.T) {
	ctx := context.Background()
	tbl, _ := newTestTable(t)
	mustCommit(t, tbl, appendReq(0, "day=2024-01-01/a.parquet", "day=2024-01-01/b%20c.parquet"))
	mustCommit(t, tbl, CommitRequest{ReadVersion: 1, Operation: "DELETE", Actions: []Action{removeAction("day=2024-01-01/a.parquet", "2024-01-01")}})
	cases := []struct {
		version int64
		files   []string
		err     error
	}{
		{version: 0, files: []string{}},
		{version: 1, files: []string{"day=2024-01-01/a.parquet", "day=2024-01-01/b c.parquet"}},
		{version: 2, files: []string{"day=2024-01-01/b c.parquet"}},
		{version: 3, err: ErrVersionNotFound},
		{version: -1, err: ErrVersionNotFound},
	}
	for _, tc := range cases {
		t.Run(fmt.Sprint(tc.version), func(t *testing.T) {
			fl, err := tbl.FileListAt(ctx, tc.version)
			if tc.err != nil {
				if !errors.Is(err, tc.err) {
					t.Fatalf("FileListAt(%d) error = %v, want %v", tc.version, err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var paths []string
			for _, f := range fl.Files {
				paths = append(paths, f.Path)
			}
			if fl.Version != tc.version || !equalStrings(paths, tc.files) || fl.Protocol == nil || fl.Metadata == nil {
				t.Errorf("FileListAt(%d) = version %d files %q protocol %v metadata %v", tc.version, fl.Version, paths, fl.Protocol, fl.Metadata)
			}
		})
	}

	// A log without metaData: Snapshot refuses it, FileList lists it.
	noMeta := mustLocal(t)
	writeLog(t, noMeta, 0, `{"protocol":{"minReaderVersion":1,"minWriterVersion":2}}`, `{"add":{"path":"x%2Dy.parquet","partitionValues":{},"size":1,"modificationTime":1,"dataChange":true}}`)
	if _, err := Open(noMeta).Snapshot(ctx); !errors.Is(err, ErrInvalidLog) {
		t.Errorf("Snapshot without metaData: error %v, want ErrInvalidLog", err)
	}
	fl, err := Open(noMeta).FileList(ctx)
	if err != nil || fl.Version != 0 || len(fl.Files) != 1 || fl.Files[0].Path != "x-y.parquet" || fl.Metadata != nil {
		t.Errorf("FileList without metaData = %+v, %v", fl, err)
	}

	// Reader features: deletion vectors list; an unknown feature is refused.
	for _, tc := range []struct {
		feature string
		err     error
	}{{"deletionVectors", nil}, {"futureFeature", ErrUnsupportedFeature}} {
		st := mustLocal(t)
		writeLog(t, st, 0, fmt.Sprintf(`{"protocol":{"minReaderVersion":3,"minWriterVersion":7,"readerFeatures":[%q],"writerFeatures":[%q]}}`, tc.feature, tc.feature))
		_, err := Open(st).FileList(ctx)
		if !errors.Is(err, tc.err) {
			t.Errorf("FileList with reader feature %s: error %v, want %v", tc.feature, err, tc.err)
		}
	}
}

// writeLog writes commit v with the given action lines.
func writeLog(t *testing.T, st *storage.Local, v int64, lines ...string) {
	t.Helper()
	if err := st.WriteFile(context.Background(), CommitPath(v), []byte(strings.Join(lines, "\n")+"\n")); err != nil {
		t.Fatal(err)
	}
}
