package reader

import (
	"context"
	"errors"
	"io"
	"testing"

	"github.com/plantlake/plantlake/delta"
)

// TestNewFilesReadsGivenFiles: NewFiles reads exactly the files given, also a
// file the snapshot no longer holds (removed after it was added), and refuses
// a file with a deletion vector.
func TestNewFilesReadsGivenFiles(t *testing.T) {
	ctx := context.Background()
	st, tbl, _ := rawTable(t)
	snap, err := tbl.Snapshot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	files := snap.Files()
	var removed delta.Add // the 200-row file of 2024-05-07
	for _, f := range files {
		if f.PartitionValues["ingest_date"] == "2024-05-07" {
			removed = f
		}
	}
	if _, err := tbl.Commit(ctx, delta.CommitRequest{ReadVersion: snap.Version(), Operation: "DELETE", Actions: []delta.Action{{Remove: &delta.Remove{Path: removed.Path, DataChange: true}}}}); err != nil {
		t.Fatal(err)
	}
	after, err := tbl.Snapshot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if after.NumFiles() != 2 {
		t.Fatalf("%d live files after the remove, want 2", after.NumFiles())
	}
	s, err := NewFiles(st, after, []delta.Add{removed}, Options{Columns: []string{"kafka_offset", "ingest_date"}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var n int64
	for {
		rec, err := s.Next(ctx)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		n += rec.NumRows()
		rec.Release()
	}
	if n != 200 {
		t.Errorf("read %d rows of the removed file, want 200", n)
	}

	dv := removed
	dv.DeletionVector = []byte(`{"storageType":"u","pathOrInlineDv":"x","sizeInBytes":1,"cardinality":1}`)
	if _, err := NewFiles(st, after, []delta.Add{dv}, Options{}); !errors.Is(err, delta.ErrUnsupportedFeature) {
		t.Errorf("NewFiles with a deletion vector: %v, want ErrUnsupportedFeature", err)
	}
}
