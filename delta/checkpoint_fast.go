package delta

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/apache/arrow-go/v18/parquet"
	"github.com/apache/arrow-go/v18/parquet/file"
	"github.com/apache/arrow-go/v18/parquet/schema"
)

// The add and remove columns are the bulk of a checkpoint: one row per file.
// fastFileActions decodes them straight from the Parquet column chunks
// (definition and repetition levels plus values) into slabs of Add and
// Remove, without building Arrow arrays. It handles the shapes Delta writers
// produce (optional structs of scalars, string maps); anything else (a
// deletion vector in some row, an unexpected physical type or nesting) makes
// it return errNoFastPath and the caller decodes the file generically.

// errNoFastPath says the file needs the generic decoder.
var errNoFastPath = errors.New("delta: checkpoint needs the generic decoder")

// maxFastRows bounds the rows of one row group the fast path decodes.
const maxFastRows = 1 << 26

// fileLeaf is one leaf column under add or remove.
type fileLeaf struct {
	col    int
	path   []string
	levels []int16 // levels[j]: definition level when path[:j+1] is non-null
	maxRep int16
}

// fileColumns are the leaves of one file-action column ("add" or "remove").
type fileColumns struct {
	kind   string
	path   *fileLeaf
	scalar map[string]*fileLeaf    // field → leaf, for leaves [kind, field]
	maps   map[string][2]*fileLeaf // field → key and value leaves
	dv     []*fileLeaf             // deletionVector leaves
}

// nodeLevels returns the definition levels along a leaf's path.
func nodeLevels(c *schema.Column) []int16 {
	var nodes []schema.Node
	for n := c.SchemaNode(); n != nil && n.Parent() != nil; n = n.Parent() {
		nodes = append(nodes, n)
	}
	levels := make([]int16, len(nodes))
	var d int16
	for j := len(nodes) - 1; j >= 0; j-- {
		if nodes[j].RepetitionType() != parquet.Repetitions.Required {
			d++
		}
		levels[len(nodes)-1-j] = d
	}
	return levels
}

// classifyFileLeaves sorts the add and remove leaves among cols into
// fileColumns, or reports errNoFastPath for a shape it does not handle.
func classifyFileLeaves(sch *schema.Schema, cols []int) (map[string]*fileColumns, error) {
	out := map[string]*fileColumns{}
	for _, i := range cols {
		c := sch.Column(i)
		p := c.ColumnPath()
		levels := nodeLevels(c)
		if len(p) < 2 || len(levels) != len(p) {
			return nil, errNoFastPath
		}
		fc := out[p[0]]
		if fc == nil {
			fc = &fileColumns{kind: p[0], scalar: map[string]*fileLeaf{}, maps: map[string][2]*fileLeaf{}}
			out[p[0]] = fc
		}
		l := &fileLeaf{col: i, path: p, levels: levels, maxRep: c.MaxRepetitionLevel()}
		switch {
		case p[1] == "deletionVector":
			fc.dv = append(fc.dv, l)
		case len(p) == 2:
			if l.maxRep != 0 {
				return nil, errNoFastPath
			}
			if pt := c.PhysicalType(); (pt == parquet.Types.Int32 || pt == parquet.Types.Int64) && !plainLeaf(c) {
				return nil, errNoFastPath // e.g. a date: Arrow gives no integer
			}
			if p[1] == "path" {
				fc.path = l
			}
			fc.scalar[p[1]] = l
		case len(p) == 4 && l.maxRep == 1 && (p[1] == "partitionValues" || p[1] == "tags"):
			// [kind, map, repeated key_value group, key or value]
			group := c.SchemaNode().Parent()
			if group.RepetitionType() != parquet.Repetitions.Repeated || !isMapNode(group.Parent()) {
				return nil, errNoFastPath
			}
			kv := fc.maps[p[1]]
			switch p[3] {
			case "key":
				kv[0] = l
			case "value":
				kv[1] = l
			default:
				return nil, errNoFastPath
			}
			fc.maps[p[1]] = kv
		default:
			// A leaf replay does not use (e.g. a future field): ignored,
			// as the generic decoder ignores it too.
		}
	}
	for _, fc := range out {
		if fc.path == nil {
			return nil, errNoFastPath
		}
		for _, kv := range fc.maps {
			if kv[0] == nil || kv[1] == nil {
				return nil, errNoFastPath
			}
		}
	}
	return out, nil
}

// leafData is one leaf column of one row group, fully read: a level per
// value slot and the non-null values in order.
type leafData struct {
	phys       parquet.Type
	defs, reps []int16
	strs       []string
	ints       []int64
	bools      []bool
}

// readBatch is how many levels readLeaf reads at a time.
const readBatch = 4096

// readScratch holds readLeaf's buffers for one batch.
type readScratch struct {
	defs, reps [readBatch]int16
	bytes      [readBatch]parquet.ByteArray
	int64s     [readBatch]int64
	int32s     [readBatch]int32
	bools      [readBatch]bool
}

var scratchPool = sync.Pool{New: func() any { return new(readScratch) }}

// readLeaf reads column col of row group rg. limit bounds the level count;
// hint is the expected count (the row count), for preallocation. reuse, if
// not nil, is a leafData whose buffers the caller is done with.
func readLeaf(rg *file.RowGroupReader, col int, limit, hint int64, reuse *leafData) (*leafData, error) {
	if hint > limit {
		hint = limit
	}
	cr, err := rg.Column(col)
	if err != nil {
		return nil, fmt.Errorf("%w: column %d: %v", ErrInvalidLog, col, err)
	}
	defer cr.Close()
	d := reuse
	if d == nil {
		d = &leafData{}
	}
	*d = leafData{phys: cr.Type(), defs: d.defs[:0], reps: d.reps[:0], strs: d.strs[:0], ints: d.ints[:0], bools: d.bools[:0]}
	if int64(cap(d.defs)) < hint {
		d.defs = make([]int16, 0, hint)
	}
	sc := scratchPool.Get().(*readScratch)
	defer scratchPool.Put(sc)
	defBuf := sc.defs[:]
	var repBuf []int16
	if cr.Descriptor().MaxRepetitionLevel() > 0 {
		repBuf = sc.reps[:]
		if int64(cap(d.reps)) < hint {
			d.reps = make([]int16, 0, hint)
		}
	} else {
		d.reps = nil
	}
	var total int64
	required := cr.Descriptor().MaxDefinitionLevel() == 0 // no levels are stored
	// add takes n levels read; false when reading is over.
	add := func(n int64) (bool, error) {
		if n <= 0 {
			return false, nil // no progress: the page data ran out
		}
		total += n
		if total > limit || n > readBatch {
			return false, fmt.Errorf("%w: column %d has more values than its row group", ErrInvalidLog, col)
		}
		if required {
			clear(defBuf[:n])
		}
		d.defs = append(d.defs, defBuf[:n]...)
		if repBuf != nil {
			d.reps = append(d.reps, repBuf[:n]...)
		}
		return true, nil
	}
	readErr := func(err error) error { return fmt.Errorf("%w: column %d: %v", ErrInvalidLog, col, err) }
	switch r := cr.(type) {
	case *file.ByteArrayColumnChunkReader:
		vals := sc.bytes[:]
		defer clear(vals) // do not keep pages alive from the pool
		for r.HasNext() {
			n, nv, err := r.ReadBatchInPage(readBatch, vals, defBuf, repBuf)
			if err != nil {
				return nil, readErr(err)
			}
			if more, err := add(n); !more {
				if err != nil {
					return nil, err
				}
				break
			}
			if cap(d.strs) == 0 && n > 0 {
				// Size for the density of the first batch: most
				// columns are all or nearly all null, or all set.
				d.strs = make([]string, 0, min(hint, int64(nv)*((hint+n-1)/n)))
			}
			d.strs = appendStrings(d.strs, vals[:nv])
		}
	case *file.Int64ColumnChunkReader:
		vals := sc.int64s[:]
		for r.HasNext() {
			n, nv, err := r.ReadBatchInPage(readBatch, vals, defBuf, repBuf)
			if err != nil {
				return nil, readErr(err)
			}
			if more, err := add(n); !more {
				if err != nil {
					return nil, err
				}
				break
			}
			d.ints = append(d.ints, vals[:nv]...)
		}
	case *file.Int32ColumnChunkReader:
		vals := sc.int32s[:]
		for r.HasNext() {
			n, nv, err := r.ReadBatchInPage(readBatch, vals, defBuf, repBuf)
			if err != nil {
				return nil, readErr(err)
			}
			if more, err := add(n); !more {
				if err != nil {
					return nil, err
				}
				break
			}
			for _, v := range vals[:nv] {
				d.ints = append(d.ints, int64(v))
			}
		}
	case *file.BooleanColumnChunkReader:
		vals := sc.bools[:]
		for r.HasNext() {
			n, nv, err := r.ReadBatchInPage(readBatch, vals, defBuf, repBuf)
			if err != nil {
				return nil, readErr(err)
			}
			if more, err := add(n); !more {
				if err != nil {
					return nil, err
				}
				break
			}
			d.bools = append(d.bools, vals[:nv]...)
		}
	default:
		return nil, errNoFastPath
	}
	if err := cr.Err(); err != nil {
		return nil, readErr(err)
	}
	return d, nil
}

// appendStrings appends vals as strings that share one allocation. A value
// repeating the one before it (a dictionary-encoded column hands out the
// same bytes) shares its string.
func appendStrings(dst []string, vals []parquet.ByteArray) []string {
	n := 0
	for i, v := range vals {
		if i > 0 && sameBytes(v, vals[i-1]) {
			continue
		}
		n += len(v)
	}
	var b strings.Builder
	b.Grow(n)
	for i, v := range vals {
		if i > 0 && sameBytes(v, vals[i-1]) {
			continue
		}
		b.Write(v)
	}
	s := b.String()
	off := 0
	for i, v := range vals {
		if i > 0 && sameBytes(v, vals[i-1]) {
			dst = append(dst, dst[len(dst)-1])
			continue
		}
		dst = append(dst, s[off:off+len(v)])
		off += len(v)
	}
	return dst
}

// sameBytes reports whether a and b are the same bytes in memory.
func sameBytes(a, b []byte) bool {
	return len(a) == len(b) && (len(a) == 0 || &a[0] == &b[0])
}

// scalarCursor walks a non-repeated leaf row by row.
type scalarCursor struct {
	d      *leafData
	maxDef int16
	next   int // index of the next non-null value
}

func (l *fileLeaf) read(rg *file.RowGroupReader, nrows int64, reuse *leafData) (*scalarCursor, error) {
	d, err := readLeaf(rg, l.col, nrows, nrows, reuse)
	if err != nil {
		return nil, err
	}
	if int64(len(d.defs)) != nrows {
		return nil, fmt.Errorf("%w: column %s has %d values for %d rows", ErrInvalidLog, joinPath(l.path), len(d.defs), nrows)
	}
	return &scalarCursor{d: d, maxDef: l.levels[len(l.levels)-1]}, nil
}

// present reports whether row has a value and advances past it; callers
// visit every row in order. It reports false when the values run out.
func (c *scalarCursor) present(row int) (int, bool) {
	if c.d.defs[row] != c.maxDef {
		return 0, false
	}
	i := c.next
	c.next++
	return i, true
}

func (c *scalarCursor) str(row int) (string, bool) {
	i, ok := c.present(row)
	if !ok || i >= len(c.d.strs) {
		return "", false
	}
	return c.d.strs[i], true
}

func (c *scalarCursor) int64(row int) (int64, bool) {
	i, ok := c.present(row)
	if !ok || i >= len(c.d.ints) {
		return 0, false
	}
	return c.d.ints[i], true
}

func (c *scalarCursor) bool(row int) (bool, bool) {
	i, ok := c.present(row)
	if !ok || i >= len(c.d.bools) {
		return false, false
	}
	return c.d.bools[i], true
}

func joinPath(p []string) string { return strings.Join(p, ".") }

// mapInterner shares identical string maps between files (Snapshot.Files
// documents that the maps are not to be modified): most files of a table
// share their partition values with many others.
type mapInterner struct {
	maps map[string]map[string]string
	key  []byte
	// kbuf and vbuf are reused for reading the key and value columns.
	kbuf, vbuf *leafData
}

const maxInternedMaps = 1 << 12

// readMap decodes the string map leaf pair of field name row by row and
// hands each non-null map to set.
func (fc *fileColumns) readMap(rg *file.RowGroupReader, name string, nrows int64, in *mapInterner, set func(row int, m map[string]string)) error {
	kv := fc.maps[name]
	kl, vl := kv[0], kv[1]
	// A map entry needs at least one level; bound the levels by what the
	// column chunk claims and the rows.
	meta, err := rg.MetaData().ColumnChunk(kl.col)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrInvalidLog, err)
	}
	limit := meta.NumValues()
	if limit > maxFastRows {
		return errNoFastPath
	}
	if limit < nrows {
		limit = nrows
	}
	k, err := readLeaf(rg, kl.col, limit, nrows, in.kbuf)
	if err != nil {
		return err
	}
	v, err := readLeaf(rg, vl.col, limit, nrows, in.vbuf)
	if err != nil {
		return err
	}
	if k.phys != parquet.Types.ByteArray || v.phys != parquet.Types.ByteArray {
		return errNoFastPath
	}
	if len(k.defs) != len(v.defs) {
		return fmt.Errorf("%w: map %s.%s keys and values do not line up", ErrInvalidLog, fc.kind, name)
	}
	mapLevel, entryLevel := kl.levels[1], kl.levels[2]
	keyDef, valDef := kl.levels[len(kl.levels)-1], vl.levels[len(vl.levels)-1]
	row, ki, vi := -1, 0, 0
	isNull := true
	var keys, vals []string
	for i := range k.defs {
		if k.reps[i] != v.reps[i] {
			return fmt.Errorf("%w: map %s.%s keys and values do not line up", ErrInvalidLog, fc.kind, name)
		}
		if k.reps[i] == 0 {
			if row >= 0 && !isNull {
				set(row, in.intern(keys, vals))
			}
			row++
			if int64(row) >= nrows {
				return fmt.Errorf("%w: map %s.%s has more rows than its row group", ErrInvalidLog, fc.kind, name)
			}
			keys, vals = keys[:0], vals[:0]
			isNull = k.defs[i] < mapLevel
		} else if row < 0 {
			return fmt.Errorf("%w: map %s.%s starts inside a row", ErrInvalidLog, fc.kind, name)
		}
		if k.defs[i] < entryLevel {
			continue
		}
		var key, val string
		if k.defs[i] == keyDef && ki < len(k.strs) {
			key = k.strs[ki]
			ki++
		}
		if v.defs[i] == valDef && vi < len(v.strs) {
			val = v.strs[vi]
			vi++
		}
		keys, vals = append(keys, key), append(vals, val)
	}
	if row >= 0 && !isNull {
		set(row, in.intern(keys, vals))
	}
	if int64(row+1) != nrows {
		return fmt.Errorf("%w: map %s.%s has %d rows, its row group %d", ErrInvalidLog, fc.kind, name, row+1, nrows)
	}
	return nil
}

// intern returns a map of the entries, shared with earlier identical ones.
func (in *mapInterner) intern(keys, vals []string) map[string]string {
	in.key = in.key[:0]
	for i := range keys { // length-prefixed, so no two maps share a key
		in.key = binary.AppendUvarint(in.key, uint64(len(keys[i])))
		in.key = append(in.key, keys[i]...)
		in.key = binary.AppendUvarint(in.key, uint64(len(vals[i])))
		in.key = append(in.key, vals[i]...)
	}
	if m, ok := in.maps[string(in.key)]; ok {
		return m
	}
	m := make(map[string]string, len(keys))
	for i := range keys {
		m[keys[i]] = vals[i]
	}
	if len(in.maps) < maxInternedMaps {
		if in.maps == nil {
			in.maps = map[string]map[string]string{}
		}
		in.maps[string(in.key)] = m
	}
	return m
}

// fastFileActions decodes the add and remove leaves cols of every row
// group of pf, by kind.
func fastFileActions(pf *file.Reader, cols []int) (map[string][]Action, error) {
	byKind, err := classifyFileLeaves(pf.MetaData().Schema, cols)
	if err != nil {
		return nil, err
	}
	out := map[string][]Action{}
	in := &mapInterner{kbuf: &leafData{}, vbuf: &leafData{}}
	for g := 0; g < pf.NumRowGroups(); g++ {
		rg := pf.RowGroup(g)
		nrows := rg.NumRows()
		if nrows < 0 || nrows > maxFastRows {
			return nil, errNoFastPath
		}
		for kind, fc := range byKind {
			part, err := fc.decode(rg, nrows, in)
			if err != nil {
				return nil, err
			}
			if out[kind] == nil {
				out[kind] = part
			} else {
				out[kind] = append(out[kind], part...)
			}
		}
	}
	return out, nil
}

// decode reads one row group's actions of fc's kind.
func (fc *fileColumns) decode(rg *file.RowGroupReader, nrows int64, in *mapInterner) ([]Action, error) {
	buf := &leafData{} // reused for each column read and dropped
	for _, l := range fc.dv {
		c, err := l.read(rg, nrows, buf)
		if err != nil {
			return nil, err
		}
		for _, d := range c.d.defs {
			if d >= l.levels[1] {
				return nil, errNoFastPath // a deletion vector: decoded generically
			}
		}
	}
	pc, err := fc.path.read(rg, nrows, nil)
	if err != nil {
		return nil, err
	}
	if pc.d.phys != parquet.Types.ByteArray {
		return nil, errNoFastPath
	}
	if len(pc.d.strs) == 0 {
		return nil, nil
	}
	idx := make([]int32, nrows) // row → index in the slab, -1 if none
	n := 0
	for row := range idx {
		idx[row] = -1
		if _, ok := pc.str(row); ok {
			idx[row] = int32(n)
			n++
		}
	}
	paths := pc.d.strs
	// Room for the few other actions of a checkpoint to follow.
	acts := make([]Action, n, n+64)
	var adds []Add
	var removes []Remove
	if fc.kind == "add" {
		adds = make([]Add, n)
		for i := range adds {
			adds[i].Path = paths[i]
			acts[i].Add = &adds[i]
		}
	} else {
		removes = make([]Remove, n)
		for i := range removes {
			removes[i].Path = paths[i]
			acts[i].Remove = &removes[i]
		}
	}
	// Optional int64 fields of a Remove need a pointer each: one slab.
	var ptrs []int64
	optInt := func(v int64) *int64 {
		if len(ptrs) == cap(ptrs) {
			ptrs = make([]int64, 0, n)
		}
		ptrs = append(ptrs, v)
		return &ptrs[len(ptrs)-1]
	}
	for name, l := range fc.scalar {
		if l == fc.path || !fileScalars[fc.kind][name] {
			continue // the path is read; other fields replay does not use
		}
		c, err := l.read(rg, nrows, buf)
		if err != nil {
			return nil, err
		}
		if !fc.setScalar(name, c, idx, adds, removes, optInt) {
			return nil, errNoFastPath
		}
	}
	for name := range fc.maps {
		var err error
		if fc.kind == "add" {
			err = fc.readMap(rg, name, nrows, in, func(row int, m map[string]string) {
				if i := idx[row]; i >= 0 {
					if name == "partitionValues" {
						adds[i].PartitionValues = m
					} else {
						adds[i].Tags = m
					}
				}
			})
		} else {
			err = fc.readMap(rg, name, nrows, in, func(row int, m map[string]string) {
				if i := idx[row]; i >= 0 {
					if name == "partitionValues" {
						removes[i].PartitionValues = m
					} else {
						removes[i].Tags = m
					}
				}
			})
		}
		if err != nil {
			return nil, err
		}
	}
	return acts, nil
}

// fileScalars are the scalar fields setScalar sets, by action.
var fileScalars = map[string]map[string]bool{
	"add": {"size": true, "modificationTime": true, "dataChange": true, "stats": true,
		"baseRowId": true, "defaultRowCommitVersion": true, "clusteringProvider": true},
	"remove": {"size": true, "deletionTimestamp": true, "dataChange": true, "extendedFileMetadata": true,
		"stats": true, "baseRowId": true, "defaultRowCommitVersion": true},
}

// setScalar sets field name from c on every action; false when the field
// has a physical type the fast path does not expect.
func (fc *fileColumns) setScalar(name string, c *scalarCursor, idx []int32, adds []Add, removes []Remove, optInt func(int64) *int64) bool {
	isInt := c.d.phys == parquet.Types.Int64 || c.d.phys == parquet.Types.Int32
	isBool := c.d.phys == parquet.Types.Boolean
	isStr := c.d.phys == parquet.Types.ByteArray
	kind := fc.kind
	switch name {
	case "size", "modificationTime", "baseRowId", "defaultRowCommitVersion", "deletionTimestamp":
		if !isInt {
			return false
		}
		for row, i := range idx {
			v, ok := c.int64(row)
			if i < 0 || !ok {
				continue
			}
			if kind == "add" {
				a := &adds[i]
				switch name {
				case "size":
					a.Size = v
				case "modificationTime":
					a.ModificationTime = v
				case "baseRowId":
					a.BaseRowID = optInt(v)
				case "defaultRowCommitVersion":
					a.DefaultRowCommitVersion = optInt(v)
				}
				continue
			}
			r := &removes[i]
			switch name {
			case "size":
				r.Size = optInt(v)
			case "deletionTimestamp":
				r.DeletionTimestamp = optInt(v)
			case "baseRowId":
				r.BaseRowID = optInt(v)
			case "defaultRowCommitVersion":
				r.DefaultRowCommitVersion = optInt(v)
			}
		}
	case "dataChange", "extendedFileMetadata":
		if !isBool {
			return false
		}
		for row, i := range idx {
			v, ok := c.bool(row)
			if i < 0 || !ok {
				continue
			}
			switch {
			case name == "dataChange" && kind == "add":
				adds[i].DataChange = v
			case name == "dataChange":
				removes[i].DataChange = v
			case kind == "remove":
				b := v
				removes[i].ExtendedFileMetadata = &b
			}
		}
	case "stats", "clusteringProvider":
		if !isStr {
			return false
		}
		for row, i := range idx {
			v, ok := c.str(row)
			if i < 0 || !ok {
				continue
			}
			switch {
			case name == "stats" && kind == "add":
				adds[i].Stats = v
			case name == "stats":
				removes[i].Stats = v
			case kind == "add":
				adds[i].ClusteringProvider = v
			}
		}
	}
	return true
}
