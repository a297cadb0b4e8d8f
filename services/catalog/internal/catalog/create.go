package catalog

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/plantlake/plantlake/delta"
	"github.com/plantlake/plantlake/delta/storage"
	"github.com/plantlake/plantlake/services/catalog/internal/warehouse"
)

// Column is one top-level column: a Delta primitive type name or, for a
// nested type, its Delta schema JSON.
type Column struct {
	Name     string
	Type     string
	Nullable bool
}

// TableDef is what CreateTable creates. Exactly one of SchemaJSON and
// Columns is set.
type TableDef struct {
	Name             string
	SchemaJSON       string
	Columns          []Column
	PartitionColumns []string
	Properties       map[string]string
	Description      string
}

// TableInfo describes a table at its latest version.
type TableInfo struct {
	Name             string
	Location         string
	ID               string
	Schema           *delta.StructType
	SchemaString     string
	PartitionColumns []string
	Properties       map[string]string
	Description      string
	Version          int64
	Timestamp        time.Time
	CreatedTime      *time.Time
	Protocol         delta.Protocol
}

// CreateTable creates a table and commits its version 0. It returns the
// table and whether it created it: a table that exists with the same schema,
// partition columns and properties is returned as is; one that differs is
// ErrAlreadyExists.
func (c *Catalog) CreateTable(ctx context.Context, def TableDef) (TableInfo, bool, error) {
	n, err := warehouse.ParseName(def.Name)
	if err != nil {
		return TableInfo{}, false, badField("name", "%v", err)
	}
	if err := checkNewName(n); err != nil {
		return TableInfo{}, false, err
	}
	schema, err := defSchema(def)
	if err != nil {
		return TableInfo{}, false, err
	}
	if err := checkPartitionColumns(schema, def.PartitionColumns); err != nil {
		return TableInfo{}, false, err
	}
	if err := checkProperties(def.Properties, c.cfg.MinVacuumRetention, "properties"); err != nil {
		return TableInfo{}, false, err
	}
	schemaString, err := schema.SchemaString()
	if err != nil {
		return TableInfo{}, false, badField("schema_json", "%v", err)
	}

	c.loading.Lock()
	defer c.loading.Unlock()
	c.mu.Lock()
	t := c.tables[n.String()]
	c.mu.Unlock()
	if t == nil {
		t, err = c.load(ctx, n)
		if err != nil && !errors.Is(err, ErrNotFound) {
			return TableInfo{}, false, err
		}
	}
	if t != nil {
		info := t.info()
		if info.SchemaString != schemaString || !slices.Equal(info.PartitionColumns, def.PartitionColumns) ||
			!maps.Equal(info.Properties, nonNilMap(def.Properties)) {
			return info, false, fmt.Errorf("table %s exists with a different schema, partitioning or properties: %w", n, ErrAlreadyExists)
		}
		return info, false, nil
	}

	now := time.Now()
	created := now.UnixMilli()
	md := delta.Metadata{
		ID:               newUUID(),
		Description:      def.Description,
		Format:           delta.Format{Provider: "parquet", Options: map[string]string{}},
		SchemaString:     schemaString,
		PartitionColumns: slices.Clone(def.PartitionColumns),
		Configuration:    nonNilMap(def.Properties),
		CreatedTime:      &created,
	}
	// The delta library checks version 0 as it checks every metadata change
	// and picks the lowest protocol the schema and properties need.
	proto, err := delta.PrepareCreate(&md, delta.Protocol{})
	if err != nil {
		var ce *delta.CommitError
		if errors.As(err, &ce) {
			return TableInfo{}, false, badField(createField(ce.Field, def), "%s", ce.Reason)
		}
		return TableInfo{}, false, err
	}
	blind := false
	params := map[string]string{
		"isManaged":   "false",
		"description": def.Description,
		"partitionBy": mustJSON(nonNilSlice(def.PartitionColumns)),
		"properties":  mustJSON(md.Configuration),
	}
	ci := delta.CommitInfo{Operation: "CREATE TABLE", OperationParameters: params,
		IsolationLevel: "Serializable", IsBlindAppend: &blind, EngineInfo: "plantlake-catalog"}
	enc, err := delta.EncodeVersion(delta.Head{Version: -1}, ci, []delta.Action{{Protocol: &proto}, {MetaData: &md}}, now)
	if err != nil {
		return TableInfo{}, false, fmt.Errorf("encode version 0 of %s: %w", n, err)
	}
	data := enc.Data
	tstore, err := storage.Sub(c.store, n.Dir())
	if err != nil {
		return TableInfo{}, false, fmt.Errorf("table store %s: %w", n, err)
	}
	if err := tstore.PutIfAbsent(ctx, delta.CommitPath(0), data); err != nil && !errors.Is(err, storage.ErrExists) {
		return TableInfo{}, false, fmt.Errorf("create table %s: %w", n, err)
	}
	// On ErrExists another process created it meanwhile; loading tells
	// whether it is the same table.
	t, err = c.load(ctx, n)
	if err != nil {
		return TableInfo{}, false, err
	}
	info := t.info()
	if info.ID != md.ID {
		if info.SchemaString != schemaString || !slices.Equal(info.PartitionColumns, def.PartitionColumns) {
			return info, false, fmt.Errorf("table %s exists with a different definition: %w", n, ErrAlreadyExists)
		}
		return info, false, nil
	}
	c.log.Info("created table", "table", n.String(), "location", info.Location)
	t.committed(CommitEvent{Table: n.String(), Version: 0, Operation: "CREATE TABLE", Timestamp: info.Timestamp})
	return info, true, nil
}

// checkNewName refuses names delta-rs cannot open as a table: a schema or
// table part beginning with "_" ("raw._delta_log", "_delta_log.x"), which
// readers take for a log or a hidden folder.
func checkNewName(n warehouse.Name) error {
	for _, part := range []string{n.Schema, n.Table} {
		if strings.HasPrefix(part, "_") || strings.HasPrefix(part, ".") {
			return badField("name", "%q: schema and table names may not begin with '_' or '.' (Delta readers skip such folders)", n.String())
		}
	}
	return nil
}

// createField names, in CreateTable's terms, the field of version 0 a
// delta.CommitError names.
func createField(field string, def TableDef) string {
	name, rest, _ := strings.Cut(strings.TrimPrefix(field, "metaData."), "[")
	if rest != "" {
		rest = "[" + rest
	}
	switch name {
	case "schemaString":
		if def.SchemaJSON == "" {
			return "columns"
		}
		return "schema_json"
	case "partitionColumns":
		return "partition_columns" + rest
	case "configuration":
		return "properties" + rest
	}
	return name + rest
}

// defSchema builds and validates the schema of a table definition.
func defSchema(def TableDef) (*delta.StructType, error) {
	switch {
	case def.SchemaJSON != "" && len(def.Columns) > 0:
		return nil, badField("columns", "set either schema_json or columns, not both")
	case def.SchemaJSON == "" && len(def.Columns) == 0:
		return nil, badField("columns", "a table needs columns (or schema_json)")
	}
	field := "schema_json"
	js := def.SchemaJSON
	if js == "" {
		field = "columns"
		fields := make([]json.RawMessage, 0, len(def.Columns))
		for i, col := range def.Columns {
			typ := strings.TrimSpace(col.Type)
			if typ == "" {
				return nil, badField("columns["+strconv.Itoa(i)+"].type", "empty")
			}
			var typeJSON json.RawMessage
			if strings.HasPrefix(typ, "{") {
				if !json.Valid([]byte(typ)) {
					return nil, badField("columns["+strconv.Itoa(i)+"].type", "not valid JSON")
				}
				typeJSON = json.RawMessage(typ)
			} else {
				typeJSON = json.RawMessage(mustJSON(typ))
			}
			f, _ := json.Marshal(map[string]any{"name": col.Name, "type": typeJSON, "nullable": col.Nullable, "metadata": map[string]any{}})
			fields = append(fields, f)
		}
		b, _ := json.Marshal(map[string]any{"type": "struct", "fields": fields})
		js = string(b)
	}
	schema, err := delta.ParseSchema(js)
	if err != nil {
		return nil, badField(field, "%v", err)
	}
	seen := map[string]bool{}
	for i, f := range schema.Fields {
		lower := strings.ToLower(f.Name)
		switch {
		case f.Name == "":
			return nil, badField(fmt.Sprintf("%s[%d].name", field, i), "empty")
		case seen[lower]:
			return nil, badField(fmt.Sprintf("%s[%d].name", field, i), "column %q appears twice (names are case-insensitive)", f.Name)
		case strings.ContainsAny(f.Name, " ,;{}()\n\t="):
			return nil, badField(fmt.Sprintf("%s[%d].name", field, i), "column %q has characters Parquet column names cannot hold", f.Name)
		}
		seen[lower] = true
	}
	return schema, nil
}

func checkPartitionColumns(schema *delta.StructType, cols []string) error {
	seen := map[string]bool{}
	for i, pc := range cols {
		f := schema.Field(pc)
		field := "partition_columns[" + strconv.Itoa(i) + "]"
		switch {
		case f == nil:
			return badField(field, "%q is not a column", pc)
		case seen[pc]:
			return badField(field, "%q appears twice", pc)
		}
		if _, ok := f.Type.(delta.PrimitiveType); !ok {
			return badField(field, "%q is not of a primitive type", pc)
		}
		seen[pc] = true
	}
	if len(cols) > 0 && len(cols) >= len(schema.Fields) {
		return badField("partition_columns", "at least one column must not be a partition column")
	}
	return nil
}

// info describes the table at its latest version.
func (t *table) info() TableInfo {
	t.mu.RLock()
	defer t.mu.RUnlock()
	st := t.st
	info := TableInfo{
		Name:             t.name.String(),
		Location:         t.location,
		ID:               st.metadata.ID,
		Schema:           st.schema,
		SchemaString:     st.metadata.SchemaString,
		PartitionColumns: nonNilSlice(st.metadata.PartitionColumns),
		Properties:       nonNilMap(st.metadata.Configuration),
		Description:      st.metadata.Description,
		Version:          st.version,
		Timestamp:        st.timestamp,
		Protocol:         st.protocol,
	}
	if st.metadata.CreatedTime != nil {
		ct := time.UnixMilli(*st.metadata.CreatedTime).UTC()
		info.CreatedTime = &ct
	}
	return info
}

// GetTable describes a table at its latest version.
func (c *Catalog) GetTable(ctx context.Context, name string) (TableInfo, error) {
	t, err := c.table(ctx, name, "name")
	if err != nil {
		return TableInfo{}, err
	}
	return t.info(), nil
}

// ListTables lists the warehouse's tables (of one schema if schema is not
// ""), sorted by name. Folders that look like tables but have no readable
// log are left out.
func (c *Catalog) ListTables(ctx context.Context, schema string) ([]TableInfo, error) {
	if schema != "" && !warehouse.IsIdent(schema) {
		return nil, badField("schema", "%q is not a valid schema name", schema)
	}
	names, err := c.listNames(ctx, schema)
	if err != nil {
		return nil, err
	}
	out := make([]TableInfo, 0, len(names))
	for _, n := range names {
		t, err := c.table(ctx, n.String(), "name")
		if errors.Is(err, ErrNotFound) {
			continue
		}
		if err != nil {
			c.log.Warn("listing table", "table", n.String(), "err", err)
			continue
		}
		out = append(out, t.info())
	}
	return out, nil
}

func newUUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

func mustJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(fmt.Sprintf("marshal %T: %v", v, err))
	}
	return string(b)
}

func nonNilMap(m map[string]string) map[string]string {
	if m == nil {
		return map[string]string{}
	}
	return m
}

func nonNilSlice(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}
