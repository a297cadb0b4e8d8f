package catalog

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/compute"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// sortColumns splits a sortBy property value; "" is no sort.
func sortColumns(s string) []string {
	if strings.TrimSpace(s) == "" {
		return nil
	}
	cols := strings.Split(s, ",")
	for i := range cols {
		cols[i] = strings.TrimSpace(cols[i])
	}
	return cols
}

// sortRecords returns the rows of recs (of schema sc) as one record batch
// ordered by the columns by, nulls first, so that a compacted file's rows
// are clustered on them and its row groups' and the file's min/max stats
// are narrow (queries by sensor prune). It takes ownership of recs. A sort
// column that is not a data column of an orderable type is an error.
func sortRecords(ctx context.Context, sc *arrow.Schema, recs []arrow.RecordBatch, by []string) ([]arrow.RecordBatch, error) {
	if len(by) == 0 || len(recs) == 0 {
		return recs, nil
	}
	// The input is released once concatenated, so that at most two copies
	// of the rows are held (the input and the concatenation, then the
	// concatenation and the sorted take).
	defer func() { releaseAll(recs) }()
	mem := memory.DefaultAllocator
	cols := make([]arrow.Array, sc.NumFields())
	defer func() {
		for _, c := range cols {
			if c != nil {
				c.Release()
			}
		}
	}()
	for i := range cols {
		chunks := make([]arrow.Array, len(recs))
		for j, r := range recs {
			chunks[j] = r.Column(i)
		}
		c, err := array.Concatenate(chunks, mem)
		if err != nil {
			return nil, fmt.Errorf("sort: concatenate %s: %w", sc.Field(i).Name, err)
		}
		cols[i] = c
	}
	releaseAll(recs)
	recs = nil
	var cmps []func(i, j int32) int
	for _, name := range by {
		idx := sc.FieldIndices(strings.TrimSpace(name))
		if len(idx) == 0 {
			return nil, fmt.Errorf("sort: no data column %q", name)
		}
		c, err := comparer(cols[idx[0]])
		if err != nil {
			return nil, fmt.Errorf("sort: column %q: %w", name, err)
		}
		cmps = append(cmps, c)
	}
	n := cols[0].Len()
	order := make([]int32, n)
	for i := range order {
		order[i] = int32(i)
	}
	slices.SortStableFunc(order, func(a, b int32) int {
		for _, c := range cmps {
			if r := c(a, b); r != 0 {
				return r
			}
		}
		return 0
	})
	ib := array.NewInt32Builder(mem)
	ib.AppendValues(order, nil)
	indices := ib.NewArray()
	ib.Release()
	defer indices.Release()
	out := make([]arrow.Array, len(cols))
	for i, c := range cols {
		t, err := compute.TakeArray(ctx, c, indices)
		if err != nil {
			for _, o := range out[:i] {
				o.Release()
			}
			return nil, fmt.Errorf("sort: take %s: %w", sc.Field(i).Name, err)
		}
		out[i] = t
	}
	rec := array.NewRecordBatch(sc, out, int64(n))
	for _, o := range out {
		o.Release()
	}
	return []arrow.RecordBatch{rec}, nil
}

// comparer orders the values of a, nulls first.
func comparer(a arrow.Array) (func(i, j int32) int, error) {
	nulls := func(i, j int32) (int, bool) {
		ni, nj := a.IsNull(int(i)), a.IsNull(int(j))
		switch {
		case ni && nj:
			return 0, true
		case ni:
			return -1, true
		case nj:
			return 1, true
		}
		return 0, false
	}
	var val func(i, j int32) int
	switch a := a.(type) {
	case *array.String:
		val = func(i, j int32) int { return strings.Compare(a.Value(int(i)), a.Value(int(j))) }
	case *array.Timestamp:
		val = func(i, j int32) int { return cmp.Compare(a.Value(int(i)), a.Value(int(j))) }
	case *array.Int64:
		val = func(i, j int32) int { return cmp.Compare(a.Value(int(i)), a.Value(int(j))) }
	case *array.Int32:
		val = func(i, j int32) int { return cmp.Compare(a.Value(int(i)), a.Value(int(j))) }
	case *array.Date32:
		val = func(i, j int32) int { return cmp.Compare(a.Value(int(i)), a.Value(int(j))) }
	case *array.Float64:
		val = func(i, j int32) int { return cmp.Compare(a.Value(int(i)), a.Value(int(j))) }
	default:
		return nil, fmt.Errorf("type %s is not orderable here", a.DataType())
	}
	return func(i, j int32) int {
		if r, ok := nulls(i, j); ok {
			return r
		}
		return val(i, j)
	}, nil
}
