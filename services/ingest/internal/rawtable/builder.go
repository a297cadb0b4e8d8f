package rawtable

import (
	"slices"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
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

// Builder collects rows column by column, one set of columns per
// ingest_date, and turns them into record batches without copying. The
// memory of a flushed batch is reused for a later batch once the batch's
// record has been released, so a Builder allocates little in steady state.
// A Builder is not safe for concurrent use, but the batches it returns may be
// used and released on any goroutine.
type Builder struct {
	pool *pool
	days map[arrow.Date32]*columns
	// cur is the columns of the last row's ingest_date: most rows have the
	// same one.
	cur   *columns
	rows  int
	bytes int
	// newest is the latest bridge_ts (or, without one, Kafka timestamp) appended, in Unix microseconds.
	newest int64
}

// NewBuilder returns an empty Builder allocating its columns' memory from
// mem (nil: Go's allocator). The memory returns to mem when the pool of
// reusable columns is full and after Release.
func NewBuilder(mem memory.Allocator) *Builder {
	if mem == nil {
		mem = memory.NewGoAllocator()
	}
	return &Builder{pool: &pool{mem: mem}, days: make(map[arrow.Date32]*columns)}
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
	ingest := r.IngestTime.UnixMicro()
	c := b.cur
	if c == nil || ingest < c.lo || ingest >= c.hi {
		c = b.day(r.IngestTime)
	}
	if t := c.append(r, ingest); t > b.newest {
		b.newest = t
	}
	b.rows++
	b.bytes += r.Size()
}

// day returns the columns of the ingest_date of a row ingested at t and
// makes them current.
func (b *Builder) day(t time.Time) *columns {
	date := arrow.Date32FromTime(t.UTC())
	c := b.days[date]
	if c == nil {
		c = b.pool.get()
		c.setDate(date)
		b.days[date] = c
	}
	b.cur = c
	return c
}

// Flush returns the rows appended so far as one Batch per ingest_date, in
// date order, and empties the Builder. The batches' memory is the Builder's
// until their records are released; they may be released in any order and
// on any goroutine.
func (b *Builder) Flush() []Batch {
	var out []Batch
	for date, c := range b.days {
		out = append(out, Batch{Date: date.ToTime().UTC(), Record: c.record()})
		delete(b.days, date)
	}
	slices.SortFunc(out, func(x, y Batch) int { return x.Date.Compare(y.Date) })
	b.cur = nil
	b.rows, b.bytes, b.newest = 0, 0, 0
	return out
}

// Discard drops the rows appended since the last Flush.
func (b *Builder) Discard() {
	for _, batch := range b.Flush() {
		batch.Record.Release()
	}
}

// Release drops the rows appended since the last Flush and frees the memory
// kept for reuse; the memory of batches not yet released is freed when they
// are. The Builder must not be used afterwards.
func (b *Builder) Release() {
	b.Discard()
	b.pool.close()
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
