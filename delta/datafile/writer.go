package datafile

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet"
	"github.com/apache/arrow-go/v18/parquet/compress"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"
	pqschema "github.com/apache/arrow-go/v18/parquet/schema"
	"github.com/google/uuid"

	"github.com/plantlake/plantlake/delta"
	"github.com/plantlake/plantlake/delta/storage"
)

// Compression names a Parquet codec Delta readers all understand.
type Compression int

// Codecs.
const (
	// Snappy is Spark's default: fast, moderate ratio.
	Snappy Compression = iota
	// Zstd compresses better at some CPU cost.
	Zstd
)

func (c Compression) codec() compress.Compression {
	if c == Zstd {
		return compress.Codecs.Zstd
	}
	return compress.Codecs.Snappy
}

func (c Compression) suffix() string {
	if c == Zstd {
		return "zstd"
	}
	return "snappy"
}

// ErrInvalidBatch is returned for a record batch that cannot become a Delta data file: an
// unsigned integer column, a partition column value that is not one value per file, and the like.
var ErrInvalidBatch = errors.New("datafile: invalid record batch")

// Options says how to write one data file.
type Options struct {
	// PartitionColumns are the table's partition columns in table order; empty for an
	// unpartitioned table. Columns of that name in the batch are not written to the file.
	PartitionColumns []string
	// PartitionValues are the file's serialized partition values (see FormatPartitionValue);
	// "" or a missing key is null.
	PartitionValues map[string]string
	// Compression is the Parquet codec; Snappy when zero.
	Compression Compression
	// StringPrefix is how many characters of strings go into min/max stats; 32 when zero.
	StringPrefix int
	// RowGroupRows caps a Parquet row group's rows; 1,048,576 when zero.
	RowGroupRows int64
	// Allocator is used for Parquet encoding; memory.DefaultAllocator when nil.
	Allocator memory.Allocator
	// Tags are copied into add.tags.
	Tags map[string]string
	// PlainColumns names top-level columns whose strings, nested ones included, are written
	// without dictionary encoding. Strings are dictionary-encoded by default, which suits
	// columns of few distinct values but costs a hash-table insert (and, in arrow-go, an
	// allocation) per value; for a column read rarely, or of very many short repeated values
	// that Snappy compresses anyway, plain encoding is the cheaper trade.
	PlainColumns []string
}

// Write writes the rows of recs (which share one schema) as one Parquet file in store, under
// the partition's directory, and returns the add action that names it: its exact size and
// modification time, dataChange=true, the partition values and the stats of the rows.
// An empty recs or recs without rows is an error: Delta has no use for an empty file.
func Write(ctx context.Context, store storage.Store, opts Options, recs ...arrow.RecordBatch) (delta.Add, error) {
	buf := encodeBuffers.Get().(*bytes.Buffer)
	defer putEncodeBuffer(buf)
	stats, err := encodeTo(buf, opts, recs...)
	if err != nil {
		return delta.Add{}, err
	}
	return storeFile(ctx, store, opts.PartitionColumns, opts.PartitionValues, opts.Compression.suffix(), buf.Bytes(), stats, opts.Tags)
}

// storeFile writes data as a new data file of the partition (its codec named in the file name,
// as Spark does) and returns its add: exact size and modification time, dataChange=true.
func storeFile(ctx context.Context, store storage.Store, partCols []string, partValues map[string]string, codec string, data []byte, stats *Stats, tags map[string]string) (delta.Add, error) {
	name := fmt.Sprintf("part-00000-%s-c000.%s.parquet", uuid.NewString(), codec)
	rel := name
	if len(partCols) > 0 {
		rel = PartitionDir(partCols, partValues) + "/" + name
	}
	if err := store.WriteFile(ctx, rel, data); err != nil {
		return delta.Add{}, fmt.Errorf("datafile: write %s: %w", rel, err)
	}
	fi, err := store.Stat(ctx, rel)
	if err != nil {
		return delta.Add{}, fmt.Errorf("datafile: stat %s: %w", rel, err)
	}
	if fi.Size != int64(len(data)) {
		return delta.Add{}, fmt.Errorf("datafile: %s has %d bytes after writing %d", rel, fi.Size, len(data))
	}
	statsJSON, err := stats.JSON()
	if err != nil {
		return delta.Add{}, err
	}
	pv := map[string]string{}
	for _, c := range partCols {
		pv[c] = partValues[c]
	}
	add := delta.Add{
		Path:             delta.EncodePath(rel),
		PartitionValues:  pv,
		Size:             int64(len(data)),
		ModificationTime: fi.ModTime.UnixMilli(),
		DataChange:       true,
		Stats:            statsJSON,
	}
	if len(tags) > 0 {
		add.Tags = tags
	}
	return add, nil
}

// encodeBuffers holds the buffers Write encodes files into: a file is a few megabytes, and a
// buffer grown afresh for every file costs as much CPU in allocation and zeroing as Snappy.
var encodeBuffers = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// maxPooledBuffer is the largest buffer kept for the next file; a rare huge file's buffer is
// left to the garbage collector.
const maxPooledBuffer = 64 << 20

func putEncodeBuffer(b *bytes.Buffer) {
	if b.Cap() > maxPooledBuffer {
		return
	}
	b.Reset()
	encodeBuffers.Put(b)
}

// Encode returns recs as the bytes of one Parquet file, partition columns left out, and the
// Delta stats of the rows written.
func Encode(opts Options, recs ...arrow.RecordBatch) ([]byte, *Stats, error) {
	var buf bytes.Buffer
	stats, err := encodeTo(&buf, opts, recs...)
	if err != nil {
		return nil, nil, err
	}
	return buf.Bytes(), stats, nil
}

// encodeTo writes recs to buf as one Parquet file and returns the stats of the rows.
func encodeTo(buf *bytes.Buffer, opts Options, recs ...arrow.RecordBatch) (*Stats, error) {
	if len(recs) == 0 {
		return nil, fmt.Errorf("%w: no record batches", ErrInvalidBatch)
	}
	var rows int64
	for _, r := range recs {
		rows += r.NumRows()
	}
	if rows == 0 {
		return nil, fmt.Errorf("%w: no rows", ErrInvalidBatch)
	}
	mem := opts.Allocator
	if mem == nil {
		mem = memory.DefaultAllocator
	}
	keep, schema, err := dataColumns(recs[0].Schema(), opts.PartitionColumns)
	if err != nil {
		return nil, err
	}
	for _, r := range recs[1:] {
		if !r.Schema().Equal(recs[0].Schema()) {
			return nil, fmt.Errorf("%w: batches have different schemas: %s and %s", ErrInvalidBatch, recs[0].Schema(), r.Schema())
		}
	}
	rgRows := opts.RowGroupRows
	if rgRows <= 0 {
		rgRows = 1 << 20
	}
	arrProps := pqarrow.NewArrowWriterProperties(pqarrow.WithAllocator(mem))
	props := writerProperties(schema, arrProps, opts, mem, rgRows, writeBatchSize(recs, keep))
	fw, err := pqarrow.NewFileWriter(schema, buf, props, arrProps)
	if err != nil {
		return nil, fmt.Errorf("datafile: parquet writer for %s: %w", schema, err)
	}
	sc := newStatsCollector(schema, opts.StringPrefix)
	// One batch is written straight to the output, a column at a time; several are buffered
	// so that they share row groups.
	write := fw.Write
	if len(recs) > 1 {
		write = fw.WriteBuffered
	}
	for _, r := range recs {
		if r.NumRows() == 0 {
			continue
		}
		proj := project(r, keep, schema)
		sc.add(proj)
		err := write(proj)
		proj.Release()
		if err != nil {
			fw.Close()
			return nil, fmt.Errorf("datafile: encode parquet: %w", err)
		}
	}
	if err := fw.Close(); err != nil {
		return nil, fmt.Errorf("datafile: finish parquet: %w", err)
	}
	return sc.result(), nil
}

// writerProperties returns the Parquet writer properties of a file of schema.
//
// Dictionary encoding costs a hash insert per value and pays only for repeated values:
// strings (topics, keys, names) keep it unless opts.PlainColumns says otherwise; numbers,
// timestamps and binary payloads, mostly distinct, are written plain. Binary columns get no
// Parquet min/max (Delta readers skip files by the log's stats, which have none for binary
// either).
func writerProperties(schema *arrow.Schema, arrProps pqarrow.ArrowWriterProperties, opts Options, mem memory.Allocator, rgRows, batchSize int64) *parquet.WriterProperties {
	popts := []parquet.WriterProperty{
		parquet.WithAllocator(mem),
		parquet.WithBatchSize(batchSize),
		parquet.WithCompression(opts.Compression.codec()),
		parquet.WithMaxRowGroupLength(rgRows),
		parquet.WithCreatedBy("plantlake delta/datafile (arrow-go v18)"),
		parquet.WithStats(true),
		parquet.WithDictionaryDefault(false),
	}
	plain := map[string]bool{}
	for _, c := range opts.PlainColumns {
		plain[strings.ToLower(c)] = true
	}
	pqs, err := pqarrow.ToParquet(schema, parquet.NewWriterProperties(popts...), arrProps)
	if err != nil {
		// NewFileWriter converts the schema again and reports the error.
		return parquet.NewWriterProperties(popts...)
	}
	for i := 0; i < pqs.NumColumns(); i++ {
		col := pqs.Column(i)
		if col.PhysicalType() != parquet.Types.ByteArray {
			continue
		}
		path := col.ColumnPath()
		switch {
		case !col.LogicalType().Equals(pqschema.StringLogicalType{}):
			popts = append(popts, parquet.WithStatsPath(path, false))
		case !plain[strings.ToLower(path[0])]:
			popts = append(popts, parquet.WithDictionaryPath(path, true))
		}
	}
	return parquet.NewWriterProperties(popts...)
}

// writeBatchSize is how many values of a column the Parquet writer encodes between two checks of
// the page size: as many as fill a quarter of a data page of the widest column in recs (by the
// average bytes of variable-length values per row), at most Parquet's default of 1024 and at
// least 1.
//
// The writer closes a page only between batches, once the page has reached the page size, so a
// batch of wide values makes a page as large as the batch, held three times over while it is
// built (the encoder's buffer, the page, its compressed copy): with the default of 1024 values,
// 64 KiB payloads made pages of 16 MiB (a whole batch of ingest) and 75 MB of Go heap in the
// writer. With a quarter page per batch a page ends within a quarter past the page size. Columns
// of values under 256 bytes a row keep the default, so the per-batch overhead is unchanged where
// it would matter. Only the values count, not how their buffers are padded, so that equal rows
// make equal files.
func writeBatchSize(recs []arrow.RecordBatch, keep []int) int64 {
	var rows, widest int64
	for _, r := range recs {
		rows += r.NumRows()
	}
	for _, k := range keep {
		var n int64
		for _, r := range recs {
			n += valueBytes(r.Column(k))
		}
		widest = max(widest, n)
	}
	if rows == 0 || widest == 0 {
		return parquet.DefaultWriteBatchSize
	}
	return min(max(parquet.DefaultDataPageSize/4/(widest/rows+1), 1), parquet.DefaultWriteBatchSize)
}

// valueBytes is the size of the strings and binaries (fixed-size ones included) in a and its
// children; other fixed-width values are left out, as they are at most 32 bytes. A sliced list
// counts all its child's values, which only makes the batch size smaller.
func valueBytes(a arrow.Array) int64 {
	if a.Len() == 0 {
		return 0
	}
	// Lists have ValueOffsets of another signature, so only strings and binaries match here.
	switch a := a.(type) {
	case interface{ ValueOffsets() []int32 }:
		offs := a.ValueOffsets()
		return int64(offs[len(offs)-1] - offs[0])
	case interface{ ValueOffsets() []int64 }:
		offs := a.ValueOffsets()
		return offs[len(offs)-1] - offs[0]
	}
	var n int64
	switch a := a.(type) {
	case *array.FixedSizeBinary:
		n = int64(a.Len()) * int64(a.DataType().(*arrow.FixedSizeBinaryType).ByteWidth)
	case array.ListLike:
		n = valueBytes(a.ListValues())
	case *array.Struct:
		for i := range a.NumField() {
			n += valueBytes(a.Field(i))
		}
	}
	return n
}

// dataColumns returns the indices and schema of the columns stored in the file (all but the
// partition columns) and checks that each has a Delta type.
func dataColumns(sc *arrow.Schema, partitionCols []string) ([]int, *arrow.Schema, error) {
	part := map[string]bool{}
	for _, c := range partitionCols {
		part[strings.ToLower(c)] = true
	}
	var keep []int
	var fields []arrow.Field
	for i, f := range sc.Fields() {
		if part[strings.ToLower(f.Name)] {
			continue
		}
		if err := checkDeltaType(f.Type); err != nil {
			return nil, nil, fmt.Errorf("%w: column %q: %w", ErrInvalidBatch, f.Name, err)
		}
		keep = append(keep, i)
		fields = append(fields, f)
	}
	if len(fields) == 0 {
		return nil, nil, fmt.Errorf("%w: no data columns besides the partition columns", ErrInvalidBatch)
	}
	md := sc.Metadata()
	return keep, arrow.NewSchema(fields, &md), nil
}

// checkDeltaType refuses Arrow types Delta has no type for.
func checkDeltaType(t arrow.DataType) error {
	switch t := t.(type) {
	case *arrow.Uint8Type, *arrow.Uint16Type, *arrow.Uint32Type, *arrow.Uint64Type:
		return fmt.Errorf("unsigned integer %s has no Delta type", t)
	case *arrow.Float16Type:
		return fmt.Errorf("%s has no Delta type", t)
	case *arrow.StructType:
		if t.NumFields() == 0 {
			return errors.New("empty struct")
		}
		for _, f := range t.Fields() {
			if err := checkDeltaType(f.Type); err != nil {
				return fmt.Errorf("field %q: %w", f.Name, err)
			}
		}
	case *arrow.ListType:
		return checkDeltaType(t.Elem())
	case *arrow.MapType:
		if err := checkDeltaType(t.KeyType()); err != nil {
			return err
		}
		return checkDeltaType(t.ItemType())
	}
	return nil
}

func project(r arrow.RecordBatch, keep []int, schema *arrow.Schema) arrow.RecordBatch {
	cols := make([]arrow.Array, len(keep))
	for i, k := range keep {
		cols[i] = r.Column(k)
	}
	return array.NewRecordBatch(schema, cols, r.NumRows())
}
