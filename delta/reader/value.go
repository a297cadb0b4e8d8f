package reader

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/big"
	"strconv"
	"strings"
	"time"

	"github.com/plantlake/plantlake/delta"
)

// ErrInvalidValue is wrapped by errors about a literal or a partition value that does not fit
// its column's type.
var ErrInvalidValue = errors.New("reader: invalid value")

// kind is how values of a Delta primitive type are held for comparison: integers, dates
// (days) and timestamps (microseconds) as int64, floats as float64, decimals as *big.Rat,
// strings as string, binary as []byte, booleans as bool.
type kind int

const (
	kInt kind = iota
	kFloat
	kDecimal
	kString
	kBinary
	kBool
	kDate
	kTimestamp
	kTimestampNTZ
	kFloat32 // float: held as float64, literals and stats rounded to float32 first
	kOther   // nested types: only IS NULL / IS NOT NULL
)

func kindOf(t delta.DataType) kind {
	p, ok := t.(delta.PrimitiveType)
	if !ok {
		return kOther
	}
	switch p {
	case delta.Long, delta.Integer, delta.Short, delta.Byte:
		return kInt
	case delta.Float:
		return kFloat32
	case delta.Double:
		return kFloat
	case delta.String:
		return kString
	case delta.Binary:
		return kBinary
	case delta.Boolean:
		return kBool
	case delta.Date:
		return kDate
	case delta.Timestamp:
		return kTimestamp
	case delta.TimestampNTZ:
		return kTimestampNTZ
	}
	if _, _, ok := p.Decimal(); ok {
		return kDecimal
	}
	return kOther
}

// coerce converts v (a Go literal, a JSON-decoded value, or a string as found in partition
// values and stats) to the comparison representation of kind k.
func coerce(v any, k kind) (any, error) {
	switch k {
	case kInt:
		switch x := v.(type) {
		case int:
			return int64(x), nil
		case int8:
			return int64(x), nil
		case int16:
			return int64(x), nil
		case int32:
			return int64(x), nil
		case int64:
			return x, nil
		case uint8:
			return int64(x), nil
		case uint16:
			return int64(x), nil
		case uint32:
			return int64(x), nil
		case float64:
			if x == math.Trunc(x) && math.Abs(x) < 1<<63 {
				return int64(x), nil
			}
		case json.Number:
			return coerce(string(x), k)
		case string:
			n, err := strconv.ParseInt(strings.TrimSpace(x), 10, 64)
			if err == nil {
				return n, nil
			}
		}
	case kFloat:
		switch x := v.(type) {
		case float64:
			return x, nil
		case float32:
			return float64(x), nil
		case int:
			return float64(x), nil
		case int64:
			return float64(x), nil
		case int32:
			return float64(x), nil
		case json.Number:
			return coerce(string(x), k)
		case string:
			f, err := strconv.ParseFloat(strings.TrimSpace(x), 64)
			if err == nil {
				return f, nil
			}
		}
	case kFloat32:
		// Writers print a float's shortest decimal form ("0.234"); read as a double it is not
		// the float's value, so round to float32 as the column holds it.
		if s, ok := v.(string); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(s), 32)
			if err == nil {
				return float64(float32(f)), nil
			}
			break
		}
		if n, ok := v.(json.Number); ok {
			return coerce(string(n), k)
		}
		f, err := coerce(v, kFloat)
		if err != nil {
			return nil, err
		}
		return float64(float32(f.(float64))), nil
	case kDecimal:
		var s string
		switch x := v.(type) {
		case json.Number:
			s = string(x)
		case string:
			s = strings.TrimSpace(x)
		case float64:
			r := new(big.Rat)
			if r.SetFloat64(x) != nil {
				return r, nil
			}
		case int64:
			return new(big.Rat).SetInt64(x), nil
		case int:
			return new(big.Rat).SetInt64(int64(x)), nil
		case *big.Rat:
			return x, nil
		}
		if s != "" {
			if r, ok := new(big.Rat).SetString(s); ok {
				return r, nil
			}
		}
	case kString:
		switch x := v.(type) {
		case string:
			return x, nil
		case []byte:
			return string(x), nil
		}
	case kBinary:
		switch x := v.(type) {
		case []byte:
			return x, nil
		case string:
			return []byte(x), nil
		}
	case kBool:
		switch x := v.(type) {
		case bool:
			return x, nil
		case string:
			b, err := strconv.ParseBool(strings.TrimSpace(x))
			if err == nil {
				return b, nil
			}
		}
	case kDate:
		switch x := v.(type) {
		case time.Time:
			y, m, d := x.Date()
			return time.Date(y, m, d, 0, 0, 0, 0, time.UTC).Unix() / 86400, nil
		case string:
			s := strings.TrimSpace(x)
			if t, err := time.Parse("2006-01-02", s); err == nil {
				return floorDiv(t.Unix(), 86400), nil
			}
			// A timestamp literal against a date: its calendar date in UTC.
			if t, err := parseTimestamp(s); err == nil {
				return floorDiv(t.Unix(), 86400), nil
			}
		}
	case kTimestamp, kTimestampNTZ:
		switch x := v.(type) {
		case time.Time:
			if k == kTimestampNTZ {
				// The wall-clock time, as timestamp_ntz holds it.
				y, m, d := x.Date()
				x = time.Date(y, m, d, x.Hour(), x.Minute(), x.Second(), x.Nanosecond(), time.UTC)
			}
			return x.UnixMicro(), nil
		case string:
			t, err := parseTimestamp(strings.TrimSpace(x))
			if err == nil {
				return t.UnixMicro(), nil
			}
		case json.Number:
			// Microseconds since the epoch.
			if n, err := x.Int64(); err == nil {
				return n, nil
			}
		case int64:
			return x, nil
		}
	}
	return nil, fmt.Errorf("%w: %v (%T) is not a %s", ErrInvalidValue, v, v, kindName(k))
}

func kindName(k kind) string {
	return [...]string{"integer", "floating-point number", "decimal", "string", "binary", "boolean", "date", "timestamp", "timestamp_ntz", "float", "nested value"}[k]
}

// timestampLayouts are the spellings of timestamps in partition values, stats and literals.
// A value without a zone is UTC (Delta writes partition values in UTC).
var timestampLayouts = []string{
	time.RFC3339Nano,
	"2006-01-02T15:04:05.999999999",
	"2006-01-02 15:04:05.999999999Z07:00",
	"2006-01-02 15:04:05.999999999",
	"2006-01-02 15:04",
	"2006-01-02T15:04",
	"2006-01-02",
}

func parseTimestamp(s string) (time.Time, error) {
	for _, l := range timestampLayouts {
		if t, err := time.Parse(l, s); err == nil {
			return t.UTC(), nil
		}
	}
	return time.Time{}, fmt.Errorf("%w: %q is not a timestamp", ErrInvalidValue, s)
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && (a < 0) != (b < 0) {
		q--
	}
	return q
}

// compare orders two values of the same kind; ok is false when they cannot be ordered (NaN).
func compare(a, b any) (c int, ok bool) {
	switch x := a.(type) {
	case int64:
		y := b.(int64)
		return cmpOrdered(x, y), true
	case float64:
		y := b.(float64)
		if math.IsNaN(x) || math.IsNaN(y) {
			return 0, false
		}
		return cmpOrdered(x, y), true
	case string:
		return strings.Compare(x, b.(string)), true
	case []byte:
		return bytes.Compare(x, b.([]byte)), true
	case bool:
		y := b.(bool)
		switch {
		case x == y:
			return 0, true
		case !x:
			return -1, true
		default:
			return 1, true
		}
	case *big.Rat:
		return x.Cmp(b.(*big.Rat)), true
	}
	return 0, false
}

func cmpOrdered[T int64 | float64](x, y T) int {
	switch {
	case x < y:
		return -1
	case x > y:
		return 1
	}
	return 0
}
