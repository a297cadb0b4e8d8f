package gold

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// ErrSchema is wrapped when a record batch lacks a column gold needs or
// holds it in a type gold cannot read.
var ErrSchema = errors.New("gold: unexpected record schema")

// Row is one reading on its way into gold, in gold's columns. A column
// whose bit (1 << Col...) is set in Nulls is null; its field is zero.
type Row struct {
	SensorID, Measurement, Unit string
	Plant, Line, Device         string
	MQTTTopic, KafkaTopic       string
	Value                       float64
	// TS, BridgeTS and MergedAt are microseconds since the Unix epoch (UTC).
	TS, BridgeTS, MergedAt int64
	KafkaPartition         int32
	// EventDate is days since the Unix epoch.
	EventDate     int32
	KafkaOffset   int64
	RawVersion    int64
	BronzeVersion int64
	Nulls         uint32
}

// Null reports whether column col is null.
func (r *Row) Null(col int) bool { return r.Nulls&(1<<col) != 0 }

// Newer reports whether r is newer than o: a larger (raw_version,
// kafka_topic, kafka_partition, kafka_offset), compared as Delta orders
// them, nulls first.
func (r *Row) Newer(o *Row) bool {
	if c := cmpLong(r, o, ColRawVersion, r.RawVersion, o.RawVersion); c != 0 {
		return c > 0
	}
	if c := cmpNull(r, o, ColKafkaTopic); c != 0 {
		return c > 0
	}
	if c := strings.Compare(r.KafkaTopic, o.KafkaTopic); c != 0 {
		return c > 0
	}
	if c := cmpLong(r, o, ColKafkaPartition, int64(r.KafkaPartition), int64(o.KafkaPartition)); c != 0 {
		return c > 0
	}
	return cmpLong(r, o, ColKafkaOffset, r.KafkaOffset, o.KafkaOffset) > 0
}

func cmpNull(a, b *Row, col int) int {
	an, bn := a.Null(col), b.Null(col)
	switch {
	case an == bn:
		return 0
	case an:
		return -1
	}
	return 1
}

func cmpLong(a, b *Row, col int, x, y int64) int {
	if c := cmpNull(a, b, col); c != 0 {
		return c
	}
	switch {
	case x < y:
		return -1
	case x > y:
		return 1
	}
	return 0
}

// EventDateOf returns the UTC day of a timestamp in microseconds, as days
// since the epoch.
func EventDateOf(tsMicros int64) int32 {
	d := tsMicros / (86400 * 1e6)
	if tsMicros < 0 && tsMicros%(86400*1e6) != 0 {
		d--
	}
	return int32(d)
}

// FormatDate formats days since the epoch as a Delta date partition value.
func FormatDate(days int32) string {
	return time.Unix(int64(days)*86400, 0).UTC().Format("2006-01-02")
}

// RowReader reads Rows from the record batches of one schema, finding
// gold's columns by name. Columns the batches lack read as null; a bronze
// batch has no bronze_version and merged_at, and may hold extra columns
// (extra, traceparent) that gold drops.
type RowReader struct {
	cols   [NumColumns]arrow.Array
	intern map[string]string
	// last is, per column, the value interned last: neighbouring rows
	// often share a plant, line, unit or device, and a comparison is
	// cheaper than hashing the string for the table.
	last [NumColumns]string
}

// NewRowReader returns a reader; it keeps a table of the distinct values of
// the string columns (up to maxInterned of them) so that their rows share
// one copy: a plant's sensor ids, devices and topics repeat in every batch,
// and a shared copy is one allocation fewer a row for the collector.
func NewRowReader() *RowReader { return &RowReader{intern: map[string]string{}} }

// Bind points the reader at rec, which must have the key and order columns
// named in required, in gold's types (timestamps of any unit).
func (rr *RowReader) Bind(rec arrow.RecordBatch, required []string) error {
	sc := rec.Schema()
	for i := range rr.cols {
		rr.cols[i] = nil
	}
	for col, f := range ArrowSchema.Fields() {
		idx := sc.FieldIndices(f.Name)
		if len(idx) == 0 {
			continue
		}
		arr := rec.Column(idx[0])
		if !compatible(f.Type, arr.DataType()) {
			return fmt.Errorf("%w: column %s is %s, want %s", ErrSchema, f.Name, arr.DataType(), f.Type)
		}
		rr.cols[col] = arr
	}
	for _, name := range required {
		idx := ArrowSchema.FieldIndices(name)
		if len(idx) == 0 {
			return fmt.Errorf("%w: %s is not a gold column", ErrSchema, name)
		}
		if rr.cols[idx[0]] == nil {
			return fmt.Errorf("%w: no column %s", ErrSchema, name)
		}
	}
	return nil
}

func compatible(want, got arrow.DataType) bool {
	if _, ok := want.(*arrow.TimestampType); ok {
		_, ok := got.(*arrow.TimestampType)
		return ok
	}
	return arrow.TypeEqual(want, got)
}

// Read fills r from row i of the bound batch. Strings are copied: r stays
// valid after the batch is released.
func (rr *RowReader) Read(i int, r *Row) {
	*r = Row{}
	for col, arr := range rr.cols {
		if arr == nil || arr.IsNull(i) {
			r.Nulls |= 1 << col
			continue
		}
		switch col {
		case ColSensorID:
			r.SensorID = rr.interned(col, arr, i)
		case ColMeasurement:
			r.Measurement = rr.interned(col, arr, i)
		case ColValue:
			r.Value = arr.(*array.Float64).Value(i)
		case ColUnit:
			r.Unit = rr.interned(col, arr, i)
		case ColTS:
			r.TS = micros(arr, i)
		case ColPlant:
			r.Plant = rr.interned(col, arr, i)
		case ColLine:
			r.Line = rr.interned(col, arr, i)
		case ColDevice:
			r.Device = rr.interned(col, arr, i)
		case ColMQTTTopic:
			r.MQTTTopic = rr.interned(col, arr, i)
		case ColKafkaTopic:
			r.KafkaTopic = rr.interned(col, arr, i)
		case ColKafkaPartition:
			r.KafkaPartition = arr.(*array.Int32).Value(i)
		case ColKafkaOffset:
			r.KafkaOffset = arr.(*array.Int64).Value(i)
		case ColRawVersion:
			r.RawVersion = arr.(*array.Int64).Value(i)
		case ColBridgeTS:
			r.BridgeTS = micros(arr, i)
		case ColEventDate:
			r.EventDate = int32(arr.(*array.Date32).Value(i))
		case ColBronzeVersion:
			r.BronzeVersion = arr.(*array.Int64).Value(i)
		case ColMergedAt:
			r.MergedAt = micros(arr, i)
		}
	}
}

// maxInterned bounds the intern table: a column of many distinct values
// (a misconfigured device name per reading) must not grow it without end.
const maxInterned = 1 << 16

func (rr *RowReader) interned(col int, arr arrow.Array, i int) string {
	s := arr.(*array.String).Value(i)
	if s == rr.last[col] {
		return rr.last[col]
	}
	v, ok := rr.intern[s]
	if !ok {
		v = strings.Clone(s)
		if len(rr.intern) < maxInterned {
			rr.intern[v] = v
		}
	}
	rr.last[col] = v
	return v
}

func micros(arr arrow.Array, i int) int64 {
	ts := arr.(*array.Timestamp)
	v := int64(ts.Value(i))
	switch ts.DataType().(*arrow.TimestampType).Unit {
	case arrow.Second:
		return v * 1e6
	case arrow.Millisecond:
		return v * 1e3
	case arrow.Nanosecond:
		return v / 1e3
	}
	return v
}

// Builder builds gold record batches from Rows.
type Builder struct {
	b *array.RecordBuilder
	n int
	// The column builders, typed once: Append runs per row and column.
	strs   [NumColumns]*array.StringBuilder
	i32    [NumColumns]*array.Int32Builder
	i64    [NumColumns]*array.Int64Builder
	ts     [NumColumns]*array.TimestampBuilder
	value  *array.Float64Builder
	date   *array.Date32Builder
	fields [NumColumns]array.Builder
}

// stringColumns are gold's string columns, in column order.
var stringColumns = []int{ColSensorID, ColMeasurement, ColUnit, ColPlant, ColLine, ColDevice, ColMQTTTopic, ColKafkaTopic}

// NewBuilder returns a builder allocating from mem (memory.DefaultAllocator when nil).
func NewBuilder(mem memory.Allocator) *Builder {
	if mem == nil {
		mem = memory.DefaultAllocator
	}
	b := &Builder{b: array.NewRecordBuilder(mem, ArrowSchema)}
	for col := range NumColumns {
		fb := b.b.Field(col)
		b.fields[col] = fb
		switch fb := fb.(type) {
		case *array.StringBuilder:
			b.strs[col] = fb
		case *array.Int32Builder:
			b.i32[col] = fb
		case *array.Int64Builder:
			b.i64[col] = fb
		case *array.TimestampBuilder:
			b.ts[col] = fb
		case *array.Float64Builder:
			b.value = fb
		case *array.Date32Builder:
			b.date = fb
		}
	}
	return b
}

// Len is the number of rows appended since the last NewRecord.
func (b *Builder) Len() int { return b.n }

// Reserve makes room for rows more rows whose string columns hold about
// bytesPerRow bytes each, so that the builders do not grow (copying what
// they hold) row by row.
func (b *Builder) Reserve(rows int, bytesPerRow *StringBytes) {
	if rows <= 0 {
		return
	}
	for col := range NumColumns {
		b.fields[col].Reserve(rows)
	}
	if bytesPerRow == nil {
		return
	}
	for i, col := range stringColumns {
		if n := bytesPerRow[i] * rows; n > 0 {
			b.strs[col].ReserveData(n)
		}
	}
}

// StringBytes is the bytes a row holds in each of gold's string columns
// (in column order), as Builder.Reserve takes them.
type StringBytes [8]int

// AddRow adds r's string bytes to s.
func (s *StringBytes) AddRow(r *Row) {
	s[0] += len(r.SensorID)
	s[1] += len(r.Measurement)
	s[2] += len(r.Unit)
	s[3] += len(r.Plant)
	s[4] += len(r.Line)
	s[5] += len(r.Device)
	s[6] += len(r.MQTTTopic)
	s[7] += len(r.KafkaTopic)
}

// PerRow returns s over rows rows, rounded up (the bytes a row of a file
// whose totals s counts holds on average).
func (s *StringBytes) PerRow(rows int) *StringBytes {
	var out StringBytes
	if rows <= 0 {
		return &out
	}
	for i, n := range s {
		out[i] = (n + rows - 1) / rows
	}
	return &out
}

// Append appends one row.
func (b *Builder) Append(r *Row) {
	b.n++
	if r.Nulls == 0 {
		b.strs[ColSensorID].Append(r.SensorID)
		b.strs[ColMeasurement].Append(r.Measurement)
		b.value.Append(r.Value)
		b.strs[ColUnit].Append(r.Unit)
		b.ts[ColTS].Append(arrow.Timestamp(r.TS))
		b.strs[ColPlant].Append(r.Plant)
		b.strs[ColLine].Append(r.Line)
		b.strs[ColDevice].Append(r.Device)
		b.strs[ColMQTTTopic].Append(r.MQTTTopic)
		b.strs[ColKafkaTopic].Append(r.KafkaTopic)
		b.i32[ColKafkaPartition].Append(r.KafkaPartition)
		b.i64[ColKafkaOffset].Append(r.KafkaOffset)
		b.i64[ColRawVersion].Append(r.RawVersion)
		b.ts[ColBridgeTS].Append(arrow.Timestamp(r.BridgeTS))
		b.date.Append(arrow.Date32(r.EventDate))
		b.i64[ColBronzeVersion].Append(r.BronzeVersion)
		b.ts[ColMergedAt].Append(arrow.Timestamp(r.MergedAt))
		return
	}
	for col := range NumColumns {
		if r.Null(col) {
			b.fields[col].AppendNull()
			continue
		}
		switch col {
		case ColSensorID:
			b.strs[col].Append(r.SensorID)
		case ColMeasurement:
			b.strs[col].Append(r.Measurement)
		case ColValue:
			b.value.Append(r.Value)
		case ColUnit:
			b.strs[col].Append(r.Unit)
		case ColTS:
			b.ts[col].Append(arrow.Timestamp(r.TS))
		case ColPlant:
			b.strs[col].Append(r.Plant)
		case ColLine:
			b.strs[col].Append(r.Line)
		case ColDevice:
			b.strs[col].Append(r.Device)
		case ColMQTTTopic:
			b.strs[col].Append(r.MQTTTopic)
		case ColKafkaTopic:
			b.strs[col].Append(r.KafkaTopic)
		case ColKafkaPartition:
			b.i32[col].Append(r.KafkaPartition)
		case ColKafkaOffset:
			b.i64[col].Append(r.KafkaOffset)
		case ColRawVersion:
			b.i64[col].Append(r.RawVersion)
		case ColBridgeTS:
			b.ts[col].Append(arrow.Timestamp(r.BridgeTS))
		case ColEventDate:
			b.date.Append(arrow.Date32(r.EventDate))
		case ColBronzeVersion:
			b.i64[col].Append(r.BronzeVersion)
		case ColMergedAt:
			b.ts[col].Append(arrow.Timestamp(r.MergedAt))
		}
	}
}

// NewRecord returns the rows appended so far as a record batch (the caller
// releases it) and starts a new one.
func (b *Builder) NewRecord() arrow.RecordBatch {
	b.n = 0
	return b.b.NewRecordBatch()
}

// Release frees the builder.
func (b *Builder) Release() { b.b.Release() }
