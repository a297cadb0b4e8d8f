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

// TestCheckpointIntervalAfterRestart checks that a reloaded table's
// adaptive checkpoint interval starts from the size _last_checkpoint
// records: a large table is not checkpointed 10 versions after a restart.
func TestCheckpointIntervalAfterRestart(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		size int64
		want bool // a checkpoint at version 12
	}{{0, true}, {50_000, false}} {
		t.Run(fmt.Sprint(tc.size), func(t *testing.T) {
			c := newTestCatalog(t)
			mustCreate(t, c, "raw.cp")
			for v := range int64(12) {
				if _, err := c.Commit(ctx, &CommitRequest{Table: "raw.cp", ReadVersion: v, BlindAppend: true,
					Adds: []delta.Add{dataFile(t, c, "raw.cp", "2024-01-01", fmt.Sprintf("f%d", v))}}); err != nil {
					t.Fatal(err)
				}
			}
			logDir := filepath.Join(c.Root(), "raw", "cp", "_delta_log")
			lc := fmt.Sprintf(`{"version":1,"size":%d}`, tc.size)
			if err := os.WriteFile(filepath.Join(logDir, "_last_checkpoint"), []byte(lc), 0o644); err != nil {
				t.Fatal(err)
			}
			c.Close()
			c2, err := New(Config{Warehouse: c.Root()}, nil, c.log)
			if err != nil {
				t.Fatal(err)
			}
			defer c2.Close()
			if err := c2.maintain(ctx, "raw.cp"); err != nil {
				t.Fatal(err)
			}
			_, err = os.Stat(filepath.Join(logDir, fmt.Sprintf("%020d.checkpoint.parquet", 12)))
			if got := err == nil; got != tc.want {
				t.Fatalf("checkpoint at 12 after a restart with size %d: %v, want %v (%v)", tc.size, got, tc.want, err)
			}
		})
	}
}
