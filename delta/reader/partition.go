package reader

import (
	"fmt"
	"math/big"
	"strings"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/decimal128"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/plantlake/plantlake/delta"
)

// partitionValue returns the typed value of a partition column for a file (nil for null:
// an empty string or a missing key). Timestamps are UTC.
func partitionValue(add *delta.Add, f delta.StructField) (any, error) {
	raw, ok := add.PartitionValues[f.Name]
	if !ok {
		for k, v := range add.PartitionValues {
			if strings.EqualFold(k, f.Name) {
				raw, ok = v, true
				break
			}
		}
	}
	if !ok || raw == "" {
		return nil, nil
	}
	k := kindOf(f.Type)
	if k == kOther {
		return nil, fmt.Errorf("%w: partition column %q has type %s", ErrInvalidValue, f.Name, f.Type.TypeName())
	}
	v, err := coerce(raw, k)
	if err != nil {
		return nil, fmt.Errorf("partition value of %q in %s: %w", f.Name, add.Path, err)
	}
	return v, nil
}

// constantArray returns an array of n copies of v (a value as partitionValue returns it, or
// nil for null) of type t.
func constantArray(mem memory.Allocator, t arrow.DataType, v any, n int) (arrow.Array, error) {
	if v == nil {
		return array.MakeArrayOfNull(mem, t, n), nil
	}
	b := array.NewBuilder(mem, t)
	defer b.Release()
	b.Reserve(n)
	var appendOne func()
	switch bb := b.(type) {
	case *array.Int8Builder:
		x := int8(v.(int64))
		appendOne = func() { bb.Append(x) }
	case *array.Int16Builder:
		x := int16(v.(int64))
		appendOne = func() { bb.Append(x) }
	case *array.Int32Builder:
		x := int32(v.(int64))
		appendOne = func() { bb.Append(x) }
	case *array.Int64Builder:
		x := v.(int64)
		appendOne = func() { bb.Append(x) }
	case *array.Float32Builder:
		x := float32(v.(float64))
		appendOne = func() { bb.Append(x) }
	case *array.Float64Builder:
		x := v.(float64)
		appendOne = func() { bb.Append(x) }
	case *array.BooleanBuilder:
		x := v.(bool)
		appendOne = func() { bb.Append(x) }
	case *array.StringBuilder:
		x := v.(string)
		appendOne = func() { bb.Append(x) }
	case *array.BinaryBuilder:
		x := v.([]byte)
		appendOne = func() { bb.Append(x) }
	case *array.Date32Builder:
		x := arrow.Date32(v.(int64))
		appendOne = func() { bb.Append(x) }
	case *array.TimestampBuilder:
		x := arrow.Timestamp(v.(int64))
		appendOne = func() { bb.Append(x) }
	case *array.Decimal128Builder:
		dt := t.(*arrow.Decimal128Type)
		num, err := ratToDecimal(v.(*big.Rat), dt.Precision, dt.Scale)
		if err != nil {
			return nil, err
		}
		appendOne = func() { bb.Append(num) }
	default:
		return nil, fmt.Errorf("%w: partition column of type %s", ErrInvalidValue, t)
	}
	for i := 0; i < n; i++ {
		appendOne()
	}
	return b.NewArray(), nil
}

// ratToDecimal converts r to a decimal128 of the given scale, exactly.
func ratToDecimal(r *big.Rat, precision, scale int32) (decimal128.Num, error) {
	scaled := new(big.Rat).Mul(r, new(big.Rat).SetInt(new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(scale)), nil)))
	if !scaled.IsInt() {
		return decimal128.Num{}, fmt.Errorf("%w: %s has more than %d decimal places", ErrInvalidValue, r.FloatString(int(scale)+2), scale)
	}
	n := decimal128.FromBigInt(scaled.Num())
	if !n.FitsInPrecision(precision) {
		return decimal128.Num{}, fmt.Errorf("%w: %s does not fit decimal(%d,%d)", ErrInvalidValue, r.FloatString(int(scale)), precision, scale)
	}
	return n, nil
}
