package bronze

import (
	"slices"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// microsPerDay is the length of a date in Unix microseconds.
const microsPerDay = 86_400_000_000

// Lineage is what every bronze and dead-letter row carries to trace it to
// its Kafka record and raw version.
type Lineage struct {
	// MQTTTopic is the MQTT topic; MQTTTopicValid false makes it null.
	MQTTTopic      string `json:"mqtt_topic"`
	MQTTTopicValid bool   `json:"mqtt_topic_valid"`
	KafkaTopic     string `json:"kafka_topic"`
	KafkaPartition int32  `json:"kafka_partition"`
	KafkaOffset    int64  `json:"kafka_offset"`
	RawVersion     int64  `json:"raw_version"`
	// BridgeTS is the bridge's read time in Unix microseconds; null unless
	// BridgeTSValid.
	BridgeTS      int64 `json:"bridge_ts"`
	BridgeTSValid bool  `json:"bridge_ts_valid"`
}

// Reading is one row of bronze.plant_sensor_readings. Its byte slices are
// copied by Append.
type Reading struct {
	SensorID    string  `json:"sensor_id"`
	Measurement string  `json:"measurement"`
	Value       float64 `json:"value"`
	Unit        string  `json:"unit"`
	// TS is the reading's time in Unix microseconds; it decides event_date.
	TS    int64  `json:"ts"`
	Plant string `json:"plant"`
	// Line and Device come from the MQTT topic; null unless the Valid flag
	// is set (the topic pattern has no such level, or the topic did not fit).
	Line        string `json:"line"`
	LineValid   bool   `json:"line_valid"`
	Device      string `json:"device"`
	DeviceValid bool   `json:"device_valid"`
	// Extra is the payload's unknown fields as a JSON object; nil is null.
	Extra []byte `json:"extra"`
	// Traceparent is the W3C trace context of a sampled reading; nil is null.
	Traceparent []byte `json:"traceparent"`
	Lineage
}

// DeadLetter is one row of bronze.plant_sensor_dead_letters. Its byte slices
// are copied by Append.
type DeadLetter struct {
	// RawPayload is the payload exactly as it came; nil is null (a Kafka
	// record without a value).
	RawPayload  []byte `json:"raw_payload"`
	ErrorCode   string `json:"error_code"`
	ErrorDetail string `json:"error_detail"`
	Stage       string `json:"stage"`
	// FailedAt is when the reading failed, in Unix microseconds; it decides
	// failed_date. Deserialize sets it to raw's ingest_ts so that
	// re-deriving a raw version gives the same row.
	FailedAt int64 `json:"failed_at"`
	Lineage
}

// Batch is the rows of one partition date, ready to be written as one file.
type Batch struct {
	// Date is the partition date of every row, at midnight UTC.
	Date time.Time
	// Record holds the rows, partition column included; the caller
	// releases it.
	Record arrow.RecordBatch
}

// byDate keeps one record builder per partition date.
type byDate[C any] struct {
	mem    memory.Allocator
	schema *arrow.Schema
	bind   func(*array.RecordBuilder) C
	days   map[arrow.Date32]*day[C]
	cur    *day[C]
	rows   int
}

// day is the builder of one date, with its typed column builders.
type day[C any] struct {
	date   arrow.Date32
	lo, hi int64
	rb     *array.RecordBuilder
	cols   C
}

func newByDate[C any](mem memory.Allocator, schema *arrow.Schema, bind func(*array.RecordBuilder) C) byDate[C] {
	if mem == nil {
		mem = memory.NewGoAllocator()
	}
	return byDate[C]{mem: mem, schema: schema, bind: bind, days: make(map[arrow.Date32]*day[C])}
}

// at returns the builder of the date holding Unix microsecond t.
func (b *byDate[C]) at(t int64) *day[C] {
	if d := b.cur; d != nil && t >= d.lo && t < d.hi {
		return d
	}
	days := t / microsPerDay
	if t%microsPerDay < 0 {
		days--
	}
	date := arrow.Date32(days)
	d := b.days[date]
	if d == nil {
		rb := array.NewRecordBuilder(b.mem, b.schema)
		d = &day[C]{date: date, lo: days * microsPerDay, hi: (days + 1) * microsPerDay, rb: rb, cols: b.bind(rb)}
		b.days[date] = d
	}
	b.cur = d
	return d
}

// flush returns one Batch per date, in date order, and empties b.
func (b *byDate[C]) flush() []Batch {
	out := make([]Batch, 0, len(b.days))
	for date, d := range b.days {
		out = append(out, Batch{Date: date.ToTime().UTC(), Record: d.rb.NewRecordBatch()})
		d.rb.Release()
		delete(b.days, date)
	}
	slices.SortFunc(out, func(x, y Batch) int { return x.Date.Compare(y.Date) })
	b.cur = nil
	b.rows = 0
	return out
}

func appendString(sb *array.StringBuilder, s string, valid bool) {
	if valid {
		sb.Append(s)
	} else {
		sb.AppendNull()
	}
}

func appendBytesAsString(sb *array.StringBuilder, s []byte) {
	if s == nil {
		sb.AppendNull()
	} else {
		sb.BinaryBuilder.Append(s)
	}
}

func appendTimestamp(tb *array.TimestampBuilder, t int64, valid bool) {
	if valid {
		tb.Append(arrow.Timestamp(t))
	} else {
		tb.AppendNull()
	}
}

// readingColumns are the typed builders of ReadingsArrowSchema's columns.
type readingColumns struct {
	sensorID, measurement, unit, plant, line, device, mqttTopic, extra, kafkaTopic, traceparent *array.StringBuilder
	value                                                                                       *array.Float64Builder
	ts, bridgeTS                                                                                *array.TimestampBuilder
	partition                                                                                   *array.Int32Builder
	offset, rawVersion                                                                          *array.Int64Builder
	eventDate                                                                                   *array.Date32Builder
}

func bindReadings(rb *array.RecordBuilder) readingColumns {
	s := func(i int) *array.StringBuilder { return rb.Field(i).(*array.StringBuilder) }
	return readingColumns{
		sensorID: s(0), measurement: s(1), value: rb.Field(2).(*array.Float64Builder), unit: s(3),
		ts: rb.Field(4).(*array.TimestampBuilder), plant: s(5), line: s(6), device: s(7),
		mqttTopic: s(8), extra: s(9), kafkaTopic: s(10), partition: rb.Field(11).(*array.Int32Builder),
		offset: rb.Field(12).(*array.Int64Builder), rawVersion: rb.Field(13).(*array.Int64Builder),
		bridgeTS: rb.Field(14).(*array.TimestampBuilder), traceparent: s(15),
		eventDate: rb.Field(16).(*array.Date32Builder),
	}
}

// ReadingBuilder collects bronze rows into one record batch per event_date.
// It is not safe for concurrent use.
type ReadingBuilder struct {
	b byDate[readingColumns]
}

// NewReadingBuilder returns an empty ReadingBuilder allocating from mem (nil:
// Go's allocator).
func NewReadingBuilder(mem memory.Allocator) *ReadingBuilder {
	return &ReadingBuilder{b: newByDate(mem, ReadingsArrowSchema, bindReadings)}
}

// Rows is the number of rows appended since the last Flush.
func (rb *ReadingBuilder) Rows() int { return rb.b.rows }

// Append adds r to the batch of its event_date (the UTC date of r.TS).
func (rb *ReadingBuilder) Append(r *Reading) {
	d := rb.b.at(r.TS)
	c := &d.cols
	c.sensorID.Append(r.SensorID)
	c.measurement.Append(r.Measurement)
	c.value.Append(r.Value)
	c.unit.Append(r.Unit)
	c.ts.Append(arrow.Timestamp(r.TS))
	c.plant.Append(r.Plant)
	appendString(c.line, r.Line, r.LineValid)
	appendString(c.device, r.Device, r.DeviceValid)
	appendString(c.mqttTopic, r.MQTTTopic, r.MQTTTopicValid)
	appendBytesAsString(c.extra, r.Extra)
	c.kafkaTopic.Append(r.KafkaTopic)
	c.partition.Append(r.KafkaPartition)
	c.offset.Append(r.KafkaOffset)
	c.rawVersion.Append(r.RawVersion)
	appendTimestamp(c.bridgeTS, r.BridgeTS, r.BridgeTSValid)
	appendBytesAsString(c.traceparent, r.Traceparent)
	c.eventDate.Append(d.date)
	rb.b.rows++
}

// Flush returns the rows appended so far as one Batch per event_date, in
// date order, and empties the builder.
func (rb *ReadingBuilder) Flush() []Batch { return rb.b.flush() }

// deadLetterColumns are the typed builders of DeadLettersArrowSchema's columns.
type deadLetterColumns struct {
	payload                                    *array.BinaryBuilder
	code, detail, stage, mqttTopic, kafkaTopic *array.StringBuilder
	partition                                  *array.Int32Builder
	offset, rawVersion                         *array.Int64Builder
	bridgeTS, failedAt                         *array.TimestampBuilder
	failedDate                                 *array.Date32Builder
}

func bindDeadLetters(rb *array.RecordBuilder) deadLetterColumns {
	s := func(i int) *array.StringBuilder { return rb.Field(i).(*array.StringBuilder) }
	return deadLetterColumns{
		payload: rb.Field(0).(*array.BinaryBuilder), code: s(1), detail: s(2), stage: s(3),
		mqttTopic: s(4), kafkaTopic: s(5), partition: rb.Field(6).(*array.Int32Builder),
		offset: rb.Field(7).(*array.Int64Builder), rawVersion: rb.Field(8).(*array.Int64Builder),
		bridgeTS: rb.Field(9).(*array.TimestampBuilder), failedAt: rb.Field(10).(*array.TimestampBuilder),
		failedDate: rb.Field(11).(*array.Date32Builder),
	}
}

// DeadLetterBuilder collects dead letters into one record batch per
// failed_date. It is not safe for concurrent use.
type DeadLetterBuilder struct {
	b byDate[deadLetterColumns]
}

// NewDeadLetterBuilder returns an empty DeadLetterBuilder allocating from mem
// (nil: Go's allocator).
func NewDeadLetterBuilder(mem memory.Allocator) *DeadLetterBuilder {
	return &DeadLetterBuilder{b: newByDate(mem, DeadLettersArrowSchema, bindDeadLetters)}
}

// Rows is the number of rows appended since the last Flush.
func (db *DeadLetterBuilder) Rows() int { return db.b.rows }

// Append adds dl to the batch of its failed_date (the UTC date of
// dl.FailedAt).
func (db *DeadLetterBuilder) Append(dl *DeadLetter) {
	d := db.b.at(dl.FailedAt)
	c := &d.cols
	if dl.RawPayload == nil {
		c.payload.AppendNull()
	} else {
		c.payload.Append(dl.RawPayload)
	}
	c.code.Append(dl.ErrorCode)
	c.detail.Append(dl.ErrorDetail)
	c.stage.Append(dl.Stage)
	appendString(c.mqttTopic, dl.MQTTTopic, dl.MQTTTopicValid)
	c.kafkaTopic.Append(dl.KafkaTopic)
	c.partition.Append(dl.KafkaPartition)
	c.offset.Append(dl.KafkaOffset)
	c.rawVersion.Append(dl.RawVersion)
	appendTimestamp(c.bridgeTS, dl.BridgeTS, dl.BridgeTSValid)
	c.failedAt.Append(arrow.Timestamp(dl.FailedAt))
	c.failedDate.Append(d.date)
	db.b.rows++
}

// Flush returns the rows appended so far as one Batch per failed_date, in
// date order, and empties the builder.
func (db *DeadLetterBuilder) Flush() []Batch { return db.b.flush() }

// discard drops the rows appended since the last flush.
func (b *byDate[C]) discard() {
	for _, batch := range b.flush() {
		batch.Record.Release()
	}
}

// Discard drops the rows appended since the last Flush (a batch abandoned
// before its commit).
func (rb *ReadingBuilder) Discard() { rb.b.discard() }

// Discard drops the rows appended since the last Flush (a batch abandoned
// before its commit).
func (db *DeadLetterBuilder) Discard() { db.b.discard() }
