package reader

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/plantlake/plantlake/delta"
)

// ErrInvalidFilter is wrapped by errors about a filter that names no column, uses an unknown
// operator, or compares with a literal of the wrong type.
var ErrInvalidFilter = errors.New("reader: invalid filter")

// Op is a comparison operator of a Filter.
type Op string

// The operators.
const (
	Eq        Op = "="
	Ne        Op = "!="
	Lt        Op = "<"
	Le        Op = "<="
	Gt        Op = ">"
	Ge        Op = ">="
	IsNull    Op = "IS NULL"
	IsNotNull Op = "IS NOT NULL"
)

// Filter is one condition "Column Op Value"; a scan keeps the rows for which all its filters
// hold, with SQL semantics: a comparison with null is not true.
type Filter struct {
	// Column is a top-level column of the table, matched case-insensitively.
	Column string
	Op     Op
	// Value is the literal: a Go number, string, bool, time.Time or []byte, a json.Number, or
	// a string in the column's text form ("2024-05-06", "2024-05-06T10:00:00Z", "12.50").
	// A literal for a float column is rounded to float32 first, so "f = 0.234" finds the
	// float 0.234 (Spark would compare in double and find nothing). A timestamp without a zone
	// is UTC. Unused for IS NULL and IS NOT NULL.
	Value any
}

// String writes the filter as ParseFilter reads it.
func (f Filter) String() string {
	if f.Op == IsNull || f.Op == IsNotNull {
		return f.Column + " " + string(f.Op)
	}
	if s, ok := f.Value.(string); ok {
		return fmt.Sprintf("%s %s '%s'", f.Column, f.Op, strings.ReplaceAll(s, "'", "''"))
	}
	return fmt.Sprintf("%s %s %v", f.Column, f.Op, f.Value)
}

// ParseFilter parses "column op literal", "column IS NULL" or "column IS NOT NULL". The
// literal may be quoted with single quotes; it is converted to the column's type when the
// scan starts.
func ParseFilter(s string) (Filter, error) {
	s = strings.TrimSpace(s)
	up := strings.ToUpper(s)
	for _, op := range []Op{IsNotNull, IsNull} {
		if strings.HasSuffix(up, " "+string(op)) {
			col := strings.TrimSpace(s[:len(s)-len(op)])
			if col == "" {
				break
			}
			return Filter{Column: col, Op: op}, nil
		}
	}
	for _, op := range []Op{Le, Ge, Ne, "<>", Eq, Lt, Gt} {
		i := strings.Index(s, string(op))
		if i <= 0 {
			continue
		}
		col := strings.TrimSpace(s[:i])
		lit := strings.TrimSpace(s[i+len(op):])
		if op == "<>" {
			op = Ne
		}
		if len(lit) >= 2 && lit[0] == '\'' && lit[len(lit)-1] == '\'' {
			lit = strings.ReplaceAll(lit[1:len(lit)-1], "''", "'")
		}
		if col == "" || lit == "" {
			break
		}
		return Filter{Column: col, Op: op, Value: lit}, nil
	}
	return Filter{}, fmt.Errorf("%w: %q: want \"column op literal\" with op one of = != < <= > >=, or \"column IS [NOT] NULL\"", ErrInvalidFilter, s)
}

// ParseFilters parses conditions joined by AND (case-insensitive), e.g.
// "ingest_date >= '2024-05-01' AND kafka_partition = 3".
func ParseFilters(s string) ([]Filter, error) {
	if strings.TrimSpace(s) == "" {
		return nil, nil
	}
	var out []Filter
	for _, part := range splitAnd(s) {
		f, err := ParseFilter(part)
		if err != nil {
			return nil, err
		}
		out = append(out, f)
	}
	return out, nil
}

// splitAnd splits on AND outside single quotes.
func splitAnd(s string) []string {
	var parts []string
	inQuote := false
	start := 0
	for i := 0; i < len(s); i++ {
		if s[i] == '\'' {
			inQuote = !inQuote
			continue
		}
		if !inQuote && i+5 <= len(s) && strings.EqualFold(s[i:i+5], " AND ") {
			parts = append(parts, s[start:i])
			start = i + 5
			i += 4
		}
	}
	return append(parts, s[start:])
}

// boundFilter is a Filter resolved against the schema.
type boundFilter struct {
	Filter
	field     delta.StructField
	kind      kind
	partition bool
	lit       any // coerced literal; nil for IS [NOT] NULL
}

func bindFilters(filters []Filter, schema *delta.StructType, partitionCols []string) ([]boundFilter, error) {
	isPart := map[string]bool{}
	for _, c := range partitionCols {
		isPart[strings.ToLower(c)] = true
	}
	out := make([]boundFilter, 0, len(filters))
	for _, f := range filters {
		fld, ok := findField(schema, f.Column)
		if !ok {
			return nil, fmt.Errorf("%w: %s: %w %q", ErrInvalidFilter, f, ErrUnknownColumn, f.Column)
		}
		b := boundFilter{Filter: f, field: fld, kind: kindOf(fld.Type), partition: isPart[strings.ToLower(fld.Name)]}
		b.Column = fld.Name
		switch f.Op {
		case IsNull, IsNotNull:
		case Eq, Ne, Lt, Le, Gt, Ge:
			if b.kind == kOther {
				return nil, fmt.Errorf("%w: %s: column %q of type %s can only be tested for null", ErrInvalidFilter, f, fld.Name, fld.Type.TypeName())
			}
			if f.Value == nil {
				return nil, fmt.Errorf("%w: %s: no literal (use IS NULL)", ErrInvalidFilter, f)
			}
			lit, err := coerce(f.Value, b.kind)
			if err != nil {
				return nil, fmt.Errorf("%w: %s: %w", ErrInvalidFilter, f, err)
			}
			b.lit = lit
		default:
			return nil, fmt.Errorf("%w: %s: unknown operator %q", ErrInvalidFilter, f, f.Op)
		}
		out = append(out, b)
	}
	return out, nil
}

func findField(s *delta.StructType, name string) (delta.StructField, bool) {
	for _, f := range s.Fields {
		if f.Name == name {
			return f, true
		}
	}
	for _, f := range s.Fields {
		if strings.EqualFold(f.Name, name) {
			return f, true
		}
	}
	return delta.StructField{}, false
}

// holds evaluates the filter on one value (nil is null), with SQL null semantics.
func (b *boundFilter) holds(v any) bool {
	switch b.Op {
	case IsNull:
		return v == nil
	case IsNotNull:
		return v != nil
	}
	if v == nil {
		return false
	}
	c, ok := compare(v, b.lit)
	if !ok {
		// NaN: IEEE comparisons are false, except !=.
		return b.Op == Ne
	}
	switch b.Op {
	case Eq:
		return c == 0
	case Ne:
		return c != 0
	case Lt:
		return c < 0
	case Le:
		return c <= 0
	case Gt:
		return c > 0
	case Ge:
		return c >= 0
	}
	return false
}

// fileStats is the part of add.stats that pruning reads.
type fileStats struct {
	NumRecords *int64                     `json:"numRecords"`
	MinValues  map[string]json.RawMessage `json:"minValues"`
	MaxValues  map[string]json.RawMessage `json:"maxValues"`
	NullCount  map[string]json.RawMessage `json:"nullCount"`
}

func parseStats(s string) *fileStats {
	if s == "" {
		return nil
	}
	var fs fileStats
	if err := json.Unmarshal([]byte(s), &fs); err != nil {
		return nil // unreadable stats prune nothing
	}
	return &fs
}

// statValue decodes one min or max; ok is false when absent or not of the column's kind.
func statValue(m map[string]json.RawMessage, col string, k kind) (any, bool) {
	raw, found := m[col]
	if !found {
		return nil, false
	}
	dec := json.NewDecoder(strings.NewReader(string(raw)))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil || v == nil {
		return nil, false
	}
	if _, isObj := v.(map[string]any); isObj {
		return nil, false
	}
	c, err := coerce(v, k)
	if err != nil {
		return nil, false
	}
	return c, true
}

// mayMatchFile reports whether a file can hold a row for which the filter holds, judged by
// its partition values or stats; true when unsure.
func (b *boundFilter) mayMatchFile(add *delta.Add, st *fileStats) (bool, error) {
	if b.partition {
		v, err := partitionValue(add, b.field)
		if err != nil {
			return false, err
		}
		return b.holds(v), nil
	}
	if st == nil {
		return true, nil
	}
	var nulls, rows int64 = -1, -1
	if st.NumRecords != nil {
		rows = *st.NumRecords
	}
	if raw, ok := st.NullCount[b.Column]; ok {
		var n int64
		if json.Unmarshal(raw, &n) == nil {
			nulls = n
		}
	}
	allNull := rows >= 0 && nulls == rows
	switch b.Op {
	case IsNull:
		return nulls != 0, nil
	case IsNotNull:
		return !allNull, nil
	}
	if allNull {
		return false, nil
	}
	if b.kind == kBool || b.kind == kBinary || b.kind == kOther {
		return true, nil
	}
	lo, okLo := statValue(st.MinValues, b.Column, b.kind)
	hi, okHi := statValue(st.MaxValues, b.Column, b.kind)
	if okHi && (b.kind == kTimestamp || b.kind == kTimestampNTZ) {
		// Writers truncate timestamps in stats to milliseconds; Spark truncates the max down,
		// so the true max may be up to 999 microseconds above it.
		hi = hi.(int64) + 999
	}
	below := func(v any) bool { c, ok := compare(v, b.lit); return ok && c < 0 }  // v < lit
	above := func(v any) bool { c, ok := compare(v, b.lit); return ok && c > 0 }  // v > lit
	equal := func(v any) bool { c, ok := compare(v, b.lit); return ok && c == 0 } // v == lit
	switch b.Op {
	case Eq:
		if okLo && above(lo) || okHi && below(hi) {
			return false, nil
		}
	case Ne:
		// Only when every value equals the literal; floats may hide NaN from stats.
		if b.kind != kFloat && b.kind != kFloat32 && okLo && okHi && equal(lo) && equal(hi) && nulls == 0 {
			return false, nil
		}
	case Lt:
		if okLo && !below(lo) {
			return false, nil
		}
	case Le:
		if okLo && above(lo) {
			return false, nil
		}
	case Gt:
		if okHi && !above(hi) {
			return false, nil
		}
	case Ge:
		if okHi && below(hi) {
			return false, nil
		}
	}
	return true, nil
}
