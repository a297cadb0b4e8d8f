package rawtable

import (
	"sync/atomic"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// microsPerDay is the length of an ingest_date in Unix microseconds.
const microsPerDay = 86_400_000_000

// maxBuffers is the most Arrow buffers one batch has: ten columns, the
// headers' struct children, offsets, data and validity bitmaps.
const maxBuffers = 24

// columns holds the rows of one ingest_date in the layout of the Arrow arrays
// they become at Flush: offsets and data of the variable-length columns,
// values of the fixed-width ones, validity bitmaps of the nullable ones.
// Appending to plain slices costs a fraction of arrow-go's typed builders,
// which check capacity and update a bitmap on each of the ~25 appends a row
// takes.
type columns struct {
	mem  memory.Allocator
	pool *pool

	date arrow.Date32
	// lo and hi bound date's Unix microseconds, [lo, hi): a row whose ingest
	// time falls in between needs no date computation.
	lo, hi int64

	rows    int
	rowCap  int // rows the per-row slices have room for
	headers int
	hdrCap  int // headers the per-header slices have room for

	topicOff    []int32
	topicData   []byte
	partition   []int32
	offset      []int64
	timestamp   []int64
	tsValid     validity
	keyOff      []int32
	keyData     []byte
	keyValid    validity
	listOff     []int32
	hkeyOff     []int32
	hkeyData    []byte
	hvalOff     []int32
	hvalData    []byte
	hvalValid   validity
	bridgeTS    []int64
	bridgeValid validity
	payloadOff  []int32
	payloadData []byte
	payValid    validity
	ingestTS    []int64
	ingestDate  []int32

	// refs counts the flushed batch's buffers not yet freed, plus one while
	// the batch is being assembled; at zero the set goes back to the pool.
	refs      atomic.Int64
	nbuf      int
	recyclers [maxBuffers]recycler
}

// validity is a validity bitmap made only once a null occurs: until then
// every value is valid and nothing is stored.
type validity struct {
	bits  []byte
	nulls int
}

// add records whether value i (the next one) is valid. Callers skip it for a
// valid value while there are no nulls.
func (v *validity) add(mem memory.Allocator, i int, valid bool) {
	if v.nulls == 0 {
		if valid {
			return
		}
		// The first null: the i values before it were valid.
		v.bits = v.bits[:0]
		if n := i/8 + 1; cap(v.bits) < n {
			v.bits = grow(mem, v.bits, n)
		}
		for range i / 8 {
			v.bits = append(v.bits, 0xff)
		}
		if i%8 != 0 {
			v.bits = append(v.bits, byte(1)<<(i%8)-1)
		}
	}
	if i%8 == 0 {
		if len(v.bits) == cap(v.bits) {
			v.bits = grow(mem, v.bits, 1)
		}
		v.bits = append(v.bits, 0)
	}
	if valid {
		v.bits[i/8] |= 1 << (i % 8)
	} else {
		v.nulls++
	}
}

// reset empties c for a batch of another date, keeping its memory.
func (c *columns) reset() {
	c.rows, c.headers = 0, 0
	c.topicOff = startOffsets(c.mem, c.topicOff)
	c.topicData = c.topicData[:0]
	c.partition = c.partition[:0]
	c.offset = c.offset[:0]
	c.timestamp = c.timestamp[:0]
	c.tsValid = validity{bits: c.tsValid.bits[:0]}
	c.keyOff = startOffsets(c.mem, c.keyOff)
	c.keyData = c.keyData[:0]
	c.keyValid = validity{bits: c.keyValid.bits[:0]}
	c.listOff = startOffsets(c.mem, c.listOff)
	c.hkeyOff = startOffsets(c.mem, c.hkeyOff)
	c.hkeyData = c.hkeyData[:0]
	c.hvalOff = startOffsets(c.mem, c.hvalOff)
	c.hvalData = c.hvalData[:0]
	c.hvalValid = validity{bits: c.hvalValid.bits[:0]}
	c.bridgeTS = c.bridgeTS[:0]
	c.bridgeValid = validity{bits: c.bridgeValid.bits[:0]}
	c.payloadOff = startOffsets(c.mem, c.payloadOff)
	c.payloadData = c.payloadData[:0]
	c.payValid = validity{bits: c.payValid.bits[:0]}
	c.ingestTS = c.ingestTS[:0]
	c.ingestDate = c.ingestDate[:0]
	c.setCaps()
}

// startOffsets returns off holding the single offset 0 of an empty column.
func startOffsets(mem memory.Allocator, off []int32) []int32 {
	off = off[:0]
	if cap(off) == 0 {
		off = grow(mem, off, 1)
	}
	return append(off, 0)
}

// setDate makes c the columns of date's rows.
func (c *columns) setDate(date arrow.Date32) {
	c.date = date
	c.lo = int64(date) * microsPerDay
	c.hi = c.lo + microsPerDay
}

// setCaps computes rowCap and hdrCap from the slices' capacities.
func (c *columns) setCaps() {
	c.rowCap = min(
		cap(c.topicOff)-1, cap(c.keyOff)-1, cap(c.listOff)-1, cap(c.payloadOff)-1,
		cap(c.partition), cap(c.offset), cap(c.timestamp), cap(c.bridgeTS), cap(c.ingestTS), cap(c.ingestDate))
	c.hdrCap = min(cap(c.hkeyOff)-1, cap(c.hvalOff)-1)
}

// more returns s with room for extra more elements.
func more[T element](mem memory.Allocator, s []T, extra int) []T {
	if cap(s)-len(s) < extra {
		return grow(mem, s, extra)
	}
	return s
}

// growRows makes room for at least one more row in every per-row slice.
func (c *columns) growRows() {
	c.topicOff = more(c.mem, c.topicOff, 1)
	c.keyOff = more(c.mem, c.keyOff, 1)
	c.listOff = more(c.mem, c.listOff, 1)
	c.payloadOff = more(c.mem, c.payloadOff, 1)
	c.partition = more(c.mem, c.partition, 1)
	c.offset = more(c.mem, c.offset, 1)
	c.timestamp = more(c.mem, c.timestamp, 1)
	c.bridgeTS = more(c.mem, c.bridgeTS, 1)
	c.ingestTS = more(c.mem, c.ingestTS, 1)
	c.ingestDate = more(c.mem, c.ingestDate, 1)
	c.setCaps()
}

// growHeaders makes room for at least n more headers.
func (c *columns) growHeaders(n int) {
	c.hkeyOff = more(c.mem, c.hkeyOff, n)
	c.hvalOff = more(c.mem, c.hvalOff, n)
	c.setCaps()
}

// appendNullable appends value as element i of a variable-length column:
// its bytes to data and its end to off; nil is a null in v.
func appendNullable(mem memory.Allocator, v *validity, i int, data []byte, off []int32, value []byte) ([]byte, []int32) {
	if value == nil {
		v.add(mem, i, false)
	} else {
		if v.nulls > 0 {
			v.add(mem, i, true)
		}
		data = appendData(mem, data, value)
	}
	return data, append(off, int32(len(data)))
}

// append adds r, ingested at ingestMicros, and returns its event time
// (bridge_ts, else Kafka timestamp) in Unix microseconds, 0 if it has
// neither.
func (c *columns) append(r *Row, ingestMicros int64) (eventMicros int64) {
	if c.rows == c.rowCap {
		c.growRows()
	}
	i := c.rows
	mem := c.mem

	c.topicData = appendData(mem, c.topicData, r.Topic)
	c.topicOff = append(c.topicOff, int32(len(c.topicData)))
	c.partition = append(c.partition, r.Partition)
	c.offset = append(c.offset, r.Offset)

	var ts int64
	if r.Timestamp.IsZero() {
		c.tsValid.add(mem, i, false)
	} else {
		ts = r.Timestamp.UnixMicro()
		eventMicros = ts
		if c.tsValid.nulls > 0 {
			c.tsValid.add(mem, i, true)
		}
	}
	c.timestamp = append(c.timestamp, ts)

	c.keyData, c.keyOff = appendNullable(mem, &c.keyValid, i, c.keyData, c.keyOff, r.Key)

	bridgeTS, bridgeOK := int64(0), false
	if n := len(r.Headers); n > 0 {
		if c.headers+n > c.hdrCap {
			c.growHeaders(n)
		}
		for j := range r.Headers {
			h := &r.Headers[j]
			c.hkeyData = appendData(mem, c.hkeyData, h.Key)
			c.hkeyOff = append(c.hkeyOff, int32(len(c.hkeyData)))
			c.hvalData, c.hvalOff = appendNullable(mem, &c.hvalValid, c.headers+j, c.hvalData, c.hvalOff, h.Value)
			if !bridgeOK && h.Key == BridgeTimestampHeader {
				bridgeTS, bridgeOK = ParseBridgeTimestamp(h.Value)
			}
		}
		c.headers += n
	}
	c.listOff = append(c.listOff, int32(c.headers))

	if bridgeOK {
		eventMicros = bridgeTS
		if c.bridgeValid.nulls > 0 {
			c.bridgeValid.add(mem, i, true)
		}
	} else {
		c.bridgeValid.add(mem, i, false)
	}
	c.bridgeTS = append(c.bridgeTS, bridgeTS)

	c.payloadData, c.payloadOff = appendNullable(mem, &c.payValid, i, c.payloadData, c.payloadOff, r.Payload)

	c.ingestTS = append(c.ingestTS, ingestMicros)
	c.ingestDate = append(c.ingestDate, int32(c.date))
	c.rows++
	return eventMicros
}

// record wraps the columns as the arrays of a record batch, without copying.
// c must not be appended to afterwards: it goes back to the pool when the
// batch's last buffer is released.
func (c *columns) record() arrow.RecordBatch {
	c.refs.Store(1)
	c.nbuf = 0
	n := c.rows

	hkey := c.arrayData(arrow.BinaryTypes.String, c.headers, 0, nil,
		nil, c.buffer(bytesOf(c.hkeyOff)), c.buffer(c.hkeyData))
	hval := c.arrayData(arrow.BinaryTypes.Binary, c.headers, c.hvalValid.nulls, nil,
		c.validityBuffer(&c.hvalValid), c.buffer(bytesOf(c.hvalOff)), c.buffer(c.hvalData))
	header := c.arrayData(HeaderType, c.headers, 0, []arrow.ArrayData{hkey, hval}, nil)
	hkey.Release()
	hval.Release()

	var cols [numColumns]arrow.ArrayData
	cols[colTopic] = c.arrayData(ArrowSchema.Field(colTopic).Type, n, 0, nil,
		nil, c.buffer(bytesOf(c.topicOff)), c.buffer(c.topicData))
	cols[colPartition] = c.arrayData(ArrowSchema.Field(colPartition).Type, n, 0, nil,
		nil, c.buffer(bytesOf(c.partition)))
	cols[colOffset] = c.arrayData(ArrowSchema.Field(colOffset).Type, n, 0, nil,
		nil, c.buffer(bytesOf(c.offset)))
	cols[colTimestamp] = c.arrayData(ArrowSchema.Field(colTimestamp).Type, n, c.tsValid.nulls, nil,
		c.validityBuffer(&c.tsValid), c.buffer(bytesOf(c.timestamp)))
	cols[colKey] = c.arrayData(ArrowSchema.Field(colKey).Type, n, c.keyValid.nulls, nil,
		c.validityBuffer(&c.keyValid), c.buffer(bytesOf(c.keyOff)), c.buffer(c.keyData))
	cols[colHeaders] = c.arrayData(ArrowSchema.Field(colHeaders).Type, n, 0, []arrow.ArrayData{header},
		nil, c.buffer(bytesOf(c.listOff)))
	header.Release()
	cols[colBridgeTS] = c.arrayData(ArrowSchema.Field(colBridgeTS).Type, n, c.bridgeValid.nulls, nil,
		c.validityBuffer(&c.bridgeValid), c.buffer(bytesOf(c.bridgeTS)))
	cols[colPayload] = c.arrayData(ArrowSchema.Field(colPayload).Type, n, c.payValid.nulls, nil,
		c.validityBuffer(&c.payValid), c.buffer(bytesOf(c.payloadOff)), c.buffer(c.payloadData))
	cols[colIngestTS] = c.arrayData(ArrowSchema.Field(colIngestTS).Type, n, 0, nil,
		nil, c.buffer(bytesOf(c.ingestTS)))
	cols[colIngestDate] = c.arrayData(ArrowSchema.Field(colIngestDate).Type, n, 0, nil,
		nil, c.buffer(bytesOf(c.ingestDate)))

	arrs := make([]arrow.Array, numColumns)
	for i, d := range cols {
		arrs[i] = array.MakeFromData(d)
		d.Release()
	}
	rec := array.NewRecordBatch(ArrowSchema, arrs, int64(n))
	for _, a := range arrs {
		a.Release()
	}
	// The record holds every buffer now: drop the assembly's reference.
	c.unref()
	return rec
}

// arrayData returns the array data of type dt, length n, with nulls nulls
// and the given children and buffers; it takes over the caller's references to them.
func (c *columns) arrayData(dt arrow.DataType, n, nulls int, children []arrow.ArrayData, buffers ...*memory.Buffer) arrow.ArrayData {
	d := array.NewData(dt, n, buffers, children, nulls, 0)
	for _, b := range buffers {
		if b != nil {
			b.Release()
		}
	}
	return d
}

// buffer wraps b as a buffer of the batch being flushed; its release counts
// towards returning c to the pool.
func (c *columns) buffer(b []byte) *memory.Buffer {
	r := &c.recyclers[c.nbuf]
	c.nbuf++
	r.c = c
	r.freed.Store(false)
	c.refs.Add(1)
	return memory.NewBufferWithAllocator(b, r)
}

// validityBuffer wraps v's bitmap, or returns nil if v has no nulls.
func (c *columns) validityBuffer(v *validity) *memory.Buffer {
	if v.nulls == 0 {
		return nil
	}
	return c.buffer(v.bits)
}

// unref drops one reference to c's memory; the last returns c to the pool.
func (c *columns) unref() {
	if c.refs.Add(-1) == 0 {
		c.pool.put(c)
	}
}

// capBytes is the memory c holds.
func (c *columns) capBytes() int {
	return cap(c.topicOff)*4 + cap(c.topicData) + cap(c.partition)*4 + cap(c.offset)*8 +
		cap(c.timestamp)*8 + cap(c.tsValid.bits) + cap(c.keyOff)*4 + cap(c.keyData) + cap(c.keyValid.bits) +
		cap(c.listOff)*4 + cap(c.hkeyOff)*4 + cap(c.hkeyData) + cap(c.hvalOff)*4 + cap(c.hvalData) +
		cap(c.hvalValid.bits) + cap(c.bridgeTS)*8 + cap(c.bridgeValid.bits) + cap(c.payloadOff)*4 +
		cap(c.payloadData) + cap(c.payValid.bits) + cap(c.ingestTS)*8 + cap(c.ingestDate)*4
}

// freeMemory gives c's memory back to its allocator; c is not used afterwards.
func (c *columns) freeMemory() {
	mem := c.mem
	release(mem, c.topicOff)
	release(mem, c.topicData)
	release(mem, c.partition)
	release(mem, c.offset)
	release(mem, c.timestamp)
	release(mem, c.tsValid.bits)
	release(mem, c.keyOff)
	release(mem, c.keyData)
	release(mem, c.keyValid.bits)
	release(mem, c.listOff)
	release(mem, c.hkeyOff)
	release(mem, c.hkeyData)
	release(mem, c.hvalOff)
	release(mem, c.hvalData)
	release(mem, c.hvalValid.bits)
	release(mem, c.bridgeTS)
	release(mem, c.bridgeValid.bits)
	release(mem, c.payloadOff)
	release(mem, c.payloadData)
	release(mem, c.payValid.bits)
	release(mem, c.ingestTS)
	release(mem, c.ingestDate)
}
