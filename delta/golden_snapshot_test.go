package delta

import (
	"context"
	"errors"
	"path/filepath"
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
