package reader

import (
	"context"
	"errors"
	"fmt"
	"io"
	"iter"
	"math/big"
	"strings"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/compute"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet/file"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"

	"github.com/plantlake/plantlake/delta"
	"github.com/plantlake/plantlake/delta/datafile"
	"github.com/plantlake/plantlake/delta/storage"
)

// ErrUnknownColumn is wrapped by errors about a projected or filtered column the table does
// not have.
var ErrUnknownColumn = errors.New("reader: unknown column")

// ErrFileOutsideTable is returned for a live file the store cannot reach: an absolute path
// or a URI of another store.
var ErrFileOutsideTable = errors.New("reader: data file outside the table's store")

// Options select what a Scan returns.
type Options struct {
	// Columns are the top-level columns to return, in this order; nil is all, in table order.
	Columns []string
	// Filters are ANDed; files that cannot match are skipped and rows that do not match are
	// dropped.
	Filters []Filter
	// BatchRows caps the rows of a returned batch; 64 Ki when zero.
	BatchRows int64
	// Limit stops the scan after this many rows; 0 is no limit.
	Limit int64

	// noPrune reads every file, for tests that check pruning never changes a result.
	noPrune bool
	// Allocator allocates the batches; memory.DefaultAllocator when nil.
	Allocator memory.Allocator
}

// Scan reads the rows of one snapshot. Use Next until io.EOF (or Records), then Close.
type Scan struct {
	store     storage.Store
	opts      Options
	mem       memory.Allocator
	table     *delta.StructType // table schema
	full      *arrow.Schema     // Arrow schema of the table
	out       *arrow.Schema     // Arrow schema of the returned batches
	outIdx    []int             // indices into full of the returned columns
	need      []bool            // columns of full the scan reads (returned or filtered)
	isPart    []bool            // columns of full that are partition columns
	filters   []boundFilter
	filterIdx []int // index into full of each filter's column
	files     []delta.Add
	pruned    int

	next     int         // next file to open
	cur      *fileCursor // file being read
	returned int64       // rows returned so far
}

// New plans a scan of snap: it checks that the table needs no unsupported reader feature,
// resolves the columns and filters against the table schema, and prunes files by partition
// values and stats. store is the table's store (rooted at the table folder).
func New(store storage.Store, snap *delta.Snapshot, opts Options) (*Scan, error) {
	if err := checkReadable(snap); err != nil {
		return nil, err
	}
	return plan(store, snap, snap.Files(), opts)
}

// NewFiles plans a scan of the given files instead of snap's live ones, shaped by snap's
// schema and partition columns: the files one version added, read by a stage that follows
// the table's changes (they need not be live in snap any more). Paths are canonical, as in
// delta.Snapshot.Files (see delta.CanonicalPath). Files with a deletion vector are refused.
func NewFiles(store storage.Store, snap *delta.Snapshot, files []delta.Add, opts Options) (*Scan, error) {
	if err := checkReadable(snap); err != nil {
		return nil, err
	}
	for _, a := range files {
		if len(a.DeletionVector) > 0 && string(a.DeletionVector) != "null" {
			return nil, &delta.UnsupportedFeatureError{Feature: "deletionVectors", Detail: "file " + a.Path + " has a deletion vector"}
		}
	}
	return plan(store, snap, files, opts)
}

// plan resolves columns and filters against snap's schema and prunes files.
func plan(store storage.Store, snap *delta.Snapshot, files []delta.Add, opts Options) (*Scan, error) {
	schema, err := snap.Schema()
	if err != nil {
		return nil, fmt.Errorf("reader: table schema: %w", err)
	}
	full, err := datafile.ArrowSchema(schema)
	if err != nil {
		return nil, fmt.Errorf("reader: table schema: %w", err)
	}
	s := &Scan{store: store, opts: opts, mem: opts.Allocator, table: schema, full: full}
	if s.mem == nil {
		s.mem = memory.DefaultAllocator
	}
	if s.opts.BatchRows <= 0 {
		s.opts.BatchRows = 64 << 10
	}
	partCols := snap.PartitionColumns()
	s.isPart = make([]bool, len(schema.Fields))
	for i, f := range schema.Fields {
		for _, p := range partCols {
			if strings.EqualFold(p, f.Name) {
				s.isPart[i] = true
			}
		}
	}
	s.need = make([]bool, len(schema.Fields))
	if opts.Columns == nil {
		for i := range schema.Fields {
			s.outIdx = append(s.outIdx, i)
		}
	} else {
		for _, c := range opts.Columns {
			i := fieldIndex(schema, c)
			if i < 0 {
				return nil, fmt.Errorf("%w: %q", ErrUnknownColumn, c)
			}
			s.outIdx = append(s.outIdx, i)
		}
	}
	fields := make([]arrow.Field, len(s.outIdx))
	for j, i := range s.outIdx {
		s.need[i] = true
		fields[j] = full.Field(i)
	}
	s.out = arrow.NewSchema(fields, nil)
	s.filters, err = bindFilters(opts.Filters, schema, partCols)
	if err != nil {
		return nil, err
	}
	for _, f := range s.filters {
		i := fieldIndex(schema, f.Column)
		s.filterIdx = append(s.filterIdx, i)
		s.need[i] = true
	}
	for _, add := range files {
		keep, err := s.mayMatch(&add)
		if err != nil {
			return nil, err
		}
		if keep {
			s.files = append(s.files, add)
		} else {
			s.pruned++
		}
	}
	return s, nil
}

// checkReadable refuses tables whose rows this reader would get wrong.
func checkReadable(snap *delta.Snapshot) error {
	p := snap.Protocol()
	for _, f := range p.ReaderFeatures {
		switch f {
		case "deletionVectors", "columnMapping":
			return &delta.UnsupportedFeatureError{Feature: f, Detail: "the reader does not implement it"}
		}
	}
	if mode, ok := snap.Metadata().Configuration[delta.PropColumnMappingMode]; ok && mode != "" && mode != "none" {
		return &delta.UnsupportedFeatureError{Feature: "columnMapping", Detail: "table uses column mapping mode " + mode}
	}
	for _, a := range snap.Files() {
		if len(a.DeletionVector) > 0 && string(a.DeletionVector) != "null" {
			return &delta.UnsupportedFeatureError{Feature: "deletionVectors", Detail: "file " + a.Path + " has a deletion vector"}
		}
	}
	return nil
}

func fieldIndex(s *delta.StructType, name string) int {
	for i, f := range s.Fields {
		if f.Name == name {
			return i
		}
	}
	for i, f := range s.Fields {
		if strings.EqualFold(f.Name, name) {
			return i
		}
	}
	return -1
}

func (s *Scan) mayMatch(add *delta.Add) (bool, error) {
	if len(s.filters) == 0 || s.opts.noPrune {
		return true, nil
	}
	st := parseStats(add.Stats)
	for i := range s.filters {
		ok, err := s.filters[i].mayMatchFile(add, st)
		if err != nil {
			return false, fmt.Errorf("reader: %w", err)
		}
		if !ok {
			return false, nil
		}
	}
	return true, nil
}

// Schema returns the Arrow schema of the batches the scan returns.
func (s *Scan) Schema() *arrow.Schema { return s.out }

// Files returns the files the scan reads, after pruning.
func (s *Scan) Files() []delta.Add { return s.files }

// Pruned returns how many live files the filters skipped.
func (s *Scan) Pruned() int { return s.pruned }

// Next returns the next non-empty batch, or io.EOF after the last. The caller releases it.
func (s *Scan) Next(ctx context.Context) (arrow.RecordBatch, error) {
	for {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if s.opts.Limit > 0 && s.returned >= s.opts.Limit {
			return nil, io.EOF
		}
		if s.cur == nil {
			if s.next >= len(s.files) {
				return nil, io.EOF
			}
			add := s.files[s.next]
			s.next++
			cur, err := s.openFile(ctx, &add)
			if err != nil {
				return nil, err
			}
			s.cur = cur
		}
		rec, err := s.cur.next(ctx)
		if errors.Is(err, io.EOF) {
			s.cur.close()
			s.cur = nil
			continue
		}
		if err != nil {
			return nil, err
		}
		out, err := s.finish(ctx, rec)
		rec.Release()
		if err != nil {
			return nil, fmt.Errorf("reader: %s: %w", s.cur.path, err)
		}
		if out.NumRows() == 0 {
			out.Release()
			continue
		}
		if s.opts.Limit > 0 && s.returned+out.NumRows() > s.opts.Limit {
			cut := out.NewSlice(0, s.opts.Limit-s.returned)
			out.Release()
			out = cut
		}
		s.returned += out.NumRows()
		return out, nil
	}
}

// Records iterates over the batches; each is released when the loop body returns, so retain
// one to keep it. Iteration stops at the first error, which is yielded.
func (s *Scan) Records(ctx context.Context) iter.Seq2[arrow.RecordBatch, error] {
	return func(yield func(arrow.RecordBatch, error) bool) {
		for {
			rec, err := s.Next(ctx)
			if errors.Is(err, io.EOF) {
				return
			}
			if err != nil {
				yield(nil, err)
				return
			}
			cont := yield(rec, nil)
			rec.Release()
			if !cont {
				return
			}
		}
	}
}

// Close releases the file being read.
func (s *Scan) Close() error {
	if s.cur != nil {
		s.cur.close()
		s.cur = nil
	}
	return nil
}

// finish applies the filters to a batch of the full schema (only needed columns set) and
// projects it to the output columns.
func (s *Scan) finish(ctx context.Context, rec arrow.RecordBatch) (arrow.RecordBatch, error) {
	if len(s.filters) > 0 {
		mask, all, err := s.mask(rec)
		if err != nil {
			return nil, err
		}
		if !all {
			defer mask.Release()
			filtered, err := compute.FilterRecordBatch(compute.WithAllocator(ctx, s.mem), rec, mask, compute.DefaultFilterOptions())
			if err != nil {
				return nil, fmt.Errorf("filter rows: %w", err)
			}
			defer filtered.Release()
			rec = filtered
		}
	}
	cols := make([]arrow.Array, len(s.outIdx))
	for j, i := range s.outIdx {
		cols[j] = rec.Column(i)
	}
	return array.NewRecordBatch(s.out, cols, rec.NumRows()), nil
}

// mask evaluates the filters on each row; all reports that every row passed.
func (s *Scan) mask(rec arrow.RecordBatch) (arrow.Array, bool, error) {
	n := int(rec.NumRows())
	keep := make([]bool, n)
	for r := range keep {
		keep[r] = true
	}
	for fi := range s.filters {
		f := &s.filters[fi]
		get, err := valueGetter(rec.Column(s.filterIdx[fi]))
		if err != nil {
			return nil, false, err
		}
		for r := 0; r < n; r++ {
			if keep[r] && !f.holds(get(r)) {
				keep[r] = false
			}
		}
	}
	all := true
	for _, k := range keep {
		all = all && k
	}
	if all {
		return nil, true, nil
	}
	b := array.NewBooleanBuilder(s.mem)
	defer b.Release()
	b.AppendValues(keep, nil)
	return b.NewArray(), false, nil
}

// valueGetter returns the comparison value of each row of a table-typed array (nil for null).
func valueGetter(arr arrow.Array) (func(int) any, error) {
	nullOr := func(f func(int) any) func(int) any {
		return func(i int) any {
			if arr.IsNull(i) {
				return nil
			}
			return f(i)
		}
	}
	switch a := arr.(type) {
	case *array.Int8:
		return nullOr(func(i int) any { return int64(a.Value(i)) }), nil
	case *array.Int16:
		return nullOr(func(i int) any { return int64(a.Value(i)) }), nil
	case *array.Int32:
		return nullOr(func(i int) any { return int64(a.Value(i)) }), nil
	case *array.Int64:
		return nullOr(func(i int) any { return a.Value(i) }), nil
	case *array.Float32:
		return nullOr(func(i int) any { return float64(a.Value(i)) }), nil
	case *array.Float64:
		return nullOr(func(i int) any { return a.Value(i) }), nil
	case *array.String:
		return nullOr(func(i int) any { return a.Value(i) }), nil
	case *array.Binary:
		return nullOr(func(i int) any { return a.Value(i) }), nil
	case *array.Boolean:
		return nullOr(func(i int) any { return a.Value(i) }), nil
	case *array.Date32:
		return nullOr(func(i int) any { return int64(a.Value(i)) }), nil
	case *array.Timestamp:
		return nullOr(func(i int) any { return int64(a.Value(i)) }), nil
	case *array.Decimal128:
		scale := a.DataType().(*arrow.Decimal128Type).Scale
		den := new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(scale)), nil)
		return nullOr(func(i int) any { return new(big.Rat).SetFrac(a.Value(i).BigInt(), den) }), nil
	}
	// Nested columns: only nullness is tested.
	return nullOr(func(int) any { return struct{}{} }), nil
}

// fileCursor reads one data file batch by batch and shapes batches to the full table schema.
type fileCursor struct {
	s        *Scan
	path     string
	f        storage.File
	rr       pqarrow.RecordReader // nil when no data column is needed
	srcIdx   []int                // for each needed data column of full: its index in rr's schema, or -1
	parts    []any                // typed partition values, per column of full
	rowsLeft int64                // when rr is nil: rows still to emit
}

func (s *Scan) openFile(ctx context.Context, add *delta.Add) (*fileCursor, error) {
	p := add.Path
	if strings.HasPrefix(p, "/") || strings.Contains(p, "://") {
		return nil, fmt.Errorf("%w: %s", ErrFileOutsideTable, p)
	}
	c := &fileCursor{s: s, path: p, parts: make([]any, len(s.table.Fields))}
	for i, f := range s.table.Fields {
		if s.isPart[i] && s.need[i] {
			v, err := partitionValue(add, f)
			if err != nil {
				return nil, fmt.Errorf("reader: %w", err)
			}
			c.parts[i] = v
		}
	}
	f, err := s.store.Open(ctx, p)
	if err != nil {
		return nil, fmt.Errorf("reader: open data file %s: %w", p, err)
	}
	c.f = f
	pf, err := file.NewParquetReader(io.NewSectionReader(f, 0, f.Size()))
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("reader: parquet footer of %s: %w", p, err)
	}
	fr, err := pqarrow.NewFileReader(pf, pqarrow.ArrowReadProperties{BatchSize: s.opts.BatchRows, PreAllocBinaryData: true}, s.mem)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("reader: parquet schema of %s: %w", p, err)
	}
	// Leaf columns of the needed top-level fields, matched by name.
	var leaves []int
	var picked []int // manifest field index per needed data column
	c.srcIdx = make([]int, len(s.table.Fields))
	for i, tf := range s.table.Fields {
		c.srcIdx[i] = -1
		if s.isPart[i] || !s.need[i] {
			continue
		}
		mi := manifestIndex(fr.Manifest, tf.Name)
		if mi < 0 {
			continue
		}
		c.srcIdx[i] = len(picked)
		picked = append(picked, mi)
		leaves = collectLeaves(&fr.Manifest.Fields[mi], leaves)
	}
	if len(leaves) == 0 {
		c.rowsLeft = pf.NumRows()
		return c, nil
	}
	rr, err := fr.GetRecordReader(ctx, leaves, nil)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("reader: read %s: %w", p, err)
	}
	c.rr = rr
	// The record reader orders fields as in the file; map each picked field to its position.
	rs := rr.Schema()
	for i := range c.srcIdx {
		if c.srcIdx[i] < 0 {
			continue
		}
		name := fr.Manifest.Fields[picked[c.srcIdx[i]]].Field.Name
		idx := rs.FieldIndices(name)
		if len(idx) == 0 {
			rr.Release()
			f.Close()
			return nil, fmt.Errorf("reader: %s: column %q missing from the read schema", p, name)
		}
		c.srcIdx[i] = idx[0]
	}
	return c, nil
}

func manifestIndex(m *pqarrow.SchemaManifest, name string) int {
	for i, f := range m.Fields {
		if f.Field.Name == name {
			return i
		}
	}
	for i, f := range m.Fields {
		if strings.EqualFold(f.Field.Name, name) {
			return i
		}
	}
	return -1
}

func collectLeaves(f *pqarrow.SchemaField, out []int) []int {
	if f.IsLeaf() {
		return append(out, f.ColIndex)
	}
	for i := range f.Children {
		out = collectLeaves(&f.Children[i], out)
	}
	return out
}

// next returns the next batch of the file in the full table schema, unneeded columns null.
func (c *fileCursor) next(ctx context.Context) (arrow.RecordBatch, error) {
	s := c.s
	var src arrow.RecordBatch
	var n int64
	if c.rr == nil {
		if c.rowsLeft <= 0 {
			return nil, io.EOF
		}
		n = min(c.rowsLeft, s.opts.BatchRows)
		c.rowsLeft -= n
	} else {
		rec, err := c.rr.Read()
		if errors.Is(err, io.EOF) || (err == nil && rec == nil) {
			return nil, io.EOF
		}
		if err != nil {
			return nil, fmt.Errorf("reader: read %s: %w", c.path, err)
		}
		src = rec
		n = rec.NumRows()
	}
	cols := make([]arrow.Array, len(s.table.Fields))
	release := func() {
		for _, a := range cols {
			if a != nil {
				a.Release()
			}
		}
	}
	for i := range s.table.Fields {
		t := s.full.Field(i).Type
		var err error
		switch {
		case !s.need[i]:
			cols[i] = array.MakeArrayOfNull(s.mem, t, int(n))
		case s.isPart[i]:
			cols[i], err = constantArray(s.mem, t, c.parts[i], int(n))
		case c.srcIdx[i] < 0:
			cols[i] = array.MakeArrayOfNull(s.mem, t, int(n))
		default:
			cols[i], err = conform(ctx, s.mem, src.Column(c.srcIdx[i]), t)
			if err != nil {
				err = fmt.Errorf("column %q: %w", s.full.Field(i).Name, err)
			}
		}
		if err != nil {
			release()
			return nil, fmt.Errorf("reader: %s: %w", c.path, err)
		}
	}
	rec := array.NewRecordBatch(s.full, cols, n)
	release()
	return rec, nil
}

func (c *fileCursor) close() {
	if c.rr != nil {
		c.rr.Release()
	}
	c.f.Close()
}
