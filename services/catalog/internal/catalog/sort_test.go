package catalog

import (
	"context"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

func TestSortRecordsOrdersAcrossBatchesNullsFirst(t *testing.T) {
	sc := arrow.NewSchema([]arrow.Field{
		{Name: "sensor_id", Type: arrow.BinaryTypes.String, Nullable: true},
		{Name: "ts", Type: &arrow.TimestampType{Unit: arrow.Microsecond, TimeZone: "UTC"}, Nullable: true},
		{Name: "value", Type: arrow.PrimitiveTypes.Float64, Nullable: true},
	}, nil)
	type row struct {
		sensor string // "" is null
		ts     int64
		value  float64
	}
	batch := func(rows ...row) arrow.RecordBatch {
		b := array.NewRecordBuilder(memory.DefaultAllocator, sc)
		defer b.Release()
		for _, r := range rows {
			if r.sensor == "" {
				b.Field(0).AppendNull()
			} else {
				b.Field(0).(*array.StringBuilder).Append(r.sensor)
			}
			b.Field(1).(*array.TimestampBuilder).Append(arrow.Timestamp(r.ts))
			b.Field(2).(*array.Float64Builder).Append(r.value)
		}
		return b.NewRecordBatch()
	}
	recs := []arrow.RecordBatch{batch(row{"b", 2, 1}, row{"a", 9, 2}), batch(row{"b", 1, 3}, row{"", 5, 4}, row{"a", 3, 5})}
	out, err := sortRecords(context.Background(), sc, recs, []string{"sensor_id", "ts"})
	if err != nil {
		t.Fatal(err)
	}
	defer releaseAll(out)
	if len(out) != 1 || out[0].NumRows() != 5 {
		t.Fatalf("got %d batches", len(out))
	}
	values := out[0].Column(2).(*array.Float64).Float64Values()
	want := []float64{4, 5, 2, 3, 1} // null sensor, (a,3), (a,9), (b,1), (b,2)
	for i := range want {
		if values[i] != want[i] {
			t.Fatalf("values in sorted order = %v, want %v", values, want)
		}
	}
	if _, err := sortRecords(context.Background(), sc, []arrow.RecordBatch{batch(row{"a", 1, 1})}, []string{"nope"}); err == nil {
		t.Error("sorting by a missing column succeeded")
	}
}
