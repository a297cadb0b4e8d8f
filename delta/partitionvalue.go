package delta

import (
	"errors"
	"fmt"
	"math/big"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// ErrBadPartitionValue is wrapped by ParsePartitionValue errors: a
// serialized partition value that is not a value of its column's type.
var ErrBadPartitionValue = errors.New("delta: bad partition value")

// Spellings of partition values (PROTOCOL.md, "Partition Value
// Serialization"), kept strict so that every reader (this library's, Spark,
// delta-rs) reads the same value.
var (
	dateRE      = regexp.MustCompile(`^\d{4}-\d{2}-\d{2}$`)
	timestampRE = regexp.MustCompile(`^\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}:\d{2}(\.\d{1,6})?(Z|[+-]\d{2}:\d{2})?$`)
	floatRE     = regexp.MustCompile(`^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$|^(?i)[+-]?(nan|inf|infinity)$`)
	decimalRE2  = regexp.MustCompile(`^(\d+)(\.(\d+))?$`)
)

// ParsePartitionValue parses the serialized partition value s of a column
// of type t. An empty string is null (nil, as is a partition column missing
// from an add's partitionValues). Otherwise the value is, by type: int64
// for byte, short, integer and long (in the type's range); float64 for
// float and double; bool for boolean ("true" or "false", any case); string
// for string (valid UTF-8); []byte for binary; time.Time in UTC for date
// (midnight), timestamp and timestamp_ntz (microsecond precision; a zone,
// "Z" or "+hh:mm", only for timestamp); *big.Rat for decimal(p,s), not
// negative, with at most p-s integer and exactly s fraction digits (what
// delta-rs reads). Any other type, and any value that
// does not parse, is an error wrapping ErrBadPartitionValue.
func ParsePartitionValue(t DataType, s string) (any, error) {
	if s == "" {
		return nil, nil
	}
	p, ok := t.(PrimitiveType)
	if !ok {
		return nil, fmt.Errorf("%w: a %s column cannot be a partition column", ErrBadPartitionValue, t.TypeName())
	}
	bad := func(want string) error {
		return fmt.Errorf("%w: %q is not a %s (want %s)", ErrBadPartitionValue, s, p, want)
	}
	switch p {
	case String:
		if !utf8.ValidString(s) {
			return nil, fmt.Errorf("%w: string value is not valid UTF-8", ErrBadPartitionValue)
		}
		return s, nil
	case Binary:
		return []byte(s), nil
	case Boolean:
		switch strings.ToLower(s) {
		case "true":
			return true, nil
		case "false":
			return false, nil
		}
		return nil, bad("true or false")
	case Byte, Short, Integer, Long:
		bits := map[PrimitiveType]int{Byte: 8, Short: 16, Integer: 32, Long: 64}[p]
		n, err := strconv.ParseInt(s, 10, bits)
		if err != nil {
			return nil, bad(fmt.Sprintf("a decimal integer that fits %d bits", bits))
		}
		return n, nil
	case Float, Double:
		bits := 64
		if p == Float {
			bits = 32
		}
		if !floatRE.MatchString(s) {
			return nil, bad("a decimal number, NaN or Infinity")
		}
		f, err := strconv.ParseFloat(s, bits)
		if err != nil && !errors.Is(err, strconv.ErrRange) {
			return nil, bad("a decimal number, NaN or Infinity")
		}
		return f, nil
	case Date:
		if dateRE.MatchString(s) {
			if d, err := time.Parse("2006-01-02", s); err == nil {
				return d, nil
			}
		}
		return nil, bad("yyyy-mm-dd")
	case Timestamp, TimestampNTZ:
		m := timestampRE.FindStringSubmatch(s)
		// delta-rs reads timestamp_ntz only with a space between date and time.
		if m == nil || (p == TimestampNTZ && (m[2] != "" || s[10] != ' ')) {
			if p == TimestampNTZ {
				return nil, bad("yyyy-mm-dd hh:mm:ss[.ffffff] without a zone")
			}
			return nil, bad("yyyy-mm-dd hh:mm:ss[.ffffff][Z|+hh:mm]")
		}
		layout := "2006-01-02T15:04:05.999999"
		v := strings.Replace(s, " ", "T", 1)
		if m[2] != "" {
			layout += "Z07:00"
		}
		ts, err := time.Parse(layout, v)
		if err != nil {
			return nil, bad("a valid date and time")
		}
		return ts.UTC(), nil
	}
	if prec, scale, ok := p.Decimal(); ok {
		// As Spark writes them: exactly scale digits after the point.
		// delta-rs (delta-kernel) refuses other spellings, and reads a
		// negative one ("-1.50") as the invalid "-1.-50".
		m := decimalRE2.FindStringSubmatch(s)
		want := fmt.Sprintf("a non-negative number with at most %d digits before the point and exactly %d after it", max(prec-scale, 0), scale)
		if m == nil || len(m[3]) != scale || len(strings.TrimLeft(m[1], "0")) > prec-scale {
			return nil, bad(want)
		}
		r, ok := new(big.Rat).SetString(s)
		if !ok {
			return nil, bad("a plain decimal number")
		}
		return r, nil
	}
	return nil, fmt.Errorf("%w: a %s column cannot be a partition column", ErrBadPartitionValue, p)
}

// CanPartitionBy reports whether a column of type t may be a partition
// column: a primitive type ParsePartitionValue knows.
func CanPartitionBy(t DataType) bool {
	p, ok := t.(PrimitiveType)
	if !ok {
		return false
	}
	switch p {
	case String, Binary, Boolean, Byte, Short, Integer, Long, Float, Double, Date, Timestamp, TimestampNTZ:
		return true
	}
	_, _, ok = p.Decimal()
	return ok
}
