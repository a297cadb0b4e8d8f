package reader

import (
	"context"
	"fmt"
	"strings"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/compute"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// conform returns arr shaped as target: struct fields matched by name (missing ones null,
// extra ones dropped), list and map elements conformed in place, primitives cast where the
// cast only widens (int to long, float to double, timestamp units, decimal precision). The
// result has arr's length and offset semantics; the caller releases it.
func conform(ctx context.Context, mem memory.Allocator, arr arrow.Array, target arrow.DataType) (arrow.Array, error) {
	if arrow.TypeEqual(arr.DataType(), target) {
		arr.Retain()
		return arr, nil
	}
	data, err := conformData(ctx, mem, arr.Data(), target)
	if err != nil {
		return nil, err
	}
	defer data.Release()
	return array.MakeFromData(data), nil
}

func conformData(ctx context.Context, mem memory.Allocator, d arrow.ArrayData, target arrow.DataType) (arrow.ArrayData, error) {
	if arrow.TypeEqual(d.DataType(), target) {
		d.Retain()
		return d, nil
	}
	switch tt := target.(type) {
	case *arrow.StructType:
		st, ok := d.DataType().(*arrow.StructType)
		if !ok {
			return nil, fmt.Errorf("file has %s where the table has a struct", d.DataType())
		}
		childLen := d.Offset() + d.Len()
		if len(d.Children()) > 0 {
			childLen = d.Children()[0].Len()
		}
		children := make([]arrow.ArrayData, tt.NumFields())
		release := func() {
			for _, c := range children {
				if c != nil {
					c.Release()
				}
			}
		}
		for i, tf := range tt.Fields() {
			src := structFieldIndex(st, tf.Name)
			if src < 0 {
				nulls := array.MakeArrayOfNull(mem, tf.Type, childLen)
				children[i] = nulls.Data()
				children[i].Retain()
				nulls.Release()
				continue
			}
			c, err := conformData(ctx, mem, d.Children()[src], tf.Type)
			if err != nil {
				release()
				return nil, fmt.Errorf("field %q: %w", tf.Name, err)
			}
			children[i] = c
		}
		out := array.NewData(tt, d.Len(), d.Buffers()[:1], children, d.NullN(), d.Offset())
		release()
		return out, nil
	case *arrow.MapType:
		if _, ok := d.DataType().(*arrow.MapType); !ok {
			return nil, fmt.Errorf("file has %s where the table has a map", d.DataType())
		}
		entries := d.Children()[0]
		es := entries.DataType().(*arrow.StructType)
		if es.NumFields() != 2 {
			return nil, fmt.Errorf("map entries with %d fields", es.NumFields())
		}
		// Entries are matched by position: writers name them key/value or key/val.
		te := tt.Elem().(*arrow.StructType)
		k, err := conformData(ctx, mem, entries.Children()[0], te.Field(0).Type)
		if err != nil {
			return nil, fmt.Errorf("map key: %w", err)
		}
		defer k.Release()
		v, err := conformData(ctx, mem, entries.Children()[1], te.Field(1).Type)
		if err != nil {
			return nil, fmt.Errorf("map value: %w", err)
		}
		defer v.Release()
		ne := array.NewData(te, entries.Len(), entries.Buffers()[:1], []arrow.ArrayData{k, v}, entries.NullN(), entries.Offset())
		defer ne.Release()
		return array.NewData(tt, d.Len(), d.Buffers()[:2], []arrow.ArrayData{ne}, d.NullN(), d.Offset()), nil
	case *arrow.ListType:
		switch d.DataType().(type) {
		case *arrow.ListType:
		default:
			return nil, fmt.Errorf("file has %s where the table has an array", d.DataType())
		}
		el, err := conformData(ctx, mem, d.Children()[0], tt.Elem())
		if err != nil {
			return nil, fmt.Errorf("array element: %w", err)
		}
		defer el.Release()
		return array.NewData(tt, d.Len(), d.Buffers()[:2], []arrow.ArrayData{el}, d.NullN(), d.Offset()), nil
	}
	if !castAllowed(d.DataType(), target) {
		return nil, fmt.Errorf("file has %s where the table has %s", d.DataType(), target)
	}
	src := array.MakeFromData(d)
	defer src.Release()
	out, err := compute.CastArray(compute.WithAllocator(ctx, mem), src, compute.UnsafeCastOptions(target))
	if err != nil {
		return nil, fmt.Errorf("cast %s to %s: %w", d.DataType(), target, err)
	}
	defer out.Release()
	od := out.Data()
	od.Retain()
	return od, nil
}

func structFieldIndex(st *arrow.StructType, name string) int {
	if i, ok := st.FieldIdx(name); ok {
		return i
	}
	for i, f := range st.Fields() {
		if strings.EqualFold(f.Name, name) {
			return i
		}
	}
	return -1
}

// castAllowed lists the physical differences a reader meets in valid tables: narrower
// integers and floats (Delta type widening), timestamp units (INT96, millis), a time zone
// annotation that differs, decimals stored with other precision, dates widened to
// timestamp_ntz, strings stored without the UTF8 annotation, and large variants.
func castAllowed(from, to arrow.DataType) bool {
	fid, tid := from.ID(), to.ID()
	switch tid {
	case arrow.INT16:
		return fid == arrow.INT8
	case arrow.INT32:
		return fid == arrow.INT8 || fid == arrow.INT16
	case arrow.INT64:
		return fid == arrow.INT8 || fid == arrow.INT16 || fid == arrow.INT32
	case arrow.FLOAT64:
		return fid == arrow.FLOAT32 || fid == arrow.INT8 || fid == arrow.INT16 || fid == arrow.INT32
	case arrow.DECIMAL128:
		return fid == arrow.DECIMAL128 || fid == arrow.DECIMAL256 || fid == arrow.INT8 || fid == arrow.INT16 || fid == arrow.INT32 || fid == arrow.INT64
	case arrow.TIMESTAMP:
		return fid == arrow.TIMESTAMP || fid == arrow.DATE32
	case arrow.STRING:
		return fid == arrow.BINARY || fid == arrow.LARGE_STRING || fid == arrow.STRING_VIEW
	case arrow.BINARY:
		return fid == arrow.LARGE_BINARY || fid == arrow.STRING || fid == arrow.BINARY_VIEW
	case arrow.DATE32:
		return fid == arrow.DATE64
	}
	return false
}
