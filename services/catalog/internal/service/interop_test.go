package service

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/plantlake/plantlake/delta"
	"github.com/plantlake/plantlake/delta/datafile"
	"github.com/plantlake/plantlake/delta/storage"
	"github.com/plantlake/plantlake/devstack"
	catalogv1 "github.com/plantlake/plantlake/proto/plantlake/catalog/v1"
)

// readingsColumns is the schema of the interop tables: a reading per row,
// partitioned by day.
var readingsColumns = []*catalogv1.Column{
	{Name: "sensor_id", Type: "string"}, {Name: "seq", Type: "long"}, {Name: "value", Type: "double"},
	{Name: "ok", Type: "boolean"}, {Name: "ts", Type: "timestamp"}, {Name: "day", Type: "date"},
}

// reading is one row as the tests write and compare it.
type reading struct {
	Sensor string
	Seq    int64
	Value  float64
	OK     bool
	TS     time.Time
	Day    string
}

func (r reading) key() string {
	return fmt.Sprintf("%s|%d|%g|%t|%s|%s", r.Sensor, r.Seq, r.Value, r.OK, r.TS.UTC().Format("2006-01-02T15:04:05.000000"), r.Day)
}

// writeReadings writes rows (all of one day) as a Parquet data file with
// delta/datafile and returns its add action for the catalog.
func writeReadings(t testing.TB, warehouse, table string, schema *delta.StructType, rows []reading) *catalogv1.AddFile {
	t.Helper()
	store, err := storage.NewLocal(tableDir(warehouse, table))
	if err != nil {
		t.Fatal(err)
	}
	full, err := datafile.ArrowSchema(schema)
	if err != nil {
		t.Fatal(err)
	}
	var fields []arrow.Field
	for _, f := range full.Fields() {
		if f.Name != "day" {
			fields = append(fields, f)
		}
	}
	b := array.NewRecordBuilder(memory.DefaultAllocator, arrow.NewSchema(fields, nil))
	defer b.Release()
	for _, r := range rows {
		b.Field(0).(*array.StringBuilder).Append(r.Sensor)
		b.Field(1).(*array.Int64Builder).Append(r.Seq)
		b.Field(2).(*array.Float64Builder).Append(r.Value)
		b.Field(3).(*array.BooleanBuilder).Append(r.OK)
		b.Field(4).(*array.TimestampBuilder).Append(arrow.Timestamp(r.TS.UnixMicro()))
	}
	rec := b.NewRecordBatch()
	defer rec.Release()
	add, err := datafile.Write(context.Background(), store, datafile.Options{
		PartitionColumns: []string{"day"}, PartitionValues: map[string]string{"day": rows[0].Day},
	}, rec)
	if err != nil {
		t.Fatal(err)
	}
	return &catalogv1.AddFile{Path: add.Path, PartitionValues: add.PartitionValues, Size: add.Size,
		ModificationTime: add.ModificationTime, DataChange: true, Stats: add.Stats}
}

func makeReadings(day string, from, n int) []reading {
	base, _ := time.Parse("2006-01-02", day)
	out := make([]reading, n)
	for i := range out {
		seq := from + i
		out[i] = reading{Sensor: fmt.Sprintf("press%02d", seq%7), Seq: int64(seq), Value: float64(seq) * 0.25,
			OK: seq%3 != 0, TS: base.Add(time.Duration(seq) * time.Second).Add(123456 * time.Microsecond), Day: day}
	}
	return out
}

// createReadings creates an interop table and returns its Delta schema.
func createReadings(t testing.TB, c catalogv1.CatalogServiceClient, name string, props map[string]string) *delta.StructType {
	t.Helper()
	resp, err := c.CreateTable(ctxT(t), &catalogv1.CreateTableRequest{Name: name, Columns: readingsColumns, PartitionColumns: []string{"day"}, Properties: props})
	if err != nil {
		t.Fatal(err)
	}
	schema, err := delta.ParseSchema(resp.GetTable().GetSchemaJson())
	if err != nil {
		t.Fatal(err)
	}
	return schema
}

const deltaRSScript = `
import json, sys
from deltalake import DeltaTable
dt = DeltaTable(sys.argv[1])
rows = dt.to_pyarrow_table().to_pylist()
out = []
for r in rows:
    out.append({"sensor_id": r["sensor_id"], "seq": r["seq"], "value": r["value"], "ok": r["ok"],
                "ts": r["ts"].strftime("%Y-%m-%dT%H:%M:%S.%f"), "day": str(r["day"])})
print(json.dumps({"version": dt.version(), "rows": out}))
`

// readWithDeltaRS reads a table with the Python deltalake package.
func readWithDeltaRS(t *testing.T, py, dir string) (int64, []string) {
	t.Helper()
	script := filepath.Join(t.TempDir(), "read.py")
	if err := os.WriteFile(script, []byte(deltaRSScript), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(py, script, dir).Output()
	if err != nil {
		var stderr []byte
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = ee.Stderr
		}
		t.Fatalf("delta-rs read of %s: %v\n%s", dir, err, stderr)
	}
	var res struct {
		Version int64
		Rows    []struct {
			SensorID string  `json:"sensor_id"`
			Seq      int64   `json:"seq"`
			Value    float64 `json:"value"`
			OK       bool    `json:"ok"`
			TS       string  `json:"ts"`
			Day      string  `json:"day"`
		}
	}
	if err := json.Unmarshal(out, &res); err != nil {
		t.Fatalf("delta-rs output: %v\n%s", err, out)
	}
	var keys []string
	for _, r := range res.Rows {
		ts, err := time.Parse("2006-01-02T15:04:05.000000", r.TS)
		if err != nil {
			t.Fatal(err)
		}
		keys = append(keys, reading{r.SensorID, r.Seq, r.Value, r.OK, ts, r.Day}.key())
	}
	sort.Strings(keys)
	return res.Version, keys
}

// scanKeys reads a table through the catalog's Scan.
func scanKeys(t *testing.T, c catalogv1.CatalogServiceClient, req *catalogv1.ScanRequest) []string {
	t.Helper()
	rows, err := scanRows(ctxT(t), c, req)
	if err != nil {
		t.Fatalf("Scan: %v", err)
	}
	var keys []string
	for _, r := range rows {
		ts, err := time.Parse(time.RFC3339Nano, r["ts"].(string))
		if err != nil {
			t.Fatal(err)
		}
		keys = append(keys, reading{r["sensor_id"].(string), int64(r["seq"].(float64)), r["value"].(float64), r["ok"].(bool), ts, r["day"].(string)}.key())
	}
	sort.Strings(keys)
	return keys
}

func keysOf(rows []reading) []string {
	var keys []string
	for _, r := range rows {
		keys = append(keys, r.key())
	}
	sort.Strings(keys)
	return keys
}

// TestDeltaRSReadsTables: tables created and written through the API (real
// Parquet from delta/datafile, single and grouped commits, a compaction)
// read the same in delta-rs, in the catalog's Scan, and as written.
func TestDeltaRSReadsTables(t *testing.T) {
	py := devstack.Python(t)
	wh := t.TempDir()
	tc := startCatalog(t, wh, "--auto-maintenance=false")
	c := tc.client
	const table = "bronze.readings"
	schema := createReadings(t, c, table, map[string]string{"delta.checkpointInterval": "4"})

	var all []reading
	// Eight concurrent appenders (grouped into shared versions), then a
	// checkpoint, then more appends.
	errs := make(chan error, 8)
	rowsByClient := make([][]reading, 8)
	for i := range 8 {
		rowsByClient[i] = makeReadings(fmt.Sprintf("2024-05-0%d", 1+i%2), i*100, 50)
		all = append(all, rowsByClient[i]...)
	}
	done := make(chan struct{})
	for i := range 8 {
		go func() {
			add := writeReadings(t, wh, table, schema, rowsByClient[i])
			_, err := c.Commit(ctxT(t), &catalogv1.CommitRequest{Table: table, ReadVersion: 0, BlindAppend: true, Adds: []*catalogv1.AddFile{add},
				Txns: []*catalogv1.Txn{{AppId: fmt.Sprintf("writer-%d", i), Version: 1}}})
			errs <- err
		}()
	}
	go func() {
		for range 8 {
			if err := <-errs; err != nil {
				t.Error(err)
			}
		}
		close(done)
	}()
	<-done
	if t.Failed() {
		t.FailNow()
	}
	if _, err := c.Checkpoint(ctxT(t), &catalogv1.CheckpointRequest{Table: table}); err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		rows := makeReadings("2024-05-03", 1000+i*10, 10)
		all = append(all, rows...)
		add := writeReadings(t, wh, table, schema, rows)
		snap, err := c.GetSnapshot(ctxT(t), &catalogv1.GetSnapshotRequest{Table: table, OmitStats: true})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.Commit(ctxT(t), &catalogv1.CommitRequest{Table: table, ReadVersion: snap.GetVersion(), BlindAppend: true, Adds: []*catalogv1.AddFile{add}}); err != nil {
			t.Fatal(err)
		}
	}
	want := keysOf(all)

	check := func(stage string) {
		t.Helper()
		snap, err := c.GetSnapshot(ctxT(t), &catalogv1.GetSnapshotRequest{Table: table})
		if err != nil {
			t.Fatal(err)
		}
		v, got := readWithDeltaRS(t, py, tableDir(wh, table))
		if v != snap.GetVersion() {
			t.Fatalf("%s: delta-rs reads version %d, catalog says %d", stage, v, snap.GetVersion())
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("%s: delta-rs read %d rows that differ from the %d written", stage, len(got), len(want))
		}
		if got := scanKeys(t, c, &catalogv1.ScanRequest{Table: table}); fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("%s: Scan read %d rows that differ from the %d written", stage, len(got), len(want))
		}
	}
	check("after appends")

	// Compaction rewrites the small files of each day; the rows stay.
	res, err := c.Optimize(ctxT(t), &catalogv1.OptimizeRequest{Table: table, TargetFileSize: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	if !res.GetCommitted() || res.GetFilesRemoved() != 13 || res.GetFilesAdded() != 3 {
		t.Fatalf("Optimize = %v, want 13 files compacted into 3", res)
	}
	check("after optimize")

	// Scan prunes by partition and stats and filters rows.
	got := scanKeys(t, c, &catalogv1.ScanRequest{Table: table, Filters: []*catalogv1.Filter{
		{Column: "day", Op: catalogv1.FilterOp_FILTER_OP_EQ, Value: "2024-05-03"},
		{Column: "seq", Op: catalogv1.FilterOp_FILTER_OP_GE, Value: "1040"},
	}})
	if len(got) != 10 {
		t.Fatalf("filtered Scan returned %d rows, want 10", len(got))
	}
	limited, err := scanRows(ctxT(t), c, &catalogv1.ScanRequest{Table: table, Limit: 7, Columns: []string{"seq"}})
	if err != nil || len(limited) != 7 || len(limited[0]) != 1 {
		t.Fatalf("Scan with limit 7 and one column = %d rows (%v), %v", len(limited), limited, err)
	}
	// Time travel: version 1 holds one writer's rows.
	old, err := scanRows(ctxT(t), c, &catalogv1.ScanRequest{Table: table, At: &catalogv1.ScanRequest_Version{Version: 1}})
	if err != nil || len(old) == 0 || len(old) >= len(all) {
		t.Fatalf("Scan at version 1 = %d rows, %v", len(old), err)
	}
}
