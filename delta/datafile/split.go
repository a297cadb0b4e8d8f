package datafile

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/compute"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// Partition is the rows of one partition: the serialized partition values and the rows, with
// the partition columns removed (they are not stored in data files).
type Partition struct {
	// Values maps each partition column to its serialized value; "" is null.
	Values map[string]string
	// Record holds the partition's rows without the partition columns. The caller releases it.
	Record arrow.RecordBatch
}

// FormatPartitionValue serializes row i of arr as a Delta partition value (PROTOCOL.md,
// "Partition Value Serialization"); null is "". Timestamps are written in UTC as
// "yyyy-MM-dd HH:mm:ss.SSSSSS", dates as "yyyy-MM-dd".
func FormatPartitionValue(arr arrow.Array, i int) (string, error) {
	if arr.IsNull(i) {
		return "", nil
	}
	switch a := arr.(type) {
	case *array.String:
		return a.Value(i), nil
	case *array.LargeString:
		return a.Value(i), nil
	case *array.Int8:
		return strconv.FormatInt(int64(a.Value(i)), 10), nil
	case *array.Int16:
		return strconv.FormatInt(int64(a.Value(i)), 10), nil
	case *array.Int32:
		return strconv.FormatInt(int64(a.Value(i)), 10), nil
	case *array.Int64:
		return strconv.FormatInt(a.Value(i), 10), nil
	case *array.Boolean:
		return strconv.FormatBool(a.Value(i)), nil
	case *array.Float32:
		return strconv.FormatFloat(float64(a.Value(i)), 'g', -1, 32), nil
	case *array.Float64:
		return strconv.FormatFloat(a.Value(i), 'g', -1, 64), nil
	case *array.Date32:
		return a.Value(i).ToTime().Format(PartitionDateLayout), nil
	case *array.Timestamp:
		unit := a.DataType().(*arrow.TimestampType).Unit
		return a.Value(i).ToTime(unit).UTC().Format(PartitionTimestampLayout), nil
	case *array.Decimal128:
		return a.Value(i).ToString(a.DataType().(*arrow.Decimal128Type).Scale), nil
	case *array.Binary:
		return string(a.Value(i)), nil
	}
	return "", fmt.Errorf("%w: partition column of type %s", ErrInvalidBatch, arr.DataType())
}

// SplitByPartition splits rec into one Partition per distinct combination of the values of
// partitionCols, in order of first appearance; each Record keeps the other columns in their
// order. rec is not released.
func SplitByPartition(ctx context.Context, mem memory.Allocator, rec arrow.RecordBatch, partitionCols []string) ([]Partition, error) {
	if mem == nil {
		mem = memory.DefaultAllocator
	}
	keep, schema, err := dataColumns(rec.Schema(), partitionCols)
	if err != nil {
		return nil, err
	}
	partArrs := make([]arrow.Array, len(partitionCols))
	for i, c := range partitionCols {
		idx := rec.Schema().FieldIndices(c)
		if len(idx) != 1 {
			return nil, fmt.Errorf("%w: partition column %q: %d columns of that name", ErrInvalidBatch, c, len(idx))
		}
		partArrs[i] = rec.Column(idx[0])
	}
	type group struct {
		values map[string]string
		runs   [][2]int64 // [start, end) row ranges, increasing
	}
	var order []*group
	groups := map[string]*group{}
	var key strings.Builder
	vals := make([]string, len(partitionCols))
	same := make([]func(i, j int) bool, len(partArrs))
	for i, a := range partArrs {
		same[i] = sameValue(a)
	}
	var prev *group
	n := int(rec.NumRows())
	for r := 0; r < n; r++ {
		// Rows arrive in runs of one partition: reuse the previous row's group when every
		// partition value equals it, without formatting.
		if prev != nil && allSame(same, r-1, r) {
			prev.runs[len(prev.runs)-1][1]++
			continue
		}
		key.Reset()
		for i, a := range partArrs {
			v, err := FormatPartitionValue(a, r)
			if err != nil {
				return nil, fmt.Errorf("partition column %q: %w", partitionCols[i], err)
			}
			vals[i] = v
			key.WriteString(strconv.Itoa(len(v)))
			key.WriteByte(':')
			key.WriteString(v)
		}
		g := groups[key.String()]
		if g == nil {
			g = &group{values: map[string]string{}}
			for i, c := range partitionCols {
				g.values[c] = vals[i]
			}
			groups[key.String()] = g
			order = append(order, g)
		}
		if k := len(g.runs); k > 0 && g.runs[k-1][1] == int64(r) {
			g.runs[k-1][1]++
		} else {
			g.runs = append(g.runs, [2]int64{int64(r), int64(r) + 1})
		}
		prev = g
	}
	data := project(rec, keep, schema)
	defer data.Release()
	out := make([]Partition, 0, len(order))
	release := func() {
		for _, p := range out {
			p.Record.Release()
		}
	}
	for _, g := range order {
		if len(order) == 1 {
			data.Retain()
			out = append(out, Partition{Values: g.values, Record: data})
			continue
		}
		sub, err := takeRows(ctx, mem, data, g.runs)
		if err != nil {
			release()
			return nil, err
		}
		out = append(out, Partition{Values: g.values, Record: sub})
	}
	return out, nil
}

// takeRows returns the rows of rec in the given increasing [start, end) runs: a zero-copy
// slice for one run, else a copy.
func takeRows(ctx context.Context, mem memory.Allocator, rec arrow.RecordBatch, runs [][2]int64) (arrow.RecordBatch, error) {
	if len(runs) == 1 {
		return rec.NewSlice(runs[0][0], runs[0][1]), nil
	}
	b := array.NewInt64Builder(mem)
	var n int64
	for _, r := range runs {
		for i := r[0]; i < r[1]; i++ {
			b.Append(i)
		}
		n += r[1] - r[0]
	}
	idx := b.NewArray()
	b.Release()
	defer idx.Release()
	cols := make([]arrow.Array, rec.NumCols())
	ctx = compute.WithAllocator(ctx, mem)
	for i := range cols {
		c, err := compute.TakeArray(ctx, rec.Column(i), idx)
		if err != nil {
			for _, done := range cols[:i] {
				done.Release()
			}
			return nil, fmt.Errorf("datafile: take rows of column %q: %w", rec.Schema().Field(i).Name, err)
		}
		cols[i] = c
	}
	out := array.NewRecordBatch(rec.Schema(), cols, n)
	for _, c := range cols {
		c.Release()
	}
	return out, nil
}

func allSame(same []func(i, j int) bool, i, j int) bool {
	for _, f := range same {
		if !f(i, j) {
			return false
		}
	}
	return true
}

// sameValue returns a function reporting whether rows i and j of arr hold the same value (both
// null counts as the same); for types without a cheap comparison it reports false.
func sameValue(arr arrow.Array) func(i, j int) bool {
	nulls := func(i, j int) (both, either bool) {
		ni, nj := arr.IsNull(i), arr.IsNull(j)
		return ni && nj, ni || nj
	}
	wrap := func(eq func(i, j int) bool) func(i, j int) bool {
		if arr.NullN() == 0 {
			return eq
		}
		return func(i, j int) bool {
			both, either := nulls(i, j)
			if either {
				return both
			}
			return eq(i, j)
		}
	}
	switch a := arr.(type) {
	case *array.Date32:
		return wrap(func(i, j int) bool { return a.Value(i) == a.Value(j) })
	case *array.Timestamp:
		return wrap(func(i, j int) bool { return a.Value(i) == a.Value(j) })
	case *array.String:
		return wrap(func(i, j int) bool { return a.Value(i) == a.Value(j) })
	case *array.Int32:
		return wrap(func(i, j int) bool { return a.Value(i) == a.Value(j) })
	case *array.Int64:
		return wrap(func(i, j int) bool { return a.Value(i) == a.Value(j) })
	case *array.Int16:
		return wrap(func(i, j int) bool { return a.Value(i) == a.Value(j) })
	case *array.Int8:
		return wrap(func(i, j int) bool { return a.Value(i) == a.Value(j) })
	case *array.Boolean:
		return wrap(func(i, j int) bool { return a.Value(i) == a.Value(j) })
	}
	return func(int, int) bool { return false }
}
