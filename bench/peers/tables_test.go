package main

import (
	"context"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/plantlake/plantlake/devstack"
)

// txnScript writes to a Delta table with delta-rs as a writer that records
// Kafka offsets in txn actions, as KDI does: argv is the table, then
// "rows:appId=version,appId=version" for each commit.
const txnScript = `
import sys
import pyarrow as pa
from deltalake import CommitProperties, Transaction, write_deltalake
for spec in sys.argv[2:]:
    rows, txns = spec.split(":")
    t = [Transaction(app_id=a, version=int(v)) for a, v in (x.split("=") for x in txns.split(","))]
    write_deltalake(sys.argv[1], pa.table({"x": list(range(int(rows)))}), mode="append",
                    commit_properties=CommitProperties(app_transactions=t))
`

func TestTxnWatcherCoversEachPartitionsLastOffset(t *testing.T) {
	py := devstack.Python(t)
	table := filepath.Join(t.TempDir(), "t")
	write := func(specs ...string) {
		t.Helper()
		if out, err := exec.Command(py, append([]string{"-c", txnScript, table}, specs...)...).CombinedOutput(); err != nil {
			t.Fatalf("delta-rs write: %v\n%s", err, out)
		}
	}
	w := newTxnWatcher(table, "kdi")
	ends := map[int32]int64{0: 10, 1: 3, 2: 0}
	poll := func() {
		t.Helper()
		if err := w.poll(); err != nil {
			t.Fatal(err)
		}
	}
	poll()
	if got := w.covered(); got != 0 || w.done(ends) {
		t.Fatalf("before any commit of the writer covered() = %d, done = %v; want 0, false", got, w.done(ends))
	}
	// other-0 and kdi-a-0 are other writers; the latter's appId starts with "kdi-" too.
	write("5:kdi-0=4,kdi-1=2,other-0=99,kdi-a-0=7")
	poll()
	if got := w.covered(); got != 8 || w.done(ends) {
		t.Fatalf("after the first commit covered() = %d, done = %v; want 8 (offsets 0-4 and 0-2), false", got, w.done(ends))
	}
	// A later commit moves partition 0 on; partition 1 keeps its offset.
	write("2:kdi-0=8")
	poll()
	if got := w.covered(); got != 12 || w.done(ends) {
		t.Fatalf("after the second commit covered() = %d, done = %v; want 12, false (partition 0 ends at offset 9)", got, w.done(ends))
	}
	// Commits of one record each, as KDI makes once its commits outlast its latency.
	write("1:kdi-0=9")
	poll()
	if !w.done(ends) || w.stalled(3, 2) || !w.stalled(1, 2) {
		t.Fatalf("after the third commit done = %v, stalled(3, 2) = %v, stalled(1, 2) = %v; want true, false, true",
			w.done(ends), w.stalled(3, 2), w.stalled(1, 2))
	}
	want := "3 commits covering 13 of 13 records; partition 0: 10/10 partition 1: 3/3 partition 2: 0/0; records of the last commits: [8 4 1]"
	if got := w.report(ends); got != want {
		t.Fatalf("report() = %q\nwant        %q", got, want)
	}
	counts, err := countRows(context.Background(), py, table)
	if err != nil {
		t.Fatal(err)
	}
	if c := counts[table]; c.rows != 8 || c.version != 2 {
		t.Fatalf("countRows = %+v, want 8 rows at version 2", c)
	}
}

func TestKDITableCreatedEmpty(t *testing.T) {
	py := devstack.Python(t)
	table := filepath.Join(t.TempDir(), "kdi")
	if err := createKDITable(context.Background(), py, table); err != nil {
		t.Fatal(err)
	}
	counts, err := countRows(context.Background(), py, table)
	if err != nil {
		t.Fatal(err)
	}
	if c := counts[table]; c.rows != 0 || c.version != 0 {
		t.Fatalf("countRows = %+v, want 0 rows at version 0", c)
	}
}
