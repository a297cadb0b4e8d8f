package delta

import (
	"fmt"

	"github.com/apache/arrow-go/v18/parquet"
	"github.com/apache/arrow-go/v18/parquet/file"
	"github.com/apache/arrow-go/v18/parquet/schema"
)

// The other action columns (txn, protocol, metaData, checkpointMetadata,
// sidecar) are null in nearly every row of a checkpoint. fastOtherActions
// assembles their few non-null rows from the column chunks into the same
// JSON-like values arrowValue gives (structs and maps as map[string]any,
// lists as []any, int64, string, bool) and decodes them with
// actionFromValue, as the Arrow path does. It handles nesting with at most
// one repeated level (maps and three-level lists) and plain string, integer
// and boolean leaves; anything else returns errNoFastPath.

// otherLeaf is one leaf column under a non-file action column.
type otherLeaf struct {
	col    int
	path   []string
	levels []int16
	maxRep int16
	// rep is the index in path of the repeated node (maxRep 1), and
	// isMap whether its parent is a map (else a list).
	rep   int
	isMap bool
}

// mapEntries collects a map's keys and values from its two leaves.
type mapEntries struct{ keys, vals []any }

// plainLeaf reports whether arrowValue gives a leaf's values as the fast
// path does: strings for annotated strings, int64 for signed integers,
// bool.
func plainLeaf(c *schema.Column) bool {
	lt := c.LogicalType()
	switch c.PhysicalType() {
	case parquet.Types.ByteArray:
		_, ok := lt.(schema.StringLogicalType)
		return ok || c.ConvertedType() == schema.ConvertedTypes.UTF8
	case parquet.Types.Int32, parquet.Types.Int64:
		switch t := lt.(type) {
		case nil, schema.NoLogicalType:
			return c.ConvertedType() == schema.ConvertedTypes.None
		case schema.IntLogicalType:
			return t.IsSigned()
		}
		return false
	case parquet.Types.Boolean:
		return true
	}
	return false
}

func isMapNode(n schema.Node) bool {
	if _, ok := n.LogicalType().(schema.MapLogicalType); ok {
		return true
	}
	ct := n.ConvertedType()
	return ct == schema.ConvertedTypes.Map || ct == schema.ConvertedTypes.MapKeyValue
}

func isListNode(n schema.Node) bool {
	if _, ok := n.LogicalType().(schema.ListLogicalType); ok {
		return true
	}
	return n.ConvertedType() == schema.ConvertedTypes.List
}

// classifyOtherLeaf describes leaf col, or reports errNoFastPath.
func classifyOtherLeaf(sch *schema.Schema, col int) (*otherLeaf, error) {
	c := sch.Column(col)
	p := c.ColumnPath()
	levels := nodeLevels(c)
	if len(p) < 2 || len(levels) != len(p) || !plainLeaf(c) || c.MaxRepetitionLevel() > 1 {
		return nil, errNoFastPath
	}
	l := &otherLeaf{col: col, path: p, levels: levels, maxRep: c.MaxRepetitionLevel(), rep: -1}
	if l.maxRep == 0 {
		return l, nil
	}
	// Nodes from the leaf up: nodes[len(p)-1] is the leaf.
	nodes := make([]schema.Node, len(p))
	n := c.SchemaNode()
	for j := len(p) - 1; j >= 0; j-- {
		nodes[j] = n
		n = n.Parent()
	}
	for j, nd := range nodes {
		if nd.RepetitionType() == parquet.Repetitions.Repeated {
			l.rep = j
		}
	}
	// Only [..., container, repeated group, leaf] with a map or list
	// container.
	if l.rep < 2 || l.rep != len(p)-2 || nodes[l.rep].Type() != schema.Group {
		return nil, errNoFastPath
	}
	container := nodes[l.rep-1]
	switch {
	case isMapNode(container):
		if p[len(p)-1] != "key" && p[len(p)-1] != "value" {
			return nil, errNoFastPath
		}
		l.isMap = true
	case isListNode(container):
	default:
		return nil, errNoFastPath
	}
	return l, nil
}

// leafValue is value i of d as arrowValue would give it.
func leafValue(d *leafData, i int) any {
	switch d.phys {
	case parquet.Types.ByteArray:
		if i < len(d.strs) {
			return d.strs[i]
		}
	case parquet.Types.Int32, parquet.Types.Int64:
		if i < len(d.ints) {
			return d.ints[i]
		}
	case parquet.Types.Boolean:
		if i < len(d.bools) {
			return d.bools[i]
		}
	}
	return nil
}

// descend walks row value m down path[1:upTo] creating structs, for a
// level def; it returns the struct that holds path[upTo], or nil when an
// ancestor is null (which it records as nil).
func descend(m map[string]any, path []string, levels []int16, upTo int, def int16) map[string]any {
	node := m
	for j := 1; j < upTo; j++ {
		if def < levels[j] {
			if _, ok := node[path[j]]; !ok {
				node[path[j]] = nil
			}
			return nil
		}
		child, ok := node[path[j]].(map[string]any)
		if !ok {
			child = map[string]any{}
			node[path[j]] = child
		}
		node = child
	}
	return node
}

// fastOtherActions decodes the non-file action leaves cols of every row
// group of pf, by column name.
func fastOtherActions(pf *file.Reader, cols []int, byColumn map[string][]Action) error {
	sch := pf.MetaData().Schema
	byName := map[string][]*otherLeaf{}
	var names []string
	for _, col := range cols {
		l, err := classifyOtherLeaf(sch, col)
		if err != nil {
			return err
		}
		if byName[l.path[0]] == nil {
			names = append(names, l.path[0])
		}
		byName[l.path[0]] = append(byName[l.path[0]], l)
	}
	for g := 0; g < pf.NumRowGroups(); g++ {
		rg := pf.RowGroup(g)
		nrows := rg.NumRows()
		if nrows < 0 || nrows > maxFastRows {
			return errNoFastPath
		}
		for _, name := range names {
			acts, err := decodeOther(rg, nrows, name, byName[name])
			if err != nil {
				return err
			}
			byColumn[name] = append(byColumn[name], acts...)
		}
	}
	return nil
}

// decodeOther assembles the non-null rows of action column name in one
// row group and decodes them.
func decodeOther(rg *file.RowGroupReader, nrows int64, name string, leaves []*otherLeaf) ([]Action, error) {
	rows := map[int]map[string]any{} // non-null rows of the column
	var order []int
	buf := &leafData{} // reused for each leaf; values are copied out
	for li, l := range leaves {
		limit := nrows
		if l.maxRep > 0 {
			meta, err := rg.MetaData().ColumnChunk(l.col)
			if err != nil {
				return nil, fmt.Errorf("%w: %v", ErrInvalidLog, err)
			}
			if meta.NumValues() > maxFastRows {
				return nil, errNoFastPath
			}
			limit = max(meta.NumValues(), nrows)
		}
		d, err := readLeaf(rg, l.col, limit, nrows, buf)
		if err != nil {
			return nil, err
		}
		if !plainData(d) {
			return nil, errNoFastPath
		}
		if l.maxRep == 0 && int64(len(d.defs)) != nrows {
			return nil, fmt.Errorf("%w: column %s has %d values for %d rows", ErrInvalidLog, joinPath(l.path), len(d.defs), nrows)
		}
		maxDef := l.levels[len(l.levels)-1]
		row, vi := -1, 0
		for i, def := range d.defs {
			if l.maxRep == 0 || d.reps[i] == 0 {
				row++
			} else if row < 0 {
				return nil, fmt.Errorf("%w: column %s starts inside a row", ErrInvalidLog, joinPath(l.path))
			}
			if int64(row) >= nrows {
				return nil, fmt.Errorf("%w: column %s has more rows than its row group", ErrInvalidLog, joinPath(l.path))
			}
			var v any
			if def == maxDef {
				v = leafValue(d, vi)
				vi++
			}
			if def < l.levels[0] {
				continue // the action is null in this row
			}
			m := rows[row]
			if m == nil {
				if li > 0 {
					// The first leaf found this row null at the top.
					return nil, fmt.Errorf("%w: column %s disagrees on row %d", ErrInvalidLog, name, row)
				}
				m = map[string]any{}
				rows[row] = m
				order = append(order, row)
			}
			if l.maxRep == 0 {
				if node := descend(m, l.path, l.levels, len(l.path)-1, def); node != nil {
					node[l.path[len(l.path)-1]] = v
				}
				continue
			}
			// A map or list entry, or a null or empty container.
			cont := l.path[l.rep-1]
			node := descend(m, l.path, l.levels, l.rep-1, def)
			if node == nil {
				continue
			}
			if def < l.levels[l.rep-1] {
				node[cont] = nil
				continue
			}
			if l.isMap {
				me, ok := node[cont].(*mapEntries)
				if !ok {
					me = &mapEntries{}
					node[cont] = me
				}
				if def >= l.levels[l.rep] {
					if l.path[len(l.path)-1] == "key" {
						me.keys = append(me.keys, v)
					} else {
						me.vals = append(me.vals, v)
					}
				}
				continue
			}
			list, _ := node[cont].([]any)
			if list == nil {
				list = []any{}
			}
			if def >= l.levels[l.rep] {
				list = append(list, v)
			}
			node[cont] = list
		}
		if l.maxRep > 0 && int64(row+1) != nrows {
			return nil, fmt.Errorf("%w: column %s has %d rows, its row group %d", ErrInvalidLog, joinPath(l.path), row+1, nrows)
		}
	}
	acts := make([]Action, 0, len(order))
	for _, row := range order {
		m := rows[row]
		if err := finishMaps(m, 0); err != nil {
			return nil, err
		}
		a, err := actionFromValue(name, m)
		if err != nil {
			return nil, fmt.Errorf("row %d: %w", row, err)
		}
		if a != nil {
			acts = append(acts, *a)
		}
	}
	return acts, nil
}

// plainData reports whether readLeaf gave a type leafValue knows.
func plainData(d *leafData) bool {
	switch d.phys {
	case parquet.Types.ByteArray, parquet.Types.Int32, parquet.Types.Int64, parquet.Types.Boolean:
		return true
	}
	return false
}

// finishMaps turns the collected map entries in m into maps with string
// keys, as arrowValue gives them.
func finishMaps(m map[string]any, depth int) error {
	if depth > maxArrowDepth {
		return fmt.Errorf("%w: nesting too deep", ErrInvalidLog)
	}
	for k, v := range m {
		switch x := v.(type) {
		case *mapEntries:
			if len(x.keys) != len(x.vals) {
				return fmt.Errorf("%w: map %s has %d keys and %d values", ErrInvalidLog, k, len(x.keys), len(x.vals))
			}
			out := make(map[string]any, len(x.keys))
			for i, key := range x.keys {
				ks, ok := key.(string)
				if !ok {
					ks = fmt.Sprint(key)
				}
				out[ks] = x.vals[i]
			}
			m[k] = out
		case map[string]any:
			if err := finishMaps(x, depth+1); err != nil {
				return err
			}
		}
	}
	return nil
}
