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
	write("5:kdi-0=4,kdi-1=2,other-0=99")
	if got, err := w.covered(); err != nil || got != 8 {
		t.Fatalf("after the first commit covered() = %d, %v; want 8 (offsets 0-4 and 0-2)", got, err)
	}
	// A later commit moves partition 0 on; partition 1 keeps its offset.
	write("2:kdi-0=9")
	if got, err := w.covered(); err != nil || got != 13 {
		t.Fatalf("after the second commit covered() = %d, %v; want 13", got, err)
	}
	counts, err := countRows(context.Background(), py, table)
	if err != nil {
		t.Fatal(err)
	}
	if c := counts[table]; c.rows != 7 || c.version != 1 {
		t.Fatalf("countRows = %+v, want 7 rows at version 1", c)
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
