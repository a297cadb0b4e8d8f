package datafile

import (
	"errors"
	"fmt"

	"github.com/apache/arrow-go/v18/arrow"

	"github.com/plantlake/plantlake/delta"
)

// ErrUnsupportedType is returned for a Delta type with no Arrow mapping here (variant, void).
var ErrUnsupportedType = errors.New("datafile: unsupported Delta type")

// ArrowSchema returns the Arrow schema a writer builds record batches with for a Delta schema:
// timestamp as microseconds in "UTC" (Parquet isAdjustedToUTC=true), timestamp_ntz as
// microseconds without zone, date as date32, decimals as decimal128, arrays as lists of an
// "element" field, maps as Arrow maps.
func ArrowSchema(s *delta.StructType) (*arrow.Schema, error) {
	fields, err := arrowFields(s)
	if err != nil {
		return nil, err
	}
	return arrow.NewSchema(fields, nil), nil
}

func arrowFields(s *delta.StructType) ([]arrow.Field, error) {
	fields := make([]arrow.Field, 0, len(s.Fields))
	for _, f := range s.Fields {
		t, err := ArrowType(f.Type)
		if err != nil {
			return nil, fmt.Errorf("column %q: %w", f.Name, err)
		}
		fields = append(fields, arrow.Field{Name: f.Name, Type: t, Nullable: f.Nullable})
	}
	return fields, nil
}

// ArrowType returns the Arrow type of a Delta type (see ArrowSchema).
func ArrowType(t delta.DataType) (arrow.DataType, error) {
	switch t := t.(type) {
	case delta.PrimitiveType:
		switch t {
		case delta.String:
			return arrow.BinaryTypes.String, nil
		case delta.Long:
			return arrow.PrimitiveTypes.Int64, nil
		case delta.Integer:
			return arrow.PrimitiveTypes.Int32, nil
		case delta.Short:
			return arrow.PrimitiveTypes.Int16, nil
		case delta.Byte:
			return arrow.PrimitiveTypes.Int8, nil
		case delta.Float:
			return arrow.PrimitiveTypes.Float32, nil
		case delta.Double:
			return arrow.PrimitiveTypes.Float64, nil
		case delta.Boolean:
			return arrow.FixedWidthTypes.Boolean, nil
		case delta.Binary:
			return arrow.BinaryTypes.Binary, nil
		case delta.Date:
			return arrow.FixedWidthTypes.Date32, nil
		case delta.Timestamp:
			return &arrow.TimestampType{Unit: arrow.Microsecond, TimeZone: "UTC"}, nil
		case delta.TimestampNTZ:
			return &arrow.TimestampType{Unit: arrow.Microsecond}, nil
		}
		if p, s, ok := t.Decimal(); ok {
			if p < 1 || p > 38 || s < 0 || s > p {
				return nil, fmt.Errorf("%w: %s", ErrUnsupportedType, t)
			}
			return &arrow.Decimal128Type{Precision: int32(p), Scale: int32(s)}, nil
		}
		return nil, fmt.Errorf("%w: %s", ErrUnsupportedType, t)
	case *delta.StructType:
		fields, err := arrowFields(t)
		if err != nil {
			return nil, err
		}
		if len(fields) == 0 {
			return nil, fmt.Errorf("%w: empty struct", ErrUnsupportedType)
		}
		return arrow.StructOf(fields...), nil
	case *delta.ArrayType:
		et, err := ArrowType(t.ElementType)
		if err != nil {
			return nil, fmt.Errorf("array element: %w", err)
		}
		return arrow.ListOfField(arrow.Field{Name: "element", Type: et, Nullable: t.ContainsNull}), nil
	case *delta.MapType:
		kt, err := ArrowType(t.KeyType)
		if err != nil {
			return nil, fmt.Errorf("map key: %w", err)
		}
		vt, err := ArrowType(t.ValueType)
		if err != nil {
			return nil, fmt.Errorf("map value: %w", err)
		}
		m := arrow.MapOfFields(arrow.Field{Name: "key", Type: kt}, arrow.Field{Name: "value", Type: vt, Nullable: t.ValueContainsNull})
		return m, nil
	}
	return nil, fmt.Errorf("%w: %T", ErrUnsupportedType, t)
}
