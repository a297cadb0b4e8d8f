package server

import (
	"fmt"
	"sort"
	"strconv"

	catalogv1 "github.com/plantlake/plantlake/proto/plantlake/catalog/v1"
	"github.com/plantlake/plantlake/services/catalog/internal/catalog"
)

// DefaultMaxCommitActions bounds the adds, removes and txns of one commit
// (--max-commit-actions). The pipeline's commits carry a handful of files;
// a compaction or a copy-on-write merge some thousands.
const DefaultMaxCommitActions = 100_000

// Bounds of the free-form fields of a request. Each is far above what a
// plantlake writer, Spark or delta-rs puts there, and keeps what one
// request can make the catalog hold, and write into every later
// snapshot, small.
const (
	maxNameBytes        = 1024      // table and schema names, app ids
	maxOperationBytes   = 128       // "WRITE", "STREAMING UPDATE", "MERGE", ...
	maxMapEntries       = 256       // operation parameters and metrics, properties, tags, partition values
	maxKeyBytes         = 256       // a key of one of those maps
	maxValueBytes       = 16 << 10  // a value of one of those maps (a merge predicate, say)
	maxPathBytes        = 4096      // a data file's path
	maxStatsBytes       = 256 << 10 // one file's stats JSON
	maxSchemaBytes      = 1 << 20   // a schema's JSON
	maxDescriptionBytes = 4096      // a table's description
	maxColumns          = 10_000    // columns of a table, columns of a scan
	maxColumnNameBytes  = 1024      // a column's name
	maxColumnTypeBytes  = 64 << 10  // a column's type (JSON of a nested type)
	maxFilters          = 1000      // filters of a scan or an optimize
)

// Limits bound what one request may carry (DESIGN.md section 8: requests
// are bounded in size). The whole message is bounded first, by the kit's
// --max-request-bytes, before it is read.
type Limits struct {
	// MaxCommitActions bounds a commit's adds + removes + txns, and on
	// their own its read_files and its read_app_ids.
	MaxCommitActions int
}

// limitChecker collects the first violation of a request's bounds.
type limitChecker struct{ err error }

func (c *limitChecker) fail(field, format string, args ...any) {
	if c.err == nil {
		c.err = &catalog.FieldError{Field: field, Reason: fmt.Sprintf(format, args...)}
	}
}

func (c *limitChecker) str(field, v string, max int) {
	if len(v) > max {
		c.fail(field, "%d bytes, more than the %d allowed", len(v), max)
	}
}

func (c *limitChecker) count(field string, n, max int, what string) {
	if n > max {
		c.fail(field, "%d %s, more than the %d allowed", n, what, max)
	}
}

// strMap checks a map's size and each key and value, in key order so that
// the field named is the same on every call.
func (c *limitChecker) strMap(field string, m map[string]string) {
	if len(m) > maxMapEntries {
		c.fail(field, "%d entries, more than the %d allowed", len(m), maxMapEntries)
		return
	}
	if c.err != nil {
		return
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		entry := field + "[" + strconv.Quote(truncate(k)) + "]"
		if len(k) > maxKeyBytes {
			c.fail(entry, "key of %d bytes, more than the %d allowed", len(k), maxKeyBytes)
		}
		c.str(entry, m[k], maxValueBytes)
	}
}

// truncate shortens a key quoted in a field name.
func truncate(s string) string {
	if len(s) > 64 {
		return s[:64] + "..."
	}
	return s
}

func (c *limitChecker) strs(field string, vs []string, maxCount, maxBytes int, what string) {
	c.count(field, len(vs), maxCount, what)
	for i, v := range vs {
		if c.err != nil {
			return
		}
		c.str(field+"["+strconv.Itoa(i)+"]", v, maxBytes)
	}
}

func (c *limitChecker) filters(field string, fs []*catalogv1.Filter) {
	c.count(field, len(fs), maxFilters, "filters")
	for i, f := range fs {
		if c.err != nil {
			return
		}
		p := field + "[" + strconv.Itoa(i) + "]"
		c.str(p+".column", f.GetColumn(), maxColumnNameBytes)
		c.str(p+".value", f.GetValue(), maxValueBytes)
	}
}

// checkCommit bounds a commit request. It runs before the request is
// converted, so that a refused request costs no second copy.
func (l Limits) checkCommit(req *catalogv1.CommitRequest) error {
	c := &limitChecker{}
	actions := len(req.GetAdds()) + len(req.GetRemoves()) + len(req.GetTxns())
	if actions > l.MaxCommitActions {
		field := "adds"
		if len(req.GetRemoves()) > len(req.GetAdds()) {
			field = "removes"
		}
		if len(req.GetTxns()) > max(len(req.GetAdds()), len(req.GetRemoves())) {
			field = "txns"
		}
		c.fail(field, "%d adds, removes and txns, more than the %d actions a commit may carry (--max-commit-actions)", actions, l.MaxCommitActions)
	}
	c.str("table", req.GetTable(), maxNameBytes)
	c.str("operation", req.GetOperation(), maxOperationBytes)
	c.strMap("operation_parameters", req.GetOperationParameters())
	c.strMap("operation_metrics", req.GetOperationMetrics())
	c.strs("read_app_ids", req.GetReadAppIds(), l.MaxCommitActions, maxNameBytes, "app ids")
	c.strs("read_files", req.GetReadFiles(), l.MaxCommitActions, maxPathBytes, "files")
	for i, a := range req.GetAdds() {
		if c.err != nil {
			return c.err
		}
		p := "adds[" + strconv.Itoa(i) + "]"
		c.str(p+".path", a.GetPath(), maxPathBytes)
		c.str(p+".stats", a.GetStats(), maxStatsBytes)
		c.strMap(p+".partition_values", a.GetPartitionValues())
		c.strMap(p+".tags", a.GetTags())
	}
	for i, r := range req.GetRemoves() {
		if c.err != nil {
			return c.err
		}
		p := "removes[" + strconv.Itoa(i) + "]"
		c.str(p+".path", r.GetPath(), maxPathBytes)
		c.strMap(p+".partition_values", r.GetPartitionValues())
	}
	for i, x := range req.GetTxns() {
		if c.err != nil {
			return c.err
		}
		c.str("txns["+strconv.Itoa(i)+"].app_id", x.GetAppId(), maxNameBytes)
	}
	if m := req.GetMetadata(); m != nil {
		c.str("metadata.schema_json", m.GetSchemaJson(), maxSchemaBytes)
		c.strs("metadata.partition_columns", m.GetPartitionColumns(), maxColumns, maxColumnNameBytes, "columns")
		c.strMap("metadata.configuration", m.GetConfiguration())
	}
	return c.err
}

// checkCreateTable bounds a CreateTable request.
func checkCreateTable(req *catalogv1.CreateTableRequest) error {
	c := &limitChecker{}
	c.str("name", req.GetName(), maxNameBytes)
	c.str("schema_json", req.GetSchemaJson(), maxSchemaBytes)
	c.str("description", req.GetDescription(), maxDescriptionBytes)
	c.strMap("properties", req.GetProperties())
	c.strs("partition_columns", req.GetPartitionColumns(), maxColumns, maxColumnNameBytes, "columns")
	c.count("columns", len(req.GetColumns()), maxColumns, "columns")
	for i, col := range req.GetColumns() {
		if c.err != nil {
			break
		}
		p := "columns[" + strconv.Itoa(i) + "]"
		c.str(p+".name", col.GetName(), maxColumnNameBytes)
		c.str(p+".type", col.GetType(), maxColumnTypeBytes)
	}
	return c.err
}

// checkScan bounds a Scan request.
func checkScan(req *catalogv1.ScanRequest) error {
	c := &limitChecker{}
	c.str("table", req.GetTable(), maxNameBytes)
	c.strs("columns", req.GetColumns(), maxColumns, maxColumnNameBytes, "columns")
	c.filters("filters", req.GetFilters())
	return c.err
}

// checkOptimize bounds an Optimize request.
func checkOptimize(req *catalogv1.OptimizeRequest) error {
	c := &limitChecker{}
	c.str("table", req.GetTable(), maxNameBytes)
	c.filters("partition_filters", req.GetPartitionFilters())
	return c.err
}
