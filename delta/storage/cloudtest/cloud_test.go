package cloudtest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"

	"github.com/plantlake/plantlake/delta"
	"github.com/plantlake/plantlake/delta/datafile"
	"github.com/plantlake/plantlake/delta/datafile/datafiletest"
	"github.com/plantlake/plantlake/delta/reader"
	"github.com/plantlake/plantlake/delta/storage"
	"github.com/plantlake/plantlake/delta/storage/azstore"
	"github.com/plantlake/plantlake/delta/storage/s3store"
	"github.com/plantlake/plantlake/delta/storage/storeuri"
	"github.com/plantlake/plantlake/devstack"
)

// cloud is one object store running on this machine.
type cloud struct {
	name string
	// uri returns the URI of a table folder.
	uri func(path string) string
	// pyEnv is what delta-rs needs in its environment to reach the store.
	pyEnv []string
}

// open returns a new store client for path (each call is a separate
// client, as two catalogs would have).
func (c cloud) open(t *testing.T, path string) storage.Store {
	t.Helper()
	st, err := storeuri.Open(context.Background(), c.uri(path))
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// clouds starts moto and Azurite, creates a bucket and a container, and
// sets the environment the stores and delta-rs read.
func clouds(t *testing.T) []cloud {
	ctx := context.Background()
	moto := devstack.Moto(t)
	for k, v := range map[string]string{
		"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test", "AWS_REGION": "us-east-1",
		"AWS_ENDPOINT_URL": moto.Endpoint(), "AWS_ENDPOINT_URL_S3": "",
	} {
		t.Setenv(k, v)
	}
	s3, err := s3store.Open(ctx, "s3://lake")
	if err != nil {
		t.Fatal(err)
	}
	if err := s3.CreateBucket(ctx); err != nil {
		t.Fatal(err)
	}
	azurite := devstack.Azurite(t)
	for k, v := range map[string]string{
		"AZURE_STORAGE_ENDPOINT": azurite.Endpoint() + "/" + devstack.AzuriteAccount, "AZURE_STORAGE_ACCOUNT_NAME": devstack.AzuriteAccount,
		"AZURE_STORAGE_ACCOUNT_KEY": devstack.AzuriteKey, "AZURE_STORAGE_SAS_TOKEN": "",
	} {
		t.Setenv(k, v)
	}
	az, err := azstore.Open("az://lake")
	if err != nil {
		t.Fatal(err)
	}
	if err := az.CreateContainer(ctx); err != nil {
		t.Fatal(err)
	}
	return []cloud{
		{
			name:  "s3",
			uri:   func(p string) string { return "s3://lake/" + p },
			pyEnv: []string{"AWS_ALLOW_HTTP=true", "AWS_S3_ALLOW_UNSAFE_RENAME=true"},
		},
		{
			name: "azure",
			uri: func(p string) string {
				return "abfss://lake@" + devstack.AzuriteAccount + ".dfs.core.windows.net/" + p
			},
			pyEnv: []string{"AZURE_STORAGE_USE_EMULATOR=true", "AZURITE_BLOB_STORAGE_URL=" + azurite.Endpoint(), "AZURE_ALLOW_HTTP=true"},
		},
	}
}

const schema = `{"type":"struct","fields":[{"name":"day","type":"string","nullable":true,"metadata":{}},{"name":"x","type":"long","nullable":true,"metadata":{}}]}`

func addAction(p string) delta.Action {
	return delta.Action{Add: &delta.Add{Path: p, PartitionValues: map[string]string{"day": "2024-01-01"}, Size: 10, ModificationTime: 1, DataChange: true}}
}

// TestWritersRace has writers with separate store clients race blind
// appends on one table in each store, then two writers race to remove the
// same file: every acknowledged append is in the log at the version it was
// acknowledged with, each version was written once, and of the two removes
// exactly one wins and the other gets delta.ErrConflict.
func TestWritersRace(t *testing.T) {
	for _, c := range clouds(t) {
		t.Run(c.name, func(t *testing.T) {
			ctx := context.Background()
			const writers, perWriter = 3, 12
			if _, err := delta.Create(ctx, c.open(t, "race"), delta.Metadata{SchemaString: schema, PartitionColumns: []string{"day"}}, delta.Protocol{}); err != nil {
				t.Fatal(err)
			}
			var (
				mu   sync.Mutex
				acks = map[int64]string{}
				wg   sync.WaitGroup
			)
			errs := make(chan error, writers)
			for w := range writers {
				tbl := delta.Open(c.open(t, "race"))
				wg.Go(func() {
					for i := range perWriter {
						p := fmt.Sprintf("day=2024-01-01/w%d-%d.parquet", w, i)
						// Read version 0 every time: each commit races from a stale view.
						v, err := tbl.Commit(ctx, delta.CommitRequest{ReadVersion: 0, Operation: "WRITE", BlindAppend: true, Actions: []delta.Action{addAction(p)}})
						if err != nil {
							errs <- fmt.Errorf("writer %d commit %d: %w", w, i, err)
							return
						}
						mu.Lock()
						if prev, ok := acks[v]; ok {
							errs <- fmt.Errorf("version %d acknowledged for %s and %s", v, prev, p)
						}
						acks[v] = p
						mu.Unlock()
					}
				})
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Error(err)
			}
			total := writers * perWriter
			if len(acks) != total {
				t.Fatalf("%d acknowledged commits, want %d", len(acks), total)
			}
			snap, err := delta.Open(c.open(t, "race")).Snapshot(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if snap.Version() != int64(total) || snap.NumFiles() != total {
				t.Fatalf("snapshot at version %d with %d files, want %d and %d", snap.Version(), snap.NumFiles(), total, total)
			}
			logStore, err := storage.Sub(c.open(t, "race"), delta.LogDir)
			if err != nil {
				t.Fatal(err)
			}
			for v, p := range acks {
				b, err := logStore.ReadFile(ctx, fmt.Sprintf("%020d.json", v))
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Contains(b, []byte(`"path":"`+p+`"`)) {
					t.Errorf("commit %d does not hold %s, which was acknowledged with it", v, p)
				}
			}

			// Two writers remove the same file from the same read version.
			victim := acks[1]
			var results [2]error
			var rwg sync.WaitGroup
			for i := range results {
				tbl := delta.Open(c.open(t, "race"))
				rwg.Go(func() {
					now := time.Now().UnixMilli()
					_, results[i] = tbl.Commit(ctx, delta.CommitRequest{
						ReadVersion: snap.Version(), Operation: "DELETE",
						Actions:   []delta.Action{{Remove: &delta.Remove{Path: victim, DeletionTimestamp: &now, DataChange: true}}},
						ReadFiles: []string{victim},
					})
				})
			}
			rwg.Wait()
			won, lost := 0, 0
			for _, err := range results {
				switch {
				case err == nil:
					won++
				case errors.Is(err, delta.ErrConflict):
					lost++
				default:
					t.Errorf("remove: %v", err)
				}
			}
			if won != 1 || lost != 1 {
				t.Errorf("removes: %d won, %d conflicted (%v); want exactly one of each", won, lost, results)
			}
		})
	}
}

// TestDeltaRSReadsOurTable writes a partitioned table with this library on
// each store (appends, a checkpoint, a whole-file delete, vacuum and log
// cleanup) and has delta-rs read it through the store's URI, row by row.
func TestDeltaRSReadsOurTable(t *testing.T) {
	py := devstack.Python(t)
	for _, c := range clouds(t) {
		t.Run(c.name, func(t *testing.T) {
			ctx := context.Background()
			st := c.open(t, "wh/raw/readings")
			tbl, err := delta.Create(ctx, st, delta.Metadata{Name: "readings", SchemaString: datafiletest.RawSchemaString, PartitionColumns: datafiletest.RawPartitionColumns}, delta.Protocol{})
			if err != nil {
				t.Fatal(err)
			}
			day1 := time.Date(2024, 5, 6, 23, 59, 59, 999_500_000, time.UTC)
			day2 := time.Date(2024, 5, 7, 8, 30, 0, 250_001_000, time.UTC)
			for i, day := range []time.Time{day1, day2, day1} {
				appendBatch(t, tbl, st, datafiletest.RawBatch(nil, 300, int64(i)*300, day))
			}
			snap, err := tbl.Snapshot(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := tbl.Checkpoint(ctx, snap.Version()); err != nil {
				t.Fatalf("checkpoint: %v", err)
			}
			// Delete day 2's file, vacuum it away, and append once more.
			now := time.Now().UnixMilli()
			var removes []delta.Action
			for _, f := range snap.Files() {
				if f.PartitionValues["ingest_date"] == "2024-05-07" {
					size := f.Size
					removes = append(removes, delta.Action{Remove: &delta.Remove{Path: delta.EncodePath(f.Path), DeletionTimestamp: &now, DataChange: true, PartitionValues: f.PartitionValues, Size: &size}})
				}
			}
			if len(removes) != 1 {
				t.Fatalf("%d files of 2024-05-07, want 1", len(removes))
			}
			if _, err := tbl.Commit(ctx, delta.CommitRequest{ReadVersion: snap.Version(), Operation: "DELETE", Actions: removes}); err != nil {
				t.Fatal(err)
			}
			time.Sleep(20 * time.Millisecond)
			deleted, err := tbl.Vacuum(ctx, delta.VacuumOptions{Retention: 10 * time.Millisecond})
			if err != nil {
				t.Fatal(err)
			}
			if len(deleted) != 1 {
				t.Errorf("vacuum deleted %q, want the removed file", deleted)
			}
			appendBatch(t, tbl, st, datafiletest.RawBatch(nil, 50, 900, day2.Add(24*time.Hour)))

			// Log cleanup as if 40 days had passed: the commits before the
			// checkpoint go; the table still reads the same.
			later := delta.Open(st, delta.WithClock(func() time.Time { return time.Now().Add(40 * 24 * time.Hour) }))
			cleaned, err := later.CleanupMetadata(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if len(cleaned) == 0 {
				t.Error("log cleanup deleted nothing")
			}

			snap, err = delta.Open(st).Snapshot(ctx)
			if err != nil {
				t.Fatal(err)
			}
			ours, err := reader.Rows(ctx, st, snap, reader.Options{})
			if err != nil {
				t.Fatal(err)
			}
			if len(ours) != 650 {
				t.Fatalf("we read %d rows, want 650", len(ours))
			}
			got := readWithDeltaRS(t, py, c.uri("wh/raw/readings"), c.pyEnv)
			if got.Version != snap.Version() {
				t.Errorf("delta-rs read version %d, want %d", got.Version, snap.Version())
			}
			sameRows(t, "delta-rs on "+c.name, got.Rows, ours)
		})
	}
}

// TestWeReadDeltaRSTables has delta-rs write a raw-shaped table on each
// store through the store's URI (create, appends, overwrite, delete,
// compaction, checkpoint) and reads every version it reports with this
// library, row by row.
func TestWeReadDeltaRSTables(t *testing.T) {
	py := devstack.Python(t)
	ctx := context.Background()
	for _, c := range clouds(t) {
		t.Run(c.name, func(t *testing.T) {
			out := runPython(t, py, "dr_write.py", []string{c.uri("theirs/raw"), "ops"}, c.pyEnv)
			st := c.open(t, "theirs/raw")
			tbl := delta.Open(st)
			versions := 0
			for _, line := range bytes.Split(bytes.TrimSpace(out), []byte("\n")) {
				var l struct {
					Op      string           `json:"op"`
					Version int64            `json:"version"`
					Rows    []map[string]any `json:"rows"`
				}
				if err := json.Unmarshal(line, &l); err != nil {
					t.Fatalf("dr_write.py: %v: %.300s", err, line)
				}
				snap, err := tbl.SnapshotAt(ctx, l.Version)
				if err != nil {
					t.Fatalf("version %d (%s): %v", l.Version, l.Op, err)
				}
				rows, err := reader.Rows(ctx, st, snap, reader.Options{})
				if err != nil {
					t.Fatalf("version %d (%s): %v", l.Version, l.Op, err)
				}
				if len(l.Rows) == 0 {
					t.Fatalf("version %d (%s): delta-rs returned no rows", l.Version, l.Op)
				}
				sameRows(t, fmt.Sprintf("version %d (%s)", l.Version, l.Op), rows, l.Rows)
				versions++
			}
			if versions < 5 {
				t.Errorf("delta-rs reported %d versions, want the whole sequence", versions)
			}
		})
	}
}

// appendBatch writes rec as one file per partition and commits them.
func appendBatch(t *testing.T, tbl *delta.Table, st storage.Store, rec arrow.RecordBatch) {
	t.Helper()
	defer rec.Release()
	ctx := context.Background()
	snap, err := tbl.Snapshot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	parts, err := datafile.SplitByPartition(ctx, nil, rec, datafiletest.RawPartitionColumns)
	if err != nil {
		t.Fatal(err)
	}
	var acts []delta.Action
	for _, p := range parts {
		add, err := datafile.Write(ctx, st, datafile.Options{PartitionColumns: datafiletest.RawPartitionColumns, PartitionValues: p.Values}, p.Record)
		p.Record.Release()
		if err != nil {
			t.Fatal(err)
		}
		acts = append(acts, delta.Action{Add: &add})
	}
	if _, err := tbl.Commit(ctx, delta.CommitRequest{ReadVersion: snap.Version(), Operation: "WRITE", BlindAppend: true, Actions: acts}); err != nil {
		t.Fatal(err)
	}
}

type drRead struct {
	Version int64            `json:"version"`
	Rows    []map[string]any `json:"rows"`
}

// readWithDeltaRS reads the table at uri with the interop tests' delta-rs
// script.
func readWithDeltaRS(t *testing.T, py, uri string, env []string) drRead {
	t.Helper()
	out := runPython(t, py, "dr_read.py", []string{uri}, env)
	var r drRead
	if err := json.Unmarshal(out, &r); err != nil {
		t.Fatalf("dr_read.py output: %v\n%.500s", err, out)
	}
	return r
}

// runPython runs one of the interop tests' delta-rs scripts with args,
// env added to the environment, and returns its standard output.
func runPython(t *testing.T, py, script string, args, env []string) []byte {
	t.Helper()
	path, err := filepath.Abs(filepath.Join("../../interop/testdata", script))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(py, append([]string{path}, args...)...)
	// Variables the test emptied are left out: delta-rs takes an empty
	// endpoint for a URL and fails.
	for _, kv := range os.Environ() {
		if !strings.HasSuffix(kv, "=") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(append(cmd.Env, "PYTHONDONTWRITEBYTECODE=1"), env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s %s: %v\n%s", script, strings.Join(args, " "), err, stderr.String())
	}
	return stdout.Bytes()
}

// canonical encodes rows as sorted JSON strings with numbers normalized,
// so that rows from Go and from Python compare equal when their values do.
func canonical(t *testing.T, rows []map[string]any) []string {
	t.Helper()
	out := make([]string, 0, len(rows))
	for _, r := range rows {
		b, err := json.Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		var v any
		if err := json.Unmarshal(b, &v); err != nil {
			t.Fatal(err)
		}
		b, _ = json.Marshal(v)
		out = append(out, string(b))
	}
	sort.Strings(out)
	return out
}

func sameRows(t *testing.T, what string, got, want []map[string]any) {
	t.Helper()
	g, w := canonical(t, got), canonical(t, want)
	if slices.Equal(g, w) {
		return
	}
	t.Errorf("%s: %d rows, want %d", what, len(g), len(w))
	for i := 0; i < len(g) && i < len(w); i++ {
		if g[i] != w[i] {
			t.Errorf("first difference:\n got %s\nwant %s", g[i], w[i])
			break
		}
	}
}
