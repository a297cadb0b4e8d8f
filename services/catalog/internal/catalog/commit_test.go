package catalog

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/plantlake/plantlake/delta"
)

// The tests below cover the table's writer, whichever goroutine writes a
// round: the committing client itself when no commit of the table is in
// flight (the lead path), or the writer goroutine, which groups what
// queued meanwhile. Run them with -race: a data race on the table's state
// between the two would show there.

// reopen loads the warehouse of c in a new catalog, from the log alone,
// and returns the table's latest snapshot.
func reopen(t *testing.T, c *Catalog, table string) SnapshotInfo {
	t.Helper()
	c2, err := New(Config{Warehouse: c.Root()}, nil, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	s, err := c2.Snapshot(context.Background(), table, At{})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestConcurrentClientsOneTable: clients committing at once to one table,
// blind appends with a txn app id of their own and merges that read and
// remove a file of their own, all land; the versions they are told hold
// them, and the log read back has every file and every app's last txn.
func TestConcurrentClientsOneTable(t *testing.T) {
	c := newTestCatalog(t)
	const table = "raw.many"
	mustCreate(t, c, table)
	ctx := context.Background()
	const clients, each = 8, 12
	adds := make([][]delta.Add, clients)
	for k := range clients {
		for i := range each {
			// A partition per client: a merge reads its own only.
			adds[k] = append(adds[k], dataFile(t, c, table, fmt.Sprintf("2024-01-%02d", k+1), fmt.Sprintf("c%d-%03d.parquet", k, i)))
		}
	}
	versions := make([][]int64, clients)
	var wg sync.WaitGroup
	for k := range clients {
		wg.Go(func() {
			app := fmt.Sprintf("ingest/raw/%d", k)
			for i := range each {
				var req *CommitRequest
				if k%2 == 1 && i > 0 {
					// A merge: replaces the client's previous file, read at
					// the latest version.
					s, err := c.Snapshot(ctx, table, At{})
					if err != nil {
						t.Error(err)
						return
					}
					prev := adds[k][i-1].Path
					req = &CommitRequest{Table: table, ReadVersion: s.Version, Operation: "MERGE",
						ReadFiles: []string{prev}, Removes: []delta.Remove{{Path: prev, DataChange: true}},
						Adds: adds[k][i : i+1], Txns: []delta.Txn{{AppID: app, Version: int64(i)}}}
				} else {
					// An ingest: reads its txn version, then appends.
					_, _, read, err := c.TxnVersion(ctx, table, app)
					if err != nil {
						t.Error(err)
						return
					}
					req = &CommitRequest{Table: table, ReadVersion: read, BlindAppend: true,
						Adds: adds[k][i : i+1], Txns: []delta.Txn{{AppID: app, Version: int64(i)}}}
				}
				res, err := c.Commit(ctx, req)
				if err != nil {
					t.Errorf("client %d, commit %d: %v", k, i, err)
					return
				}
				versions[k] = append(versions[k], res.Version)
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		return
	}

	s := reopen(t, c, table)
	live := map[string]bool{}
	for _, f := range s.Files {
		live[f.Path] = true
	}
	for k := range clients {
		for i, v := range versions[k] {
			if v < 1 || v > s.Version || (i > 0 && v <= versions[k][i-1]) {
				t.Errorf("client %d: versions %v, want increasing in [1, %d]", k, versions[k], s.Version)
				break
			}
		}
		for i, a := range adds[k] {
			want := k%2 == 0 || i == each-1 // merges left only the last file
			if live[a.Path] != want {
				t.Errorf("file %s live = %v, want %v", a.Path, live[a.Path], want)
			}
		}
		if got := s.Txns[fmt.Sprintf("ingest/raw/%d", k)]; got != each-1 {
			t.Errorf("client %d: txn version %d in the log, want %d", k, got, each-1)
		}
	}
	// Every acknowledged version is in the log, with the client's add.
	for k := range clients {
		for i, v := range versions[k] {
			b, err := c.store.ReadFile(ctx, "raw/many/"+delta.CommitPath(v))
			if err != nil {
				t.Fatalf("version %d acknowledged to client %d: %v", v, k, err)
			}
			acts, err := delta.ParseActions(b)
			if err != nil {
				t.Fatal(err)
			}
			found := false
			for _, a := range acts {
				found = found || (a.Add != nil && a.Add.Path == adds[k][i].Path)
			}
			if !found {
				t.Errorf("version %d, acknowledged to client %d for %s, does not add it", v, k, adds[k][i].Path)
			}
		}
	}
	if st := c.Stats(); st.Requests != clients*each || st.Conflicts != 0 {
		t.Errorf("stats %+v, want %d requests and no conflicts", st, clients*each)
	}
}

// TestRetryAfterLostReply: a client whose commit landed but whose reply
// was lost retries the same transaction from the same read version; the
// retry is rejected as a conflict on its txn app id, and the txn version
// in the table tells the client that the first attempt landed. Committing
// nothing twice holds both when the retry runs alone and when it races
// with another client's commit.
func TestRetryAfterLostReply(t *testing.T) {
	c := newTestCatalog(t)
	const table = "raw.retry"
	mustCreate(t, c, table)
	ctx := context.Background()
	const app = "ingest/raw/0"
	for round := range 6 {
		_, _, read, err := c.TxnVersion(ctx, table, app)
		if err != nil {
			t.Fatal(err)
		}
		req := func() *CommitRequest {
			return &CommitRequest{Table: table, ReadVersion: read, BlindAppend: true,
				Adds: []delta.Add{{Path: fmt.Sprintf("day=2024-01-01/r%d.parquet", round), Size: 4, DataChange: true, PartitionValues: map[string]string{"day": "2024-01-01"}}},
				Txns: []delta.Txn{{AppID: app, Version: int64(round)}}}
		}
		dataFile(t, c, table, "2024-01-01", fmt.Sprintf("r%d.parquet", round))
		if _, err := c.Commit(ctx, req()); err != nil { // the reply is lost
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		if round%2 == 1 {
			// Another client commits at the same moment.
			other := dataFile(t, c, table, "2024-01-02", fmt.Sprintf("o%d.parquet", round))
			wg.Go(func() {
				if _, err := c.Commit(ctx, &CommitRequest{Table: table, ReadVersion: read, BlindAppend: true, Adds: []delta.Add{other},
					Txns: []delta.Txn{{AppID: "ingest/raw/1", Version: int64(round)}}}); err != nil {
					t.Errorf("round %d: the other client: %v", round, err)
				}
			})
		}
		_, err = c.Commit(ctx, req())
		wg.Wait()
		var ce *ConflictError
		if !errors.As(err, &ce) || ce.WinnerVersion <= read {
			t.Fatalf("round %d: retry = %v, want a conflict with a version after %d", round, err, read)
		}
		v, found, _, err := c.TxnVersion(ctx, table, app)
		if err != nil || !found || v != int64(round) {
			t.Fatalf("round %d: txn version %d (found %v, %v), want %d", round, v, found, err, round)
		}
	}
	s := reopen(t, c, table)
	n := 0
	for _, f := range s.Files {
		if f.PartitionValues["day"] == "2024-01-01" {
			n++
		}
	}
	if n != 6 {
		t.Fatalf("%d files of the retried client in the log, want 6 (each once)", n)
	}
}

// TestConflictsStillDetected: racing commits that cannot both land — the
// same txn app id, or merges that read and remove the same file — give
// exactly one winner per round, and the loser names a version after its
// read version.
func TestConflictsStillDetected(t *testing.T) {
	c := newTestCatalog(t)
	const table = "gold.race"
	mustCreate(t, c, table)
	ctx := context.Background()
	seed := dataFile(t, c, table, "2024-01-01", "seed.parquet")
	res, err := c.Commit(ctx, &CommitRequest{Table: table, ReadVersion: 0, BlindAppend: true, Adds: []delta.Add{seed}})
	if err != nil {
		t.Fatal(err)
	}
	target := seed.Path // the file both merges of a round read and remove
	read := res.Version
	for round := range 20 {
		const racers = 3
		errs := make([]error, racers)
		adds := make([]delta.Add, racers)
		for k := range racers {
			adds[k] = dataFile(t, c, table, "2024-01-01", fmt.Sprintf("r%02d-%d.parquet", round, k))
		}
		start := make(chan struct{})
		var wg sync.WaitGroup
		for k := range racers {
			wg.Go(func() {
				<-start
				var req *CommitRequest
				if round%2 == 0 {
					req = &CommitRequest{Table: table, ReadVersion: read, Operation: "MERGE", ReadFiles: []string{target},
						Removes: []delta.Remove{{Path: target, DataChange: true}}, Adds: adds[k : k+1]}
				} else {
					req = &CommitRequest{Table: table, ReadVersion: read, BlindAppend: true, Adds: adds[k : k+1],
						Txns: []delta.Txn{{AppID: "app", Version: int64(round*racers + k)}}}
				}
				_, errs[k] = c.Commit(ctx, req)
			})
		}
		close(start)
		wg.Wait()
		winner := -1
		for k, err := range errs {
			var ce *ConflictError
			switch {
			case err == nil:
				if winner >= 0 {
					t.Fatalf("round %d: racers %d and %d both landed", round, winner, k)
				}
				winner = k
			case errors.As(err, &ce):
				if ce.WinnerVersion <= read {
					t.Fatalf("round %d: conflict names version %d, at or before the read version %d", round, ce.WinnerVersion, read)
				}
			default:
				t.Fatalf("round %d: racer %d: %v", round, k, err)
			}
		}
		if winner < 0 {
			t.Fatalf("round %d: no racer landed: %v", round, errs)
		}
		s, err := c.Snapshot(ctx, table, At{})
		if err != nil {
			t.Fatal(err)
		}
		read = s.Version
		if round%2 == 0 {
			target = adds[winner].Path
		}
	}
	if st := c.Stats(); st.Conflicts != 20*2 {
		t.Fatalf("%d conflicts counted, want %d", st.Conflicts, 20*2)
	}
}

// TestCloseWhileCommitting: commits in flight when the catalog closes
// either land or fail (ErrClosed, or the catalog's context ended before the
// write); none hangs, and every acknowledged
// commit is in the log.
func TestCloseWhileCommitting(t *testing.T) {
	c := newTestCatalog(t)
	const table = "raw.closing"
	mustCreate(t, c, table)
	ctx := context.Background()
	const clients, each = 6, 40
	adds := make([][]delta.Add, clients)
	for k := range clients {
		for i := range each {
			adds[k] = append(adds[k], dataFile(t, c, table, "2024-01-01", fmt.Sprintf("c%d-%03d.parquet", k, i)))
		}
	}
	var mu sync.Mutex
	var acked []string
	done := make(chan struct{})
	var wg sync.WaitGroup
	for k := range clients {
		wg.Go(func() {
			for i := range each {
				_, err := c.Commit(ctx, &CommitRequest{Table: table, ReadVersion: 0, BlindAppend: true, Adds: adds[k][i : i+1]})
				if errors.Is(err, ErrClosed) || errors.Is(err, context.Canceled) {
					return // closed before it was written
				}
				if err != nil {
					t.Errorf("client %d: %v", k, err)
					return
				}
				mu.Lock()
				acked = append(acked, adds[k][i].Path)
				mu.Unlock()
			}
		})
	}
	go func() { wg.Wait(); close(done) }()
	for waiting := true; waiting; {
		mu.Lock()
		waiting = len(acked) < 10
		mu.Unlock()
		select {
		case <-done: // every client gave up already (reported above)
			waiting = false
		case <-time.After(time.Millisecond):
		}
	}
	c.Close()
	select {
	case <-done:
	case <-time.After(time.Minute):
		t.Fatal("commits still waiting a minute after Close")
	}
	s := reopen(t, c, table)
	live := map[string]bool{}
	for _, f := range s.Files {
		live[f.Path] = true
	}
	for _, p := range acked {
		if !live[p] {
			t.Errorf("acknowledged %s is not in the log", p)
		}
	}
}

// TestNumRecords checks the stats scan against encoding/json, which decides
// whatever the scan leaves open.
func TestNumRecords(t *testing.T) {
	decode := func(stats string) int64 {
		var s struct {
			NumRecords int64 `json:"numRecords"`
		}
		if json.Unmarshal([]byte(stats), &s) != nil {
			return 0
		}
		return s.NumRecords
	}
	cases := []struct {
		stats   string
		want    int64
		scanned bool // settled by the scan, without encoding/json
	}{
		{``, 0, true},
		{`{}`, 0, true},
		{` { } `, 0, true},
		{`{"numRecords":17}`, 17, true},
		{` { "numRecords" : 17 } `, 17, true},
		{"{\n\t\"numRecords\":\t-3\r\n}", -3, true},
		{`{"minValues":{"a":"}{\"numRecords\":9,","b":[1,{"numRecords":8}]},"numRecords":1000,"nullCount":{"a":0}}`, 1000, true},
		{`{"numRecords":1,"numRecords":2}`, 2, true},
		{`{"tightBounds":true,"numRecords":0}`, 0, true},
		{`{"maxValues":{"s":"a\"b\\"},"numRecords":5}`, 5, true},
		{`{"minValues":{"x":null},"numRecords":42}`, 42, true},
		{`{"minValues":{}}`, 0, true},
		{`{"numRecords":9223372036854775807}`, 9223372036854775807, true},
		// Left to encoding/json.
		{`{"NumRecords":7}`, 7, false},
		{`{"numrecords":7}`, 7, false},
		{`{"num\u0052ecords":7}`, 7, false},
		{`{"numRecords":7,"NUMRECORDS":8}`, 8, false},
		{`{"numRecords":1.0}`, 0, false},
		{`{"numRecords":1e3}`, 0, false},
		{`{"numRecords":"12"}`, 0, false},
		{`{"numRecords":null}`, 0, false},
		{`{"numRecords":9223372036854775808}`, 0, false},
		{`[1,2]`, 0, false},
		{`12`, 0, false},
	}
	for _, tc := range cases {
		if !json.Valid([]byte(tc.stats)) && tc.stats != "" {
			t.Fatalf("test stats %s are not valid JSON", tc.stats)
		}
		if got := numRecords(tc.stats); got != tc.want {
			t.Errorf("numRecords(%s) = %d, want %d", tc.stats, got, tc.want)
		}
		if tc.stats != "" {
			if got := decode(tc.stats); got != tc.want {
				t.Errorf("encoding/json reads %d from %s, the test wants %d", got, tc.stats, tc.want)
			}
		}
		if _, ok := scanNumRecords(tc.stats); ok != tc.scanned {
			t.Errorf("scanNumRecords(%s) settled it: %v, want %v", tc.stats, ok, tc.scanned)
		}
	}
}

// FuzzNumRecords checks numRecords against encoding/json on any valid
// stats.
func FuzzNumRecords(f *testing.F) {
	for _, s := range []string{`{"numRecords":5}`, `{"a":{"b":[1,"}"]},"numRecords":-2,"c":null}`, `{"NumRecords":3}`, `{}`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, stats string) {
		if !json.Valid([]byte(stats)) {
			return
		}
		var s struct {
			NumRecords int64 `json:"numRecords"`
		}
		want := s.NumRecords
		if json.Unmarshal([]byte(stats), &s) == nil {
			want = s.NumRecords
		}
		if got := numRecords(stats); got != want {
			t.Fatalf("numRecords(%s) = %d, encoding/json reads %d", stats, got, want)
		}
	})
}
