package catalog

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/plantlake/plantlake/delta"
	"github.com/plantlake/plantlake/delta/reader"
)

// Filter compares a top-level column with a value: Op is one of "=", "!=",
// "<", "<=", ">", ">=", "IS NULL", "IS NOT NULL"; Value is the literal in
// the column's text form.
type Filter struct {
	Column string
	Op     string
	Value  string
}

// ScanRequest selects rows of a table.
type ScanRequest struct {
	Table   string
	At      At
	Columns []string
	Filters []Filter
	// Limit bounds the rows returned; 0 means no limit.
	Limit int64
}

var readerOps = map[string]reader.Op{
	"=": reader.Eq, "!=": reader.Ne, "<": reader.Lt, "<=": reader.Le, ">": reader.Gt, ">=": reader.Ge,
	"IS NULL": reader.IsNull, "IS NOT NULL": reader.IsNotNull,
}

// toReaderFilters checks filters against the schema; field names the
// request field for errors ("filters").
func toReaderFilters(field string, schema *delta.StructType, fs []Filter) ([]reader.Filter, error) {
	out := make([]reader.Filter, 0, len(fs))
	for i, f := range fs {
		name := field + "[" + strconv.Itoa(i) + "]"
		op, ok := readerOps[strings.ToUpper(f.Op)]
		if !ok {
			return nil, badField(name+".op", "unknown operator %q", f.Op)
		}
		if findColumn(schema, f.Column) == nil {
			return nil, badField(name+".column", "no column %q in the table", f.Column)
		}
		out = append(out, reader.Filter{Column: f.Column, Op: op, Value: f.Value})
	}
	return out, nil
}

func findColumn(schema *delta.StructType, name string) *delta.StructField {
	for i := range schema.Fields {
		if strings.EqualFold(schema.Fields[i].Name, name) {
			return &schema.Fields[i]
		}
	}
	return nil
}

// Scan reads the rows of a table version that match the filters, pruning
// files by partition values and stats, and calls emit for each row (at most
// Limit rows). emit's error stops the scan and is returned.
func (c *Catalog) Scan(ctx context.Context, req ScanRequest, emit func(version int64, row map[string]any) error) error {
	if req.Limit < 0 {
		return badField("limit", "must be >= 0")
	}
	t, err := c.table(ctx, req.Table, "table")
	if err != nil {
		return err
	}
	var snap *delta.Snapshot
	if req.At.Version == nil && req.At.Time == nil {
		// The catalog knows the latest version: no listing of the log.
		t.mu.RLock()
		latest := t.st.version
		t.mu.RUnlock()
		snap, err = t.dt.SnapshotAt(ctx, latest)
		if err != nil {
			return fmt.Errorf("read %s: %w", t.name, err)
		}
	} else if snap, err = t.snapshotAt(ctx, req.At); err != nil {
		return err
	}
	schema, err := snap.Schema()
	if err != nil {
		return fmt.Errorf("schema of %s: %w", t.name, err)
	}
	for i, col := range req.Columns {
		if findColumn(schema, col) == nil {
			return badField("columns["+strconv.Itoa(i)+"]", "no column %q in the table", col)
		}
	}
	filters, err := toReaderFilters("filters", schema, req.Filters)
	if err != nil {
		return err
	}
	var cols []string
	if len(req.Columns) > 0 {
		cols = req.Columns
	}
	sc, err := reader.New(t.store, snap, reader.Options{Columns: cols, Filters: filters, BatchRows: 4096})
	if err != nil {
		if errors.Is(err, delta.ErrUnsupportedFeature) || errors.Is(err, delta.ErrUnsupportedProtocol) {
			return err
		}
		return badField("filters", "%v", err)
	}
	defer sc.Close()
	var n int64
	for rec, err := range sc.Records(ctx) {
		if err != nil {
			return fmt.Errorf("scan %s: %w", t.name, err)
		}
		rows, err := reader.RecordRows(rec)
		if err != nil {
			return fmt.Errorf("scan %s: %w", t.name, err)
		}
		for _, row := range rows {
			if req.Limit > 0 && n >= req.Limit {
				return nil
			}
			if err := emit(snap.Version(), row); err != nil {
				return err
			}
			n++
		}
	}
	return nil
}
