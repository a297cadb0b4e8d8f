package reader

import (
	"context"
	"encoding/json"
	"fmt"
	"math"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"

	"github.com/plantlake/plantlake/delta"
	"github.com/plantlake/plantlake/delta/storage"
)

// Rows reads the matching rows of snap as JSON-friendly maps (see RecordRows).
func Rows(ctx context.Context, store storage.Store, snap *delta.Snapshot, opts Options) ([]map[string]any, error) {
	s, err := New(store, snap, opts)
	if err != nil {
		return nil, err
	}
	defer s.Close()
	out := []map[string]any{}
	for rec, err := range s.Records(ctx) {
		if err != nil {
			return nil, err
		}
		rows, err := RecordRows(rec)
		if err != nil {
			return nil, err
		}
		out = append(out, rows...)
	}
	return out, nil
}

// RecordRows converts a batch to one map per row, with values that encoding/json writes
// faithfully: integers as int64, float as float32 and double as float64 (NaN and infinities as
// the strings "NaN", "Infinity", "-Infinity"), decimals as json.Number, dates as "2006-01-02",
// timestamps as RFC 3339 with microseconds ("Z" for timestamp, no zone for timestamp_ntz),
// binary as []byte (base64 in JSON), structs as maps, arrays as slices, maps with string keys
// as maps and other maps as a slice of {"key", "value"} objects; null is nil.
func RecordRows(rec arrow.RecordBatch) ([]map[string]any, error) {
	n := int(rec.NumRows())
	rows := make([]map[string]any, n)
	for r := range rows {
		rows[r] = make(map[string]any, rec.NumCols())
	}
	for c := 0; c < int(rec.NumCols()); c++ {
		name := rec.ColumnName(c)
		get, err := jsonGetter(rec.Column(c))
		if err != nil {
			return nil, fmt.Errorf("reader: column %q: %w", name, err)
		}
		for r := 0; r < n; r++ {
			rows[r][name] = get(r)
		}
	}
	return rows, nil
}

func jsonFloat(f float64) any {
	switch {
	case math.IsNaN(f):
		return "NaN"
	case math.IsInf(f, 1):
		return "Infinity"
	case math.IsInf(f, -1):
		return "-Infinity"
	}
	return f
}

// TimestampLayout and TimestampNTZLayout are how RecordRows writes timestamps.
const (
	TimestampLayout    = "2006-01-02T15:04:05.000000Z"
	TimestampNTZLayout = "2006-01-02T15:04:05.000000"
)

func jsonGetter(arr arrow.Array) (func(int) any, error) {
	var get func(int) any
	switch a := arr.(type) {
	case *array.Null:
		return func(int) any { return nil }, nil
	case *array.Int8:
		get = func(i int) any { return int64(a.Value(i)) }
	case *array.Int16:
		get = func(i int) any { return int64(a.Value(i)) }
	case *array.Int32:
		get = func(i int) any { return int64(a.Value(i)) }
	case *array.Int64:
		get = func(i int) any { return a.Value(i) }
	case *array.Uint8:
		get = func(i int) any { return int64(a.Value(i)) }
	case *array.Uint16:
		get = func(i int) any { return int64(a.Value(i)) }
	case *array.Uint32:
		get = func(i int) any { return int64(a.Value(i)) }
	case *array.Uint64:
		get = func(i int) any { return a.Value(i) }
	case *array.Float32:
		get = func(i int) any {
			f := a.Value(i)
			if math.IsNaN(float64(f)) || math.IsInf(float64(f), 0) {
				return jsonFloat(float64(f))
			}
			return f
		}
	case *array.Float64:
		get = func(i int) any { return jsonFloat(a.Value(i)) }
	case *array.Boolean:
		get = func(i int) any { return a.Value(i) }
	case *array.String:
		get = func(i int) any { return a.Value(i) }
	case *array.LargeString:
		get = func(i int) any { return a.Value(i) }
	case *array.Binary:
		get = func(i int) any { return cloneBytes(a.Value(i)) }
	case *array.LargeBinary:
		get = func(i int) any { return cloneBytes(a.Value(i)) }
	case *array.FixedSizeBinary:
		get = func(i int) any { return cloneBytes(a.Value(i)) }
	case *array.Date32:
		get = func(i int) any { return a.Value(i).ToTime().Format("2006-01-02") }
	case *array.Timestamp:
		tt := a.DataType().(*arrow.TimestampType)
		layout := TimestampNTZLayout
		if tt.TimeZone != "" {
			layout = TimestampLayout
		}
		get = func(i int) any { return a.Value(i).ToTime(tt.Unit).UTC().Format(layout) }
	case *array.Decimal128:
		scale := a.DataType().(*arrow.Decimal128Type).Scale
		get = func(i int) any { return json.Number(a.Value(i).ToString(scale)) }
	case *array.Decimal256:
		scale := a.DataType().(*arrow.Decimal256Type).Scale
		get = func(i int) any { return json.Number(a.Value(i).ToString(scale)) }
	case *array.Struct:
		st := a.DataType().(*arrow.StructType)
		fields := make([]func(int) any, st.NumFields())
		for j := range fields {
			g, err := jsonGetter(a.Field(j))
			if err != nil {
				return nil, fmt.Errorf("field %q: %w", st.Field(j).Name, err)
			}
			fields[j] = g
		}
		get = func(i int) any {
			m := make(map[string]any, len(fields))
			for j, g := range fields {
				m[st.Field(j).Name] = g(i)
			}
			return m
		}
	case *array.Map:
		keys, items := a.Keys(), a.Items()
		kg, err := jsonGetter(keys)
		if err != nil {
			return nil, fmt.Errorf("map key: %w", err)
		}
		vg, err := jsonGetter(items)
		if err != nil {
			return nil, fmt.Errorf("map value: %w", err)
		}
		stringKeys := keys.DataType().ID() == arrow.STRING
		get = func(i int) any {
			start, end := a.ValueOffsets(i)
			if stringKeys {
				m := make(map[string]any, end-start)
				for j := start; j < end; j++ {
					m[kg(int(j)).(string)] = vg(int(j))
				}
				return m
			}
			pairs := make([]any, 0, end-start)
			for j := start; j < end; j++ {
				pairs = append(pairs, map[string]any{"key": kg(int(j)), "value": vg(int(j))})
			}
			return pairs
		}
	case array.ListLike:
		eg, err := jsonGetter(a.ListValues())
		if err != nil {
			return nil, fmt.Errorf("array element: %w", err)
		}
		get = func(i int) any {
			start, end := a.ValueOffsets(i)
			out := make([]any, 0, end-start)
			for j := start; j < end; j++ {
				out = append(out, eg(int(j)))
			}
			return out
		}
	default:
		return nil, fmt.Errorf("no JSON form for %s", arr.DataType())
	}
	return func(i int) any {
		if arr.IsNull(i) {
			return nil
		}
		return get(i)
	}, nil
}

// cloneBytes copies b; an empty value stays an empty (non-nil) slice, so JSON writes "" and
// not null.
func cloneBytes(b []byte) []byte {
	out := make([]byte, len(b))
	copy(out, b)
	return out
}
