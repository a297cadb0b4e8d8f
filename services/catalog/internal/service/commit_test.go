package service

import (
	"fmt"
	"sort"
	"sync"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	catalogv1 "github.com/plantlake/plantlake/proto/plantlake/catalog/v1"
)

// TestParallelBlindAppends: 8 clients append to one table at once; every
// commit lands, the versions are contiguous, and an event arrives for
// every version.
func TestParallelBlindAppends(t *testing.T) {
	wh := t.TempDir()
	tc := startCatalog(t, wh, "--auto-maintenance=false")
	const table, clients, perClient = "raw.events", 8, 25
	createTable(t, tc.client, table, nil)

	var mu sync.Mutex
	acked := map[string]int64{} // path → version
	var wg sync.WaitGroup
	errs := make(chan error, clients)
	for c := range clients {
		wg.Go(func() {
			for i := range perClient {
				rel := fmt.Sprintf("day=2024-01-0%d/c%d-%03d.parquet", 1+c%3, c, i)
				add := putFile(t, wh, table, rel, 10+i)
				resp, err := tc.client.Commit(ctxT(t), &catalogv1.CommitRequest{
					Table: table, ReadVersion: 0, Operation: "WRITE", BlindAppend: true, Adds: []*catalogv1.AddFile{add},
				})
				if err != nil {
					errs <- fmt.Errorf("client %d commit %d: %w", c, i, err)
					return
				}
				mu.Lock()
				acked[rel] = resp.GetVersion()
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}

	snap, err := tc.client.GetSnapshot(ctxT(t), &catalogv1.GetSnapshotRequest{Table: table})
	if err != nil {
		t.Fatal(err)
	}
	if got := len(snap.GetFiles()); got != clients*perClient {
		t.Fatalf("snapshot has %d files, want %d", got, clients*perClient)
	}
	hist, err := tc.client.History(ctxT(t), &catalogv1.HistoryRequest{Table: table})
	if err != nil {
		t.Fatal(err)
	}
	latest := snap.GetVersion()
	if int64(len(hist.GetEntries())) != latest+1 {
		t.Fatalf("history has %d entries for latest version %d", len(hist.GetEntries()), latest)
	}
	for i, e := range hist.GetEntries() {
		if want := latest - int64(i); e.GetVersion() != want {
			t.Fatalf("history entry %d is version %d, want %d (not contiguous)", i, e.GetVersion(), want)
		}
	}
	versions := map[int64]bool{}
	for _, v := range acked {
		if v < 1 || v > latest {
			t.Fatalf("acknowledged version %d outside 1..%d", v, latest)
		}
		versions[v] = true
	}
	if int64(len(versions)) != latest {
		t.Fatalf("%d distinct acknowledged versions, latest %d: some version holds no acknowledged commit", len(versions), latest)
	}
	t.Logf("%d commits landed in %d versions", clients*perClient, latest)

	evs := consumeEvents(t, tc.topic, 60*time.Second, func(evs []*catalogv1.TableCommitEvent) bool {
		return len(missingVersions(evs, table, latest)) == 0
	})
	if m := missingVersions(evs, table, latest); len(m) > 0 {
		t.Fatalf("no event for versions %v of %s (got %d events)", m, table, len(evs))
	}
	var rows int64
	seen := map[int64]bool{}
	for _, ev := range evs {
		if ev.GetTable() == table && ev.GetVersion() > 0 && !seen[ev.GetVersion()] {
			seen[ev.GetVersion()] = true
			rows += ev.GetRowsAdded()
		}
	}
	if rows != clients*perClient {
		t.Fatalf("events count %d rows added, want %d", rows, clients*perClient)
	}
}

func missingVersions(evs []*catalogv1.TableCommitEvent, table string, latest int64) []int64 {
	seen := map[int64]bool{}
	for _, ev := range evs {
		if ev.GetTable() == table {
			seen[ev.GetVersion()] = true
		}
	}
	var missing []int64
	for v := int64(0); v <= latest; v++ {
		if !seen[v] {
			missing = append(missing, v)
		}
	}
	return missing
}

// TestTxnRace: two clients commit with the same txn app id from the same
// read version; exactly one wins, the other is Aborted naming the winner.
func TestTxnRace(t *testing.T) {
	wh := t.TempDir()
	tc := startCatalog(t, wh, "--auto-maintenance=false")
	const table = "raw.txn_race"
	createTable(t, tc.client, table, nil)
	for round := range 10 {
		resp, err := tc.client.GetTransactionVersion(ctxT(t), &catalogv1.GetTransactionVersionRequest{Table: table, AppId: "ingest/t/0"})
		if err != nil {
			t.Fatal(err)
		}
		readVersion := resp.GetTableVersion()
		start := make(chan struct{})
		results := make([]error, 2)
		var wg sync.WaitGroup
		for c := range 2 {
			add := putFile(t, wh, table, fmt.Sprintf("day=2024-01-01/r%d-c%d.parquet", round, c), 5)
			wg.Go(func() {
				<-start
				_, results[c] = tc.client.Commit(ctxT(t), &catalogv1.CommitRequest{
					Table: table, ReadVersion: readVersion, BlindAppend: true, Adds: []*catalogv1.AddFile{add},
					Txns: []*catalogv1.Txn{{AppId: "ingest/t/0", Version: int64(round*10 + c)}},
				})
			})
		}
		close(start)
		wg.Wait()
		var ok, aborted int
		for _, err := range results {
			switch code(err) {
			case codes.OK:
				ok++
			case codes.Aborted:
				aborted++
				checkConflictDetail(t, err, readVersion+1)
			default:
				t.Fatalf("round %d: unexpected error %v", round, err)
			}
		}
		if ok != 1 || aborted != 1 {
			t.Fatalf("round %d: %d won, %d aborted; want exactly one of each (%v)", round, ok, aborted, results)
		}
	}
}

// checkConflictDetail checks the ErrorInfo of an Aborted commit.
func checkConflictDetail(t *testing.T, err error, winner int64) {
	t.Helper()
	for _, d := range status.Convert(err).Details() {
		if info, ok := d.(*errdetails.ErrorInfo); ok {
			if info.GetReason() != "COMMIT_CONFLICT" || info.GetMetadata()["winner_version"] != fmt.Sprint(winner) || info.GetMetadata()["reason"] == "" {
				t.Fatalf("conflict details %v, want winner %d", info, winner)
			}
			return
		}
	}
	t.Fatalf("Aborted without ErrorInfo details: %v", err)
}

// TestReadFileRemoved: a commit that read (or removes) a file that a
// concurrent commit removed is Aborted; one that did not read it lands.
func TestReadFileRemoved(t *testing.T) {
	wh := t.TempDir()
	tc := startCatalog(t, wh, "--auto-maintenance=false")
	const table = "gold.merge_target"
	createTable(t, tc.client, table, nil)
	c := tc.client
	a := putFile(t, wh, table, "day=2024-01-01/a.parquet", 7)
	b := putFile(t, wh, table, "day=2024-01-02/b.parquet", 7)
	resp, err := c.Commit(ctxT(t), &catalogv1.CommitRequest{Table: table, ReadVersion: 0, BlindAppend: true, Adds: []*catalogv1.AddFile{a, b}})
	if err != nil {
		t.Fatal(err)
	}
	read := resp.GetVersion()
	// A merge removes a.
	a2 := putFile(t, wh, table, "day=2024-01-01/a2.parquet", 8)
	if _, err := c.Commit(ctxT(t), &catalogv1.CommitRequest{Table: table, ReadVersion: read, Operation: "MERGE",
		Removes: []*catalogv1.RemoveFile{{Path: a.Path, DataChange: true}}, Adds: []*catalogv1.AddFile{a2}, ReadFiles: []string{a.Path}}); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		req  *catalogv1.CommitRequest
		want codes.Code
	}{
		{"read the removed file", &catalogv1.CommitRequest{Table: table, ReadVersion: read, Operation: "MERGE",
			ReadFiles: []string{a.Path}, Adds: []*catalogv1.AddFile{putFile(t, wh, table, "day=2024-01-01/x1.parquet", 3)}}, codes.Aborted},
		{"removes the removed file", &catalogv1.CommitRequest{Table: table, ReadVersion: read, Operation: "DELETE",
			Removes: []*catalogv1.RemoveFile{{Path: a.Path, DataChange: true}}}, codes.Aborted},
		{"read a partition the winner appended to", &catalogv1.CommitRequest{Table: table, ReadVersion: read, Operation: "MERGE",
			ReadFiles: []string{b.Path}, Removes: []*catalogv1.RemoveFile{{Path: b.Path, DataChange: true}}}, codes.OK},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := c.Commit(ctxT(t), tc.req)
			if code(err) != tc.want {
				t.Fatalf("Commit = %v, want %v", err, tc.want)
			}
		})
	}
}

// sortedPaths returns the paths of files, sorted.
func sortedPaths(files []*catalogv1.AddFile) []string {
	out := make([]string, 0, len(files))
	for _, f := range files {
		out = append(out, f.GetPath())
	}
	sort.Strings(out)
	return out
}
