package delta

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

// tableByOthers writes version 0 of a table as another writer would (a
// CHECK constraint or an invariant this library's Create refuses) and
// opens it.
func tableByOthers(t *testing.T, protocol, schema string, conf string) *Table {
	t.Helper()
	st := mustLocal(t)
	v0 := `{"protocol":` + protocol + `}
{"metaData":{"id":"t1","format":{"provider":"parquet","options":{}},"schemaString":` + jsonString(schema) + `,"partitionColumns":["day"],"configuration":` + conf + `,"createdTime":1}}
{"add":{"path":"day=2024-01-01/a.parquet","partitionValues":{"day":"2024-01-01"},"size":10,"modificationTime":1,"dataChange":true}}
`
	if err := st.PutIfAbsent(context.Background(), "_delta_log/00000000000000000000.json", []byte(v0)); err != nil {
		t.Fatal(err)
	}
	return Open(st)
}

func jsonString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// invariantSchema has an invariant on a nested field, as Delta Lake writes
// it (a JSON string in the field's metadata).
const invariantSchema = `{"type":"struct","fields":[{"name":"id","type":"long","nullable":true,"metadata":{}},` +
	`{"name":"reading","type":{"type":"struct","fields":[{"name":"value","type":"double","nullable":true,"metadata":{"delta.invariants":"{\"expression\":{\"expression\":\"reading.value > 0\"}}"}}]},"nullable":true,"metadata":{}},` +
	`{"name":"day","type":"date","nullable":true,"metadata":{}}]}`

func TestCommitRefusesDataToTablesWithRowRules(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name, protocol, schema, conf, want string
	}{
		{"check constraint", `{"minReaderVersion":1,"minWriterVersion":3}`, testSchema,
			`{"delta.constraints.positive_id":"id >= 0"}`, `"checkConstraints": CHECK constraint positive_id (id >= 0)`},
		{"invariant", `{"minReaderVersion":1,"minWriterVersion":2}`, invariantSchema,
			`{}`, `"invariants": invariant of column reading.value (reading.value > 0)`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tbl := tableByOthers(t, tc.protocol, tc.schema, tc.conf)
			_, err := tbl.Commit(ctx, appendReq(0, "day=2024-01-01/b.parquet"))
			if !errors.Is(err, ErrUnsupportedFeature) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("append: %v, want ErrUnsupportedFeature naming %s", err, tc.want)
			}
			// A rewrite adds no row that was not there: compaction commits.
			rm := removeAction("day=2024-01-01/a.parquet", "2024-01-01")
			rm.Remove.DataChange = false
			add := addAction("day=2024-01-01/c.parquet", "2024-01-01")
			add.Add.DataChange = false
			mustCommit(t, tbl, CommitRequest{ReadVersion: 0, Operation: "OPTIMIZE", Actions: []Action{rm, add}})
			// So does a new metaData keeping the rule.
			s, err := tbl.Snapshot(ctx)
			if err != nil {
				t.Fatal(err)
			}
			meta := s.Metadata()
			meta.Configuration = map[string]string{"owner": "line3"}
			for k, v := range s.Metadata().Configuration {
				meta.Configuration[k] = v
			}
			mustCommit(t, tbl, CommitRequest{ReadVersion: 1, Operation: "SET TBLPROPERTIES", Actions: []Action{{MetaData: &meta}}})
		})
	}
}

func TestCommitRefusesNewRowRules(t *testing.T) {
	ctx := context.Background()
	tbl, _ := newTestTable(t)
	s, err := tbl.Snapshot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	meta := s.Metadata()
	meta.Configuration = map[string]string{"delta.constraints.positive_id": "id >= 0"}
	_, err = tbl.Commit(ctx, CommitRequest{ReadVersion: 0, Operation: "ADD CONSTRAINT", Actions: []Action{{MetaData: &meta}}})
	if !errors.Is(err, ErrUnsupportedFeature) || !strings.Contains(err.Error(), "positive_id") {
		t.Fatalf("adding a constraint: %v, want ErrUnsupportedFeature naming it", err)
	}
	meta = s.Metadata()
	meta.SchemaString = invariantSchema
	_, err = tbl.Commit(ctx, CommitRequest{ReadVersion: 0, Operation: "CHANGE COLUMN", Actions: []Action{{MetaData: &meta}}})
	if !errors.Is(err, ErrUnsupportedFeature) || !strings.Contains(err.Error(), "reading.value") {
		t.Fatalf("adding an invariant: %v, want ErrUnsupportedFeature naming its column", err)
	}
	_, err = Create(ctx, mustLocal(t), Metadata{SchemaString: testSchema, PartitionColumns: []string{"day"},
		Configuration: map[string]string{"Delta.Constraints.x": "id > 1"}}, Protocol{})
	if !errors.Is(err, ErrUnsupportedFeature) || !strings.Contains(err.Error(), "CHECK constraint x") {
		t.Fatalf("creating a table with a constraint: %v, want ErrUnsupportedFeature naming it", err)
	}
}
