package rawtable

import (
	"slices"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// Header is one Kafka record header. A nil Value is a null header value.
type Header struct {
	Key   string
	Value []byte
}

// Row is one Kafka record as the raw table stores it.
type Row struct {
	Topic     string
	Partition int32
	Offset    int64
	// Timestamp is the Kafka record's timestamp; the zero time is null.
	Timestamp time.Time
	// Key is the record key (the MQTT topic); nil is null.
	Key     []byte
	Headers []Header
	// Payload is the record value as it came; nil (a Kafka null) is null,
	// an empty slice an empty value.
	Payload []byte
	// IngestTime is when ingest read the record; it decides ingest_date.
	IngestTime time.Time
}

// rowOverhead approximates the fixed bytes a row costs in the builders
// besides its variable-length parts, for the batch byte limit.
const rowOverhead = 64

// Size is the number of bytes r adds to a batch, as the batch byte limit counts them.
func (r *Row) Size() int {
	n := rowOverhead + len(r.Topic) + len(r.Key) + len(r.Payload)
	for _, h := range r.Headers {
		n += len(h.Key) + len(h.Value) + 8
	}
	return n
}

// Batch is the rows of one ingest_date, ready to be written as one file.
type Batch struct {
	// Date is the ingest_date of every row, at midnight UTC.
	Date time.Time
	// Record holds the rows in ArrowSchema; the caller releases it.
	Record arrow.RecordBatch
}

// Builder collects rows into Arrow builders, one set per ingest_date, and
// reuses those builders from one batch to the next. It is not safe for
// concurrent use.
type Builder struct {
	mem   memory.Allocator
	days  map[arrow.Date32]*dayBuilder
	rows  int
	bytes int
	// newest is the latest bridge_ts (or, without one, Kafka timestamp) appended, in Unix microseconds.
	newest int64
}

// NewBuilder returns an empty Builder allocating from mem (nil: Go's allocator).
func NewBuilder(mem memory.Allocator) *Builder {
	if mem == nil {
		mem = memory.NewGoAllocator()
	}
	return &Builder{mem: mem, days: make(map[arrow.Date32]*dayBuilder)}
}

// Rows is the number of rows appended since the last Flush or Discard.
func (b *Builder) Rows() int { return b.rows }

// Bytes is the size of the rows appended since the last Flush or Discard, as Row.Size counts it.
func (b *Builder) Bytes() int { return b.bytes }

// Newest is the latest event time among the rows appended since the last
// Flush: their bridge_ts, or their Kafka timestamp where they have none. It
// is the zero time if no row had either.
func (b *Builder) Newest() time.Time {
	if b.newest == 0 {
		return time.Time{}
	}
	return time.UnixMicro(b.newest)
}

// Append adds r to the batch of its ingest_date.
func (b *Builder) Append(r *Row) {
	ingest := r.IngestTime.UTC()
	date := arrow.Date32FromTime(ingest)
	d := b.days[date]
	if d == nil {
		d = newDayBuilder(b.mem)
		b.days[date] = d
	}
	if t := d.append(r, ingest, date); t > b.newest {
		b.newest = t
	}
	b.rows++
	b.bytes += r.Size()
}

// Flush returns the rows appended so far as one Batch per ingest_date, in
// date order, and empties the Builder. Builders of dates that received no
// rows are released.
func (b *Builder) Flush() []Batch {
	var out []Batch
	for date, d := range b.days {
		if d.rows == 0 {
			d.rb.Release()
			delete(b.days, date)
			continue
		}
		rec := d.rb.NewRecordBatch()
		d.hint = hintOf(rec)
		out = append(out, Batch{Date: date.ToTime().UTC(), Record: rec})
		d.rows = 0
	}
	slices.SortFunc(out, func(x, y Batch) int { return x.Date.Compare(y.Date) })
	b.rows, b.bytes, b.newest = 0, 0, 0
	return out
}

// Discard drops the rows appended since the last Flush.
func (b *Builder) Discard() {
	for _, batch := range b.Flush() {
		batch.Record.Release()
	}
}

// Release frees the builders; the Builder must not be used afterwards.
func (b *Builder) Release() {
	b.Discard()
	for date, d := range b.days {
		d.rb.Release()
		delete(b.days, date)
	}
}

// dayBuilder holds the typed column builders of one ingest_date.
type dayBuilder struct {
	rb         *array.RecordBuilder
	topic      *array.StringBuilder
	partition  *array.Int32Builder
	offset     *array.Int64Builder
	timestamp  *array.TimestampBuilder
	key        *array.StringBuilder
	headers    *array.ListBuilder
	header     *array.StructBuilder
	headerKey  *array.StringBuilder
	headerVal  *array.BinaryBuilder
	bridgeTS   *array.TimestampBuilder
	payload    *array.BinaryBuilder
	ingestTS   *array.TimestampBuilder
	ingestDate *array.Date32Builder
	rows       int
	// hint is the size of the previous batch: the next one reserves as
	// much at once instead of growing its buffers step by step.
	hint sizeHint
}

// sizeHint is the row count and variable-length data sizes of a batch.
type sizeHint struct {
	rows, headers                   int
	topic, key, hkey, hval, payload int
}

func hintOf(rec arrow.RecordBatch) sizeHint {
	headers := rec.Column(colHeaders).(*array.List)
	h := headers.ListValues().(*array.Struct)
	return sizeHint{
		rows:    int(rec.NumRows()),
		headers: h.Len(),
		topic:   len(rec.Column(colTopic).(*array.String).ValueBytes()),
		key:     len(rec.Column(colKey).(*array.String).ValueBytes()),
		hkey:    len(h.Field(0).(*array.String).ValueBytes()),
		hval:    len(h.Field(1).(*array.Binary).ValueBytes()),
		payload: len(rec.Column(colPayload).(*array.Binary).ValueBytes()),
	}
}

// reserve makes room for a batch the size of the previous one.
func (d *dayBuilder) reserve() {
	h := d.hint
	d.rb.Reserve(h.rows)
	d.topic.ReserveData(h.topic)
	d.key.ReserveData(h.key)
	d.payload.ReserveData(h.payload)
	d.header.Reserve(h.headers)
	d.headerKey.Reserve(h.headers)
	d.headerKey.ReserveData(h.hkey)
	d.headerVal.Reserve(h.headers)
	d.headerVal.ReserveData(h.hval)
}

func newDayBuilder(mem memory.Allocator) *dayBuilder {
	rb := array.NewRecordBuilder(mem, ArrowSchema)
	headers := rb.Field(colHeaders).(*array.ListBuilder)
	header := headers.ValueBuilder().(*array.StructBuilder)
	return &dayBuilder{
		rb:         rb,
		topic:      rb.Field(colTopic).(*array.StringBuilder),
		partition:  rb.Field(colPartition).(*array.Int32Builder),
		offset:     rb.Field(colOffset).(*array.Int64Builder),
		timestamp:  rb.Field(colTimestamp).(*array.TimestampBuilder),
		key:        rb.Field(colKey).(*array.StringBuilder),
		headers:    headers,
		header:     header,
		headerKey:  header.FieldBuilder(0).(*array.StringBuilder),
		headerVal:  header.FieldBuilder(1).(*array.BinaryBuilder),
		bridgeTS:   rb.Field(colBridgeTS).(*array.TimestampBuilder),
		payload:    rb.Field(colPayload).(*array.BinaryBuilder),
		ingestTS:   rb.Field(colIngestTS).(*array.TimestampBuilder),
		ingestDate: rb.Field(colIngestDate).(*array.Date32Builder),
	}
}

// append adds r and returns its event time (bridge_ts, else Kafka
// timestamp) in Unix microseconds, 0 if it has neither.
func (d *dayBuilder) append(r *Row, ingest time.Time, date arrow.Date32) (eventMicros int64) {
	if d.rows == 0 && d.hint.rows > 0 {
		d.reserve()
	}
	d.topic.Append(r.Topic)
	d.partition.Append(r.Partition)
	d.offset.Append(r.Offset)
	if r.Timestamp.IsZero() {
		d.timestamp.AppendNull()
	} else {
		eventMicros = r.Timestamp.UnixMicro()
		d.timestamp.Append(arrow.Timestamp(eventMicros))
	}
	if r.Key == nil {
		d.key.AppendNull()
	} else {
		d.key.BinaryBuilder.Append(r.Key)
	}
	d.headers.Append(true)
	bridgeTS, bridgeOK := int64(0), false
	for i := range r.Headers {
		h := &r.Headers[i]
		d.header.Append(true)
		d.headerKey.Append(h.Key)
		if h.Value == nil {
			d.headerVal.AppendNull()
		} else {
			d.headerVal.Append(h.Value)
		}
		if !bridgeOK && h.Key == BridgeTimestampHeader {
			bridgeTS, bridgeOK = ParseBridgeTimestamp(h.Value)
		}
	}
	if bridgeOK {
		eventMicros = bridgeTS
		d.bridgeTS.Append(arrow.Timestamp(bridgeTS))
	} else {
		d.bridgeTS.AppendNull()
	}
	if r.Payload == nil {
		d.payload.AppendNull()
	} else {
		d.payload.Append(r.Payload)
	}
	d.ingestTS.Append(arrow.Timestamp(ingest.UnixMicro()))
	d.ingestDate.Append(date)
	d.rows++
	return eventMicros
}

// maxBridgeMillis is the largest bridge_ts_ms accepted.
const maxBridgeMillis = 999_999_999_999_999

// ParseBridgeTimestamp reads a bridge_ts_ms header value (Unix
// milliseconds, decimal) and returns it in Unix microseconds; ok is false
// when the value is null, not a decimal integer, or out of range. It parses
// by hand: strconv would allocate a string per row.
func ParseBridgeTimestamp(value []byte) (micros int64, ok bool) {
	if len(value) == 0 {
		return 0, false
	}
	digits, neg := value, false
	if digits[0] == '-' || digits[0] == '+' {
		neg, digits = digits[0] == '-', digits[1:]
	}
	if len(digits) == 0 {
		return 0, false
	}
	var ms int64
	for _, c := range digits {
		if c < '0' || c > '9' {
			return 0, false
		}
		ms = ms*10 + int64(c-'0')
		// 15 digits of milliseconds reach the year 33658; more cannot be
		// a timestamp, and could overflow in microseconds.
		if ms > maxBridgeMillis {
			return 0, false
		}
	}
	if neg {
		ms = -ms
	}
	return ms * 1000, true
}
