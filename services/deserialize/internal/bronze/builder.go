package bronze

import (
	"slices"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
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

// columnSet is what byDate needs of a date's columns: to reserve room
// for a batch like the last one, so that the slices do not grow by doubling
// and copying through every batch.
type columnSet[C any] interface {
	*C
	// sizes returns the rows and the bytes of each variable-length column.
	sizes() (rows int, bytes []int)
	// reserve makes room for rows rows and the given bytes.
	reserve(rows int, bytes []int)
}

// byDate keeps the columns of each partition date.
type byDate[C any, P columnSet[C]] struct {
	mem    memory.Allocator
	schema *arrow.Schema
	record func(mem memory.Allocator, schema *arrow.Schema, cols *C) arrow.RecordBatch
	days   map[arrow.Date32]*day[C]
	cur    *day[C]
	rows   int
	// lastRows and lastBytes are the sizes of the largest date of the last
	// flush: the next batch is likely alike.
	lastRows  int
	lastBytes []int
}

// day is the columns of one date.
type day[C any] struct {
	date   arrow.Date32
	lo, hi int64
	cols   C
}

func newByDate[C any, P columnSet[C]](mem memory.Allocator, schema *arrow.Schema, record func(memory.Allocator, *arrow.Schema, *C) arrow.RecordBatch) byDate[C, P] {
	if mem == nil {
		mem = memory.NewGoAllocator()
	}
	return byDate[C, P]{mem: mem, schema: schema, record: record, days: make(map[arrow.Date32]*day[C])}
}

// at returns the columns of the date holding Unix microsecond t.
func (b *byDate[C, P]) at(t int64) *day[C] {
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
		d = &day[C]{date: date, lo: days * microsPerDay, hi: (days + 1) * microsPerDay}
		if b.lastRows > 0 && len(b.days) == 0 {
			P(&d.cols).reserve(b.lastRows, b.lastBytes)
		}
		b.days[date] = d
	}
	b.cur = d
	return d
}

// flush returns one Batch per date, in date order, and empties b.
func (b *byDate[C, P]) flush() []Batch {
	out := make([]Batch, 0, len(b.days))
	for date, d := range b.days {
		if rows, bytes := P(&d.cols).sizes(); rows > b.lastRows || len(b.days) == 1 {
			b.lastRows, b.lastBytes = rows, bytes
		}
		out = append(out, Batch{Date: date.ToTime().UTC(), Record: b.record(b.mem, b.schema, &d.cols)})
		delete(b.days, date)
	}
	slices.SortFunc(out, func(x, y Batch) int { return x.Date.Compare(y.Date) })
	b.cur = nil
	b.rows = 0
	return out
}

// discard drops the rows appended since the last flush.
func (b *byDate[C, P]) discard() {
	clear(b.days)
	b.cur = nil
	b.rows = 0
}

// readingColumns holds the rows of one event_date column by column.
type readingColumns struct {
	n                                                                  int
	sensorID, measurement, unit, plant, line, device, mqttTopic, extra varColumn
	kafkaTopic, traceparent                                            varColumn
	value                                                              fixedColumn[float64]
	ts, bridgeTS, offset, rawVersion                                   fixedColumn[int64]
	partition, eventDate                                               fixedColumn[int32]
}

func (c *readingColumns) vars() []*varColumn {
	return []*varColumn{&c.sensorID, &c.measurement, &c.unit, &c.plant, &c.line, &c.device, &c.mqttTopic, &c.extra, &c.kafkaTopic, &c.traceparent}
}

func (c *readingColumns) sizes() (int, []int) { return c.n, varSizes(c.vars()) }

func (c *readingColumns) reserve(rows int, bytes []int) {
	reserveVars(c.vars(), rows, bytes)
	c.value.reserve(rows)
	for _, f := range []*fixedColumn[int64]{&c.ts, &c.bridgeTS, &c.offset, &c.rawVersion} {
		f.reserve(rows)
	}
	c.partition.reserve(rows)
	c.eventDate.reserve(rows)
}

func readingRecord(mem memory.Allocator, schema *arrow.Schema, c *readingColumns) arrow.RecordBatch {
	return newRecord(schema, c.n, []arrow.ArrayData{
		c.sensorID.data(schema.Field(0).Type, c.n),
		c.measurement.data(schema.Field(1).Type, c.n),
		c.value.data(schema.Field(2).Type, c.n),
		c.unit.data(schema.Field(3).Type, c.n),
		c.ts.data(schema.Field(4).Type, c.n),
		c.plant.data(schema.Field(5).Type, c.n),
		c.line.data(schema.Field(6).Type, c.n),
		c.device.data(schema.Field(7).Type, c.n),
		c.mqttTopic.data(schema.Field(8).Type, c.n),
		c.extra.data(schema.Field(9).Type, c.n),
		c.kafkaTopic.data(schema.Field(10).Type, c.n),
		c.partition.data(schema.Field(11).Type, c.n),
		c.offset.data(schema.Field(12).Type, c.n),
		c.rawVersion.data(schema.Field(13).Type, c.n),
		c.bridgeTS.data(schema.Field(14).Type, c.n),
		c.traceparent.data(schema.Field(15).Type, c.n),
		c.eventDate.data(schema.Field(16).Type, c.n),
	})
}

// ReadingBuilder collects bronze rows into one record batch per event_date.
// Rows are appended to plain Go slices, which Flush wraps as the batch's
// Arrow buffers without copying (arrow-go's typed builders cost about four
// times as much per row). It is not safe for concurrent use.
type ReadingBuilder struct {
	b byDate[readingColumns, *readingColumns]
}

// NewReadingBuilder returns an empty ReadingBuilder. mem is accepted for
// symmetry with other builders; the columns are Go memory, left to the
// garbage collector once a batch's record is released.
func NewReadingBuilder(mem memory.Allocator) *ReadingBuilder {
	return &ReadingBuilder{b: newByDate[readingColumns, *readingColumns](mem, ReadingsArrowSchema, readingRecord)}
}

// Rows is the number of rows appended since the last Flush.
func (rb *ReadingBuilder) Rows() int { return rb.b.rows }

// Append adds r to the batch of its event_date (the UTC date of r.TS).
func (rb *ReadingBuilder) Append(r *Reading) {
	d := rb.b.at(r.TS)
	c := &d.cols
	i := c.n
	appendVar(&c.sensorID, i, r.SensorID, true)
	appendVar(&c.measurement, i, r.Measurement, true)
	c.value.append(i, r.Value, true)
	appendVar(&c.unit, i, r.Unit, true)
	c.ts.append(i, r.TS, true)
	appendVar(&c.plant, i, r.Plant, true)
	appendVar(&c.line, i, r.Line, r.LineValid)
	appendVar(&c.device, i, r.Device, r.DeviceValid)
	appendVar(&c.mqttTopic, i, r.MQTTTopic, r.MQTTTopicValid)
	appendVar(&c.extra, i, r.Extra, r.Extra != nil)
	appendVar(&c.kafkaTopic, i, r.KafkaTopic, true)
	c.partition.append(i, r.KafkaPartition, true)
	c.offset.append(i, r.KafkaOffset, true)
	c.rawVersion.append(i, r.RawVersion, true)
	c.bridgeTS.append(i, r.BridgeTS, r.BridgeTSValid)
	appendVar(&c.traceparent, i, r.Traceparent, r.Traceparent != nil)
	c.eventDate.append(i, int32(d.date), true)
	c.n++
	rb.b.rows++
}

// Flush returns the rows appended so far as one Batch per event_date, in
// date order, and empties the builder.
func (rb *ReadingBuilder) Flush() []Batch { return rb.b.flush() }

// Discard drops the rows appended since the last Flush (a batch abandoned
// before its commit).
func (rb *ReadingBuilder) Discard() { rb.b.discard() }

// deadLetterColumns holds the dead letters of one failed_date column by column.
type deadLetterColumns struct {
	n                                                   int
	payload, code, detail, stage, mqttTopic, kafkaTopic varColumn
	offset, rawVersion, bridgeTS, failedAt              fixedColumn[int64]
	partition, failedDate                               fixedColumn[int32]
}

func (c *deadLetterColumns) vars() []*varColumn {
	return []*varColumn{&c.payload, &c.code, &c.detail, &c.stage, &c.mqttTopic, &c.kafkaTopic}
}

func (c *deadLetterColumns) sizes() (int, []int) { return c.n, varSizes(c.vars()) }

func (c *deadLetterColumns) reserve(rows int, bytes []int) {
	reserveVars(c.vars(), rows, bytes)
	for _, f := range []*fixedColumn[int64]{&c.offset, &c.rawVersion, &c.bridgeTS, &c.failedAt} {
		f.reserve(rows)
	}
	c.partition.reserve(rows)
	c.failedDate.reserve(rows)
}

func deadLetterRecord(mem memory.Allocator, schema *arrow.Schema, c *deadLetterColumns) arrow.RecordBatch {
	return newRecord(schema, c.n, []arrow.ArrayData{
		c.payload.data(schema.Field(0).Type, c.n),
		c.code.data(schema.Field(1).Type, c.n),
		c.detail.data(schema.Field(2).Type, c.n),
		c.stage.data(schema.Field(3).Type, c.n),
		c.mqttTopic.data(schema.Field(4).Type, c.n),
		c.kafkaTopic.data(schema.Field(5).Type, c.n),
		c.partition.data(schema.Field(6).Type, c.n),
		c.offset.data(schema.Field(7).Type, c.n),
		c.rawVersion.data(schema.Field(8).Type, c.n),
		c.bridgeTS.data(schema.Field(9).Type, c.n),
		c.failedAt.data(schema.Field(10).Type, c.n),
		c.failedDate.data(schema.Field(11).Type, c.n),
	})
}

// DeadLetterBuilder collects dead letters into one record batch per
// failed_date, as ReadingBuilder does. It is not safe for concurrent use.
type DeadLetterBuilder struct {
	b byDate[deadLetterColumns, *deadLetterColumns]
}

// NewDeadLetterBuilder returns an empty DeadLetterBuilder (see
// NewReadingBuilder about mem).
func NewDeadLetterBuilder(mem memory.Allocator) *DeadLetterBuilder {
	return &DeadLetterBuilder{b: newByDate[deadLetterColumns, *deadLetterColumns](mem, DeadLettersArrowSchema, deadLetterRecord)}
}

// Rows is the number of rows appended since the last Flush.
func (db *DeadLetterBuilder) Rows() int { return db.b.rows }

// Append adds dl to the batch of its failed_date (the UTC date of
// dl.FailedAt).
func (db *DeadLetterBuilder) Append(dl *DeadLetter) {
	d := db.b.at(dl.FailedAt)
	c := &d.cols
	i := c.n
	appendVar(&c.payload, i, dl.RawPayload, dl.RawPayload != nil)
	appendVar(&c.code, i, dl.ErrorCode, true)
	appendVar(&c.detail, i, dl.ErrorDetail, true)
	appendVar(&c.stage, i, dl.Stage, true)
	appendVar(&c.mqttTopic, i, dl.MQTTTopic, dl.MQTTTopicValid)
	appendVar(&c.kafkaTopic, i, dl.KafkaTopic, true)
	c.partition.append(i, dl.KafkaPartition, true)
	c.offset.append(i, dl.KafkaOffset, true)
	c.rawVersion.append(i, dl.RawVersion, true)
	c.bridgeTS.append(i, dl.BridgeTS, dl.BridgeTSValid)
	c.failedAt.append(i, dl.FailedAt, true)
	c.failedDate.append(i, int32(d.date), true)
	c.n++
	db.b.rows++
}

// Flush returns the rows appended so far as one Batch per failed_date, in
// date order, and empties the builder.
func (db *DeadLetterBuilder) Flush() []Batch { return db.b.flush() }

// Discard drops the rows appended since the last Flush (a batch abandoned
// before its commit).
func (db *DeadLetterBuilder) Discard() { db.b.discard() }
