package delta

import (
	"bytes"
	"context"
	"encoding/json"
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

// row is one checkpoint row: the struct for the one action column it holds.
type row struct {
	col int
	val []any // the struct's field values, in schema order
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

// checkpointRows lists the snapshot's actions as checkpoint rows: protocol,
// metadata, txns, live files, and tombstones deleted after minDeletion (ms).
func checkpointRows(s *Snapshot, minDeletion int64) (rows []row, numAdds int) {
	p := s.protocol
	var rf, wf any
	if p.MinReaderVersion >= 3 {
		rf = nonNil(p.ReaderFeatures)
	}
	if p.MinWriterVersion >= 7 {
		wf = nonNil(p.WriterFeatures)
	}
	rows = append(rows, row{4, []any{int32(p.MinReaderVersion), int32(p.MinWriterVersion), rf, wf}})
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
	rows = append(rows, row{3, []any{m.ID, optStr(m.Name), optStr(m.Description),
		[]any{provider, opts}, m.SchemaString, nonNil(m.PartitionColumns), conf, optInt(m.CreatedTime)}})
	for _, t := range s.Txns() {
		rows = append(rows, row{0, []any{t.AppID, t.Version, optInt(t.LastUpdated)}})
	}
	for _, a := range s.Files() {
		pv := a.PartitionValues
		if pv == nil {
			pv = map[string]string{}
		}
		rows = append(rows, row{1, []any{encodeCanonical(a.Path), pv, a.Size, a.ModificationTime, a.DataChange,
			optStr(a.Stats), strMapVal(a.Tags), optInt(a.BaseRowID), optInt(a.DefaultRowCommitVersion), optStr(a.ClusteringProvider)}})
		numAdds++
	}
	for _, r := range s.Tombstones() {
		if r.DeletionTimestamp == nil || *r.DeletionTimestamp <= minDeletion {
			continue
		}
		var efm any
		if r.ExtendedFileMetadata != nil {
			efm = *r.ExtendedFileMetadata
		}
		rows = append(rows, row{2, []any{encodeCanonical(r.Path), *r.DeletionTimestamp, r.DataChange, efm,
			strMapVal(r.PartitionValues), optInt(r.Size), optInt(r.BaseRowID), optInt(r.DefaultRowCommitVersion)}})
	}
	return rows, numAdds
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

// encodeCheckpoint writes rows as a Parquet file.
func encodeCheckpoint(rows []row) ([]byte, error) {
	rb := array.NewRecordBuilder(memory.DefaultAllocator, checkpointSchema)
	defer rb.Release()
	for _, r := range rows {
		for c := range checkpointSchema.Fields() {
			var v any
			if c == r.col {
				v = r.val
			}
			if err := appendValue(rb.Field(c), v); err != nil {
				return nil, err
			}
		}
	}
	rec := rb.NewRecord()
	defer rec.Release()
	var buf bytes.Buffer
	props := parquet.NewWriterProperties(parquet.WithCompression(compress.Codecs.Snappy))
	w, err := pqarrow.NewFileWriter(checkpointSchema, &buf, props, pqarrow.DefaultWriterProps())
	if err != nil {
		return nil, fmt.Errorf("delta: checkpoint writer: %w", err)
	}
	if err := w.Write(rec); err != nil {
		w.Close()
		return nil, fmt.Errorf("delta: write checkpoint: %w", err)
	}
	if err := w.Close(); err != nil {
		return nil, fmt.Errorf("delta: close checkpoint: %w", err)
	}
	return buf.Bytes(), nil
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
	rows, numAdds := checkpointRows(s, t.now().Add(-ret).UnixMilli())
	data, err := encodeCheckpoint(rows)
	if err != nil {
		return CheckpointResult{}, err
	}
	p := CheckpointPath(s.version)
	if err := t.store.WriteFile(ctx, p, data); err != nil {
		return CheckpointResult{}, fmt.Errorf("delta: write checkpoint %d: %w", s.version, err)
	}
	res := CheckpointResult{Version: s.version, Path: p, SizeInBytes: int64(len(data)),
		NumActions: int64(len(rows)), NumOfAddFiles: int64(numAdds)}
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
