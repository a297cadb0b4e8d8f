package derive

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/plantlake/plantlake/delta"
	"github.com/plantlake/plantlake/delta/datafile"
	"github.com/plantlake/plantlake/delta/datafile/datafiletest"
	"github.com/plantlake/plantlake/delta/reader"
	"github.com/plantlake/plantlake/delta/storage"
	"github.com/plantlake/plantlake/services/deserialize/internal/parse"
)

func TestRawBatch(t *testing.T) {
	ingest := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	rec := datafiletest.RawBatch(memory.NewGoAllocator(), 120, 1000, ingest)
	defer rec.Release()
	// A slice exercises array offsets.
	sliced := rec.NewSlice(10, 110)
	defer sliced.Release()
	rb, err := NewRawBatch(sliced)
	if err != nil {
		t.Fatal(err)
	}
	if rb.Len() != 100 {
		t.Fatalf("Len = %d, want 100", rb.Len())
	}
	keys := sliced.Column(4).(*array.String)
	payloads := sliced.Column(7).(*array.Binary)
	var r Raw
	for i := range rb.Len() {
		rb.Row(i, &r)
		o := int64(1010 + i)
		if r.KafkaTopic != "plant_sensor_readings_raw" || r.KafkaOffset != o || r.KafkaPartition != int32(o%6) || r.IngestTS != ingest.UnixMicro() || !r.KafkaTimestampValid {
			t.Fatalf("row %d: %+v", i, r)
		}
		if got, want := r.KafkaKey == nil, o%50 == 0; got != want {
			t.Errorf("row %d: key null %v, want %v", i, got, want)
		} else if !got && string(r.KafkaKey) != keys.Value(i) {
			t.Errorf("row %d: key %q, want %q", i, r.KafkaKey, keys.Value(i))
		}
		if r.RawPayload == nil || string(r.RawPayload) != string(payloads.Value(i)) {
			t.Errorf("row %d: payload %q, want %q (empty, not null, for an empty payload)", i, r.RawPayload, payloads.Value(i))
		}
		if got, want := r.BridgeTSValid, o%10 != 0; got != want {
			t.Errorf("row %d: bridge_ts valid %v, want %v", i, got, want)
		}
		wantHeaders := 3
		if o%10 == 0 {
			wantHeaders = 2
		}
		if len(r.Headers) != wantHeaders || r.Headers[0].Key != HeaderMQTTTopic || r.Headers[1].Key != "mqtt_qos" || string(r.Headers[1].Value) != "1" {
			t.Errorf("row %d: headers %+v", i, r.Headers)
		}
	}
}

func TestRawBatchRefusesOtherShapes(t *testing.T) {
	schema := arrow.NewSchema([]arrow.Field{
		{Name: "kafka_topic", Type: arrow.BinaryTypes.String},
		{Name: "kafka_partition", Type: arrow.PrimitiveTypes.Int64},
	}, nil)
	b := array.NewRecordBuilder(memory.NewGoAllocator(), schema)
	defer b.Release()
	rec := b.NewRecordBatch()
	defer rec.Release()
	_, err := NewRawBatch(rec)
	for _, want := range []string{"column kafka_partition is of type int64", "no column kafka_offset", "no column raw_payload", "no column ingest_ts"} {
		if !errors.Is(err, ErrRawSchema) || !strings.Contains(err.Error(), want) {
			t.Errorf("NewRawBatch = %v, want ErrRawSchema saying %q", err, want)
		}
	}
}

// TestDeriveRawBatch derives every row of a raw batch: each goes to exactly
// one table, and the empty payloads are dead letters.
func TestDeriveRawBatch(t *testing.T) {
	ingest := time.Unix(1625000100, 0)
	rec := datafiletest.RawBatch(memory.NewGoAllocator(), 500, 0, ingest)
	defer rec.Release()
	rb, err := NewRawBatch(rec)
	if err != nil {
		t.Fatal(err)
	}
	d := newDeriver(t)
	var (
		r            Raw
		out          Output
		bronze, dead int
		empty        int
	)
	for i := range rb.Len() {
		rb.Row(i, &r)
		o, err := d.Derive(&r, 3, &out)
		if err != nil {
			t.Fatal(err)
		}
		switch o {
		case ToBronze:
			bronze++
		case ToDeadLetters:
			dead++
			if out.DeadLetter.ErrorCode == parse.CodeEmpty {
				empty++
			}
		}
	}
	if bronze+dead != 500 || empty != 10 || bronze == 0 {
		t.Errorf("%d bronze rows, %d dead letters (%d empty), want 500 in all, 10 empty", bronze, dead, empty)
	}
}

// TestRawBatchFromDeltaReader reads a raw data file back through the Delta
// library's reader, as the table source hands rows to deserialize, and
// derives every row.
func TestRawBatchFromDeltaReader(t *testing.T) {
	ctx := context.Background()
	st, err := storage.NewLocal(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	tbl, err := delta.Create(ctx, st, delta.Metadata{SchemaString: datafiletest.RawSchemaString, PartitionColumns: datafiletest.RawPartitionColumns}, delta.Protocol{})
	if err != nil {
		t.Fatal(err)
	}
	ingest := time.Unix(1625000100, 0).UTC()
	const n = 300
	rec := datafiletest.RawBatch(memory.NewGoAllocator(), n, 0, ingest)
	add, err := datafile.Write(ctx, st, datafile.Options{
		PartitionColumns: datafiletest.RawPartitionColumns,
		PartitionValues:  map[string]string{"ingest_date": datafile.FormatDatePartition(ingest)},
	}, rec)
	rec.Release()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tbl.Commit(ctx, delta.CommitRequest{ReadVersion: 0, Operation: "WRITE", BlindAppend: true, Actions: []delta.Action{{Add: &add}}}); err != nil {
		t.Fatal(err)
	}
	snap, err := tbl.Snapshot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	scan, err := reader.NewFiles(st, snap, []delta.Add{add}, reader.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer scan.Close()
	d := newDeriver(t)
	var (
		raw     Raw
		out     Output
		counts  = map[Outcome]int{}
		headers int
	)
	for rec, err := range scan.Records(ctx) {
		if err != nil {
			t.Fatal(err)
		}
		rb, err := NewRawBatch(rec)
		if err != nil {
			t.Fatal(err)
		}
		for i := range rb.Len() {
			rb.Row(i, &raw)
			headers += len(raw.Headers)
			o, err := d.Derive(&raw, 1, &out)
			if err != nil {
				t.Fatal(err)
			}
			counts[o]++
		}
	}
	// Every row has mqtt_topic and mqtt_qos headers, nine in ten bridge_ts_ms.
	if counts[ToBronze]+counts[ToDeadLetters] != n || counts[ToBronze] == 0 || headers != 2*n+n*9/10 {
		t.Errorf("read %v rows with %d headers, want %d rows, some in bronze, and %d headers", counts, headers, n, 2*n+n*9/10)
	}
}
