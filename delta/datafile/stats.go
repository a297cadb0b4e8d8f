package datafile

import (
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/decimal128"
)

// DefaultStringPrefix is how many characters of a string column's min and max go into stats.
const DefaultStringPrefix = 32

// Stats is the per-file statistics object of Delta's add action (PROTOCOL.md, "Per-file
// Statistics"). MinValues, MaxValues and NullCount mirror the schema: a struct column is a
// nested object. A column without a safe bound is absent, never guessed.
type Stats struct {
	NumRecords int64          `json:"numRecords"`
	MinValues  map[string]any `json:"minValues,omitempty"`
	MaxValues  map[string]any `json:"maxValues,omitempty"`
	NullCount  map[string]any `json:"nullCount,omitempty"`
}

// JSON returns the stats as the string stored in add.stats.
func (s *Stats) JSON() (string, error) {
	b, err := json.Marshal(s)
	if err != nil {
		return "", fmt.Errorf("datafile: encode stats: %w", err)
	}
	return string(b), nil
}

// statsCollector accumulates stats over one or more record batches of the same schema.
type statsCollector struct {
	prefix  int
	rows    int64
	columns []*columnStats
	schema  *arrow.Schema
}

// columnStats holds one column's running stats; for a struct, children holds its fields'.
type columnStats struct {
	name     string
	typ      arrow.DataType
	nulls    int64
	children []*columnStats

	// kind selects the comparison below; bounds are unset until a non-null value is seen.
	kind      statKind
	seen      bool
	noBounds  bool // a value made bounds unsafe (NaN, invalid UTF-8)
	minI      int64
	maxI      int64
	minF      float64
	maxF      float64
	minS      string
	maxS      string
	minD      decimal128.Num
	maxD      decimal128.Num
	scale     int32
	tsUnit    arrow.TimeUnit
	tsUTC     bool
	isDate    bool
	isStruct  bool
	isFloat32 bool
}

type statKind int

const (
	kindNone statKind = iota // null count only
	kindInt
	kindFloat
	kindString
	kindDecimal
	kindTimestamp
	kindDate
)

func newStatsCollector(schema *arrow.Schema, prefix int) *statsCollector {
	if prefix <= 0 {
		prefix = DefaultStringPrefix
	}
	c := &statsCollector{prefix: prefix, schema: schema}
	for _, f := range schema.Fields() {
		c.columns = append(c.columns, newColumnStats(f))
	}
	return c
}

func newColumnStats(f arrow.Field) *columnStats {
	cs := &columnStats{name: f.Name, typ: f.Type}
	switch t := f.Type.(type) {
	case *arrow.Int8Type, *arrow.Int16Type, *arrow.Int32Type, *arrow.Int64Type:
		cs.kind = kindInt
	case *arrow.Float32Type:
		cs.kind, cs.isFloat32 = kindFloat, true
	case *arrow.Float64Type:
		cs.kind = kindFloat
	case *arrow.StringType, *arrow.LargeStringType:
		cs.kind = kindString
	case *arrow.Decimal128Type:
		cs.kind, cs.scale = kindDecimal, t.Scale
	case *arrow.TimestampType:
		cs.kind, cs.tsUnit, cs.tsUTC = kindTimestamp, t.Unit, t.TimeZone != ""
	case *arrow.Date32Type:
		cs.kind = kindDate
	case *arrow.StructType:
		cs.isStruct = true
		for _, cf := range t.Fields() {
			cs.children = append(cs.children, newColumnStats(cf))
		}
	}
	return cs
}

// add folds one record batch into the stats.
func (c *statsCollector) add(rec arrow.RecordBatch) {
	c.rows += rec.NumRows()
	for i, col := range c.columns {
		col.add(rec.Column(i), nil)
	}
}

// add folds arr into cs. parentValid, when set, reports whether row i's enclosing struct is
// non-null: a field under a null struct counts as null, as Spark and parquet count it.
func (cs *columnStats) add(arr arrow.Array, parentValid func(int) bool) {
	n := arr.Len()
	valid := func(i int) bool {
		return arr.IsValid(i) && (parentValid == nil || parentValid(i))
	}
	if cs.isStruct {
		st := arr.(*array.Struct)
		for j, ch := range cs.children {
			ch.add(st.Field(j), valid)
		}
		return
	}
	switch cs.kind {
	case kindNone:
		for i := 0; i < n; i++ {
			if !valid(i) {
				cs.nulls++
			}
		}
	case kindInt, kindDate:
		get := intGetter(arr)
		for i := 0; i < n; i++ {
			if !valid(i) {
				cs.nulls++
				continue
			}
			cs.addInt(get(i))
		}
	case kindTimestamp:
		a := arr.(*array.Timestamp)
		for i := 0; i < n; i++ {
			if !valid(i) {
				cs.nulls++
				continue
			}
			cs.addInt(int64(a.Value(i)))
		}
	case kindFloat:
		get := floatGetter(arr)
		for i := 0; i < n; i++ {
			if !valid(i) {
				cs.nulls++
				continue
			}
			v := get(i)
			if math.IsNaN(v) {
				cs.noBounds = true
				continue
			}
			if !cs.seen {
				cs.minF, cs.maxF, cs.seen = v, v, true
				continue
			}
			// -0.0 and 0.0 compare equal; keep the one that is a bound either way.
			if v < cs.minF || (v == 0 && cs.minF == 0 && math.Signbit(v)) {
				cs.minF = v
			}
			if v > cs.maxF || (v == 0 && cs.maxF == 0 && !math.Signbit(v)) {
				cs.maxF = v
			}
		}
	case kindString:
		get := stringGetter(arr)
		for i := 0; i < n; i++ {
			if !valid(i) {
				cs.nulls++
				continue
			}
			v := get(i)
			if !cs.seen {
				cs.minS, cs.maxS, cs.seen = v, v, true
				continue
			}
			if v < cs.minS {
				cs.minS = v
			}
			if v > cs.maxS {
				cs.maxS = v
			}
		}
	case kindDecimal:
		a := arr.(*array.Decimal128)
		for i := 0; i < n; i++ {
			if !valid(i) {
				cs.nulls++
				continue
			}
			v := a.Value(i)
			if !cs.seen {
				cs.minD, cs.maxD, cs.seen = v, v, true
				continue
			}
			if v.Less(cs.minD) {
				cs.minD = v
			}
			if v.Greater(cs.maxD) {
				cs.maxD = v
			}
		}
	}
}

func (cs *columnStats) addInt(v int64) {
	if !cs.seen {
		cs.minI, cs.maxI, cs.seen = v, v, true
		return
	}
	cs.minI = min(cs.minI, v)
	cs.maxI = max(cs.maxI, v)
}

func intGetter(arr arrow.Array) func(int) int64 {
	switch a := arr.(type) {
	case *array.Int8:
		return func(i int) int64 { return int64(a.Value(i)) }
	case *array.Int16:
		return func(i int) int64 { return int64(a.Value(i)) }
	case *array.Int32:
		return func(i int) int64 { return int64(a.Value(i)) }
	case *array.Int64:
		return func(i int) int64 { return a.Value(i) }
	case *array.Date32:
		return func(i int) int64 { return int64(a.Value(i)) }
	}
	panic(fmt.Sprintf("datafile: no integer getter for %T", arr))
}

func floatGetter(arr arrow.Array) func(int) float64 {
	switch a := arr.(type) {
	case *array.Float32:
		return func(i int) float64 { return float64(a.Value(i)) }
	case *array.Float64:
		return a.Value
	}
	panic(fmt.Sprintf("datafile: no float getter for %T", arr))
}

func stringGetter(arr arrow.Array) func(int) string {
	switch a := arr.(type) {
	case *array.String:
		return a.Value
	case *array.LargeString:
		return a.Value
	}
	panic(fmt.Sprintf("datafile: no string getter for %T", arr))
}

// result builds the Stats object.
func (c *statsCollector) result() *Stats {
	s := &Stats{NumRecords: c.rows, MinValues: map[string]any{}, MaxValues: map[string]any{}, NullCount: map[string]any{}}
	for _, col := range c.columns {
		col.emit(s.MinValues, s.MaxValues, s.NullCount, c.prefix)
	}
	return s
}

func (cs *columnStats) emit(mins, maxs, nulls map[string]any, prefix int) {
	if cs.isStruct {
		cmin, cmax, cnull := map[string]any{}, map[string]any{}, map[string]any{}
		for _, ch := range cs.children {
			ch.emit(cmin, cmax, cnull, prefix)
		}
		if len(cmin) > 0 {
			mins[cs.name] = cmin
		}
		if len(cmax) > 0 {
			maxs[cs.name] = cmax
		}
		if len(cnull) > 0 {
			nulls[cs.name] = cnull
		}
		return
	}
	nulls[cs.name] = cs.nulls
	if !cs.seen || cs.noBounds || cs.kind == kindNone {
		return
	}
	lo, hi, okLo, okHi := cs.bounds(prefix)
	if okLo {
		mins[cs.name] = lo
	}
	if okHi {
		maxs[cs.name] = hi
	}
}

// bounds returns the JSON values of the min and max, each with whether it is safe to write.
func (cs *columnStats) bounds(prefix int) (lo, hi any, okLo, okHi bool) {
	switch cs.kind {
	case kindInt:
		return cs.minI, cs.maxI, true, true
	case kindDate:
		return formatDate(cs.minI), formatDate(cs.maxI), true, true
	case kindTimestamp:
		l, h := timestampMillisBounds(cs.minI, cs.maxI, cs.tsUnit)
		return formatStatTimestamp(l, cs.tsUTC), formatStatTimestamp(h, cs.tsUTC), true, true
	case kindFloat:
		okLo = !math.IsInf(cs.minF, 0)
		okHi = !math.IsInf(cs.maxF, 0)
		return json.Number(formatFloat(cs.minF)), json.Number(formatFloat(cs.maxF)), okLo, okHi
	case kindDecimal:
		return json.Number(cs.minD.ToString(cs.scale)), json.Number(cs.maxD.ToString(cs.scale)), true, true
	case kindString:
		// The bounds are cloned: they may point into the record batch's buffers, which the
		// caller may release (and its allocator reuse) before it serializes the stats.
		l, okL := truncateMin(cs.minS, prefix)
		h, okH := truncateMax(cs.maxS, prefix)
		return strings.Clone(l), strings.Clone(h), okL, okH
	}
	return nil, nil, false, false
}

// formatFloat writes a float so that parsing it back gives the same double; float32 values were
// widened exactly, so a reader comparing in either precision sees a correct bound.
func formatFloat(v float64) string {
	s := strconv.FormatFloat(v, 'g', -1, 64)
	return s
}

func formatDate(days int64) string {
	return time.Unix(days*86400, 0).UTC().Format(PartitionDateLayout)
}

// timestampMillisBounds converts min and max in unit to milliseconds: the min rounded down and
// the max rounded up, so that both stay bounds after truncation to Delta's millisecond stats.
func timestampMillisBounds(lo, hi int64, unit arrow.TimeUnit) (int64, int64) {
	var per int64
	switch unit {
	case arrow.Second:
		return lo * 1000, hi * 1000
	case arrow.Millisecond:
		return lo, hi
	case arrow.Microsecond:
		per = 1000
	default:
		per = 1000_000
	}
	l := floorDiv(lo, per)
	h := floorDiv(hi, per)
	if h*per != hi {
		h++
	}
	return l, h
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if (a%b != 0) && ((a < 0) != (b < 0)) {
		q--
	}
	return q
}

// formatStatTimestamp formats milliseconds since the epoch as Delta stats do: ISO-8601 with
// milliseconds, "Z" for a UTC-adjusted timestamp and no zone for timestamp_ntz.
func formatStatTimestamp(ms int64, utc bool) string {
	t := time.UnixMilli(ms).UTC()
	if utc {
		return t.Format("2006-01-02T15:04:05.000Z")
	}
	return t.Format("2006-01-02T15:04:05.000")
}

// truncateMin returns a prefix of s no longer than n characters: a prefix is never greater
// than the string, so it stays a lower bound.
func truncateMin(s string, n int) (string, bool) {
	if !utf8.ValidString(s) {
		return "", false
	}
	if utf8.RuneCountInString(s) <= n {
		return s, true
	}
	return string([]rune(s)[:n]), true
}

// truncateMax returns a string of at most n characters that is greater than or equal to s in
// byte order: s itself when short enough, else its prefix with the last character that can be
// incremented incremented (and what follows dropped). It reports false when no such string
// exists (every character is the maximum code point) or s is not valid UTF-8.
func truncateMax(s string, n int) (string, bool) {
	if !utf8.ValidString(s) {
		return "", false
	}
	if utf8.RuneCountInString(s) <= n {
		return s, true
	}
	r := []rune(s)[:n]
	for i := len(r) - 1; i >= 0; i-- {
		next := r[i] + 1
		if next >= 0xD800 && next <= 0xDFFF {
			next = 0xE000
		}
		if next > utf8.MaxRune {
			continue
		}
		r[i] = next
		return string(r[:i+1]), true
	}
	return "", false
}
