package delta

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/url"
	"sort"
	"strings"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet"
	"github.com/apache/arrow-go/v18/parquet/compress"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"

	"github.com/plantlake/plantlake/delta/storage"
)

// Default retentions, as in Delta Lake.
const (
	DefaultLogRetention         = 30 * 24 * time.Hour
	DefaultDeletedFileRetention = 7 * 24 * time.Hour
	DefaultCheckpointInterval   = 10
)

func nullable(name string, t arrow.DataType) arrow.Field {
	return arrow.Field{Name: name, Type: t, Nullable: true}
}

var (
	strMap  = arrow.MapOf(arrow.BinaryTypes.String, arrow.BinaryTypes.String)
	strList = arrow.ListOfField(nullable("element", arrow.BinaryTypes.String))
)

func init() {
	strMap.SetItemNullable(true)
}

// checkpointSchema is the classic V1 checkpoint schema this library writes:
// every field nullable, no empty structs, no partitionValues_parsed or
// stats_parsed, stats as a JSON string.
var checkpointSchema = arrow.NewSchema([]arrow.Field{
	nullable("txn", arrow.StructOf(
		nullable("appId", arrow.BinaryTypes.String),
		nullable("version", arrow.PrimitiveTypes.Int64),
		nullable("lastUpdated", arrow.PrimitiveTypes.Int64),
	)),
	nullable("add", arrow.StructOf(
		nullable("path", arrow.BinaryTypes.String),
		nullable("partitionValues", strMap),
		nullable("size", arrow.PrimitiveTypes.Int64),
		nullable("modificationTime", arrow.PrimitiveTypes.Int64),
		nullable("dataChange", arrow.FixedWidthTypes.Boolean),
		nullable("stats", arrow.BinaryTypes.String),
		nullable("tags", strMap),
		nullable("baseRowId", arrow.PrimitiveTypes.Int64),
		nullable("defaultRowCommitVersion", arrow.PrimitiveTypes.Int64),
		nullable("clusteringProvider", arrow.BinaryTypes.String),
	)),
	nullable("remove", arrow.StructOf(
		nullable("path", arrow.BinaryTypes.String),
		nullable("deletionTimestamp", arrow.PrimitiveTypes.Int64),
		nullable("dataChange", arrow.FixedWidthTypes.Boolean),
		nullable("extendedFileMetadata", arrow.FixedWidthTypes.Boolean),
		nullable("partitionValues", strMap),
		nullable("size", arrow.PrimitiveTypes.Int64),
		nullable("baseRowId", arrow.PrimitiveTypes.Int64),
		nullable("defaultRowCommitVersion", arrow.PrimitiveTypes.Int64),
	)),
	nullable("metaData", arrow.StructOf(
		nullable("id", arrow.BinaryTypes.String),
		nullable("name", arrow.BinaryTypes.String),
		nullable("description", arrow.BinaryTypes.String),
		nullable("format", arrow.StructOf(
			nullable("provider", arrow.BinaryTypes.String),
			nullable("options", strMap),
		)),
		nullable("schemaString", arrow.BinaryTypes.String),
		nullable("partitionColumns", strList),
		nullable("configuration", strMap),
		nullable("createdTime", arrow.PrimitiveTypes.Int64),
	)),
	nullable("protocol", arrow.StructOf(
		nullable("minReaderVersion", arrow.PrimitiveTypes.Int32),
		nullable("minWriterVersion", arrow.PrimitiveTypes.Int32),
		nullable("readerFeatures", strList),
		nullable("writerFeatures", strList),
	)),
}, nil)

// encodeCanonical turns a canonical path back into a URI-encoded log path.
func encodeCanonical(p string) string {
	if strings.HasPrefix(p, "/") {
		return "file://" + EncodePath(p)
	}
	if scheme, _, ok := splitScheme(p); ok {
		u, err := url.Parse(p)
		if err == nil {
			return scheme + "://" + u.Host + EncodePath(u.Path)
		}
		return p
	}
	return EncodePath(p)
}

func optInt(p *int64) any {
	if p == nil {
		return nil
	}
	return *p
}

func optStr(s string) any {
	if s == "" {
		return nil
	}
	return s
}

func strMapVal(m map[string]string) any {
	if m == nil {
		return nil
	}
	return m
}

// checkpointChunkRows is the most rows of a checkpoint built as one
// record batch (and written as one row group): a table that compacts its
// small files keeps hundreds of thousands of tombstones (a day's removes
// for the retention, a week by default), and building them all at once
// held the whole checkpoint as Arrow arrays besides the snapshot.
var checkpointChunkRows = 64 << 10

// checkpointEncoder writes checkpoint rows to a Parquet file a chunk of
// rows at a time. The few protocol, metadata and txn rows go through the
// generic appendValue; the file actions, nearly every row, through typed
// builders.
type checkpointEncoder struct {
	w    *pqarrow.FileWriter
	rb   *array.RecordBuilder
	rows int // rows in rb
	// total counts every row written, adds the add rows.
	total, adds int

	add, remove       *array.StructBuilder
	addPath, rmPath   *array.StringBuilder
	addPV, rmPV       *array.MapBuilder
	addSize, rmSize   *array.Int64Builder
	addMod, rmDelTS   *array.Int64Builder
	addDC, rmDC       *array.BooleanBuilder
	addStats          *array.StringBuilder
	addTags           *array.MapBuilder
	addBase, rmBase   *array.Int64Builder
	addDRCV, rmDRCV   *array.Int64Builder
	addClust          *array.StringBuilder
	rmEFM             *array.BooleanBuilder
	colAdd, colRemove int
}

func newCheckpointEncoder(buf *bytes.Buffer) (*checkpointEncoder, error) {
	props := parquet.NewWriterProperties(parquet.WithCompression(compress.Codecs.Snappy))
	w, err := pqarrow.NewFileWriter(checkpointSchema, buf, props, pqarrow.DefaultWriterProps())
	if err != nil {
		return nil, fmt.Errorf("delta: checkpoint writer: %w", err)
	}
	e := &checkpointEncoder{w: w, rb: array.NewRecordBuilder(memory.DefaultAllocator, checkpointSchema)}
	e.colAdd = checkpointSchema.FieldIndices("add")[0]
	e.colRemove = checkpointSchema.FieldIndices("remove")[0]
	e.add = e.rb.Field(e.colAdd).(*array.StructBuilder)
	e.remove = e.rb.Field(e.colRemove).(*array.StructBuilder)
	a, r := e.add.FieldBuilder, e.remove.FieldBuilder
	e.addPath, e.addPV = a(0).(*array.StringBuilder), a(1).(*array.MapBuilder)
	e.addSize, e.addMod, e.addDC = a(2).(*array.Int64Builder), a(3).(*array.Int64Builder), a(4).(*array.BooleanBuilder)
	e.addStats, e.addTags = a(5).(*array.StringBuilder), a(6).(*array.MapBuilder)
	e.addBase, e.addDRCV, e.addClust = a(7).(*array.Int64Builder), a(8).(*array.Int64Builder), a(9).(*array.StringBuilder)
	e.rmPath, e.rmDelTS, e.rmDC = r(0).(*array.StringBuilder), r(1).(*array.Int64Builder), r(2).(*array.BooleanBuilder)
	e.rmEFM, e.rmPV, e.rmSize = r(3).(*array.BooleanBuilder), r(4).(*array.MapBuilder), r(5).(*array.Int64Builder)
	e.rmBase, e.rmDRCV = r(6).(*array.Int64Builder), r(7).(*array.Int64Builder)
	return e, nil
}

// nullsBut appends a null to every action column but col.
func (e *checkpointEncoder) nullsBut(col int) {
	for c := range checkpointSchema.NumFields() {
		if c != col {
			e.rb.Field(c).AppendNull()
		}
	}
}

// row appends a row of action column col with the struct's field values.
func (e *checkpointEncoder) row(col int, val []any) error {
	for c := range checkpointSchema.NumFields() {
		var v any
		if c == col {
			v = val
		}
		if err := appendValue(e.rb.Field(c), v); err != nil {
			return err
		}
	}
	return e.next()
}

func appendOptInt(b *array.Int64Builder, p *int64) {
	if p == nil {
		b.AppendNull()
		return
	}
	b.Append(*p)
}

func appendOptStr(b *array.StringBuilder, s string) {
	if s == "" {
		b.AppendNull()
		return
	}
	b.Append(s)
}

// appendStrMap appends m (sorted by key); a nil m is null unless empty
// says to write it as an empty map.
func appendStrMap(b *array.MapBuilder, m map[string]string, empty bool) {
	if m == nil && !empty {
		b.AppendNull()
		return
	}
	b.Append(true)
	kb, ib := b.KeyBuilder().(*array.StringBuilder), b.ItemBuilder().(*array.StringBuilder)
	if len(m) == 1 {
		for k, v := range m {
			kb.Append(k)
			ib.Append(v)
		}
		return
	}
	for _, k := range sortedKeys(m) {
		kb.Append(k)
		ib.Append(m[k])
	}
}

// addRow appends a's add row.
func (e *checkpointEncoder) addRow(a *Add) error {
	e.nullsBut(e.colAdd)
	e.add.Append(true)
	e.addPath.Append(encodeCanonical(a.Path))
	appendStrMap(e.addPV, a.PartitionValues, true)
	e.addSize.Append(a.Size)
	e.addMod.Append(a.ModificationTime)
	e.addDC.Append(a.DataChange)
	appendOptStr(e.addStats, a.Stats)
	appendStrMap(e.addTags, a.Tags, false)
	appendOptInt(e.addBase, a.BaseRowID)
	appendOptInt(e.addDRCV, a.DefaultRowCommitVersion)
	appendOptStr(e.addClust, a.ClusteringProvider)
	e.adds++
	return e.next()
}

// removeRow appends r's remove row (r has a deletion timestamp).
func (e *checkpointEncoder) removeRow(r *Remove) error {
	e.nullsBut(e.colRemove)
	e.remove.Append(true)
	e.rmPath.Append(encodeCanonical(r.Path))
	e.rmDelTS.Append(*r.DeletionTimestamp)
	e.rmDC.Append(r.DataChange)
	if r.ExtendedFileMetadata != nil {
		e.rmEFM.Append(*r.ExtendedFileMetadata)
	} else {
		e.rmEFM.AppendNull()
	}
	appendStrMap(e.rmPV, r.PartitionValues, false)
	appendOptInt(e.rmSize, r.Size)
	appendOptInt(e.rmBase, r.BaseRowID)
	appendOptInt(e.rmDRCV, r.DefaultRowCommitVersion)
	return e.next()
}

// next counts the row just appended and writes the chunk once full.
func (e *checkpointEncoder) next() error {
	e.rows++
	e.total++
	if e.rows >= checkpointChunkRows {
		return e.flush()
	}
	return nil
}

func (e *checkpointEncoder) flush() error {
	if e.rows == 0 {
		return nil
	}
	rec := e.rb.NewRecordBatch()
	defer rec.Release()
	e.rows = 0
	if err := e.w.Write(rec); err != nil {
		return fmt.Errorf("delta: write checkpoint: %w", err)
	}
	return nil
}

// close writes the last chunk and the file's footer.
func (e *checkpointEncoder) close() error {
	defer e.rb.Release()
	if err := e.flush(); err != nil {
		e.w.Close()
		return err
	}
	if err := e.w.Close(); err != nil {
		return fmt.Errorf("delta: close checkpoint: %w", err)
	}
	return nil
}

// encodeCheckpoint writes the snapshot's actions as a Parquet checkpoint:
// protocol, metadata, txns, live files (sorted by path), and the
// tombstones deleted after minDeletion (ms), sorted by path. It returns
// the file and its numbers of actions and of adds.
func (t *Table) encodeCheckpoint(ctx context.Context, s *Snapshot, minDeletion int64) (data []byte, actions, adds int, err error) {
	var buf bytes.Buffer
	e, err := newCheckpointEncoder(&buf)
	if err != nil {
		return nil, 0, 0, err
	}
	if err := e.writeRows(ctx, t, s, minDeletion); err != nil {
		e.w.Close()
		e.rb.Release()
		return nil, 0, 0, err
	}
	if err := e.close(); err != nil {
		return nil, 0, 0, err
	}
	return buf.Bytes(), e.total, e.adds, nil
}

func (e *checkpointEncoder) writeRows(ctx context.Context, t *Table, s *Snapshot, minDeletion int64) error {
	p := s.protocol
	var rf, wf any
	if p.MinReaderVersion >= 3 {
		rf = nonNil(p.ReaderFeatures)
	}
	if p.MinWriterVersion >= 7 {
		wf = nonNil(p.WriterFeatures)
	}
	if err := e.row(4, []any{int32(p.MinReaderVersion), int32(p.MinWriterVersion), rf, wf}); err != nil {
		return err
	}
	m := s.metadata
	provider := m.Format.Provider
	if provider == "" {
		provider = "parquet"
	}
	opts := m.Format.Options
	if opts == nil {
		opts = map[string]string{}
	}
	conf := m.Configuration
	if conf == nil {
		conf = map[string]string{}
	}
	if err := e.row(3, []any{m.ID, optStr(m.Name), optStr(m.Description),
		[]any{provider, opts}, m.SchemaString, nonNil(m.PartitionColumns), conf, optInt(m.CreatedTime)}); err != nil {
		return err
	}
	for _, t := range s.Txns() {
		if err := e.row(0, []any{t.AppID, t.Version, optInt(t.LastUpdated)}); err != nil {
			return err
		}
	}
	s.sortOnce.Do(s.sortFiles)
	for i := range s.sorted {
		if err := e.addRow(&s.sorted[i]); err != nil {
			return err
		}
	}
	return t.eachTombstone(ctx, s, minDeletion, e.removeRow)
}

// retention parses a Delta interval property ("interval 7 days") or
// returns def.
func retention(m *Metadata, key string, def time.Duration) time.Duration {
	v, ok := m.Configuration[key]
	if !ok {
		return def
	}
	d, err := ParseInterval(v)
	if err != nil {
		return def
	}
	return d
}

// ParseInterval parses a Delta/Spark interval such as "interval 7 days",
// "30 days", "interval 1 hour" or "168 hours".
func ParseInterval(s string) (time.Duration, error) {
	f := strings.Fields(strings.ToLower(strings.TrimSpace(s)))
	if len(f) > 0 && f[0] == "interval" {
		f = f[1:]
	}
	if len(f) == 0 || len(f)%2 != 0 {
		return 0, fmt.Errorf("delta: bad interval %q", s)
	}
	var total time.Duration
	for i := 0; i < len(f); i += 2 {
		var n int64
		if _, err := fmt.Sscan(f[i], &n); err != nil {
			return 0, fmt.Errorf("delta: bad interval %q", s)
		}
		unit := strings.TrimSuffix(f[i+1], "s")
		var d time.Duration
		switch unit {
		case "week":
			d = 7 * 24 * time.Hour
		case "day":
			d = 24 * time.Hour
		case "hour":
			d = time.Hour
		case "minute":
			d = time.Minute
		case "second":
			d = time.Second
		case "millisecond":
			d = time.Millisecond
		case "microsecond":
			d = time.Microsecond
		default:
			return 0, fmt.Errorf("delta: bad interval unit in %q", s)
		}
		if n > math.MaxInt64/int64(d) || n < math.MinInt64/int64(d) || (n > 0 && total > math.MaxInt64-time.Duration(n)*d) {
			return 0, fmt.Errorf("delta: interval %q is too long", s)
		}
		total += time.Duration(n) * d
	}
	return total, nil
}

// CheckpointResult describes a written checkpoint.
type CheckpointResult struct {
	Version       int64
	Path          string
	SizeInBytes   int64
	NumActions    int64
	NumOfAddFiles int64
}

// Checkpoint writes a classic single-file Parquet checkpoint of the
// snapshot at version (the latest if version < 0) and points
// _delta_log/_last_checkpoint at it, unless that already names a newer one.
func (t *Table) Checkpoint(ctx context.Context, version int64) (CheckpointResult, error) {
	var s *Snapshot
	var err error
	if version < 0 {
		s, err = t.Snapshot(ctx)
	} else {
		s, err = t.SnapshotAt(ctx, version)
	}
	if err != nil {
		return CheckpointResult{}, err
	}
	return t.writeCheckpoint(ctx, s)
}

func (t *Table) writeCheckpoint(ctx context.Context, s *Snapshot) (CheckpointResult, error) {
	ret := retention(&s.metadata, PropDeletedFileRetention, DefaultDeletedFileRetention)
	data, numActions, numAdds, err := t.encodeCheckpoint(ctx, s, t.now().Add(-ret).UnixMilli())
	if err != nil {
		if s.tombBase != nil && errors.Is(err, storage.ErrNotExist) {
			// The checkpoint holding the older tombstones is gone (cleaned
			// up by another writer): the next snapshot loads afresh.
			t.forget(s)
		}
		return CheckpointResult{}, err
	}
	p := CheckpointPath(s.version)
	if err := t.store.WriteFile(ctx, p, data); err != nil {
		return CheckpointResult{}, fmt.Errorf("delta: write checkpoint %d: %w", s.version, err)
	}
	res := CheckpointResult{Version: s.version, Path: p, SizeInBytes: int64(len(data)),
		NumActions: int64(numActions), NumOfAddFiles: int64(numAdds)}
	t.rebaseTombstones(s, s.version)
	if cur, ok := readLastCheckpoint(ctx, t.store); ok && cur.Version > s.version {
		return res, nil
	}
	size, adds := res.SizeInBytes, res.NumOfAddFiles
	lc, err := json.Marshal(LastCheckpoint{Version: s.version, Size: res.NumActions, SizeInBytes: &size, NumOfAddFiles: &adds})
	if err != nil {
		return res, err
	}
	if err := t.store.WriteFile(ctx, lastCheckpointPath, lc); err != nil {
		return res, fmt.Errorf("delta: write _last_checkpoint: %w", err)
	}
	return res, nil
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// appendValue appends a Go value to an Arrow builder of the matching type.
func appendValue(b array.Builder, v any) error {
	if v == nil {
		b.AppendNull()
		return nil
	}
	switch bb := b.(type) {
	case *array.StringBuilder:
		bb.Append(v.(string))
	case *array.Int64Builder:
		bb.Append(v.(int64))
	case *array.Int32Builder:
		bb.Append(v.(int32))
	case *array.BooleanBuilder:
		bb.Append(v.(bool))
	case *array.MapBuilder:
		m := v.(map[string]string)
		bb.Append(true)
		kb := bb.KeyBuilder().(*array.StringBuilder)
		ib := bb.ItemBuilder().(*array.StringBuilder)
		for _, k := range sortedKeys(m) {
			kb.Append(k)
			ib.Append(m[k])
		}
	case *array.ListBuilder:
		l := v.([]string)
		bb.Append(true)
		vb := bb.ValueBuilder().(*array.StringBuilder)
		for _, s := range l {
			vb.Append(s)
		}
	case *array.StructBuilder:
		fields := v.([]any)
		bb.Append(true)
		for i, f := range fields {
			if err := appendValue(bb.FieldBuilder(i), f); err != nil {
				return err
			}
		}
	default:
		return fmt.Errorf("delta: checkpoint: unexpected builder %T", b)
	}
	return nil
}
