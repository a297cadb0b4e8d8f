package derive

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/plantlake/plantlake/delta/datafile/datafiletest"
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
