package catalog

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/plantlake/plantlake/delta"
)

// TestAutoVacuumGoesOnWhenCapped checks that automatic vacuum, when it
// found more removed files than one run deletes, runs again at the table's
// next maintenance instead of a vacuum interval later: a table that removes
// files faster than one run an interval deletes would otherwise keep them
// on disk for ever.
func TestAutoVacuumGoesOnWhenCapped(t *testing.T) {
	defer func(n int) { maxVacuumFiles = n }(maxVacuumFiles)
	maxVacuumFiles = 2
	ctx := context.Background()
	c := newTestCatalog(t)
	const name = "raw.vac"
	if _, _, err := c.CreateTable(ctx, TableDef{Name: name,
		Columns:          []Column{{Name: "id", Type: "long", Nullable: true}, {Name: "day", Type: "date", Nullable: true}},
		PartitionColumns: []string{"day"},
		Properties:       map[string]string{"delta.deletedFileRetentionDuration": "interval 1 millisecond", "plantlake.autoOptimize.minFiles": "0"},
	}); err != nil {
		t.Fatal(err)
	}
	var adds []delta.Add
	var removes []delta.Remove
	for i := range 5 {
		a := dataFile(t, c, name, "2024-01-01", fmt.Sprintf("f%d.parquet", i))
		adds = append(adds, a)
		removes = append(removes, delta.Remove{Path: a.Path, PartitionValues: a.PartitionValues, DataChange: true})
	}
	if _, err := c.Commit(ctx, &CommitRequest{Table: name, ReadVersion: 0, BlindAppend: true, Adds: adds}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Commit(ctx, &CommitRequest{Table: name, ReadVersion: 1, Operation: "DELETE", Removes: removes}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(20 * time.Millisecond) // past the retention

	left := func() int {
		n := 0
		for _, a := range adds {
			_, err := os.Stat(filepath.Join(c.Root(), "raw", "vac", filepath.FromSlash(a.Path)))
			if err == nil {
				n++
			} else if !errors.Is(err, os.ErrNotExist) {
				t.Fatal(err)
			}
		}
		return n
	}
	for run, want := range []int{3, 1, 0, 0} {
		if err := c.maintain(ctx, name); err != nil {
			t.Fatalf("maintenance %d: %v", run, err)
		}
		if got := left(); got != want {
			t.Fatalf("after maintenance %d: %d removed files on disk, want %d", run, got, want)
		}
	}
}
