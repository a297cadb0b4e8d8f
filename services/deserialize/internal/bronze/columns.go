package bronze

import (
	"unsafe"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// validity is a column's validity bitmap, made only once a null occurs:
// until then every value is valid and nothing is stored.
type validity struct {
	bits  []byte
	nulls int
}

// add records whether value i (the next one) is valid.
func (v *validity) add(i int, valid bool) {
	if v.nulls == 0 {
		if valid {
			return
		}
		// The first null: the i values before it were valid.
		for range i / 8 {
			v.bits = append(v.bits, 0xff)
		}
		if i%8 != 0 {
			v.bits = append(v.bits, byte(1)<<(i%8)-1)
		}
	}
	if i%8 == 0 {
		v.bits = append(v.bits, 0)
	}
	if valid {
		v.bits[i/8] |= 1 << (i % 8)
	} else {
		v.nulls++
	}
}

// buffer returns the bitmap as an Arrow buffer, nil when there is no null.
func (v *validity) buffer() *memory.Buffer {
	if v.nulls == 0 {
		return nil
	}
	return memory.NewBufferBytes(v.bits)
}

// varColumn is a string or binary column: value i is data[off[i]:off[i+1]].
type varColumn struct {
	off   []int32
	bytes []byte
	valid validity
}

// appendVar appends value i of c; a null appends no bytes.
func appendVar[T string | []byte](c *varColumn, i int, v T, valid bool) {
	if c.off == nil {
		c.off = append(make([]int32, 0, 1024), 0)
	}
	if valid {
		c.bytes = append(c.bytes, v...)
	}
	c.valid.add(i, valid)
	c.off = append(c.off, int32(len(c.bytes)))
}

// data wraps c's n values as Arrow array data of type t without copying; c
// must not be appended to afterwards.
func (c *varColumn) data(t arrow.DataType, n int) arrow.ArrayData {
	if c.off == nil {
		c.off = []int32{0}
	}
	return array.NewData(t, n, []*memory.Buffer{c.valid.buffer(), memory.NewBufferBytes(bytesOf(c.off)), memory.NewBufferBytes(c.bytes)}, nil, c.valid.nulls, 0)
}

// varSizes returns the byte length of each column.
func varSizes(cols []*varColumn) []int {
	out := make([]int, len(cols))
	for i, c := range cols {
		out[i] = len(c.bytes)
	}
	return out
}

// reserveVars makes room for rows values and bytes[i] bytes in column i,
// with an eighth to spare.
func reserveVars(cols []*varColumn, rows int, bytes []int) {
	for i, c := range cols {
		c.off = make([]int32, 1, rows+rows/8+1)
		if i < len(bytes) {
			c.bytes = make([]byte, 0, bytes[i]+bytes[i]/8)
		}
	}
}

// fixedColumn is a column of fixed-width values; a null holds a zero.
type fixedColumn[T int32 | int64 | float64] struct {
	vals  []T
	valid validity
}

func (c *fixedColumn[T]) append(i int, v T, valid bool) {
	if !valid {
		v = 0
	}
	c.valid.add(i, valid)
	c.vals = append(c.vals, v)
}

// reserve makes room for rows values, with an eighth to spare.
func (c *fixedColumn[T]) reserve(rows int) {
	c.vals = make([]T, 0, rows+rows/8)
}

// data wraps c's n values as Arrow array data of type t without copying.
func (c *fixedColumn[T]) data(t arrow.DataType, n int) arrow.ArrayData {
	return array.NewData(t, n, []*memory.Buffer{c.valid.buffer(), memory.NewBufferBytes(bytesOf(c.vals))}, nil, c.valid.nulls, 0)
}

// bytesOf reinterprets s's elements as bytes.
func bytesOf[T int32 | int64 | float64](s []T) []byte {
	if len(s) == 0 {
		return nil
	}
	var zero T
	return unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(s))), len(s)*int(unsafe.Sizeof(zero)))
}

// newRecord makes a record batch of the columns' data, taking over the
// caller's references to it.
func newRecord(schema *arrow.Schema, n int, cols []arrow.ArrayData) arrow.RecordBatch {
	arrs := make([]arrow.Array, len(cols))
	for i, d := range cols {
		arrs[i] = array.MakeFromData(d)
		d.Release()
	}
	rec := array.NewRecordBatch(schema, arrs, int64(n))
	for _, a := range arrs {
		a.Release()
	}
	return rec
}
