package delta

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet"
	"github.com/apache/arrow-go/v18/parquet/file"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"

	"github.com/plantlake/plantlake/delta/storage"
)

// checkpointColumns are the top-level checkpoint columns replay needs.
var checkpointColumns = map[string]bool{
	"add": true, "remove": true, "txn": true, "protocol": true, "metaData": true,
	"checkpointMetadata": true, "sidecar": true,
}

// skippedLeaves are subtrees replay does not need (typed copies of strings
// it already has).
func skippedLeaf(path []string) bool {
	return len(path) >= 2 && path[0] == "add" && (path[1] == "stats_parsed" || path[1] == "partitionValues_parsed")
}

// maxRowsPerByte bounds the rows a checkpoint of a given size may claim.
const maxRowsPerByte = 16

// readParquetActions reads the actions in a Parquet checkpoint or sidecar;
// with noRemoves, all but the remove actions (a snapshot's load leaves the
// checkpoint's tombstones in it, see Snapshot.tombBase).
func readParquetActions(ctx context.Context, store storage.Store, p string, noRemoves bool) ([]Action, error) {
	f, err := store.Open(ctx, p)
	if err != nil {
		return nil, fmt.Errorf("delta: open %s: %w", p, err)
	}
	defer f.Close()
	acts, err := decodeParquetActions(ctx, io.NewSectionReader(f, 0, f.Size()), true, noRemoves)
	if err != nil {
		return nil, fmt.Errorf("delta: read %s: %w", p, err)
	}
	return acts, nil
}

// parquetActions decodes checkpoint rows into actions. A row with more than
// one action column set yields one action per column.
func parquetActions(ctx context.Context, r parquet.ReaderAtSeeker) ([]Action, error) {
	return decodeParquetActions(ctx, r, true, false)
}

// decodeParquetActions is parquetActions; fast=false decodes every column
// through Arrow (tests compare the two); noRemoves leaves the remove
// column out.
func decodeParquetActions(ctx context.Context, r parquet.ReaderAtSeeker, fast, noRemoves bool) (acts []Action, err error) {
	size, err := r.Seek(0, io.SeekEnd)
	if err != nil {
		return nil, err
	}
	if _, err := r.Seek(0, io.SeekStart); err != nil {
		return nil, err
	}
	defer func() {
		// arrow-go can panic on malformed files; a bad checkpoint is an error.
		if p := recover(); p != nil {
			acts, err = nil, fmt.Errorf("%w: malformed parquet: %v", ErrInvalidLog, p)
		}
	}()
	pf, err := file.NewParquetReader(r)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidLog, err)
	}
	defer pf.Close()
	if err := checkChunkBounds(pf, size); err != nil {
		return nil, err
	}
	if n := pf.NumRows(); n > maxRowsPerByte*size+1024 {
		// Every checkpoint row holds an action with a path or id of its
		// own, so a file claiming far more rows than bytes is corrupt;
		// decoding what it claims could take any time and memory.
		return nil, fmt.Errorf("%w: %d rows in %d bytes", ErrInvalidLog, n, size)
	}
	sch := pf.MetaData().Schema
	var fileLeaves, otherLeaves []int
	// Actions come out by top-level column: add and remove first (the
	// bulk, so the few others append to them without a copy), then the
	// others, each in schema order.
	var fileOrder, order []string
	for i := 0; i < sch.NumColumns(); i++ {
		path := sch.Column(i).ColumnPath()
		if len(path) == 0 || !checkpointColumns[path[0]] || skippedLeaf(path) || (noRemoves && path[0] == "remove") {
			continue
		}
		if path[0] == "add" || path[0] == "remove" {
			if len(fileOrder) == 0 || fileOrder[len(fileOrder)-1] != path[0] {
				fileOrder = append(fileOrder, path[0])
			}
			fileLeaves = append(fileLeaves, i)
		} else {
			if len(order) == 0 || order[len(order)-1] != path[0] {
				order = append(order, path[0])
			}
			otherLeaves = append(otherLeaves, i)
		}
	}
	order = append(fileOrder, order...)
	// The columns decode straight from the column chunks (see
	// fastFileActions and fastOtherActions); files with shapes those do not
	// handle go through Arrow.
	byColumn := map[string][]Action{}
	leaves := otherLeaves
	if len(fileLeaves) > 0 && !fast {
		leaves = append(fileLeaves, otherLeaves...)
		sort.Ints(leaves)
	} else if len(fileLeaves) > 0 {
		byColumn, err = fastFileActions(pf, fileLeaves)
		if errors.Is(err, errNoFastPath) {
			byColumn, leaves = map[string][]Action{}, append(fileLeaves, otherLeaves...)
			sort.Ints(leaves)
		} else if err != nil {
			return nil, err
		}
	}
	if fast && len(otherLeaves) > 0 && len(leaves) == len(otherLeaves) {
		others := map[string][]Action{}
		err := fastOtherActions(pf, otherLeaves, others)
		switch {
		case err == nil:
			for k, v := range others {
				byColumn[k] = v
			}
			leaves = nil
		case !errors.Is(err, errNoFastPath):
			return nil, err
		}
	}
	if len(leaves) > 0 {
		if err := arrowActions(ctx, pf, leaves, byColumn); err != nil {
			return nil, err
		}
	}
	n := 0
	for _, as := range byColumn {
		n += len(as)
	}
	for _, name := range order {
		as := byColumn[name]
		switch {
		case len(as) == 0:
		case acts == nil && cap(as) >= n:
			acts = as // room for the rest: no copy of the bulk
		case acts == nil:
			acts = make([]Action, 0, n)
			acts = append(acts, as...)
		default:
			acts = append(acts, as...)
		}
	}
	return acts, nil
}

// arrowActions decodes the leaves of pf through Arrow into actions by
// top-level column name.
func arrowActions(ctx context.Context, pf *file.Reader, leaves []int, byColumn map[string][]Action) error {
	fr, err := pqarrow.NewFileReader(pf, pqarrow.ArrowReadProperties{BatchSize: 64 * 1024}, memory.DefaultAllocator)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrInvalidLog, err)
	}
	rowGroups := make([]int, pf.NumRowGroups())
	for i := range rowGroups {
		rowGroups[i] = i
	}
	tbl, err := fr.ReadRowGroups(ctx, leaves, rowGroups)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrInvalidLog, err)
	}
	defer tbl.Release()
	for i := 0; i < int(tbl.NumCols()); i++ {
		c := tbl.Column(i)
		name := c.Name()
		row := 0
		for _, chunk := range c.Data().Chunks() {
			if st, ok := chunk.(*array.Struct); ok && (name == "add" || name == "remove") {
				fast, err := fileActions(name, st)
				if err != nil {
					return err
				}
				byColumn[name] = append(byColumn[name], fast...)
				row += chunk.Len()
				continue
			}
			for i := 0; i < chunk.Len(); i++ {
				row++
				if chunk.IsNull(i) {
					continue
				}
				v := arrowValue(chunk, i, 0)
				a, err := actionFromValue(name, v)
				if err != nil {
					return fmt.Errorf("row %d: %w", row, err)
				}
				if a != nil {
					byColumn[name] = append(byColumn[name], *a)
				}
			}
		}
	}
	return nil
}

// structFields indexes a struct array's children by name.
type structFields struct {
	s   *array.Struct
	idx map[string]int
}

func newStructFields(s *array.Struct) structFields {
	st := s.DataType().(*arrow.StructType)
	idx := make(map[string]int, st.NumFields())
	for i := 0; i < st.NumFields(); i++ {
		idx[st.Field(i).Name] = i
	}
	return structFields{s: s, idx: idx}
}

func (f structFields) field(name string) arrow.Array {
	i, ok := f.idx[name]
	if !ok {
		return nil
	}
	return f.s.Field(i)
}

func strAt(a arrow.Array, i int) (string, bool) {
	if a == nil || a.IsNull(i) {
		return "", false
	}
	switch x := a.(type) {
	case *array.String:
		return x.Value(i), true
	case *array.LargeString:
		return x.Value(i), true
	case *array.Binary:
		return string(x.Value(i)), true
	}
	return "", false
}

func int64At(a arrow.Array, i int) (int64, bool) {
	if a == nil || a.IsNull(i) {
		return 0, false
	}
	switch x := a.(type) {
	case *array.Int64:
		return x.Value(i), true
	case *array.Int32:
		return int64(x.Value(i)), true
	}
	return 0, false
}

func boolAt(a arrow.Array, i int) (bool, bool) {
	if a == nil || a.IsNull(i) {
		return false, false
	}
	if x, ok := a.(*array.Boolean); ok {
		return x.Value(i), true
	}
	return false, false
}

func strMapAt(a arrow.Array, i int) map[string]string {
	m, ok := a.(*array.Map)
	if !ok || m.IsNull(i) {
		return nil
	}
	start, end := m.ValueOffsets(i)
	out := make(map[string]string, end-start)
	keys, items := m.Keys(), m.Items()
	for j := start; j < end; j++ {
		k, _ := strAt(keys, int(j))
		v, _ := strAt(items, int(j))
		out[k] = v
	}
	return out
}

func optInt64At(a arrow.Array, i int) *int64 {
	if v, ok := int64At(a, i); ok {
		return &v
	}
	return nil
}

func rawStructAt(a arrow.Array, i int) (json.RawMessage, error) {
	if a == nil || a.IsNull(i) {
		return nil, nil
	}
	v := arrowValue(a, i, 0)
	if m, ok := v.(map[string]any); ok {
		v = dropNulls(m)
	}
	return json.Marshal(v)
}

// fileActions decodes an add or remove column directly (the bulk of a
// checkpoint), without the JSON detour of actionFromValue.
func fileActions(kind string, s *array.Struct) ([]Action, error) {
	f := newStructFields(s)
	path := f.field("path")
	pv, size, mod, dc := f.field("partitionValues"), f.field("size"), f.field("modificationTime"), f.field("dataChange")
	stats, tags, dv := f.field("stats"), f.field("tags"), f.field("deletionVector")
	baseRow, defVer := f.field("baseRowId"), f.field("defaultRowCommitVersion")
	var out []Action
	for i := 0; i < s.Len(); i++ {
		if s.IsNull(i) {
			continue
		}
		p, ok := strAt(path, i)
		if !ok {
			continue
		}
		rawDV, err := rawStructAt(dv, i)
		if err != nil {
			return nil, fmt.Errorf("%w: %s.deletionVector: %v", ErrInvalidLog, kind, err)
		}
		dataChange, _ := boolAt(dc, i)
		st, _ := strAt(stats, i)
		if kind == "add" {
			a := &Add{Path: p, PartitionValues: strMapAt(pv, i), DataChange: dataChange, Stats: st,
				Tags: strMapAt(tags, i), DeletionVector: rawDV, BaseRowID: optInt64At(baseRow, i),
				DefaultRowCommitVersion: optInt64At(defVer, i)}
			a.Size, _ = int64At(size, i)
			a.ModificationTime, _ = int64At(mod, i)
			a.ClusteringProvider, _ = strAt(f.field("clusteringProvider"), i)
			out = append(out, Action{Add: a})
			continue
		}
		r := &Remove{Path: p, DeletionTimestamp: optInt64At(f.field("deletionTimestamp"), i), DataChange: dataChange,
			PartitionValues: strMapAt(pv, i), Size: optInt64At(size, i), Stats: st, Tags: strMapAt(tags, i),
			DeletionVector: rawDV, BaseRowID: optInt64At(baseRow, i), DefaultRowCommitVersion: optInt64At(defVer, i)}
		if b, ok := boolAt(f.field("extendedFileMetadata"), i); ok {
			r.ExtendedFileMetadata = &b
		}
		out = append(out, Action{Remove: r})
	}
	return out, nil
}

// checkChunkBounds refuses files whose column chunks lie outside the file:
// arrow-go reads columns in goroutines where a bad offset panics beyond
// recovery.
func checkChunkBounds(pf *file.Reader, size int64) error {
	md := pf.MetaData()
	for g := 0; g < md.NumRowGroups(); g++ {
		rg := md.RowGroup(g)
		if rg.NumRows() < 0 {
			return fmt.Errorf("%w: row group %d has %d rows", ErrInvalidLog, g, rg.NumRows())
		}
		for c := 0; c < rg.NumColumns(); c++ {
			cc, err := rg.ColumnChunk(c)
			if err != nil {
				return fmt.Errorf("%w: row group %d column %d: %v", ErrInvalidLog, g, c, err)
			}
			start := cc.DataPageOffset()
			if cc.HasDictionaryPage() && cc.DictionaryPageOffset() > 0 && start > cc.DictionaryPageOffset() {
				start = cc.DictionaryPageOffset()
			}
			n := cc.TotalCompressedSize()
			if start < 0 || n < 0 || start > size || n > size-start || cc.NumValues() < 0 {
				return fmt.Errorf("%w: row group %d column %d lies outside the file", ErrInvalidLog, g, c)
			}
		}
	}
	return nil
}

// actionFromValue turns a decoded checkpoint struct into an action by way of
// its JSON form, so checkpoint and commit actions decode identically.
func actionFromValue(kind string, v any) (*Action, error) {
	m, ok := v.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("%w: %s column is not a struct", ErrInvalidLog, kind)
	}
	// A struct whose required key field is null is an empty slot (some
	// writers write non-null structs with null fields).
	key := map[string]string{"add": "path", "remove": "path", "txn": "appId", "protocol": "minReaderVersion",
		"metaData": "id", "checkpointMetadata": "version", "sidecar": "path"}[kind]
	if m[key] == nil {
		return nil, nil
	}
	b, err := json.Marshal(map[string]any{kind: dropNulls(m)})
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrInvalidLog, kind, err)
	}
	var a Action
	if err := json.Unmarshal(b, &a); err != nil {
		return nil, err
	}
	return &a, nil
}

func dropNulls(m map[string]any) map[string]any {
	for k, v := range m {
		if v == nil {
			delete(m, k)
		}
	}
	return m
}

const maxArrowDepth = 64

// arrowValue converts one value of an Arrow array to a JSON-like Go value.
func arrowValue(arr arrow.Array, i, depth int) any {
	if arr.IsNull(i) || depth > maxArrowDepth {
		return nil
	}
	switch a := arr.(type) {
	case *array.String:
		return a.Value(i)
	case *array.LargeString:
		return a.Value(i)
	case *array.Binary:
		return base64.StdEncoding.EncodeToString(a.Value(i))
	case *array.Boolean:
		return a.Value(i)
	case *array.Int8:
		return int64(a.Value(i))
	case *array.Int16:
		return int64(a.Value(i))
	case *array.Int32:
		return int64(a.Value(i))
	case *array.Int64:
		return a.Value(i)
	case *array.Uint32:
		return int64(a.Value(i))
	case *array.Float32:
		return float64(a.Value(i))
	case *array.Float64:
		return a.Value(i)
	case *array.Struct:
		st := a.DataType().(*arrow.StructType)
		m := make(map[string]any, a.NumField())
		for f := 0; f < a.NumField(); f++ {
			m[st.Field(f).Name] = arrowValue(a.Field(f), i, depth+1)
		}
		return m
	case *array.Map:
		start, end := a.ValueOffsets(i)
		keys, items := a.Keys(), a.Items()
		m := make(map[string]any, end-start)
		for j := start; j < end; j++ {
			k := arrowValue(keys, int(j), depth+1)
			ks, ok := k.(string)
			if !ok {
				ks = fmt.Sprint(k)
			}
			m[ks] = arrowValue(items, int(j), depth+1)
		}
		return m
	case *array.List:
		start, end := a.ValueOffsets(i)
		vals := a.ListValues()
		out := make([]any, 0, end-start)
		for j := start; j < end; j++ {
			out = append(out, arrowValue(vals, int(j), depth+1))
		}
		return out
	case *array.LargeList:
		start, end := a.ValueOffsets(i)
		vals := a.ListValues()
		out := make([]any, 0, end-start)
		for j := start; j < end; j++ {
			out = append(out, arrowValue(vals, int(j), depth+1))
		}
		return out
	case *array.Dictionary:
		return arrowValue(a.Dictionary(), a.GetValueIndex(i), depth+1)
	default:
		return strings.TrimSpace(arr.ValueStr(i))
	}
}
