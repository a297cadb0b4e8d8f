package reader

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/plantlake/plantlake/delta"
	"github.com/plantlake/plantlake/delta/datafile"
	"github.com/plantlake/plantlake/delta/datafile/datafiletest"
	"github.com/plantlake/plantlake/delta/storage"
)

// rawTable creates a raw-shaped table with three files: offsets 0..299 on 2024-05-06,
// 300..499 on 2024-05-07 and 1000..1099 on 2024-05-06, each in its own commit.
func rawTable(t *testing.T) (storage.Store, *delta.Table, map[int64]map[string]any) {
	t.Helper()
	ctx := context.Background()
	st, err := storage.NewLocal(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	tbl, err := delta.Create(ctx, st, delta.Metadata{SchemaString: datafiletest.RawSchemaString, PartitionColumns: datafiletest.RawPartitionColumns}, delta.Protocol{})
	if err != nil {
		t.Fatal(err)
	}
	day1 := time.Date(2024, 5, 6, 10, 0, 0, 123_456_000, time.UTC)
	day2 := time.Date(2024, 5, 7, 0, 0, 0, 1000, time.UTC)
	byOffset := map[int64]map[string]any{}
	for i, b := range []struct {
		n     int
		first int64
		at    time.Time
	}{{300, 0, day1}, {200, 300, day2}, {100, 1000, day1}} {
		rec := datafiletest.RawBatch(nil, b.n, b.first, b.at)
		rows, err := RecordRows(rec)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range rows {
			byOffset[r["kafka_offset"].(int64)] = r
		}
		parts, err := datafile.SplitByPartition(ctx, nil, rec, datafiletest.RawPartitionColumns)
		rec.Release()
		if err != nil {
			t.Fatal(err)
		}
		add, err := datafile.Write(ctx, st, datafile.Options{PartitionColumns: datafiletest.RawPartitionColumns, PartitionValues: parts[0].Values}, parts[0].Record)
		parts[0].Record.Release()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := tbl.Commit(ctx, delta.CommitRequest{ReadVersion: int64(i), Operation: "WRITE", BlindAppend: true, Actions: []delta.Action{{Add: &add}}}); err != nil {
			t.Fatal(err)
		}
	}
	return st, tbl, byOffset
}

func TestScanFiltersAndPruning(t *testing.T) {
	ctx := context.Background()
	st, tbl, byOffset := rawTable(t)
	snap, err := tbl.Snapshot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name      string
		filters   string
		wantFiles int
		want      func(o int64) bool
	}{
		{"all", "", 3, func(o int64) bool { return true }},
		{"partition equal", "ingest_date = '2024-05-07'", 1, func(o int64) bool { return o >= 300 && o < 500 }},
		{"partition not equal", "ingest_date != '2024-05-07'", 2, func(o int64) bool { return o < 300 || o >= 1000 }},
		{"stats prune high offsets", "kafka_offset >= 1000", 1, func(o int64) bool { return o >= 1000 }},
		{"stats prune low offsets", "kafka_offset < 10", 1, func(o int64) bool { return o < 10 }},
		{"range inside one file", "kafka_offset > 350 AND kafka_offset <= 360", 1, func(o int64) bool { return o > 350 && o <= 360 }},
		{"equal misses every file", "kafka_offset = 700", 0, func(o int64) bool { return false }},
		{"null bridge_ts", "bridge_ts IS NULL", 3, func(o int64) bool { return o%10 == 0 }},
		{"not null key", "kafka_key IS NOT NULL AND kafka_partition = 2", 3, func(o int64) bool { return o%50 != 0 && o%6 == 2 }},
		{"timestamp stats", "ingest_ts >= '2024-05-07T00:00:00Z'", 1, func(o int64) bool { return o >= 300 && o < 500 }},
		{"timestamp inside the rounded millisecond", "ingest_ts > '2024-05-07T00:00:00.000001Z'", 1, func(o int64) bool { return false }},
		{"timestamp below sub-millisecond max", "ingest_ts >= '2024-05-06T10:00:00.123456Z'", 3, func(o int64) bool { return true }},
		{"string", "kafka_key = 'plant/line1/press1/vibration'", 3, func(o int64) bool { return o%50 != 0 && o%7 == 1 && o%97 == 1 && o%4 == 2 }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			filters, err := ParseFilters(tt.filters)
			if err != nil {
				t.Fatal(err)
			}
			s, err := New(st, snap, Options{Filters: filters})
			if err != nil {
				t.Fatal(err)
			}
			if len(s.Files()) != tt.wantFiles {
				t.Errorf("%d files after pruning, want %d", len(s.Files()), tt.wantFiles)
			}
			s.Close()
			got, err := Rows(ctx, st, snap, Options{Filters: filters})
			if err != nil {
				t.Fatal(err)
			}
			var want []map[string]any
			for o, r := range byOffset {
				if tt.want(o) {
					want = append(want, r)
				}
			}
			compareRows(t, got, want)
		})
	}
}

func TestScanProjection(t *testing.T) {
	ctx := context.Background()
	st, tbl, _ := rawTable(t)
	snap, err := tbl.Snapshot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(st, snap, Options{Columns: []string{"ingest_date", "kafka_offset"}, Filters: []Filter{{Column: "bridge_ts", Op: IsNull}}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if got := s.Schema().String(); got != arrow.NewSchema([]arrow.Field{
		{Name: "ingest_date", Type: arrow.FixedWidthTypes.Date32, Nullable: true},
		{Name: "kafka_offset", Type: arrow.PrimitiveTypes.Int64, Nullable: true}}, nil).String() {
		t.Errorf("schema %s", got)
	}
	var n int64
	for rec, err := range s.Records(ctx) {
		if err != nil {
			t.Fatal(err)
		}
		if rec.NumCols() != 2 {
			t.Fatalf("%d columns", rec.NumCols())
		}
		n += rec.NumRows()
	}
	if n != 60 {
		t.Errorf("%d rows, want 60", n)
	}
	for _, limit := range []int64{1, 59, 60, 61} {
		rows, err := Rows(ctx, st, snap, Options{Limit: limit, Filters: []Filter{{Column: "bridge_ts", Op: IsNull}}})
		if err != nil {
			t.Fatal(err)
		}
		if want := min(limit, 60); int64(len(rows)) != want {
			t.Errorf("limit %d: %d rows, want %d", limit, len(rows), want)
		}
	}
}

// TestScanSchemaEvolution reads a file written before the schema gained a column and widened
// another: the new column is null and the old int values come back as long.
func TestScanSchemaEvolution(t *testing.T) {
	ctx := context.Background()
	st, err := storage.NewLocal(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	v0 := `{"type":"struct","fields":[{"name":"id","type":"integer","nullable":true,"metadata":{}},{"name":"s","type":{"type":"struct","fields":[{"name":"a","type":"float","nullable":true,"metadata":{}}]},"nullable":true,"metadata":{}}]}`
	v1 := `{"type":"struct","fields":[{"name":"id","type":"long","nullable":true,"metadata":{}},{"name":"s","type":{"type":"struct","fields":[{"name":"a","type":"double","nullable":true,"metadata":{}},{"name":"b","type":"string","nullable":true,"metadata":{}}]},"nullable":true,"metadata":{}},{"name":"note","type":"string","nullable":true,"metadata":{}}]}`
	tbl, err := delta.Create(ctx, st, delta.Metadata{SchemaString: v0}, delta.Protocol{})
	if err != nil {
		t.Fatal(err)
	}
	schema0, _ := delta.ParseSchema(v0)
	as0, err := datafile.ArrowSchema(schema0)
	if err != nil {
		t.Fatal(err)
	}
	b := array.NewRecordBuilder(memory.DefaultAllocator, as0)
	b.Field(0).(*array.Int32Builder).AppendValues([]int32{1, 2}, nil)
	sb := b.Field(1).(*array.StructBuilder)
	sb.Append(true)
	sb.FieldBuilder(0).(*array.Float32Builder).Append(1.5)
	sb.AppendNull()
	rec := b.NewRecordBatch()
	b.Release()
	add, err := datafile.Write(ctx, st, datafile.Options{}, rec)
	rec.Release()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tbl.Commit(ctx, delta.CommitRequest{ReadVersion: 0, Operation: "WRITE", BlindAppend: true, Actions: []delta.Action{{Add: &add}}}); err != nil {
		t.Fatal(err)
	}
	snap, err := tbl.Snapshot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	meta := snap.Metadata()
	meta.SchemaString = v1
	if _, err := tbl.Commit(ctx, delta.CommitRequest{ReadVersion: 1, Operation: "CHANGE COLUMN", Actions: []delta.Action{{MetaData: &meta}}}); err != nil {
		t.Fatal(err)
	}
	snap, err = tbl.Snapshot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	got, err := Rows(ctx, st, snap, Options{})
	if err != nil {
		t.Fatal(err)
	}
	want := []map[string]any{
		{"id": int64(1), "s": map[string]any{"a": 1.5, "b": nil}, "note": nil},
		{"id": int64(2), "s": nil, "note": nil},
	}
	compareRows(t, got, want)
}

func TestParseFilter(t *testing.T) {
	tests := []struct {
		in   string
		want Filter
		bad  bool
	}{
		{in: "a = 1", want: Filter{Column: "a", Op: Eq, Value: "1"}},
		{in: "a>=2024-01-01", want: Filter{Column: "a", Op: Ge, Value: "2024-01-01"}},
		{in: "name <> 'it''s'", want: Filter{Column: "name", Op: Ne, Value: "it's"}},
		{in: "x is not null", want: Filter{Column: "x", Op: IsNotNull}},
		{in: "x IS NULL", want: Filter{Column: "x", Op: IsNull}},
		{in: "= 3", bad: true},
		{in: "just words", bad: true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseFilter(tt.in)
			if (err != nil) != tt.bad {
				t.Fatalf("ParseFilter(%q) error %v, bad=%v", tt.in, err, tt.bad)
			}
			if !tt.bad && got != tt.want {
				t.Errorf("ParseFilter(%q) = %#v, want %#v", tt.in, got, tt.want)
			}
		})
	}
}

func TestFilterErrors(t *testing.T) {
	ctx := context.Background()
	st, tbl, _ := rawTable(t)
	snap, err := tbl.Snapshot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := New(st, snap, Options{Columns: []string{"nope"}}); !errors.Is(err, ErrUnknownColumn) {
		t.Errorf("projecting an unknown column: %v, want ErrUnknownColumn", err)
	}
	for _, f := range []Filter{
		{Column: "nope", Op: Eq, Value: 1},
		{Column: "kafka_offset", Op: Eq, Value: "abc"},
		{Column: "headers", Op: Eq, Value: "x"},
		{Column: "kafka_offset", Op: "~", Value: 1},
	} {
		t.Run(f.String(), func(t *testing.T) {
			if _, err := New(st, snap, Options{Filters: []Filter{f}}); !errors.Is(err, ErrInvalidFilter) {
				t.Fatalf("New: %v, want ErrInvalidFilter", err)
			}
		})
	}
}
