package chaos

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/plantlake/plantlake/devstack"
	"github.com/plantlake/plantlake/simulator/internal/sim"
)

// writeTablesPy writes the four tables of a tiny warehouse with delta-rs
// from a JSON description: {"raw": [{column: value}...], "bronze": ...,
// "dead": ..., "gold": ...}; only the columns the check reads.
const writeTablesPy = `
import base64, datetime, json, os, sys
import deltalake, pyarrow as pa
spec, warehouse = json.load(open(sys.argv[1])), sys.argv[2]
off = [("kafka_topic", pa.string()), ("kafka_partition", pa.int32()), ("kafka_offset", pa.int64())]
schemas = {
    "raw.plant_sensor_readings": off + [("kafka_key", pa.string()), ("raw_payload", pa.binary())],
    "bronze.plant_sensor_readings": off,
    "bronze.plant_sensor_dead_letters": off + [("raw_payload", pa.binary()), ("error_code", pa.string())],
    "gold.plant_sensor_readings": [("sensor_id", pa.string()), ("measurement", pa.string()),
        ("ts", pa.timestamp("us", tz="UTC")), ("value", pa.float64()), ("unit", pa.string())],
}
for name, fields in schemas.items():
    cols = {}
    for col, typ in fields:
        vals = [r.get(col) for r in spec[name] or []]
        if typ == pa.binary():
            vals = [base64.b64decode(v) for v in vals]
        if col == "ts":
            vals = [datetime.datetime.fromtimestamp(v / 1e6, datetime.timezone.utc) for v in vals]
        cols[col] = pa.array(vals, type=typ)
    table = pa.table(cols, schema=pa.schema(fields))
    deltalake.write_deltalake(os.path.join(warehouse, *name.split(".")), table)
sys.stdout.flush()
os._exit(0)
`

// tinyRun is a ledger of a few messages and the tables a correct pipeline
// writes for it; the tests break one table at a time.
type tinyRun struct {
	ledger []sim.Entry
	tables map[string][]map[string]any
}

func newTinyRun() *tinyRun {
	ts := func(s int64) *int64 { v := s * 1_000_000; return &v }
	val := func(v float64) *float64 { return &v }
	at := time.Date(2026, 12, 5, 8, 0, 0, 0, time.UTC)
	r := &tinyRun{ledger: []sim.Entry{
		{Seq: 0, Kind: sim.KindReading, Topic: "plant/l1/d1/temperature", Payload: []byte(`{"t":1,"v":21.5}`),
			SensorID: "l1-d1", Measurement: "temperature", TSMicros: ts(1_700_000_000), Value: val(21.5), Unit: "°C"},
		{Seq: 1, Kind: sim.KindReading, Topic: "plant/l1/d1/pressure", Payload: []byte(`{"t":1,"v":1.01}`),
			SensorID: "l1-d1", Measurement: "pressure", TSMicros: ts(1_700_000_000), Value: val(1.01), Unit: "bar"},
		{Seq: 2, Kind: sim.KindDuplicate, Topic: "plant/l1/d1/temperature", Payload: []byte(`{"t":1,"v":21.5}`),
			SensorID: "l1-d1", Measurement: "temperature", TSMicros: ts(1_700_000_000), Value: val(21.5), Unit: "°C"},
		{Seq: 3, Kind: sim.KindBroken, Topic: "plant/l1/d1/pressure", Payload: []byte(`{"t":`),
			Broken: "truncated", ErrorCode: "invalid_json"},
	}}
	for i := range r.ledger {
		r.ledger[i].Acked, r.ledger[i].Attempts, r.ledger[i].PublishedAt = true, 1, at
	}
	r.tables = map[string][]map[string]any{}
	o := func(i int) map[string]any {
		return map[string]any{"kafka_topic": "plant-raw", "kafka_partition": 0, "kafka_offset": i}
	}
	with := func(m map[string]any, kv ...any) map[string]any {
		for i := 0; i < len(kv); i += 2 {
			m[kv[i].(string)] = kv[i+1]
		}
		return m
	}
	// Every message once in raw, and the second one redelivered by MQTT at
	// offset 4 (allowed: at least once), so bronze holds it twice.
	for i, e := range append(slices.Clone(r.ledger), r.ledger[1]) {
		r.tables["raw.plant_sensor_readings"] = append(r.tables["raw.plant_sensor_readings"],
			with(o(i), "kafka_key", e.Topic, "raw_payload", e.Payload))
	}
	r.tables["bronze.plant_sensor_readings"] = []map[string]any{o(0), o(1), o(2), o(4)}
	r.tables["bronze.plant_sensor_dead_letters"] = []map[string]any{
		with(o(3), "raw_payload", r.ledger[3].Payload, "error_code", "invalid_json"),
	}
	for _, e := range r.ledger[:2] {
		r.tables["gold.plant_sensor_readings"] = append(r.tables["gold.plant_sensor_readings"], map[string]any{
			"sensor_id": e.SensorID, "measurement": e.Measurement, "ts": *e.TSMicros, "value": *e.Value, "unit": e.Unit})
	}
	return r
}

// check writes the run's ledger and tables and runs the check on them.
func (r *tinyRun) check(t *testing.T, py string) Check {
	t.Helper()
	dir := t.TempDir()
	var ledger bytes.Buffer
	w := sim.NewLedgerWriter(&ledger)
	for _, e := range r.ledger {
		w.Write(e)
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	ledgerPath, specPath, script := filepath.Join(dir, "ledger.jsonl"), filepath.Join(dir, "spec.json"), filepath.Join(dir, "write.py")
	spec, err := json.Marshal(r.tables)
	if err != nil {
		t.Fatal(err)
	}
	for path, b := range map[string][]byte{ledgerPath: ledger.Bytes(), specPath: spec, script: []byte(writeTablesPy)} {
		if err := os.WriteFile(path, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	warehouse := filepath.Join(dir, "warehouse")
	if out, err := exec.Command(py, script, specPath, warehouse).CombinedOutput(); err != nil {
		t.Fatalf("write the tables: %v\n%s", err, out)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c, err := CheckTables(ctx, py, ledgerPath, warehouse)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestCheckFindsEveryDifference runs the check on a tiny warehouse that
// matches its ledger (no differences, a redelivery counted), then on
// copies with one thing lost, doubled or changed: each must be found.
func TestCheckFindsEveryDifference(t *testing.T) {
	py := devstack.Python(t)
	good := newTinyRun().check(t, py)
	if d := good.Differences(); len(d) > 0 {
		t.Fatalf("a correct warehouse has differences: %v\n%+v", d, good)
	}
	if good.RawRedelivered != 1 || good.GoldRows != 2 || good.ExpectedDeadLetters != 1 {
		t.Errorf("counts %+v, want 1 redelivery, 2 gold rows, 1 expected dead letter", good)
	}
	const (
		raw    = "raw.plant_sensor_readings"
		bronze = "bronze.plant_sensor_readings"
		dead   = "bronze.plant_sensor_dead_letters"
		gold   = "gold.plant_sensor_readings"
	)
	for _, tc := range []struct {
		name   string
		break_ func(r *tinyRun)
		want   string
	}{
		{"gold row removed", func(r *tinyRun) { r.tables[gold] = r.tables[gold][1:] }, "gold: expected keys missing: 1"},
		{"gold row doubled", func(r *tinyRun) { r.tables[gold] = append(r.tables[gold], r.tables[gold][0]) }, "gold: keys repeated: 1"},
		{"gold value changed", func(r *tinyRun) { r.tables[gold][1]["value"] = 1.02 }, "gold: value or unit mismatches: 1"},
		{"gold row never published", func(r *tinyRun) {
			r.tables[gold] = append(r.tables[gold], map[string]any{"sensor_id": "l9-d9", "measurement": "temperature",
				"ts": int64(1_700_000_000_000_000), "value": 1.0, "unit": "°C"})
		}, "gold: keys not expected: 1"},
		{"dead letter removed", func(r *tinyRun) { r.tables[dead] = nil }, "dead letters: broken raw rows missing: 1"},
		{"dead letter bytes changed", func(r *tinyRun) { r.tables[dead][0]["raw_payload"] = []byte(`{"t"`) }, "dead letters: bytes unlike raw's: 1"},
		{"dead letter code changed", func(r *tinyRun) { r.tables[dead][0]["error_code"] = "schema" }, "dead letters: wrong error_code: 1"},
		{"bronze row doubled", func(r *tinyRun) { r.tables[bronze] = append(r.tables[bronze], r.tables[bronze][0]) }, "bronze: offsets repeated: 1"},
		{"bronze row removed", func(r *tinyRun) { r.tables[bronze] = r.tables[bronze][1:] }, "bronze: good raw rows missing: 1"},
		{"raw message lost", func(r *tinyRun) { r.tables[raw] = slices.Delete(r.tables[raw], 0, 1) }, "raw: published messages missing: 1"},
		{"raw offset twice", func(r *tinyRun) { r.tables[raw][4]["kafka_offset"] = 1 }, "raw: (topic, partition, offset) repeated: 1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newTinyRun()
			tc.break_(r)
			d := r.check(t, py).Differences()
			if !slices.Contains(d, tc.want) {
				t.Errorf("differences %q, want %q among them", d, tc.want)
			}
		})
	}
}

// TestDifferencesOfResult checks that a run with unacknowledged readings
// fails even when the tables agree.
func TestDifferencesOfResult(t *testing.T) {
	r := Result{Check: Check{LedgerEntries: 10, ExpectedGold: 9, GoldRows: 9}}
	if d := r.Differences(); len(d) > 0 {
		t.Fatalf("differences %v of a clean result", d)
	}
	r.Published.Unacked = 2
	if d := r.Differences(); len(d) != 1 || !strings.Contains(d[0], "2 readings not acknowledged") {
		t.Errorf("differences %v, want the unacknowledged readings", d)
	}
}
