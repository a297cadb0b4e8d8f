package catalog

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/plantlake/plantlake/delta"
	"github.com/plantlake/plantlake/delta/storage"
	"github.com/plantlake/plantlake/delta/storage/azstore"
	"github.com/plantlake/plantlake/delta/storage/s3store"
	"github.com/plantlake/plantlake/devstack"
)

// cloudWarehouses starts moto and Azurite and returns a warehouse URI on
// each, with the environment the stores read set for the test.
func cloudWarehouses(t *testing.T) map[string]string {
	ctx := context.Background()
	moto := devstack.Moto(t)
	t.Setenv("AWS_ACCESS_KEY_ID", "test")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "test")
	t.Setenv("AWS_REGION", "us-east-1")
	s3, err := s3store.Open(ctx, "s3://lake?endpoint="+moto.Endpoint())
	if err != nil {
		t.Fatal(err)
	}
	if err := s3.CreateBucket(ctx); err != nil {
		t.Fatal(err)
	}
	azurite := devstack.Azurite(t)
	t.Setenv("AZURE_STORAGE_ENDPOINT", azurite.Endpoint()+"/"+devstack.AzuriteAccount)
	t.Setenv("AZURE_STORAGE_ACCOUNT_KEY", devstack.AzuriteKey)
	az, err := azstore.Open("abfss://lake@" + devstack.AzuriteAccount + ".dfs.core.windows.net/")
	if err != nil {
		t.Fatal(err)
	}
	if err := az.CreateContainer(ctx); err != nil {
		t.Fatal(err)
	}
	return map[string]string{
		"s3":    "s3://lake/warehouse?endpoint=" + moto.Endpoint(),
		"azure": "abfss://lake@" + devstack.AzuriteAccount + ".dfs.core.windows.net/warehouse",
	}
}

// TestTwoCatalogsRaceOnCloudStores runs two catalogs on one warehouse in
// each object store. Rounds of conflicting commits (both replace the same
// file, from the same read version): exactly one wins each version and the
// other gets ErrConflict. Then both append blindly at once: every
// acknowledged append is in the table, and an append that lost its version
// to the other catalog is ErrConflict (Aborted) and not in the table.
// Last, a checkpoint is written and a new catalog lists the table.
func TestTwoCatalogsRaceOnCloudStores(t *testing.T) {
	for name, uri := range cloudWarehouses(t) {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			// A catalog keeps the state of the tables it loaded and expects
			// to be their only writer; each race is between two catalogs
			// that loaded the table's latest version.
			newCat := func() *Catalog {
				c, err := New(Config{Warehouse: uri}, nil, slog.New(slog.DiscardHandler))
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(c.Close)
				return c
			}
			pair := func() [2]*Catalog {
				cats := [2]*Catalog{newCat(), newCat()}
				for _, c := range cats {
					if _, err := c.GetTable(ctx, "raw.race"); err != nil {
						t.Fatal(err)
					}
				}
				return cats
			}
			creator := newCat()
			mustCreate(t, creator, "raw.race")
			info, err := creator.GetTable(ctx, "raw.race")
			if err != nil {
				t.Fatal(err)
			}
			if want := uri[:5]; info.Location[:5] != want {
				t.Errorf("location %q is not on the warehouse %q", info.Location, uri)
			}
			store := creator.loc.Store
			put := func(name string) delta.Add {
				rel := "day=2024-01-01/" + name
				if err := store.WriteFile(ctx, storage.Join("raw", "race", rel), []byte("data")); err != nil {
					t.Fatal(err)
				}
				return delta.Add{Path: rel, Size: 4, DataChange: true, PartitionValues: map[string]string{"day": "2024-01-01"}}
			}
			first := put("f0")
			res, err := creator.Commit(ctx, &CommitRequest{Table: "raw.race", ReadVersion: 0, BlindAppend: true, Adds: []delta.Add{first}})
			if err != nil {
				t.Fatal(err)
			}
			current, version := first, res.Version
			const rounds = 4
			for r := range rounds {
				cats := pair()
				var (
					results [2]error
					vers    [2]int64
					adds    [2]delta.Add
					wg      sync.WaitGroup
				)
				for i := range cats {
					adds[i] = put(fmt.Sprintf("r%d-c%d", r, i))
					now := time.Now().UnixMilli()
					req := &CommitRequest{Table: "raw.race", ReadVersion: version, Operation: "OPTIMIZE",
						Adds: []delta.Add{adds[i]}, ReadFiles: []string{current.Path},
						Removes: []delta.Remove{{Path: current.Path, DeletionTimestamp: &now, DataChange: true, PartitionValues: current.PartitionValues}}}
					wg.Go(func() {
						var res CommitResult
						res, results[i] = cats[i].Commit(ctx, req)
						vers[i] = res.Version
					})
				}
				wg.Wait()
				winner := -1
				for i, err := range results {
					switch {
					case err == nil && winner >= 0:
						t.Fatalf("round %d: both catalogs won", r)
					case err == nil:
						winner = i
					case !errors.Is(err, ErrConflict):
						t.Fatalf("round %d: catalog %d: %v, want ErrConflict", r, i, err)
					}
				}
				if winner < 0 {
					t.Fatalf("round %d: no catalog won: %v", r, results)
				}
				if vers[winner] != version+1 {
					t.Errorf("round %d: won version %d, want %d", r, vers[winner], version+1)
				}
				current, version = adds[winner], vers[winner]
			}

			// Both append at once, from a stale read version.
			const perCatalog = 5
			cats := pair()
			var wg sync.WaitGroup
			acked := make(chan string, 2*perCatalog)
			aborted := make(chan string, 2*perCatalog)
			for i := range cats {
				var reqs []*CommitRequest
				for j := range perCatalog {
					reqs = append(reqs, &CommitRequest{Table: "raw.race", ReadVersion: version, BlindAppend: true,
						Adds: []delta.Add{put(fmt.Sprintf("a-c%d-%d", i, j))}})
				}
				wg.Go(func() {
					for _, req := range reqs {
						_, err := cats[i].Commit(ctx, req)
						switch {
						case errors.Is(err, ErrConflict):
							// The other catalog wrote the version this one
							// tried: Aborted for the client, which retries.
							aborted <- req.Adds[0].Path
							continue
						case err != nil:
							t.Errorf("catalog %d append: %v", i, err)
							continue
						}
						acked <- req.Adds[0].Path
					}
				})
			}
			wg.Wait()
			close(acked)
			close(aborted)
			snap, err := delta.Open(mustSub(t, store, "raw/race")).Snapshot(ctx)
			if err != nil {
				t.Fatal(err)
			}
			files := map[string]bool{}
			for _, f := range snap.Files() {
				files[f.Path] = true
			}
			n := 0
			for p := range acked {
				n++
				if !files[p] {
					t.Errorf("acknowledged append %s is not in the table", p)
				}
			}
			nAborted := 0
			for p := range aborted {
				n++
				nAborted++
				if files[p] {
					t.Errorf("aborted append %s is in the table", p)
				}
			}
			if n != 2*perCatalog || !files[current.Path] || len(files) != n-nAborted+1 {
				t.Errorf("%d appends answered, table has %d files; want every acknowledged one and %s", n, len(files), current.Path)
			}

			// A checkpoint on the object store; a new catalog loads from it.
			if _, _, err := newCat().Checkpoint(ctx, "raw.race", true); err != nil {
				t.Fatalf("checkpoint: %v", err)
			}
			if fi, err := store.Stat(ctx, fmt.Sprintf("raw/race/_delta_log/%020d.checkpoint.parquet", snap.Version())); err != nil || fi.Size == 0 {
				t.Errorf("checkpoint file: %+v, %v", fi, err)
			}
			// A new catalog finds the table by listing the warehouse.
			tables, err := newCat().ListTables(ctx, "")
			if err != nil || len(tables) != 1 || tables[0].Name != "raw.race" || tables[0].Version != snap.Version() {
				t.Errorf("ListTables = %+v, %v; want raw.race at version %d", tables, err, snap.Version())
			}
		})
	}
}

func mustSub(t *testing.T, s storage.Store, prefix string) storage.Store {
	t.Helper()
	sub, err := storage.Sub(s, prefix)
	if err != nil {
		t.Fatal(err)
	}
	return sub
}
