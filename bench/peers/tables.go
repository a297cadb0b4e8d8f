package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// kdiTableScript creates the empty Delta table kafka-delta-ingest writes
// into (it does not create one): the reading's five fields as JSON carries
// them, and the record's partition and offset (KDI's well-known transforms)
// as the lineage plantlake's raw table keeps.
const kdiTableScript = `
import sys
import pyarrow as pa
from deltalake import write_deltalake
schema = pa.schema([
    ("sensor_id", pa.string()), ("measurement", pa.string()), ("value", pa.float64()),
    ("unit", pa.string()), ("ts", pa.float64()),
    ("kafka_partition", pa.int32()), ("kafka_offset", pa.int64()),
])
write_deltalake(sys.argv[1], schema.empty_table())
`

// kdiTransforms are the -t flags that fill kdiTableScript's lineage columns.
var kdiTransforms = []string{"-t", "kafka_partition: kafka.partition", "-t", "kafka_offset: kafka.offset"}

// createKDITable creates kafka-delta-ingest's table at dir with delta-rs.
func createKDITable(ctx context.Context, py, dir string) error {
	if out, err := exec.CommandContext(ctx, py, "-c", kdiTableScript, dir).CombinedOutput(); err != nil {
		return fmt.Errorf("create the KDI table with delta-rs: %w\n%s", err, out)
	}
	return nil
}

// countScript prints, for each table folder argued, its row count (read
// through delta-rs's dataset, every data file opened) and its version.
const countScript = `
import json, sys
from deltalake import DeltaTable
out = {}
for p in sys.argv[1:]:
    t = DeltaTable(p)
    out[p] = [t.to_pyarrow_dataset().count_rows(), t.version()]
print(json.dumps(out))
`

// tableCount is what delta-rs reads of one table.
type tableCount struct {
	rows    int64
	version int64
}

// countRows reads the row count and version of each table with delta-rs.
func countRows(ctx context.Context, py string, dirs ...string) (map[string]tableCount, error) {
	out, err := exec.CommandContext(ctx, py, append([]string{"-c", countScript}, dirs...)...).Output()
	if err != nil {
		return nil, fmt.Errorf("count rows with delta-rs: %w", err)
	}
	var raw map[string][2]int64
	if err := json.Unmarshal(out, &raw); err != nil {
		return nil, fmt.Errorf("count rows with delta-rs: %w: %s", err, out)
	}
	counts := make(map[string]tableCount, len(raw))
	for p, c := range raw {
		counts[p] = tableCount{rows: c[0], version: c[1]}
	}
	return counts, nil
}

// txnWatcher follows a Delta table's log for the txn actions of one writer,
// which record the last Kafka offset written of each partition.
type txnWatcher struct {
	log   string
	appID string // the partition's txn appId is appID-<partition>
	seen  map[string]bool
	last  map[string]int64
}

func newTxnWatcher(table, appID string) *txnWatcher {
	return &txnWatcher{log: filepath.Join(table, "_delta_log"), appID: appID, seen: map[string]bool{}, last: map[string]int64{}}
}

// covered reads the commits not read yet and returns how many records the
// txn versions account for: the sum over partitions of last offset + 1
// (the topic's partitions start at offset 0).
func (w *txnWatcher) covered() (int64, error) {
	names, err := filepath.Glob(filepath.Join(w.log, "*.json"))
	if err != nil {
		return 0, err
	}
	for _, name := range names {
		if w.seen[name] {
			continue
		}
		if err := w.read(name); err != nil {
			// A commit file is written whole by a rename or a put-if-absent;
			// one that does not parse yet is read again on the next call.
			continue
		}
		w.seen[name] = true
	}
	var n int64
	for _, v := range w.last {
		n += v + 1
	}
	return n, nil
}

func (w *txnWatcher) read(name string) error {
	f, err := os.Open(name)
	if err != nil {
		return err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 16<<20)
	found := map[string]int64{}
	for sc.Scan() {
		var a struct {
			Txn *struct {
				AppID   string `json:"appId"`
				Version int64  `json:"version"`
			} `json:"txn"`
		}
		if err := json.Unmarshal(sc.Bytes(), &a); err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		if a.Txn != nil && strings.HasPrefix(a.Txn.AppID, w.appID+"-") {
			found[a.Txn.AppID] = a.Txn.Version
		}
	}
	if err := sc.Err(); err != nil {
		return err
	}
	for id, v := range found {
		w.last[id] = max(w.last[id], v)
	}
	return nil
}
