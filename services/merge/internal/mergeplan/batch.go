package mergeplan

import (
	"context"
	"fmt"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/plantlake/plantlake/pipeline"

	"github.com/plantlake/plantlake/services/merge/internal/gold"
)

// rowBytes is what one buffered row costs, about: the Row struct and its
// index entry (its strings are shared through the row reader's intern table).
const rowBytes = 200

// TraceparentColumn is bronze's column of a sampled reading's W3C trace
// context; the merge source reads it besides gold's columns.
const TraceparentColumn = "traceparent"

// Data is a closed batch: one row per key, the newest of the bronze rows
// that had it.
type Data struct {
	// Rows are the batch's rows, one per key, in the order their keys first came.
	Rows []gold.Row
	// Index maps each key to its row (nil when Rows is empty).
	Index map[Key]int32
	// Appended is the number of bronze rows appended; Duplicates how many
	// of them had the key of an earlier row of the batch.
	Appended, Duplicates int
}

// Batch collects bronze rows and keeps, per key, the newest (DESIGN.md:
// "newer" is a larger (raw_version, kafka_topic, kafka_partition,
// kafka_offset)). It is the pipeline batch of the merge runner; Append is
// called by the table source on the runner's goroutine.
type Batch struct {
	spec   KeySpec
	reader *gold.RowReader
	cur    Data
	hint   int
	newest int64
	// required are the bronze columns a batch cannot do without.
	required []string
	// link records a sampled row for tracing (the runner's Host.Link; nil
	// until the source starts).
	link func(trace.Link)
}

// SetLink makes Append hand every sampled bronze row (one with a
// traceparent) to link; it implements tablesource.Traced.
func (b *Batch) SetLink(link func(trace.Link)) { b.link = link }

// traced hands rec's sampled rows to b.link.
func (b *Batch) traced(version int64, rec arrow.RecordBatch) {
	idx := rec.Schema().FieldIndices(TraceparentColumn)
	if len(idx) == 0 {
		return
	}
	col, ok := rec.Column(idx[0]).(*array.String)
	if !ok || col.NullN() == col.Len() {
		return
	}
	for i := range col.Len() {
		if col.IsNull(i) {
			continue
		}
		if l, ok := pipeline.LinkFromTraceparent(col.Value(i), attribute.Int64("plantlake.source.version", version)); ok {
			b.link(l)
		}
	}
}

// NewBatch returns an empty batch deduplicating on spec.
func NewBatch(spec KeySpec) *Batch {
	b := &Batch{spec: spec, reader: gold.NewRowReader()}
	b.required = append(spec.Columns(), gold.OrderColumns...)
	b.required = append(b.required, gold.PartitionColumn)
	b.reset()
	return b
}

// maxSizeHint caps the rows a new batch is sized for: a stream's small
// batches start at their size, a large batch (catching up) grows as it
// goes instead of holding its size while the last one is still merged.
const maxSizeHint = 32 << 10

// reset starts a new batch. Its index and rows are made by its first row,
// sized for a quarter more keys than the last batch held, up to
// maxSizeHint (a stream's batches are alike but not equal; growing the
// index and the rows step by step cost a tenth of Append, and a batch a
// row larger than the last copied all its rows once more).
func (b *Batch) reset() {
	b.hint = min(len(b.cur.Rows)+len(b.cur.Rows)/4, maxSizeHint)
	b.cur = Data{}
	b.newest = 0
}

// Append adds the rows of rec, a record batch of bronze version version.
func (b *Batch) Append(_ context.Context, version int64, rec arrow.RecordBatch) error {
	if err := b.reader.Bind(rec, b.required); err != nil {
		return fmt.Errorf("bronze version %d: %w", version, err)
	}
	var r gold.Row
	for i := range int(rec.NumRows()) {
		b.reader.Read(i, &r)
		r.BronzeVersion = version
		r.Nulls &^= 1 << gold.ColBronzeVersion
		b.add(&r)
	}
	if b.link != nil {
		b.traced(version, rec)
	}
	return nil
}

// add keeps r unless the batch holds a newer row of its key.
func (b *Batch) add(r *gold.Row) {
	b.cur.Appended++
	if !r.Null(gold.ColBridgeTS) && r.BridgeTS > b.newest {
		b.newest = r.BridgeTS
	}
	k := b.spec.Key(r)
	if b.cur.Index == nil {
		b.cur.Index = make(map[Key]int32, b.hint)
		b.cur.Rows = make([]gold.Row, 0, b.hint)
	}
	if i, ok := b.cur.Index[k]; ok {
		b.cur.Duplicates++
		if r.Newer(&b.cur.Rows[i]) {
			b.cur.Rows[i] = *r
		}
		return
	}
	b.cur.Index[k] = int32(len(b.cur.Rows))
	b.cur.Rows = append(b.cur.Rows, *r)
}

// Rows is the number of bronze rows appended since the last Flush.
func (b *Batch) Rows() int { return b.cur.Appended }

// Bytes estimates the memory the batch holds.
func (b *Batch) Bytes() int { return len(b.cur.Rows) * rowBytes }

// Newest is the newest bridge_ts appended: when the newest reading reached
// the pipeline, as deserialize and ingest count it (a device's own ts can run
// ahead of the pipeline's clock, and a late reading's lags far behind).
func (b *Batch) Newest() time.Time {
	if b.newest == 0 {
		return time.Time{}
	}
	return time.UnixMicro(b.newest).UTC()
}

// Flush returns the batch and starts a new one.
func (b *Batch) Flush() *Data {
	d := b.cur
	b.reset()
	return &d
}

// Release lets the garbage collector have d.
func (b *Batch) Release(d *Data) { d.Rows, d.Index = nil, nil }

// Discard drops the rows appended since the last Flush.
func (b *Batch) Discard() { b.reset() }
