package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
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

// txnWatcher follows a Delta table's log for the txn actions of one writer
// (KDI), which record the last Kafka offset it wrote of each partition:
// the txn appId of partition p is appID-p and its version is that offset.
type txnWatcher struct {
	log     string
	appID   string
	next    int64           // the next log version to read
	last    map[int32]int64 // partition → last offset written
	commits []int64         // records each of the writer's commits covered, in version order
}

func newTxnWatcher(table, appID string) *txnWatcher {
	return &txnWatcher{log: filepath.Join(table, "_delta_log"), appID: appID, last: map[int32]int64{}}
}

// poll reads the commits written since the last call, in version order. It
// stops at the first one that is not there yet, or does not parse yet (a
// commit file is written whole by a rename or a put-if-absent, so one that
// does not parse is read again on the next call).
func (w *txnWatcher) poll() error {
	for {
		data, err := os.ReadFile(filepath.Join(w.log, fmt.Sprintf("%020d.json", w.next)))
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("read version %d of %s: %w", w.next, w.log, err)
		}
		found, err := w.txns(data)
		if err != nil {
			return nil
		}
		var n int64
		for p, v := range found {
			prev, ok := w.last[p]
			if !ok {
				prev = -1 // the topic's partitions start at offset 0
			}
			if v > prev {
				n += v - prev
				w.last[p] = v
			}
		}
		if len(found) > 0 {
			w.commits = append(w.commits, n)
		}
		w.next++
	}
}

// txns returns the writer's txn versions by partition in one commit file.
func (w *txnWatcher) txns(data []byte) (map[int32]int64, error) {
	found := map[int32]int64{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(nil, 16<<20)
	for sc.Scan() {
		var a struct {
			Txn *struct {
				AppID   string `json:"appId"`
				Version int64  `json:"version"`
			} `json:"txn"`
		}
		if err := json.Unmarshal(sc.Bytes(), &a); err != nil {
			return nil, err
		}
		if a.Txn == nil {
			continue
		}
		rest, ok := strings.CutPrefix(a.Txn.AppID, w.appID+"-")
		if !ok {
			continue
		}
		p, err := strconv.ParseInt(rest, 10, 32)
		if err != nil {
			continue // another writer whose appId starts with ours
		}
		found[int32(p)] = a.Txn.Version
	}
	return found, sc.Err()
}

// covered is how many records the commits read so far account for: the sum
// over partitions of the last offset written + 1.
func (w *txnWatcher) covered() int64 {
	var n int64
	for _, v := range w.last {
		n += v + 1
	}
	return n
}

// done reports whether the commits read so far cover every record of the
// topic whose end offsets (high watermarks) are ends: each partition's
// last offset, end - 1, is written.
func (w *txnWatcher) done(ends map[int32]int64) bool {
	for p, end := range ends {
		if end == 0 {
			continue
		}
		last, ok := w.last[p]
		if !ok || last < end-1 {
			return false
		}
	}
	return true
}

// stalled reports whether each of the last k commits covered fewer than
// few records: the writer commits, but hardly moves on.
func (w *txnWatcher) stalled(k int, few int64) bool {
	if len(w.commits) < k {
		return false
	}
	for _, n := range w.commits[len(w.commits)-k:] {
		if n >= few {
			return false
		}
	}
	return true
}

// report says what the writer has committed against the topic's end
// offsets: per partition, and the records of its last commits.
func (w *txnWatcher) report(ends map[int32]int64) string {
	var total int64
	parts := make([]int32, 0, len(ends))
	for p, end := range ends {
		parts = append(parts, p)
		total += end
	}
	slices.Sort(parts)
	var b strings.Builder
	fmt.Fprintf(&b, "%d commits covering %d of %d records;", len(w.commits), w.covered(), total)
	for _, p := range parts {
		written := int64(0)
		if last, ok := w.last[p]; ok {
			written = last + 1
		}
		fmt.Fprintf(&b, " partition %d: %d/%d", p, written, ends[p])
	}
	fmt.Fprintf(&b, "; records of the last commits: %v", w.commits[max(len(w.commits)-10, 0):])
	return b.String()
}
