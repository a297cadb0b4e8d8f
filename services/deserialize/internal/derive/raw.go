package derive

import (
	"errors"
	"fmt"
	"unsafe"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
)

// ErrRawSchema is wrapped by NewRawBatch's errors about a record batch that
// is not shaped like the raw table.
var ErrRawSchema = errors.New("not a raw table record batch")

// RawBatch reads the rows of an Arrow record batch of the raw table (as a
// Parquet reader returns a data file of it) into Raw values, without
// copying: the strings and byte slices of a Raw point into the batch, which
// must outlive them. Columns are found by name; the partition column
// ingest_date may be absent, as may any column a reader left out but
// kafka_topic, kafka_partition, kafka_offset, raw_payload and ingest_ts.
type RawBatch struct {
	n         int
	topic     *array.String
	partition *array.Int32
	offset    *array.Int64
	kafkaTS   *array.Timestamp
	key       *array.String
	headers   *array.List
	hkey      *array.String
	hval      *array.Binary
	bridgeTS  *array.Timestamp
	payload   *array.Binary
	ingestTS  *array.Timestamp
}

// NewRawBatch returns a reader of rec's rows.
func NewRawBatch(rec arrow.RecordBatch) (*RawBatch, error) {
	b := &RawBatch{n: int(rec.NumRows())}
	schema := rec.Schema()
	column := func(name string, required bool) (arrow.Array, error) {
		idx := schema.FieldIndices(name)
		if len(idx) == 0 {
			if required {
				return nil, fmt.Errorf("%w: no column %s", ErrRawSchema, name)
			}
			return nil, nil
		}
		return rec.Column(idx[0]), nil
	}
	var errs []error
	bind := func(name string, required bool, set func(arrow.Array) bool) {
		a, err := column(name, required)
		if err != nil {
			errs = append(errs, err)
			return
		}
		if a != nil && !set(a) {
			errs = append(errs, fmt.Errorf("%w: column %s is of type %s", ErrRawSchema, name, a.DataType()))
		}
	}
	bind("kafka_topic", true, func(a arrow.Array) (ok bool) { b.topic, ok = a.(*array.String); return })
	bind("kafka_partition", true, func(a arrow.Array) (ok bool) { b.partition, ok = a.(*array.Int32); return })
	bind("kafka_offset", true, func(a arrow.Array) (ok bool) { b.offset, ok = a.(*array.Int64); return })
	bind("kafka_timestamp", false, func(a arrow.Array) (ok bool) { b.kafkaTS, ok = a.(*array.Timestamp); return })
	bind("kafka_key", false, func(a arrow.Array) (ok bool) { b.key, ok = a.(*array.String); return })
	bind("headers", false, func(a arrow.Array) bool {
		l, ok := a.(*array.List)
		if !ok {
			return false
		}
		st, ok := l.ListValues().(*array.Struct)
		if !ok || st.NumField() != 2 {
			return false
		}
		b.headers = l
		b.hkey, ok = st.Field(0).(*array.String)
		if !ok {
			return false
		}
		b.hval, ok = st.Field(1).(*array.Binary)
		return ok
	})
	bind("bridge_ts", false, func(a arrow.Array) (ok bool) { b.bridgeTS, ok = a.(*array.Timestamp); return })
	bind("raw_payload", true, func(a arrow.Array) (ok bool) { b.payload, ok = a.(*array.Binary); return })
	bind("ingest_ts", true, func(a arrow.Array) (ok bool) { b.ingestTS, ok = a.(*array.Timestamp); return })
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	for _, ts := range []*array.Timestamp{b.kafkaTS, b.bridgeTS, b.ingestTS} {
		if ts != nil && ts.DataType().(*arrow.TimestampType).Unit != arrow.Microsecond {
			return nil, fmt.Errorf("%w: timestamps in %s, want microseconds", ErrRawSchema, ts.DataType())
		}
	}
	return b, nil
}

// Len is the number of rows.
func (b *RawBatch) Len() int { return b.n }

// emptyBytes is a non-nil empty slice: an empty value, not a null.
var emptyBytes = []byte{}

// bytesOf returns s's bytes without copying; the caller must not modify them.
func bytesOf(s string) []byte {
	if len(s) == 0 {
		return emptyBytes
	}
	return unsafe.Slice(unsafe.StringData(s), len(s))
}

// Row reads row i into r, reusing r.Headers' memory.
func (b *RawBatch) Row(i int, r *Raw) {
	headers := r.Headers[:0]
	*r = Raw{
		KafkaTopic:     b.topic.Value(i),
		KafkaPartition: b.partition.Value(i),
		KafkaOffset:    b.offset.Value(i),
		IngestTS:       int64(b.ingestTS.Value(i)),
	}
	if b.kafkaTS != nil && b.kafkaTS.IsValid(i) {
		r.KafkaTimestamp, r.KafkaTimestampValid = int64(b.kafkaTS.Value(i)), true
	}
	if b.key != nil && b.key.IsValid(i) {
		r.KafkaKey = bytesOf(b.key.Value(i))
	}
	if b.bridgeTS != nil && b.bridgeTS.IsValid(i) {
		r.BridgeTS, r.BridgeTSValid = int64(b.bridgeTS.Value(i)), true
	}
	if b.payload.IsValid(i) {
		r.RawPayload = b.payload.Value(i)
		if r.RawPayload == nil {
			r.RawPayload = emptyBytes
		}
	}
	if b.headers != nil && b.headers.IsValid(i) {
		start, end := b.headers.ValueOffsets(i)
		for j := int(start); j < int(end); j++ {
			h := Header{Key: b.hkey.Value(j)}
			if b.hval.IsValid(j) {
				h.Value = b.hval.Value(j)
				if h.Value == nil {
					h.Value = emptyBytes
				}
			}
			headers = append(headers, h)
		}
	}
	r.Headers = headers
}
