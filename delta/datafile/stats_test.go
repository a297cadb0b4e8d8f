package datafile

import (
	"math"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/decimal128"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// column builds a one-column record from an Arrow type and a function filling its builder.
func column(t *testing.T, typ arrow.DataType, fill func(b array.Builder)) arrow.RecordBatch {
	t.Helper()
	schema := arrow.NewSchema([]arrow.Field{{Name: "c", Type: typ, Nullable: true}}, nil)
	rb := array.NewRecordBuilder(memory.DefaultAllocator, schema)
	defer rb.Release()
	fill(rb.Field(0))
	return rb.NewRecordBatch()
}

func TestStats(t *testing.T) {
	tsUTC := &arrow.TimestampType{Unit: arrow.Microsecond, TimeZone: "UTC"}
	tsNTZ := &arrow.TimestampType{Unit: arrow.Microsecond}
	long := strings.Repeat("a", 40)
	tests := []struct {
		name string
		typ  arrow.DataType
		fill func(b array.Builder)
		want string
	}{
		{"long", arrow.PrimitiveTypes.Int64, func(b array.Builder) {
			b.(*array.Int64Builder).AppendValues([]int64{5, -3, 9}, nil)
			b.AppendNull()
		}, `{"numRecords":4,"minValues":{"c":-3},"maxValues":{"c":9},"nullCount":{"c":1}}`},
		{"all null", arrow.PrimitiveTypes.Int32, func(b array.Builder) {
			b.AppendNull()
			b.AppendNull()
		}, `{"numRecords":2,"nullCount":{"c":2}}`},
		{"double with NaN has no bounds", arrow.PrimitiveTypes.Float64, func(b array.Builder) {
			b.(*array.Float64Builder).AppendValues([]float64{1, math.NaN(), 2}, nil)
		}, `{"numRecords":3,"nullCount":{"c":0}}`},
		{"double infinities are left out", arrow.PrimitiveTypes.Float64, func(b array.Builder) {
			b.(*array.Float64Builder).AppendValues([]float64{math.Inf(-1), 2.5}, nil)
		}, `{"numRecords":2,"maxValues":{"c":2.5},"nullCount":{"c":0}}`},
		{"signed zeros", arrow.PrimitiveTypes.Float64, func(b array.Builder) {
			b.(*array.Float64Builder).AppendValues([]float64{0, math.Copysign(0, -1)}, nil)
		}, `{"numRecords":2,"minValues":{"c":-0},"maxValues":{"c":0},"nullCount":{"c":0}}`},
		{"float written exactly", arrow.PrimitiveTypes.Float32, func(b array.Builder) {
			b.(*array.Float32Builder).AppendValues([]float32{0.1, 1.5}, nil)
		}, `{"numRecords":2,"minValues":{"c":0.10000000149011612},"maxValues":{"c":1.5},"nullCount":{"c":0}}`},
		{"long strings truncated", arrow.BinaryTypes.String, func(b array.Builder) {
			b.(*array.StringBuilder).AppendValues([]string{long, "b"}, nil)
		}, `{"numRecords":2,"minValues":{"c":"` + long[:32] + `"},"maxValues":{"c":"b"},"nullCount":{"c":0}}`},
		{"long max incremented", arrow.BinaryTypes.String, func(b array.Builder) {
			b.(*array.StringBuilder).AppendValues([]string{"0", long}, nil)
		}, `{"numRecords":2,"minValues":{"c":"0"},"maxValues":{"c":"` + long[:31] + `b"},"nullCount":{"c":0}}`},
		{"timestamp millis: min down, max up", tsUTC, func(b array.Builder) {
			b.(*array.TimestampBuilder).AppendValues([]arrow.Timestamp{1_700_000_000_123_456, 1_700_000_000_999_001, 1_700_000_000_500_000}, nil)
		}, `{"numRecords":3,"minValues":{"c":"2023-11-14T22:13:20.123Z"},"maxValues":{"c":"2023-11-14T22:13:21.000Z"},"nullCount":{"c":0}}`},
		{"timestamp exact millis stay", tsUTC, func(b array.Builder) {
			b.(*array.TimestampBuilder).AppendValues([]arrow.Timestamp{-1_500, 2_000}, nil)
		}, `{"numRecords":2,"minValues":{"c":"1969-12-31T23:59:59.998Z"},"maxValues":{"c":"1970-01-01T00:00:00.002Z"},"nullCount":{"c":0}}`},
		{"timestamp_ntz has no zone", tsNTZ, func(b array.Builder) {
			b.(*array.TimestampBuilder).AppendValues([]arrow.Timestamp{0}, nil)
		}, `{"numRecords":1,"minValues":{"c":"1970-01-01T00:00:00.000"},"maxValues":{"c":"1970-01-01T00:00:00.000"},"nullCount":{"c":0}}`},
		{"date", arrow.FixedWidthTypes.Date32, func(b array.Builder) {
			b.(*array.Date32Builder).AppendValues([]arrow.Date32{19000, 18000}, nil)
		}, `{"numRecords":2,"minValues":{"c":"2019-04-14"},"maxValues":{"c":"2022-01-08"},"nullCount":{"c":0}}`},
		{"decimal", &arrow.Decimal128Type{Precision: 10, Scale: 2}, func(b array.Builder) {
			b.(*array.Decimal128Builder).AppendValues([]decimal128.Num{decimal128.FromI64(-150), decimal128.FromI64(12345)}, nil)
		}, `{"numRecords":2,"minValues":{"c":-1.50},"maxValues":{"c":123.45},"nullCount":{"c":0}}`},
		{"binary only null count", arrow.BinaryTypes.Binary, func(b array.Builder) {
			b.(*array.BinaryBuilder).AppendValues([][]byte{{1}, nil}, []bool{true, false})
		}, `{"numRecords":2,"nullCount":{"c":1}}`},
		{"boolean only null count", arrow.FixedWidthTypes.Boolean, func(b array.Builder) {
			b.(*array.BooleanBuilder).AppendValues([]bool{true, false}, nil)
		}, `{"numRecords":2,"nullCount":{"c":0}}`},
		{"struct leaves nested, null parent counts", arrow.StructOf(arrow.Field{Name: "x", Type: arrow.PrimitiveTypes.Int32, Nullable: true}), func(b array.Builder) {
			sb := b.(*array.StructBuilder)
			x := sb.FieldBuilder(0).(*array.Int32Builder)
			sb.Append(true)
			x.Append(7)
			sb.AppendNull()
			sb.Append(true)
			x.Append(3)
		}, `{"numRecords":3,"minValues":{"c":{"x":3}},"maxValues":{"c":{"x":7}},"nullCount":{"c":{"x":1}}}`},
		{"list only null count", arrow.ListOf(arrow.PrimitiveTypes.Int64), func(b array.Builder) {
			lb := b.(*array.ListBuilder)
			lb.Append(true)
			lb.ValueBuilder().(*array.Int64Builder).Append(1)
			lb.AppendNull()
		}, `{"numRecords":2,"nullCount":{"c":1}}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := column(t, tt.typ, tt.fill)
			defer rec.Release()
			c := newStatsCollector(rec.Schema(), 32)
			c.add(rec)
			got, err := c.result().JSON()
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("stats\n got %s\nwant %s", got, tt.want)
			}
		})
	}
}

func TestStatsAcrossBatchesAndSlices(t *testing.T) {
	rec := column(t, arrow.PrimitiveTypes.Int64, func(b array.Builder) {
		b.(*array.Int64Builder).AppendValues([]int64{100, 1, 2, 3, -100}, nil)
	})
	defer rec.Release()
	// Only the middle of the batch is written: the sliced-off extremes must not count.
	mid := rec.NewSlice(1, 4)
	defer mid.Release()
	c := newStatsCollector(rec.Schema(), 32)
	c.add(mid)
	c.add(mid)
	got, _ := c.result().JSON()
	want := `{"numRecords":6,"minValues":{"c":1},"maxValues":{"c":3},"nullCount":{"c":0}}`
	if got != want {
		t.Errorf("stats\n got %s\nwant %s", got, want)
	}
}
