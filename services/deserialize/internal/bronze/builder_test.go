package bronze

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"sort"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow/array"

	"github.com/plantlake/plantlake/delta"
	"github.com/plantlake/plantlake/delta/datafile"
	"github.com/plantlake/plantlake/delta/storage"
	"github.com/plantlake/plantlake/devstack"
)

func micros(s string) int64 {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		panic(err)
	}
	return t.UnixMicro()
}

var testReadings = []Reading{
	{SensorID: "press01", Measurement: "temperature", Value: 87.3, Unit: "C", TS: micros("2026-12-01T10:00:00.123456Z"),
		Plant: "hamburg", Line: "l1", LineValid: true, Device: "press01", DeviceValid: true,
		Extra: []byte(`{"firmware":"1.2"}`), Traceparent: []byte("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"),
		Lineage: Lineage{MQTTTopic: "plant/l1/press01/temperature", MQTTTopicValid: true, KafkaTopic: "plant_sensor_readings_raw",
			KafkaPartition: 3, KafkaOffset: 41, RawVersion: 7, BridgeTS: micros("2026-12-01T10:00:00.5Z"), BridgeTSValid: true}},
	{SensorID: "Présse-😀", Measurement: "humidity", Value: -0.5, Unit: "%", TS: micros("2026-11-30T23:59:59.999999Z"),
		Plant:   "hamburg",
		Lineage: Lineage{KafkaTopic: "plant_sensor_readings_raw", KafkaPartition: 0, KafkaOffset: 0, RawVersion: 7}},
	{SensorID: "old", Measurement: "pressure", Value: 1e300, Unit: "bar", TS: micros("1969-12-31T23:59:59Z"),
		Plant: "p", Lineage: Lineage{KafkaTopic: "t", RawVersion: 8}},
}

var testDeadLetters = []DeadLetter{
	{RawPayload: []byte("{\"sensor_id\":\"a\xff\"}"), ErrorCode: "parse.invalid_utf8", ErrorDetail: "not UTF-8", Stage: "parse",
		FailedAt: micros("2026-12-01T12:00:00Z"),
		Lineage:  Lineage{MQTTTopic: "plant/l1/a/m", MQTTTopicValid: true, KafkaTopic: "plant_sensor_readings_raw", KafkaPartition: 1, KafkaOffset: 9, RawVersion: 7, BridgeTS: 5, BridgeTSValid: true}},
	{RawPayload: []byte{}, ErrorCode: "parse.empty", ErrorDetail: "empty", Stage: "parse", FailedAt: micros("2026-12-02T00:00:00Z"),
		Lineage: Lineage{KafkaTopic: "plant_sensor_readings_raw", KafkaOffset: 10, RawVersion: 7}},
	{ErrorCode: "parse.empty", ErrorDetail: "null payload", Stage: "parse", FailedAt: micros("2026-12-02T00:00:01Z"),
		Lineage: Lineage{KafkaTopic: "plant_sensor_readings_oversized", KafkaOffset: 11, RawVersion: 8}},
}

// writeTable creates a table at dir and commits the batches, one file each.
func writeTable(t *testing.T, dir string, schema *delta.StructType, partition string, plain []string, batches []Batch) {
	t.Helper()
	ctx := context.Background()
	st, err := storage.NewLocal(dir)
	if err != nil {
		t.Fatal(err)
	}
	tbl, err := delta.Create(ctx, st, delta.Metadata{SchemaString: SchemaString(schema), PartitionColumns: []string{partition}}, delta.Protocol{})
	if err != nil {
		t.Fatal(err)
	}
	var actions []delta.Action
	for _, b := range batches {
		add, err := datafile.Write(ctx, st, datafile.Options{
			PartitionColumns: []string{partition},
			PartitionValues:  map[string]string{partition: datafile.FormatDatePartition(b.Date)},
			PlainColumns:     plain,
		}, b.Record)
		b.Record.Release()
		if err != nil {
			t.Fatal(err)
		}
		actions = append(actions, delta.Action{Add: &add})
	}
	if _, err := tbl.Commit(ctx, delta.CommitRequest{ReadVersion: 0, Operation: "WRITE", BlindAppend: true, Actions: actions}); err != nil {
		t.Fatal(err)
	}
}

func TestBuildersSplitByDate(t *testing.T) {
	rb := NewReadingBuilder(nil)
	for i := range testReadings {
		rb.Append(&testReadings[i])
	}
	if rb.Rows() != 3 {
		t.Fatalf("Rows = %d, want 3", rb.Rows())
	}
	var dates []string
	for _, b := range rb.Flush() {
		dates = append(dates, b.Date.Format(time.DateOnly))
		if !b.Record.Schema().Equal(ReadingsArrowSchema) {
			t.Errorf("schema %v", b.Record.Schema())
		}
		b.Record.Release()
	}
	if want := []string{"1969-12-31", "2026-11-30", "2026-12-01"}; !reflect.DeepEqual(dates, want) {
		t.Errorf("batch dates %v, want %v", dates, want)
	}
	if rb.Rows() != 0 || len(rb.Flush()) != 0 {
		t.Error("Flush did not empty the builder")
	}
}

// rowsByDeltaRS reads a table with delta-rs.
func rowsByDeltaRS(t *testing.T, py, dir string) []map[string]any {
	t.Helper()
	script, err := filepath.Abs("testdata/read_table.py")
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(py, script, dir)
	cmd.Env = append(os.Environ(), "PYTHONDONTWRITEBYTECODE=1")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("read_table.py: %v\n%s", err, stderr.String())
	}
	var out struct {
		Rows []map[string]any `json:"rows"`
	}
	if err := json.Unmarshal(stdout.Bytes(), &out); err != nil {
		t.Fatalf("read_table.py output: %v\n%.500s", err, stdout.String())
	}
	return out.Rows
}

// sameRows compares rows as canonical JSON, in any order.
func sameRows(t *testing.T, what string, got, want []map[string]any) {
	t.Helper()
	canon := func(rows []map[string]any) []string {
		var out []string
		for _, r := range rows {
			b, err := json.Marshal(r)
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, string(b))
		}
		sort.Strings(out)
		return out
	}
	g, w := canon(got), canon(want)
	if !reflect.DeepEqual(g, w) {
		t.Errorf("%s: delta-rs read\n%v\nwant\n%v", what, g, w)
	}
}

func str(s string, valid bool) any {
	if !valid {
		return nil
	}
	return s
}

func bytesStr(b []byte) any {
	if b == nil {
		return nil
	}
	return string(b)
}

func date(us int64) string { return time.UnixMicro(us).UTC().Format(time.DateOnly) }

func ts(us int64, valid bool) any {
	if !valid {
		return nil
	}
	return float64(us)
}

// TestDeltaRSReadsBronzeTables writes both tables with the delta library and
// reads every row back with delta-rs.
func TestDeltaRSReadsBronzeTables(t *testing.T) {
	py := devstack.Python(t)
	dir := t.TempDir()

	rb := NewReadingBuilder(nil)
	var want []map[string]any
	for i := range testReadings {
		r := &testReadings[i]
		rb.Append(r)
		want = append(want, map[string]any{
			"sensor_id": r.SensorID, "measurement": r.Measurement, "value": r.Value, "unit": r.Unit, "ts": float64(r.TS),
			"plant": r.Plant, "line": str(r.Line, r.LineValid), "device": str(r.Device, r.DeviceValid),
			"mqtt_topic": str(r.MQTTTopic, r.MQTTTopicValid), "extra": bytesStr(r.Extra), "kafka_topic": r.KafkaTopic,
			"kafka_partition": float64(r.KafkaPartition), "kafka_offset": float64(r.KafkaOffset), "raw_version": float64(r.RawVersion),
			"bridge_ts": ts(r.BridgeTS, r.BridgeTSValid), "traceparent": bytesStr(r.Traceparent), "event_date": date(r.TS),
		})
	}
	readings := filepath.Join(dir, "readings")
	writeTable(t, readings, ReadingsSchema, ReadingsPartitionColumn, ReadingsPlainColumns, rb.Flush())
	sameRows(t, ReadingsTable, rowsByDeltaRS(t, py, readings), want)

	db := NewDeadLetterBuilder(nil)
	want = nil
	for i := range testDeadLetters {
		dl := &testDeadLetters[i]
		db.Append(dl)
		var payload any
		if dl.RawPayload != nil {
			payload = map[string]any{"hex": hex.EncodeToString(dl.RawPayload)}
		}
		want = append(want, map[string]any{
			"raw_payload": payload, "error_code": dl.ErrorCode, "error_detail": dl.ErrorDetail, "stage": dl.Stage,
			"mqtt_topic": str(dl.MQTTTopic, dl.MQTTTopicValid), "kafka_topic": dl.KafkaTopic,
			"kafka_partition": float64(dl.KafkaPartition), "kafka_offset": float64(dl.KafkaOffset), "raw_version": float64(dl.RawVersion),
			"bridge_ts": ts(dl.BridgeTS, dl.BridgeTSValid), "failed_at": float64(dl.FailedAt), "failed_date": date(dl.FailedAt),
		})
	}
	deadLetters := filepath.Join(dir, "dead_letters")
	writeTable(t, deadLetters, DeadLettersSchema, DeadLettersPartitionColumn, DeadLettersPlainColumns, db.Flush())
	sameRows(t, DeadLettersTable, rowsByDeltaRS(t, py, deadLetters), want)
}

// TestBuilderColumns checks values and nulls of one date's batch, with the
// first null after valid values and across byte boundaries of the bitmap.
func TestBuilderColumns(t *testing.T) {
	rb := NewReadingBuilder(nil)
	const n = 21
	for round := range 2 { // the second round reuses the reserved sizes
		for i := range n {
			r := testReadings[0]
			r.LineValid = i < 5 || i%3 != 0
			r.BridgeTSValid = i%4 != 1
			r.SensorID = fmt.Sprintf("s%d", i)
			r.KafkaOffset = int64(i)
			if i%2 == 0 {
				r.Extra = nil
			}
			rb.Append(&r)
		}
		batches := rb.Flush()
		if len(batches) != 1 {
			t.Fatalf("round %d: %d batches, want 1", round, len(batches))
		}
		rec := batches[0].Record
		sensor := rec.Column(0).(*array.String)
		line := rec.Column(6).(*array.String)
		extra := rec.Column(9).(*array.String)
		offset := rec.Column(12).(*array.Int64)
		bridge := rec.Column(14).(*array.Timestamp)
		for i := range n {
			if got, want := sensor.Value(i), fmt.Sprintf("s%d", i); got != want {
				t.Errorf("round %d row %d: sensor_id %q, want %q", round, i, got, want)
			}
			if got, want := line.IsNull(i), !(i < 5 || i%3 != 0); got != want || (!got && line.Value(i) != "l1") {
				t.Errorf("round %d row %d: line null %v (%q), want null %v", round, i, got, line.Value(i), want)
			}
			if got, want := extra.IsNull(i), i%2 == 0; got != want {
				t.Errorf("round %d row %d: extra null %v, want %v", round, i, got, want)
			}
			if got, want := bridge.IsNull(i), i%4 == 1; got != want {
				t.Errorf("round %d row %d: bridge_ts null %v, want %v", round, i, got, want)
			}
			if offset.Value(i) != int64(i) {
				t.Errorf("round %d row %d: kafka_offset %d", round, i, offset.Value(i))
			}
		}
		for i, col := range rec.Columns() {
			if err := array.ValidateFull(col); err != nil {
				t.Errorf("round %d column %d: %v", round, i, err)
			}
		}
		rec.Release()
	}
}
